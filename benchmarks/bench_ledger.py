"""Custody-log benchmark: durable appends/s and time to verify a large log.

Appends (entries/s, every figure durable: SQLite WAL + ``synchronous=FULL``, see
https://sqlite.org/wal.html and https://sqlite.org/pragma.html#pragma_synchronous;
PostgreSQL ``synchronous_commit=on``, see
https://www.postgresql.org/docs/15/runtime-config-wal.html#GUC-SYNCHRONOUS-COMMIT):

* ``single``: one appender, one transaction (one fsync) per event;
* ``group_threads``: 16 (and 64) threads through :class:`GroupCommitter`;
* ``append_many_64``: :meth:`CustodyLog.append_many` batches of 64;
* ``raw_sqlite_row`` / ``raw_sqlite_batch64``: plain ``INSERT`` of the same, already
  signed rows into a bare table, one commit per row / per 64 rows (the floor);
* the same three log figures on PostgreSQL when ``--pg-url`` is given.

Verification of an ``--entries`` log (built with ``append_many`` in batches of
10,000 and one reused Ed25519 key): *structural* (read, parse each leaf strictly,
stored columns and hash agree with the leaf, seq/prev chain, unique event ids, RFC
9162 Merkle root over all leaf hashes), serial and over a process pool; *Ed25519
signatures* over a process pool with all cores, and serially on a sample. Reported
as seconds and entries/s.

Run: ``.venv/bin/python benchmarks/bench_ledger.py [--entries 1000000] [--quick]
[--pg-url URL] [--dir DIR] [--json benchmarks/results/ledger.json]``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sqlite3
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from cryptography.hazmat.primitives.asymmetric.ed25519 import (  # noqa: E402
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import (  # noqa: E402
    Encoding,
    PublicFormat,
)

from orchestrator.log.group_commit import GroupCommitter  # noqa: E402
from orchestrator.log.store import CustodyLog  # noqa: E402
from orchestrator.tlog.events import CustodyEvent, SignedEntry, leaf_hash  # noqa: E402
from orchestrator.tlog.merkle import root_hash  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"
SEED = hashlib.sha256(b"bench_ledger").digest()


class CachedSigner:
    """One Ed25519 key loaded once and reused for every entry."""

    key_id = "ed25519:bench"

    def __init__(self) -> None:
        self._sk = Ed25519PrivateKey.from_private_bytes(SEED)
        self.public_key = self._sk.public_key().public_bytes(Encoding.Raw,
                                                             PublicFormat.Raw)

    def sign(self, data: bytes) -> bytes:
        return self._sk.sign(data)


def event(tag: str, n: int) -> CustodyEvent:
    return CustodyEvent(event_id=f"{tag}-{n:08d}", kind="task.started",
                        actor="site:bench", time="2026-01-01T00:00:00.000000Z",
                        body={"job_id": f"job-{n % 97}", "n": n})


def _rate(n: int, seconds: float, commits: int) -> dict[str, Any]:
    return {"entries": n, "seconds": round(seconds, 4), "commits": commits,
            "entries_per_s": round(n / seconds, 1)}


# -- appends -------------------------------------------------------------------------


def bench_single(log: CustodyLog, signer: CachedSigner, n: int) -> dict[str, Any]:
    log.init()
    t0 = time.perf_counter()
    for i in range(n):
        log.append(event("single", i), signer)
    return _rate(n, time.perf_counter() - t0, n)


def bench_threads(log: CustodyLog, signer: CachedSigner, threads: int,
                  per_thread: int) -> dict[str, Any]:
    log.init()
    committer = GroupCommitter(log, max_batch=256, max_wait=0.001)

    def work(t: int) -> None:
        for i in range(per_thread):
            committer.append(event(f"thr{t}", i), signer)

    pool = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    t0 = time.perf_counter()
    for th in pool:
        th.start()
    for th in pool:
        th.join()
    out = _rate(threads * per_thread, time.perf_counter() - t0, committer.batches)
    out["threads"] = threads
    return out


def bench_many(log: CustodyLog, signer: CachedSigner, n: int,
               batch: int) -> dict[str, Any]:
    log.init()
    events = [event("many", i) for i in range(n)]
    t0 = time.perf_counter()
    for i in range(0, n, batch):
        log.append_many([(e, signer) for e in events[i:i + batch]])
    return _rate(n, time.perf_counter() - t0, -(-n // batch))


def bench_raw_sqlite(path: Path, rows: list[tuple[Any, ...]],
                     batch: int) -> dict[str, Any]:
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.execute("CREATE TABLE entries (seq INTEGER PRIMARY KEY, event_id TEXT "
                 "UNIQUE NOT NULL, kind TEXT, actor TEXT, time TEXT, leaf BLOB, "
                 "entry_hash TEXT)")
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                         rows[i:i + batch])
        conn.execute("COMMIT")
    seconds = time.perf_counter() - t0
    conn.close()
    return _rate(len(rows), seconds, -(-len(rows) // batch))


def signed_rows(log: CustodyLog) -> list[tuple[Any, ...]]:
    return [tuple(r) for r in log.rows()]


# -- verification --------------------------------------------------------------------


def build(log: CustodyLog, signer: CachedSigner, n: int) -> float:
    log.init()
    t0 = time.perf_counter()
    step = 10_000
    for i in range(0, n, step):
        log.append_many([(event("v", k), signer) for k in range(i, min(i + step, n))])
    return time.perf_counter() - t0


def _structural_range(target: str, start: int, stop: int
                      ) -> tuple[str, str, bytes, list[str]]:
    """Parse and check rows ``start <= seq < stop``; return (first prev, last hash,
    leaf hashes, event ids)."""
    prev = first_prev = None
    hashes: list[bytes] = []
    ids: list[str] = []
    for i, row in enumerate(CustodyLog(target).rows(start, stop), start):
        entry = SignedEntry.from_leaf(row.leaf)
        h = leaf_hash(row.leaf)
        if (row.seq, row.event_id, row.kind, row.actor, row.time, row.entry_hash) != (
                i, entry.event.event_id, entry.event.kind, entry.event.actor,
                entry.event.time, h) or entry.seq != i:
            raise SystemExit(f"entry {i}: stored columns disagree with the leaf")
        if prev is None:
            first_prev = entry.prev_hash
        elif entry.prev_hash != prev:
            raise SystemExit(f"entry {i}: broken chain")
        prev = h
        hashes.append(bytes.fromhex(h))
        ids.append(entry.event.event_id)
    assert first_prev is not None and prev is not None
    return first_prev, prev, b"".join(hashes), ids


def structural(target: str, n: int, workers: int) -> float:
    t0 = time.perf_counter()
    bounds = [(n * w // workers, n * (w + 1) // workers) for w in range(workers)]
    if workers == 1:
        parts = [_structural_range(target, *bounds[0])]
    else:
        with ProcessPoolExecutor(workers) as pool:
            parts = list(pool.map(_structural_range, [target] * workers,
                                  *zip(*bounds, strict=True)))
    expected = "0" * 64
    ids: set[str] = set()
    leaves: list[bytes] = []
    for first_prev, last, hashes, part_ids in parts:
        if first_prev != expected:
            raise SystemExit("chain broken between ranges")
        expected = last
        ids.update(part_ids)
        leaves.extend(hashes[i:i + 32] for i in range(0, len(hashes), 32))
    if len(ids) != n or len(leaves) != n:
        raise SystemExit("duplicate event ids or missing entries")
    root_hash(leaves)
    return time.perf_counter() - t0


def _signatures_range(target: str, public_key: bytes, start: int, stop: int) -> int:
    key = Ed25519PublicKey.from_public_bytes(public_key)
    count = 0
    for row in CustodyLog(target).rows(start, stop):
        entry = SignedEntry.from_leaf(row.leaf)
        key.verify(entry.signature, entry.signed_bytes())  # raises if invalid
        count += 1
    return count


def signatures(target: str, public_key: bytes, n: int, workers: int) -> float:
    t0 = time.perf_counter()
    chunks = max(workers * 4, 1)
    bounds = [(n * c // chunks, n * (c + 1) // chunks) for c in range(chunks)]
    if workers == 1:
        done = sum(_signatures_range(target, public_key, a, b) for a, b in bounds)
    else:
        with ProcessPoolExecutor(workers) as pool:
            done = sum(pool.map(_signatures_range, [target] * chunks,
                                [public_key] * chunks, *zip(*bounds, strict=True)))
    assert done == n
    return time.perf_counter() - t0


# -- main ----------------------------------------------------------------------------


def pg_schema_url(url: str, schema: str) -> str:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options=-csearch_path%3D{schema}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--entries", type=int, default=1_000_000)
    ap.add_argument("--quick", action="store_true",
                    help="smoke run: few appends, 2,000-entry verification")
    ap.add_argument("--pg-url", default=None)
    ap.add_argument("--dir", type=Path, default=None, help="scratch directory")
    ap.add_argument("--json", type=Path, default=RESULTS / "ledger.json")
    args = ap.parse_args(argv)
    entries = 2_000 if args.quick else args.entries
    single_n, threads, per_thread, many_n = ((40, 16, 8, 640) if args.quick
                                             else (500, 16, 250, 12_800))
    workers = os.cpu_count() or 1
    signer = CachedSigner()
    scratch = Path(tempfile.mkdtemp(prefix="bench-ledger-", dir=args.dir))
    appends: dict[str, Any] = {}

    def log_at(name: str) -> CustodyLog:
        return CustodyLog(scratch / f"{name}.db")

    print("appends (SQLite) ...", file=sys.stderr)
    appends["sqlite_single"] = bench_single(log_at("single"), signer, single_n)
    appends["sqlite_group_threads"] = bench_threads(log_at("threads"), signer,
                                                    threads, per_thread)
    appends["sqlite_group_threads64"] = bench_threads(log_at("threads64"), signer,
                                                      64, per_thread // 4 or 1)
    appends["sqlite_append_many_64"] = bench_many(log_at("many"), signer, many_n, 64)
    rows = signed_rows(log_at("many"))
    appends["raw_sqlite_row"] = bench_raw_sqlite(scratch / "raw1.db",
                                                 rows[:single_n], 1)
    appends["raw_sqlite_batch64"] = bench_raw_sqlite(scratch / "raw64.db", rows, 64)
    if args.pg_url:
        print("appends (PostgreSQL) ...", file=sys.stderr)
        for name, fn in (
                ("single", lambda lg: bench_single(lg, signer, single_n)),
                ("group_threads",
                 lambda lg: bench_threads(lg, signer, threads, per_thread)),
                ("append_many_64", lambda lg: bench_many(lg, signer, many_n, 64))):
            appends[f"pg_{name}"] = fn(CustodyLog(
                pg_schema_url(args.pg_url, f"bench_{name}")))

    print(f"building a {entries:,}-entry log ...", file=sys.stderr)
    target = str(scratch / "verify.db")
    build_s = build(CustodyLog(target), signer, entries)
    size_bytes = sum(p.stat().st_size for p in scratch.glob("verify.db*"))
    print("verifying ...", file=sys.stderr)
    sample = min(entries, 100_000)
    verify: dict[str, Any] = {
        "entries": entries, "workers": workers, "build_s": round(build_s, 2),
        "db_bytes": size_bytes,
        "structural_serial_s": round(structural(target, entries, 1), 2),
        "structural_parallel_s": round(structural(target, entries, workers), 2),
        "signatures_parallel_s": round(
            signatures(target, signer.public_key, entries, workers), 2),
        "signatures_serial_sample": sample,
        "signatures_serial_sample_s": round(
            signatures(target, signer.public_key, sample, 1), 2),
    }
    for key in ("structural_serial", "structural_parallel", "signatures_parallel"):
        verify[f"{key}_entries_per_s"] = round(entries / verify[f"{key}_s"], 1)
    verify["signatures_serial_entries_per_s"] = round(
        sample / verify["signatures_serial_sample_s"], 1)
    best = min(verify["structural_serial_s"], verify["structural_parallel_s"])
    verify["full_parallel_s"] = round(best + verify["signatures_parallel_s"], 2)
    per_m = 1_000_000 / entries
    targets = {
        "group_commit_ge_5000_per_s": max(
            appends[k]["entries_per_s"] for k in (
                "sqlite_group_threads", "sqlite_group_threads64",
                "sqlite_append_many_64")) >= 5000,
        "structural_1M_lt_30s": best * per_m < 30,
        "full_with_signatures_1M_lt_30s": verify["full_parallel_s"] * per_m < 30,
    }
    doc = {"benchmark": "ledger", "quick": args.quick,
           "machine": {"cpus": workers, "python": platform.python_version(),
                       "sqlite": sqlite3.sqlite_version,
                       "platform": platform.platform()},
           "appends": appends, "verify": verify, "targets": targets}
    print("| appends | entries | commits | seconds | entries/s |")
    print("|---|---:|---:|---:|---:|")
    for name, r in appends.items():
        print(f"| {name} | {r['entries']} | {r['commits']} | {r['seconds']:.3f} | "
              f"{r['entries_per_s']:,.0f} |")
    print(f"\n| verify {entries:,} entries | seconds | entries/s |")
    print("|---|---:|---:|")
    print(f"| build (append_many 10k batches) | {build_s:.1f} | "
          f"{entries / build_s:,.0f} |")
    for key, label in (("structural_serial", "structural, 1 process"),
                       ("structural_parallel", f"structural, {workers} processes"),
                       ("signatures_parallel", f"Ed25519, {workers} processes")):
        print(f"| {label} | {verify[key + '_s']:.2f} | "
              f"{verify[key + '_entries_per_s']:,.0f} |")
    print(f"| Ed25519, 1 process ({sample:,} sample) | "
          f"{verify['signatures_serial_sample_s']:.2f} | "
          f"{verify['signatures_serial_entries_per_s']:,.0f} |")
    print(f"| full (best structural + parallel Ed25519) | "
          f"{verify['full_parallel_s']:.2f} | "
          f"{entries / verify['full_parallel_s']:,.0f} |")
    print(f"\ntargets: {json.dumps(targets)}")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    for p in scratch.iterdir():
        p.unlink()
    scratch.rmdir()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
