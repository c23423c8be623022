#!/usr/bin/env python3
"""Key-release round trip: a custodian service over loopback mTLS vs in-process.

One *release* is what an enclave attempt does for one owner: make an ephemeral
HPKE key, ``challenge()`` for a nonce, sign software evidence with the site key,
``release_key()`` (the custodian verifies the evidence, consumes the nonce,
evaluates the policy, durably appends ``key.released`` with SQLite
``synchronous=FULL``, unwraps the DEK and HPKE-seals it) and open the grant.

Modes, each run by ``--concurrency`` enclave *processes* at once (1, 8, 32), each
doing ``--releases`` timed releases after one untimed warm-up, all released
together by a barrier:

* ``inproc``: a :class:`LocalCustodian` per attempt in the enclave's process,
  over the AUS directory (the embedded default; every process appends to the
  same custody log);
* ``mtls_fresh``: a new :class:`HttpCustodian` per attempt, so a new TCP + TLS 1.3
  handshake with client certificate (RFC 8446) per release, as real enclaves do;
* ``mtls_reuse``: one :class:`HttpCustodian` per enclave process, its connection
  kept alive across releases.

The service is one ``sovereign custodian serve --nation AUS`` process on
127.0.0.1 (uvicorn, one event loop, FastAPI's thread pool for the sync handlers).
Reported per mode and concurrency: p50 / p99 / mean latency (ms) of one release
and throughput (releases/s from the barrier to the last finish).

Usage: ``bench_release.py [--releases 40] [--concurrency 1,8,32] [--quick]
[--json benchmarks/results/release.json]``; ``--quick`` is 3 releases at 1 and 8
enclaves.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import RESULTS, ROOT, machine

sys.path.insert(0, str(ROOT))

MEASUREMENT = "sha256:" + "ab" * 32
MODES = ("inproc", "mtls_fresh", "mtls_reuse")
JOB_ID = "job-bench-release"


def _setup(root: Path) -> tuple[Any, str]:
    from orchestrator.embedded import (
        Deployment,
        StateDir,
        accredit_site,
        add_agreement,
        init_nation,
        register_site,
        seal_dataset,
    )
    from orchestrator.protocol.release import JobRequest

    state = StateDir(root / "state").ensure()
    for code in ("AUS", "GBR", "USA"):
        init_nation(state, code)
    register_site(state, ROOT / "site_configs" / "local.toml")
    accredit_site(state, "local", "AUS")
    record = seal_dataset(
        state,
        ROOT / "data" / "sonar" / "sonar.csv",
        name="uci-sonar",
        owners=["AUS"],
        classification="SECRET",
        releasable_to=["AUS", "GBR", "USA"],
    )
    add_agreement(state, ROOT / "agreements" / "aus-usa.toml",
                  sign_as=["AUS", "USA"])
    Deployment(state).custodian("AUS").decide(JobRequest(  # the job's admission
        JOB_ID, record.id, "local", "undersea-autonomy", 0.5, MEASUREMENT))
    return state, record.id


def _enclave(
    state_root: str,
    dataset_id: str,
    url: str,
    mode: str,
    n: int,
    barrier: Any,
    results: Any,
) -> None:
    """One enclave process: a warm-up release, the barrier, ``n`` timed releases."""
    from orchestrator.canonical import b64d
    from orchestrator.crypto import RecipientKey, hpke_open, load_private_key
    from orchestrator.embedded import Deployment, StateDir
    from orchestrator.net.custodian_client import HttpCustodian
    from orchestrator.protocol.release import Custodian, ReleaseRequest
    from orchestrator.site.attestation import SoftwareAttester
    from orchestrator.submit.registry import Registry

    state = StateDir(Path(state_root))
    site = state.site_dir("local")
    sealed_digest = Registry(state.registry_db).dataset(dataset_id).sealed_digest
    attester = SoftwareAttester("local", load_private_key(site / "site.key"))

    def http() -> HttpCustodian:  # with the site's client certificate from AUS
        return HttpCustodian(
            "AUS",
            url,
            ca=state.nation_dir("AUS") / "pki" / "ca.pem",
            cert=site / "tls" / "AUS.pem",
            key=site / "tls" / "client.key",
            read_timeout=120.0,
        )

    kept = http() if mode == "mtls_reuse" else None

    def release() -> None:
        custodian: Custodian
        if mode == "inproc":
            custodian = Deployment(state).custodian("AUS")
        else:
            custodian = kept or http()
        key = RecipientKey.generate()
        attempt = uuid.uuid4().hex
        evidence = attester.attest(
            job_id=JOB_ID,
            attempt_id=attempt,
            code_measurement=MEASUREMENT,
            enclave_public_key=key.public_bytes(),
            hpke_suite=key.suite.value,
            nonce=custodian.challenge(),
        )
        request = ReleaseRequest(
            JOB_ID, attempt, "bench", dataset_id, "local", evidence, sealed_digest
        )
        grant = custodian.release_key(request)
        assert len(hpke_open(key, b64d(grant.sealed_dek), request.hpke_info())) == 32
        if isinstance(custodian, HttpCustodian) and custodian is not kept:
            custodian.close()

    try:
        release()  # warm-up: imports, first connection (kept for mtls_reuse)
        barrier.wait()
        start = time.time()
        latencies = []
        for _ in range(n):
            t0 = time.perf_counter()
            release()
            latencies.append(time.perf_counter() - t0)
        results.put({"start": start, "end": time.time(), "latencies_s": latencies})
    except Exception as exc:  # reported, not hidden
        barrier.abort()
        results.put({"error": f"{type(exc).__name__}: {exc}"})


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def _run(
    state: Any, dataset_id: str, url: str, mode: str, enclaves: int, n: int
) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    barrier = ctx.Barrier(enclaves)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_enclave,
            args=(str(state.root), dataset_id, url, mode, n, barrier, results),
        )
        for _ in range(enclaves)
    ]
    for proc in procs:
        proc.start()
    reports = [results.get(timeout=600) for _ in procs]
    for proc in procs:
        proc.join()
    errors = [r["error"] for r in reports if "error" in r]
    if errors:
        raise SystemExit(f"{mode} x{enclaves}: {errors[0]}")
    latencies = [x for r in reports for x in r["latencies_s"]]
    wall = max(r["end"] for r in reports) - min(r["start"] for r in reports)
    return {
        "enclaves": enclaves,
        "releases": len(latencies),
        "p50_ms": 1000 * _percentile(latencies, 50),
        "p99_ms": 1000 * _percentile(latencies, 99),
        "mean_ms": 1000 * statistics.fmean(latencies),
        "max_ms": 1000 * max(latencies),
        "throughput_per_s": len(latencies) / wall if wall > 0 else 0.0,
        "wall_s": wall,
        "raw_latencies_ms": [1000 * x for x in latencies],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--releases", type=int, default=40, help="per enclave")
    parser.add_argument("--concurrency", default="1,8,32")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", type=Path, default=RESULTS / "release.json")
    args = parser.parse_args()
    releases = 3 if args.quick else args.releases
    levels = [1, 8] if args.quick else [int(c) for c in args.concurrency.split(",")]

    sys.path.insert(0, str(ROOT / "tests"))
    from services import custodian_service  # the real service, from the CLI

    started = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    info = machine()
    with tempfile.TemporaryDirectory(prefix="bench-release-") as tmp:
        state, dataset_id = _setup(Path(tmp))
        rows: list[dict[str, Any]] = []
        service = custodian_service(state, "AUS")
        try:
            for enclaves in levels:
                for mode in MODES:
                    print(f"{mode} x{enclaves} ...", file=sys.stderr, flush=True)
                    row = _run(state, dataset_id, service.url, mode, enclaves, releases)
                    rows.append({"mode": mode, **row})
        finally:
            service.stop()
    cpus = info.get("cpus")
    print(f"## Key release round trip ({cpus} CPUs, {releases} per enclave)")
    print()
    print("| mode | enclaves | releases | p50 ms | p99 ms | mean ms | releases/s |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(
            f"| {r['mode']} | {r['enclaves']} | {r['releases']} | {r['p50_ms']:.2f} "
            f"| {r['p99_ms']:.2f} | {r['mean_ms']:.2f} | {r['throughput_per_s']:.0f} |"
        )
    doc = {
        "benchmark": "release",
        "started": started,
        "machine": info,
        "config": {
            "releases_per_enclave": releases,
            "concurrency": levels,
            "modes": list(MODES),
            "quick": args.quick,
            "transport": "TLS 1.3 mutual auth over 127.0.0.1, ECDSA P-256 certs",
        },
        "results": rows,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nJSON: {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
