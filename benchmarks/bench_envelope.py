#!/usr/bin/env python3
"""Sealing/opening throughput of our streaming envelope beside ``age``.

Every operation is one whole child process, timed by wall clock from spawn to exit,
with its own peak RSS and CPU times from ``os.wait4``:

* ``our_seal``     ``_envelope_worker.py seal plain sealed``   (AES-256-GCM STREAM)
* ``age_encrypt``  ``age -r <X25519 recipient> -o out plain``
* ``our_open``     ``_envelope_worker.py open sealed plain2``
* ``age_decrypt``  ``age -d -i key -o plain2 out``
* ``our_seal_small`` our seal on a file ``--small-factor`` (4) times smaller, to show
  that our peak memory does not grow with the input.
* ``python_floor`` the worker's interpreter with the envelope module imported and
  nothing done (the RSS floor of any of our runs).

Input is ``--size-mib`` MiB of ``os.urandom`` in ``--dir`` (default ``/dev/shm``,
tmpfs, so the disk is out of the picture; every output is a fresh file there). Reps
are interleaved pairs (ours, age), the order within a pair alternating per rep; the
ratios ours/age are taken pair by pair (time ratio: > 1 means ours is slower).
GB = 1e9 bytes. All files are deleted at the end.

Usage: ``bench_envelope.py [--size-mib 1024] [--reps 5] [--dir /dev/shm]
[--age PATH] [--json benchmarks/results/envelope.json]``
"""

from __future__ import annotations

import argparse
import filecmp
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (
    DASH,
    RESULTS,
    ROOT,
    ProcRun,
    fmt,
    machine,
    rss_method,
    run_measured,
    summary,
)

WORKER = Path(__file__).resolve().parent / "_envelope_worker.py"
MIB = 1 << 20


def _random_file(path: Path, size: int) -> None:
    chunk = 16 * MIB
    with open(path, "wb") as f:
        left = size
        while left:
            n = min(chunk, left)
            f.write(os.urandom(n))
            left -= n


def _check(run: ProcRun, what: str) -> ProcRun:
    if run.returncode != 0:
        raise SystemExit(
            f"{what} failed ({run.returncode}):\n{run.stdout}\n{run.stderr}"
        )
    return run


def _record(run: ProcRun, size: int) -> dict[str, float]:
    rec = {
        "wall_s": run.wall_s,
        "gb_per_s": size / 1e9 / run.wall_s,
        "maxrss_mib": run.maxrss_mib,
        "user_s": run.user_s,
        "sys_s": run.sys_s,
    }
    line = run.stdout.strip().splitlines()[-1] if run.stdout.strip() else ""
    if line.startswith("{"):
        info = json.loads(line)
        rec["crypto_s"] = info["crypto_s"]
        rec["import_s"] = info["import_s"]
    return rec


