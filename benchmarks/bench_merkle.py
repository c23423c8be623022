"""Merkle tree benchmark: root of n leaf hashes, proof sizes and verify times.

For n = 10**1 .. 10**max_exp it reports the time to compute the RFC 9162 root of
``n`` leaf hashes (pure Python, level by level), to build a :class:`MerkleTree`
and to append ``n`` leaves one by one, then the inclusion and consistency proof
sizes (hashes and bytes) and verification times, which grow as O(log n).

Run: ``.venv/bin/python benchmarks/bench_merkle.py [--max-exp 6] [--reps 3]``.
Prints a Markdown table and writes JSON (``--json``, default
``benchmarks/results/merkle.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from orchestrator.tlog.merkle import (  # noqa: E402
    HASH_SIZE,
    MerkleTree,
    root_hash,
    verify_consistency,
    verify_inclusion,
)

RESULTS = Path(__file__).resolve().parent / "results"


def _median_s(fn: Callable[[], object], reps: int) -> float:
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _per_call_us(fn: Callable[[], object], calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def measure(n: int, reps: int) -> dict[str, float | int]:
    """Time root, build, append and proofs for ``n`` leaves."""
    leaves = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(n)]
    root_s = _median_s(lambda: root_hash(leaves), reps)
    build_s = _median_s(lambda: MerkleTree(leaves), reps)

    def append_all() -> None:
        MerkleTree().extend(leaves)

    append_s = _median_s(append_all, 1 if n >= 10**5 else reps)
    tree = MerkleTree(leaves)
    root = tree.root()
    index, old = n // 3, max(1, (2 * n) // 3)
    incl = tree.inclusion_proof(index)
    cons = tree.consistency_proof(old)
    old_root = tree.root(old)
    verify_inclusion(leaves[index], index, n, incl, root)
    if old < n:
        verify_consistency(old, n, cons, old_root, root)
    calls = 2000
    return {
        "n": n,
        "root_s": root_s,
        "build_s": build_s,
        "append_s": append_s,
        "inclusion_hashes": len(incl),
        "inclusion_bytes": len(incl) * HASH_SIZE,
        "inclusion_prove_us": _per_call_us(lambda: tree.inclusion_proof(index), calls),
        "inclusion_verify_us": _per_call_us(
            lambda: verify_inclusion(leaves[index], index, n, incl, root), calls),
        "consistency_hashes": len(cons),
        "consistency_bytes": len(cons) * HASH_SIZE,
        "consistency_verify_us": _per_call_us(
            lambda: verify_consistency(old, n, cons, old_root, root)
            if old < n else None, calls),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="RFC 9162 Merkle tree benchmark.")
    ap.add_argument("--max-exp", type=int, default=6, help="largest n is 10**max_exp")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path, default=RESULTS / "merkle.json")
    args = ap.parse_args(argv)
    rows = [measure(10**e, args.reps) for e in range(1, args.max_exp + 1)]
    print("| n | root (s) | build (s) | append all (s) | incl. proof "
          "(hashes / B) | incl. verify (µs) | cons. proof (hashes / B) "
          "| cons. verify (µs) |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['n']:,} | {r['root_s']:.4f} | {r['build_s']:.4f} "
              f"| {r['append_s']:.4f} "
              f"| {r['inclusion_hashes']} / {r['inclusion_bytes']} "
              f"| {r['inclusion_verify_us']:.1f} "
              f"| {r['consistency_hashes']} / {r['consistency_bytes']} "
              f"| {r['consistency_verify_us']:.1f} |")
    doc = {
        "benchmark": "merkle",
        "config": {"max_exp": args.max_exp, "reps": args.reps},
        "machine": {"python": platform.python_version(),
                    "platform": platform.platform(),
                    "processor": platform.processor()},
        "rows": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
