"""Crash consistency of the custody log: SIGKILL an appender at random moments.

A child process (``_crash_appender.py``) appends events with deterministic ids and
acknowledges each on stdout only after ``append`` returned. The parent kills it with
SIGKILL 0-150 ms after its first acknowledgement, then checks the log:

* SQLite ``PRAGMA integrity_check`` is ``ok`` (SQLite only);
* the whole log verifies (:func:`verify_log` with the appender's key: seqs, chain,
  stored columns and hashes, every signature, no duplicate ``event_id``);
* every acknowledged event id is present, none twice;
* the RFC 9162 Merkle root over all leaf hashes can be computed;

and restarts the appender, which first retries the event it was working on when
killed (idempotent: no duplicate). 200 kills on one SQLite file and 30 on
PostgreSQL. To keep the run short, each (key, signature, message) triple is
checked with Ed25519 once and the outcome memoised for later whole-log passes; a
changed leaf is a new triple and is checked afresh.

Also a smoke run of ``benchmarks/bench_ledger.py --quick``.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import orchestrator.tlog.verify as verify_mod
from orchestrator.log.selfcheck import verify_log
from orchestrator.log.store import CustodyLog
from orchestrator.tlog.events import SignedEntry
from orchestrator.tlog.merkle import root_hash
from orchestrator.tlog.verify import TrustedKey

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
APPENDER = HERE / "_crash_appender.py"
SEED = hashlib.sha256(b"sovereign crash appender").digest()


def _public_key() -> bytes:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes(
        Encoding.Raw, PublicFormat.Raw)


KEYS = {"ed25519:crash": TrustedKey("ed25519:crash", _public_key(),
                                    frozenset({"site:crash"}))}


def _memo_method(method: Callable[[SignedEntry], Any]
                 ) -> Callable[[SignedEntry], Any]:
    memo: dict[int, tuple[SignedEntry, Any]] = {}

    def cached(self: SignedEntry) -> Any:
        hit = memo.get(id(self))
        if hit is None or hit[0] is not self:
            hit = memo[id(self)] = (self, method(self))
        return hit[1]

    return cached


@pytest.fixture
def memo_signatures(monkeypatch: pytest.MonkeyPatch) -> None:
    """Memoise Ed25519 outcomes per (key, signature, message), and parsed entries
    per leaf bytes, across the repeated whole-log passes."""
    parse = SignedEntry.from_leaf
    parsed: dict[bytes, SignedEntry] = {}

    def from_leaf(leaf: bytes) -> SignedEntry:
        leaf = bytes(leaf)
        if leaf not in parsed:
            parsed[leaf] = parse(leaf)
        return parsed[leaf]

    monkeypatch.setattr(SignedEntry, "from_leaf", staticmethod(from_leaf))
    for name in ("signed_bytes", "entry_hash"):  # pure functions of frozen entries
        monkeypatch.setattr(SignedEntry, name, _memo_method(getattr(SignedEntry, name)))
    real: Callable[[bytes, bytes, bytes], bool] | None = getattr(
        verify_mod, "_verify_ed25519", None)
    if real is None:  # verify.py changed: verify without the memo (slower)
        return
    seen: dict[tuple[bytes, bytes, bytes], bool] = {}

    def cached(public_key: bytes, signature: bytes, data: bytes) -> bool:
        key = (public_key, signature, data)
        if key not in seen:
            seen[key] = real(public_key, signature, data)
        return seen[key]

    monkeypatch.setattr(verify_mod, "_verify_ed25519", cached)


@dataclass
class Tally:
    kills: int = 0
    corrupt: int = 0
    lost: int = 0
    extras: int = 0
    duplicates: int = 0
    acked: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)


def _spawn(target: str) -> subprocess.Popen[bytes]:
    """Start an appender that waits for its start number on stdin."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen([sys.executable, str(APPENDER), target, SEED.hex()],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, cwd=ROOT)