def _pick_dir(requested: Path | None, need: int) -> Path:
    if requested is not None:
        return requested
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK):
        st = os.statvfs(shm)
        if st.f_bavail * st.f_frsize > need:
            return shm
    return Path(tempfile.gettempdir())


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Envelope vs age throughput.")
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--small-factor", type=int, default=4)
    ap.add_argument(
        "--warmup",
        type=int,
        default=1,
        help="untimed full-size passes of every operation first (default 1)",
    )
    ap.add_argument(
        "--dir",
        type=Path,
        default=None,
        help="scratch directory (default /dev/shm if roomy, else $TMPDIR)",
    )
    ap.add_argument(
        "--age",
        default=None,
        help="age binary (default: `age` on PATH); a missing one is "
        "recorded as unavailable and only our side runs",
    )
    ap.add_argument("--json", type=Path, default=RESULTS / "envelope.json")
    args = ap.parse_args(argv)

    size = args.size_mib * MIB
    small = size // args.small_factor
    age = shutil.which(args.age) if args.age else shutil.which("age")
    keygen = None
    if age:
        keygen = shutil.which("age-keygen") or shutil.which(
            str(Path(age).with_name("age-keygen"))
        )
    age_ok = bool(age and keygen)
    age_version = None
    if age_ok:
        age_version = subprocess.run(
            [age, "--version"], capture_output=True, text=True, check=False
        ).stdout.strip()
    py = sys.executable
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}

    base = _pick_dir(args.dir, 5 * size + small)
    work = Path(tempfile.mkdtemp(prefix="sov-bench-env-", dir=base))
    results: dict[str, list[dict[str, float]]] = {
        k: []
        for k in (
            "our_seal",
            "age_encrypt",
            "our_open",
            "age_decrypt",
            "our_seal_small",
            "python_floor",
        )
    }
    verified: dict[str, bool] = {}
    t_start = time.time()
    try:
        plain = work / "plain.bin"
        plain_small = work / "plain_small.bin"
        print(
            f"# writing {args.size_mib} MiB (+{small // MIB} MiB) of random data "
            f"to {work}",
            file=sys.stderr,
        )
        _random_file(plain, size)
        _random_file(plain_small, small)
        dek = work / "dek"
        sealed, sealed_small, out = (
            work / "sealed.bin",
            work / "sealed_small.bin",
            work / "opened.bin",
        )
        aged, key = work / "plain.age", work / "key.txt"
        pub = ""
        if age_ok:
            assert keygen is not None and age is not None
            subprocess.run([keygen, "-o", str(key)], check=True, capture_output=True)
            pub = subprocess.run(
                [keygen, "-y", str(key)], check=True, capture_output=True, text=True
            ).stdout.strip()

        def our_seal(src: Path, dst: Path, sz: int) -> dict[str, float]:
            dst.unlink(missing_ok=True)
            return _record(
                _check(
                    run_measured(
                        [
                            py,
                            str(WORKER),
                            "seal",
                            str(src),
                            str(dst),
                            "--dek-file",
                            str(dek),
                        ],
                        env=env,
                    ),
                    "our seal",
                ),
                sz,
            )

        def our_open() -> dict[str, float]:
            out.unlink(missing_ok=True)
            return _record(
                _check(
                    run_measured(
                        [
                            py,
                            str(WORKER),
                            "open",
                            str(sealed),
                            str(out),
                            "--dek-file",
                            str(dek),
                        ],
                        env=env,
                    ),
                    "our open",
                ),
                size,
            )

        def age_enc() -> dict[str, float]:
            aged.unlink(missing_ok=True)
            return _record(
                _check(
                    run_measured(
                        [str(age), "-r", pub, "-o", str(aged), str(plain)], env=env
                    ),
                    "age encrypt",
                ),
                size,
            )

        def age_dec() -> dict[str, float]:
            out.unlink(missing_ok=True)
            return _record(
                _check(
                    run_measured(
                        [str(age), "-d", "-i", str(key), "-o", str(out), str(aged)],
                        env=env,
                    ),
                    "age decrypt",
                ),
                size,
            )

        floor_cmd = [
            py,
            "-c",
            f"import sys; sys.path.insert(0, {str(ROOT)!r}); "
            "import orchestrator.crypto.envelope",
        ]
        # Warm-up passes (not recorded), full size: interpreter, shared libraries,
        # and above all the scratch memory. In a VM the first touch of guest pages
        # that were never used costs several times more kernel time than reusing
        # freed ones (here 4 GiB to tmpfs: 9.1 s the first time, 1.5-1.9 s after),
        # which made every first rep 2-3x slow. Each pass writes every output once.
        for _ in range(args.warmup):
            our_seal(plain, sealed, size)
            our_open()
            if age_ok:
                age_enc()
                age_dec()
            our_seal(plain_small, sealed_small, small)
        out.unlink(missing_ok=True)
        for rep in range(args.reps):
            ours_first = rep % 2 == 0
            # Pair 1: seal vs age encrypt.
            for first in (True, False) if ours_first else (False, True):
                if first:
                    results["our_seal"].append(our_seal(plain, sealed, size))
                elif age_ok:
                    results["age_encrypt"].append(age_enc())
            # Pair 2: open vs age decrypt.
            for first in (True, False) if ours_first else (False, True):
                if first:
                    results["our_open"].append(our_open())
                    if rep == 0:
                        verified["our_roundtrip"] = filecmp.cmp(
                            plain, out, shallow=False
                        )
                    out.unlink(missing_ok=True)
                elif age_ok:
                    results["age_decrypt"].append(age_dec())
                    if rep == 0:
                        verified["age_roundtrip"] = filecmp.cmp(
                            plain, out, shallow=False
                        )
                    out.unlink(missing_ok=True)
            results["our_seal_small"].append(our_seal(plain_small, sealed_small, small))
            floor = _check(run_measured(floor_cmd, env=env), "python floor")
            results["python_floor"].append(
                {
                    "wall_s": floor.wall_s,
                    "maxrss_mib": floor.maxrss_mib,
                    "user_s": floor.user_s,
                    "sys_s": floor.sys_s,
                }
            )
            print(
                f"# rep {rep + 1}/{args.reps}: seal "
                f"{results['our_seal'][-1]['wall_s']:.3f}s"
                + (
                    f" age-enc {results['age_encrypt'][-1]['wall_s']:.3f}s"
                    if age_ok
                    else ""
                )
                + f" open {results['our_open'][-1]['wall_s']:.3f}s"
                + (
                    f" age-dec {results['age_decrypt'][-1]['wall_s']:.3f}s"
                    if age_ok
                    else ""
                ),
                file=sys.stderr,
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if not all(verified.values()):
        raise SystemExit(f"round trip mismatch: {verified}")

    def agg(recs: list[dict[str, float]]) -> dict[str, Any]:
        if not recs:
            return {"available": False}
        keys = recs[0].keys()
        return {"available": True, **{k: summary([r[k] for r in recs]) for k in keys}}

    ops = {k: agg(v) for k, v in results.items()}
    ratios: dict[str, Any] = {}
    if age_ok:
        for name, a, b in (
            ("seal_over_age_encrypt", "our_seal", "age_encrypt"),
            ("open_over_age_decrypt", "our_open", "age_decrypt"),
        ):
            ratios[name] = {
                "wall_time": summary(
                    [
                        x["wall_s"] / y["wall_s"]
                        for x, y in zip(results[a], results[b], strict=True)
                    ]
                ),
                "peak_rss": summary(
                    [
                        x["maxrss_mib"] / y["maxrss_mib"]
                        for x, y in zip(results[a], results[b], strict=True)
                    ]
                ),
            }
    big = ops["our_seal"]["maxrss_mib"]["median"]
    little = ops["our_seal_small"]["maxrss_mib"]["median"]
    memory = {
        "seal_size_mib": args.size_mib,
        "seal_peak_rss_mib": ops["our_seal"]["maxrss_mib"],
        "small_size_mib": small / MIB,
        "small_seal_peak_rss_mib": ops["our_seal_small"]["maxrss_mib"],
        "python_floor_rss_mib": ops["python_floor"]["maxrss_mib"],
        "rss_growth_mib": big - little,
        "bounded": abs(big - little) < 16.0 and big < 100.0,
    }
    doc = {
        "benchmark": "envelope",
        "config": {
            "size_mib": args.size_mib,
            "size_bytes": size,
            "reps": args.reps,
            "small_factor": args.small_factor,
            "warmup_passes": args.warmup,
            "scratch_dir": str(base),
            "rss_method": rss_method(),
            "segment_size": 1 << 20,
            "gb": 1e9,
            "age": age if age_ok else None,
            "age_version": age_version,
        },
        "age_available": age_ok,
        "machine": machine(),
        "started": t_start,
        "duration_s": time.time() - t_start,
        "verified": verified,
        "operations": ops,
        "ratios": ratios,
        "memory": memory,
        "raw": results,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(render(doc))
    print(f"\nJSON: {args.json}", file=sys.stderr)
    return 0


def render(doc: dict[str, Any]) -> str:
    """The Markdown report of one run."""
    cfg, ops = doc["config"], doc["operations"]
    lines = [
        f"### Envelope vs age: {cfg['size_mib']} MiB random file in "
        f"{cfg['scratch_dir']}, {cfg['reps']} interleaved reps, median [min{DASH}max]",
        "",
        "| operation | wall s | GB/s | peak RSS MiB | user s | sys s |",
        "|---|---|---|---|---|---|",
    ]
    labels = {
        "our_seal": "our seal",
        "age_encrypt": "age encrypt",
        "our_open": "our open",
        "age_decrypt": "age decrypt",
        "our_seal_small": f"our seal, {cfg['size_mib'] // cfg['small_factor']} "
        "MiB file",
    }
    for key, label in labels.items():
        op = ops[key]
        if not op["available"]:
            lines.append(f"| {label} | unavailable (age not installed) | | | | |")
            continue
        lines.append(
            f"| {label} | {fmt(op['wall_s'])} | {fmt(op['gb_per_s'], 2)} | "
            f"{fmt(op['maxrss_mib'], 1)} | {fmt(op['user_s'], 2)} | "
            f"{fmt(op['sys_s'], 2)} |"
        )
    fl = ops["python_floor"]
    lines.append(
        f"| python + envelope import only | {fmt(fl['wall_s'])} | {DASH} | "
        f"{fmt(fl['maxrss_mib'], 1)} | {fmt(fl['user_s'], 2)} | "
        f"{fmt(fl['sys_s'], 2)} |"
    )
    if doc["ratios"]:
        lines += [
            "",
            "| ratio, pair by pair | wall time ours/age | peak RSS ours/age |",
            "|---|---|---|",
        ]
        for key, label in (
            ("seal_over_age_encrypt", "our seal / age encrypt"),
            ("open_over_age_decrypt", "our open / age decrypt"),
        ):
            r = doc["ratios"][key]
            lines.append(
                f"| {label} | {fmt(r['wall_time'])} | {fmt(r['peak_rss'], 2)} |"
            )
    else:
        lines += ["", "age not available: ratios not computed."]
    m = doc["memory"]
    ins = ops["our_seal"].get("crypto_s")
    lines += [
        "",
        f"Peak RSS of our seal: {m['seal_size_mib']} MiB input "
        f"{fmt(m['seal_peak_rss_mib'], 1)} MiB, {m['small_size_mib']:.0f} MiB "
        f"input {fmt(m['small_seal_peak_rss_mib'], 1)} MiB (interpreter floor "
        f"{fmt(m['python_floor_rss_mib'], 1)} MiB): growth "
        f"{m['rss_growth_mib']:+.1f} MiB for "
        f"{m['seal_size_mib'] - m['small_size_mib']:.0f} MiB more input "
        f"-> bounded: {m['bounded']}.",
    ]
    if ins:
        lines.append(
            f"Inside the worker (excl. interpreter start): seal "
            f"{fmt(ins)} s, open {fmt(ops['our_open']['crypto_s'])} s; envelope "
            f"import {fmt(ops['our_seal']['import_s'])} s."
        )
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
