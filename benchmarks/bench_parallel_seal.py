"""Sealing throughput with segments sealed in parallel, beside ``age`` and the
single-core AES-256-GCM limit of ``openssl speed``, measured in one run.

Operations (plaintext in memory, ``--size-mib`` MiB, 1 MiB segments):

* ``ours_w1``   ``seal_bytes(..., workers=1)`` (sequential);
* ``ours_w2``   ``seal_bytes(..., workers=2)`` (thread pool over segments; output
  byte-identical to ``ours_w1``, checked here);
* ``age``       ``age -r <X25519 recipient> -o out plain`` (file in ``--dir``);
* ``openssl``   ``openssl speed -evp aes-256-gcm -bytes 1048576 -seconds 1``:
  one core's AES-256-GCM ceiling on 1 MiB blocks (no I/O, no framing).

Parallel sealing helps only where the AEAD call releases the GIL; the JSON
records the measured speed-up whatever it is.

Usage: ``bench_parallel_seal.py [--size-mib 256] [--reps 5] [--quick]
[--dir /dev/shm] [--json benchmarks/results/parallel_seal.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import fmt, machine, summary

from orchestrator.crypto import envelope, new_dek

MIB = 1 << 20
DIGEST = "sha256:" + "0" * 64


def _seal(data: bytes, dek: bytes, workers: int) -> bytes:
    return envelope.seal_bytes(data, dek, object_id="bench", label={},
                               manifest_digest=DIGEST, workers=workers)


def _openssl() -> dict[str, Any]:
    exe = shutil.which("openssl")
    if not exe:
        return {"available": False}
    proc = subprocess.run(
        [exe, "speed", "-evp", "aes-256-gcm", "-bytes", str(MIB), "-seconds", "1"],
        capture_output=True, text=True, check=False)
    m = re.search(r"^AES-256-GCM\s+([\d.]+)k", proc.stdout, re.M | re.I)
    if not m:
        return {"available": False, "output": proc.stdout[-500:]}
    return {"available": True, "gb_per_s": float(m.group(1)) * 1000 / 1e9,
            "version": subprocess.run([exe, "version"], capture_output=True,
                                      text=True, check=False).stdout.strip()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size-mib", type=int, default=256)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--quick", action="store_true", help="16 MiB, 1 rep")
    ap.add_argument("--dir", default="/dev/shm" if Path("/dev/shm").is_dir() else None)
    ap.add_argument("--json", default="benchmarks/results/parallel_seal.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.size_mib, args.reps = 16, 1
    size = args.size_mib * MIB
    data = os.urandom(size)
    dek = new_dek()
    with mock.patch("os.urandom", lambda n: b"\x5a" * n):
        identical = _seal(data, dek, 1) == _seal(data, dek, 2)
    times: dict[str, list[float]] = {"ours_w1": [], "ours_w2": [], "age": []}
    age, keygen = shutil.which("age"), shutil.which("age-keygen")
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        plain, out = Path(tmp) / "plain", Path(tmp) / "out.age"
        recipient = ""
        if age and keygen:
            plain.write_bytes(data)
            keyfile = Path(tmp) / "key"
            subprocess.run([keygen, "-o", str(keyfile)], capture_output=True,
                           check=True)
            recipient = re.findall(r"age1[0-9a-z]+", keyfile.read_text())[0]
        for _ in range(args.reps):
            for name, workers in (("ours_w1", 1), ("ours_w2", 2)):
                t = time.perf_counter()
                _seal(data, dek, workers)
                times[name].append(time.perf_counter() - t)
            if recipient:
                t = time.perf_counter()
                subprocess.run([str(age), "-r", recipient, "-o", str(out),
                                str(plain)], check=True)
                times["age"].append(time.perf_counter() - t)
    ops: dict[str, Any] = {}
    for name, values in times.items():
        if not values:
            ops[name] = {"available": False}
            continue
        ops[name] = {"available": True, "wall_s": summary(values),
                     "gb_per_s": summary([size / v / 1e9 for v in values])}
    ops["openssl"] = _openssl()
    speedup = (ops["ours_w1"]["wall_s"]["median"] / ops["ours_w2"]["wall_s"]["median"])
    doc = {"benchmark": "parallel_seal", "machine": machine(),
           "config": {"size_mib": args.size_mib, "reps": args.reps,
                      "segment_size": envelope.DEFAULT_SEGMENT_SIZE,
                      "dir": args.dir},
           "operations": ops, "verified": {"w2_byte_identical_to_w1": identical},
           "speedup_w2_over_w1": speedup}
    print(f"| operation | GB/s median [min{chr(8211)}max] |\n|---|---|")
    for name in ("ours_w1", "ours_w2", "age"):
        op = ops[name]
        print(f"| {name} | {fmt(op['gb_per_s']) if op['available'] else 'n/a'} |")
    ossl = ops["openssl"]
    print(f"| openssl speed (1 core) | "
          f"{ossl['gb_per_s']:.3f} |" if ossl["available"] else "| openssl | n/a |")
    print(f"\nworkers=2 / workers=1 speed-up: {speedup:.2f}x; "
          f"byte-identical: {identical}")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(doc, indent=2) + "\n")
    return 0 if identical else 1


if __name__ == "__main__":
    raise SystemExit(main())