def _run_once(proc: subprocess.Popen[bytes], start: int,
              rng: random.Random) -> list[str]:
    """Let ``proc`` append from ``start``, SIGKILL it, return acknowledged ids."""
    assert proc.stdin and proc.stdout and proc.stderr
    proc.stdin.write(f"{start}\n".encode())
    proc.stdin.close()
    first = proc.stdout.readline()
    if not first.endswith(b"\n"):
        proc.kill()
        proc.wait()
        raise AssertionError(f"appender died before acknowledging anything: "
                             f"{proc.stderr.read().decode()[-2000:]}")
    time.sleep(rng.uniform(0.0, 0.150))
    proc.send_signal(signal.SIGKILL)
    rest = proc.stdout.read()
    proc.wait()
    proc.stderr.close()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL, proc.returncode
    lines = (first + rest).split(b"\n")[:-1]  # a torn last line is not an ack
    return [line.decode().split()[1] for line in lines]


def _check(log: CustodyLog, tally: Tally, sqlite_path: Path | None) -> None:
    if sqlite_path is not None:
        with sqlite3.connect(sqlite_path) as conn:
            result = conn.execute("PRAGMA integrity_check").fetchall()
        if result != [("ok",)]:
            tally.corrupt += 1
            tally.problems.append(f"integrity_check: {result}")
    try:
        verify_log(log, KEYS)
        root_hash(log.leaf_hashes())
    except Exception as exc:
        tally.corrupt += 1
        tally.problems.append(f"verification: {exc!r}")
        return
    ids = [r.event_id for r in log.rows()]
    stored = set(ids)
    tally.duplicates += len(ids) - len(stored)
    missing = tally.acked - stored
    tally.lost += len(missing)
    if missing:
        tally.problems.append(f"lost acknowledged: {sorted(missing)[:5]}")
    tally.extras += len(stored - tally.acked)


def _crash_loop(target: str, kills: int, sqlite_path: Path | None,
                seed: int) -> Tally:
    rng = random.Random(seed)
    log = CustodyLog(target)
    tally = Tally()
    start = 0
    proc = _spawn(target)
    for kill in range(kills):
        acked = _run_once(proc, start, rng)
        tally.kills += 1
        tally.acked.update(acked)
        if kill + 1 < kills:  # its imports overlap with the checks below
            proc = _spawn(target)
        # extras: committed when killed, not yet acknowledged (the retry acks them)
        _check(log, tally, sqlite_path)
        start = int(acked[-1].split("-")[1]) + 1
    return tally


def _report(name: str, tally: Tally) -> None:
    print(f"\n{name}: kills={tally.kills} corrupt={tally.corrupt} "
          f"lost_acknowledged={tally.lost} duplicates={tally.duplicates} "
          f"unacknowledged_committed={tally.extras} "
          f"acknowledged={len(tally.acked)}")
    assert tally.corrupt == 0, tally.problems[:5]
    assert tally.lost == 0, tally.problems[:5]
    assert tally.duplicates == 0


@pytest.mark.usefixtures("memo_signatures")
def test_sigkill_sqlite_200_times(tmp_path: Path) -> None:
    path = tmp_path / "crash.db"
    tally = _crash_loop(str(path), 200, path, seed=1)
    _report("sqlite", tally)
    assert CustodyLog(path).size() >= len(tally.acked)


@pytest.mark.postgres
@pytest.mark.usefixtures("memo_signatures")
def test_sigkill_postgres_30_times(pg_url: str) -> None:
    tally = _crash_loop(pg_url, 30, None, seed=2)
    _report("postgres", tally)


def test_bench_ledger_quick(tmp_path: Path) -> None:
    out = tmp_path / "ledger.json"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_ledger.py"), "--quick",
         "--json", str(out)], cwd=ROOT, capture_output=True, text=True, timeout=120,
        check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert time.monotonic() - t0 < 60
    assert "|" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "ledger"
    for row in doc["appends"].values():
        assert row["entries_per_s"] > 0
    assert doc["verify"]["entries"] > 0
