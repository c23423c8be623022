#!/usr/bin/env python3
"""Submit to first result on the local Slurm site: sovereign vs plain Parsl.

Needs the single-node cluster of ``scripts/slurm-start.sh``; when ``sinfo`` does not
answer, this script runs it (as root; otherwise it exits 2) and then stops it with
``scripts/slurm-stop.sh`` at the end (``--keep-cluster`` keeps it). Both sides use
the Parsl config that ``to_parsl_config`` renders from
``site_configs/local-slurm.toml`` (HTEX + ``SlurmProvider``, one ``sbatch`` block,
``srun`` launcher), alternating which goes first per rep, in this process:

* **sovereign**: ``embedded.submit(state, workflows/sonar_classification.toml,
  "local-slurm")`` on the UCI sonar data sealed as in ``scripts/demo.sh``: policy,
  block submission, 14 enclave tasks in the Slurm job, custody log.
* **plain**: the same 14 tasks as ``python_app``\\ s of
  ``_workflow_worker.plain_task`` (the workflow's ``run_task`` on the plaintext).

``first_result_s`` is from the call (``submit()`` / ``parsl.load()``) to the first
task result; ``wall_s`` to the last, ``cleanup()`` included for plain.

Usage: ``bench_slurm_first_result.py [--reps 3] [--keep-cluster] [--json PATH]``
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DASH, RESULTS, ROOT, fmt, machine, summary
from bench_dispatch import SITE, make_state

SLURM_SITE = ROOT / "site_configs" / "local-slurm.toml"
WORKFLOW = ROOT / "workflows" / "sonar_classification.toml"
CSV = ROOT / "data" / "sonar" / "sonar.csv"


def cluster_up() -> bool:
    """Whether ``sinfo`` answers within 10 s."""
    try:
        return subprocess.run(["sinfo", "-h"], capture_output=True, timeout=10,
                              check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def run_sovereign(state: Any) -> dict[str, float]:
    """One ``submit()`` of the sonar workflow to ``local-slurm``."""
    from orchestrator.embedded import submit as embedded_submit
    from orchestrator.submit import pipeline

    stamps: list[float] = []

    class Sink(pipeline.ProgressSink):
        def task_done(self, name: str, metrics: dict[str, float]) -> None:
            stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    result = embedded_submit(state, WORKFLOW, "local-slurm", progress=Sink())
    end = time.perf_counter()
    return {"first_result_s": stamps[0] - t0, "wall_s": end - t0,
            "tasks": float(len(result.tasks)),
            "mean_test_accuracy": result.summary["mean_test_accuracy"]}


def run_plain(run_dir: Path) -> dict[str, float]:
    """The same tasks as plain ``python_app``\\ s on the same rendered config."""
    import importlib
    import importlib.util

    import parsl

    from orchestrator.submit.providers import to_parsl_config
    from orchestrator.submit.siteconfig import load_site_config

    manifest = tomllib.loads(WORKFLOW.read_text())
    code = (WORKFLOW.parent / manifest["workflow"]["code"]).resolve()
    params = dict(manifest["training"])
    spec = importlib.util.spec_from_file_location("sonar_driver", code)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    plain_task = importlib.import_module("_workflow_worker").plain_task
    site = load_site_config(SLURM_SITE)
    results: dict[str, dict[str, float]] = {}
    first = 0.0
    t0 = time.perf_counter()
    parsl.load(to_parsl_config(site, run_dir))
    try:
        app = parsl.python_app(plain_task, executors=[site.site.name])
        futures = {app(str(code), str(CSV), name, params, 1): name
                   for name in module.tasks(params)}
        for fut in concurrent.futures.as_completed(list(futures)):
            results[futures[fut]] = fut.result()
            first = first or time.perf_counter() - t0
    finally:
        parsl.dfk().cleanup()
        parsl.clear()
    return {"first_result_s": first, "wall_s": time.perf_counter() - t0,
            "tasks": float(len(results)),
            "mean_test_accuracy": module.summarize(results)["mean_test_accuracy"]}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Slurm submit -> first result.")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="1 rep")
    ap.add_argument("--keep-cluster", action="store_true")
    ap.add_argument("--json", type=Path, default=RESULTS / "slurm_first_result.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.reps = 1
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    # Workers (in the Slurm job, which inherits this environment) unpickle
    # _workflow_worker.plain_task by reference: put benchmarks/ on their path.
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [
        str(Path(__file__).resolve().parent), os.environ.get("PYTHONPATH")]))
    started_cluster = False
    if not cluster_up():
        if os.geteuid() != 0:
            print("the local Slurm cluster is down; run scripts/slurm-start.sh as root",
                  file=sys.stderr)
            return 2
        subprocess.run(["bash", str(ROOT / "scripts" / "slurm-start.sh")],
                       check=True, timeout=900, stdout=sys.stderr)
        started_cluster = True
    t_start = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="sov-bench-slurm-"))
    runs: dict[str, list[dict[str, float]]] = {"sovereign": [], "plain": []}
    try:
        state = make_state(tmp, CSV, "uci-sonar", [SITE, SLURM_SITE])
        for rep in range(args.reps):
            order = ("sovereign", "plain") if rep % 2 == 0 else ("plain", "sovereign")
            for mode in order:
                runs[mode].append(run_sovereign(state) if mode == "sovereign"
                                  else run_plain(tmp / f"plain-{rep}"))
            s, p = runs["sovereign"][-1], runs["plain"][-1]
            print(f"# rep {rep + 1}/{args.reps}: first result sovereign "
                  f"{s['first_result_s']:.2f} s, plain {p['first_result_s']:.2f} s",
                  file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if started_cluster and not args.keep_cluster:
            subprocess.run(["bash", str(ROOT / "scripts" / "slurm-stop.sh")],
                           check=False, timeout=300, stdout=sys.stderr)
    keys = ("first_result_s", "wall_s")
    pairs = list(zip(runs["sovereign"], runs["plain"], strict=True))
    doc = {
        "benchmark": "slurm_first_result",
        "config": {"reps": args.reps, "site_config": str(SLURM_SITE.relative_to(ROOT)),
                   "workflow": str(WORKFLOW.relative_to(ROOT)), "tasks": 14,
                   "started_cluster": started_cluster},
        "machine": machine(), "started": t_start, "duration_s": time.time() - t_start,
        "sovereign": {k: summary([r[k] for r in runs["sovereign"]]) for k in keys},
        "plain": {k: summary([r[k] for r in runs["plain"]]) for k in keys},
        "ratio_sovereign_over_plain": {
            k: summary([s[k] / p[k] for s, p in pairs]) for k in keys},
        "accuracy_equal": all(s["mean_test_accuracy"] == p["mean_test_accuracy"]
                              for s, p in pairs),
        "raw": runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(render(doc))
    print(f"\nJSON: {args.json}", file=sys.stderr)
    return 0


def render(doc: dict[str, Any]) -> str:
    """The Markdown report of one run."""
    s, p = doc["sovereign"], doc["plain"]
    r = doc["ratio_sovereign_over_plain"]
    return "\n".join([
        f"### Local Slurm site (SlurmProvider, srun), sonar workflow 14 tasks, "
        f"{doc['config']['reps']} interleaved reps, median [min{DASH}max] s",
        "",
        "| measure | sovereign | plain Parsl | ratio sovereign/plain |",
        "|---|---|---|---|",
        f"| submit → first result | {fmt(s['first_result_s'], 2)} | "
        f"{fmt(p['first_result_s'], 2)} | **{fmt(r['first_result_s'], 2)}** |",
        f"| submit → all 14 results | {fmt(s['wall_s'], 2)} | {fmt(p['wall_s'], 2)} |"
        f" {fmt(r['wall_s'], 2)} |",
        f"| same mean test accuracy | {doc['accuracy_equal']} | | |",
    ])


if __name__ == "__main__":
    raise SystemExit(main())
