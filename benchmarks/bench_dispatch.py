#!/usr/bin/env python3
"""Task dispatch overhead: N short sovereign tasks vs N plain Parsl no-op apps.

Both sides run in this process, on the Parsl config that
``orchestrator.submit.providers.to_parsl_config`` renders from
``site_configs/local.toml`` (HTEX, ``LocalProvider``, 2 workers), alternating which
goes first per rep:

* **sovereign**: ``orchestrator.submit.pipeline.submit`` of a benchmark-local
  workflow whose ``tasks(params)`` returns ``--tasks`` names and whose ``run_task``
  only touches the decrypted table (no training). So every task is one full enclave
  attempt (custody ``task.started``, attestation, key release by the AUS custodian
  with its durable ``key.released``, decryption and parsing of a 16-row sealed
  synthetic CSV, ``task.completed``) plus the job-level policy decision and custody
  events once per job. Going through ``submit`` rather than calling the runner
  keeps the measurement on the path a user takes.
* **plain**: ``--tasks`` ``python_app`` calls of a function returning its argument.

Per side: ``wall_s`` (``submit()`` / ``parsl.load()`` to the last result, HTEX
start-up included), ``first_result_s``, and the steady-state rate between the first
and last result: ``throughput`` = (N - 1) / (t_last - t_first) tasks/s and
``per_task_ms`` = 1000 / throughput (2 workers: per-task cost is twice that per
worker). Ratios sovereign/plain are pair by pair over ``--reps``.

Usage: ``bench_dispatch.py [--tasks 1000] [--reps 3] [--quick] [--json PATH]``
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from _common import DASH, RESULTS, ROOT, fmt, machine, summary

SITE = ROOT / "site_configs" / "local.toml"
AGREEMENT = ROOT / "agreements" / "aus-usa.toml"

NOOP_WORKFLOW = '''"""Benchmark-local workflow: N tasks that only open the table."""
from typing import Any

from orchestrator.site.api import TaskContext, TaskOutput


def tasks(params: dict[str, Any]) -> list[str]:
    return [f"t-{i}" for i in range(int(params["n_tasks"]))]


def run_task(ctx: TaskContext) -> TaskOutput:
    return TaskOutput(metrics={"rows": float(ctx.dataset().n_rows)})
'''


def make_state(root: Path, csv: Path, name: str, sites: list[Path]) -> Any:
    """A fresh state dir: AUS, GBR, USA; ``sites`` (accredited by AUS and USA);
    ``csv`` sealed; AUS-USA agreement.

    The dataset is sealed as ``name``, owned by AUS, SECRET REL TO AUS, GBR, USA, as
    ``scripts/demo.sh`` seals the sonar data. Returns the
    :class:`~orchestrator.embedded.layout.StateDir`.
    """
    from orchestrator.embedded import (
        StateDir,
        accredit_site,
        add_agreement,
        init_nation,
        register_site,
        seal_dataset,
    )

    state = StateDir(root / "state").ensure()
    for code in ("AUS", "GBR", "USA"):
        init_nation(state, code)
    for site in sites:
        record = register_site(state, site)
        for code in ("AUS", "USA"):
            accredit_site(state, record.name, code)
    seal_dataset(state, csv, name=name, owners=["AUS"], classification="SECRET",
                 releasable_to=["AUS", "GBR", "USA"])
    add_agreement(state, AGREEMENT, sign_as=["AUS", "USA"])
    return state


def write_workflow(directory: Path, name: str, source: str, dataset: str,
                   training: dict[str, Any], cpus_per_task: int = 1) -> Path:
    """Write ``<name>.py`` (``source``) and ``<name>.toml``; return the TOML path."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / f"{name}.py").write_text(source)
    lines = [
        "[workflow]", f'name = "{name}"', f'code = "{name}.py"',
        f'dataset = "{dataset}"', 'priority_area = "undersea-autonomy"',
        "[resources]", "gpu_hours = 0.1", f"cpus_per_task = {cpus_per_task}",
        "[training]", *(f"{k} = {json.dumps(v)}" for k, v in training.items()),
    ]
    toml = directory / f"{name}.toml"
    toml.write_text("\n".join(lines) + "\n")
    return toml


def _rates(t0: float, stamps: list[float]) -> dict[str, float]:
    n = len(stamps)
    span = stamps[-1] - stamps[0]
    rate = (n - 1) / span if n > 1 and span > 0 else float("nan")
    return {"wall_s": stamps[-1] - t0, "first_result_s": stamps[0] - t0,
            "throughput_per_s": rate, "per_task_ms": 1000.0 / rate, "tasks": n}


def run_sovereign(state: Any, workflow: Path, n: int) -> dict[str, float]:
    """One ``submit()`` of the no-op workflow; timings of its results."""
    from orchestrator.embedded import submit as embedded_submit
    from orchestrator.submit import pipeline

    stamps: list[float] = []

    class Sink(pipeline.ProgressSink):
        def task_done(self, name: str, metrics: dict[str, float]) -> None:
            stamps.append(time.perf_counter())

    t0 = time.perf_counter()
    result = embedded_submit(state, workflow, "local", progress=Sink())
    end = time.perf_counter()
    assert len(result.tasks) == n and len(stamps) == n
    return {**_rates(t0, stamps), "submit_s": end - t0}


def _noop(i: int) -> int:
    return i


def run_plain(run_dir: Path, n: int) -> dict[str, float]:
    """``n`` no-op ``python_app`` calls on the config rendered from local.toml."""
    import parsl

    from orchestrator.submit.providers import to_parsl_config
    from orchestrator.submit.siteconfig import load_site_config

    site = load_site_config(SITE)
    stamps: list[float] = []
    t0 = time.perf_counter()
    parsl.load(to_parsl_config(site, run_dir))
    try:
        app = parsl.python_app(_noop, executors=[site.site.name])
        futures = [app(i) for i in range(n)]
        for fut in concurrent.futures.as_completed(futures):
            fut.result()
            stamps.append(time.perf_counter())
    finally:
        parsl.dfk().cleanup()
        parsl.clear()
    end = time.perf_counter()
    return {**_rates(t0, stamps), "submit_s": end - t0}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Sovereign vs plain Parsl dispatch.")
    ap.add_argument("--tasks", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="50 tasks, 1 rep")
    ap.add_argument("--json", type=Path, default=RESULTS / "dispatch.json")
    args = ap.parse_args(argv)
    if args.quick:
        args.tasks, args.reps = 50, 1
    bindir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")
    from orchestrator.synthetic import write_csv

    t_start = time.time()
    tmp = Path(tempfile.mkdtemp(prefix="sov-bench-dispatch-"))
    runs: dict[str, list[dict[str, float]]] = {"sovereign": [], "plain": []}
    try:
        csv = tmp / "tiny.csv"
        write_csv(csv, 16, 60, 0)
        state = make_state(tmp, csv, "synth-tiny", [SITE])
        workflow = write_workflow(tmp / "wf", "dispatch-noop", NOOP_WORKFLOW,
                                  "synth-tiny", {"n_tasks": args.tasks})
        for rep in range(args.reps):
            order = ("sovereign", "plain") if rep % 2 == 0 else ("plain", "sovereign")
            for mode in order:
                out = (run_sovereign(state, workflow, args.tasks) if mode == "sovereign"
                       else run_plain(tmp / f"plain-{rep}", args.tasks))
                out["loadavg_after"] = os.getloadavg()[0]
                runs[mode].append(out)
            s, p = runs["sovereign"][-1], runs["plain"][-1]
            print(f"# rep {rep + 1}/{args.reps}: sovereign {s['per_task_ms']:.1f} ms/"
                  f"task ({s['wall_s']:.1f} s), plain {p['per_task_ms']:.2f} ms/task "
                  f"({p['wall_s']:.1f} s), load {os.getloadavg()[0]:.2f}",
                  file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    keys = ("wall_s", "first_result_s", "throughput_per_s", "per_task_ms")
    per_mode = {m: {k: summary([r[k] for r in runs[m]]) for k in keys} for m in runs}
    pairs = list(zip(runs["sovereign"], runs["plain"], strict=True))
    doc = {
        "benchmark": "dispatch",
        "config": {"tasks": args.tasks, "reps": args.reps, "workers": 2,
                   "site_config": str(SITE.relative_to(ROOT)),
                   "dataset": "16-row synthetic CSV, 60 bands, sealed"},
        "machine": machine(),
        "started": t_start,
        "duration_s": time.time() - t_start,
        "sovereign": per_mode["sovereign"],
        "plain": per_mode["plain"],
        "ratio_sovereign_over_plain": {
            k: summary([s[k] / p[k] for s, p in pairs]) for k in keys},
        "added_ms_per_task": summary(
            [s["per_task_ms"] - p["per_task_ms"] for s, p in pairs]),
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
    c = doc["config"]
    rows = [("per-task time, steady state (ms)", "per_task_ms", 2),
            ("throughput (tasks/s)", "throughput_per_s", 1),
            ("job wall time incl. HTEX start (s)", "wall_s", 2),
            ("submit → first result (s)", "first_result_s", 2)]
    lines = [
        f"### Dispatch: {c['tasks']} sovereign enclave tasks vs {c['tasks']} plain "
        f"Parsl no-op apps, HTEX 2 workers, {c['reps']} interleaved reps, "
        f"median [min{DASH}max]",
        "",
        "| measure | sovereign | plain | ratio sovereign/plain |",
        "|---|---|---|---|",
        *(f"| {label} | {fmt(s[k], d)} | {fmt(p[k], d)} | {fmt(r[k], 2)} |"
          for label, k, d in rows),
        f"| added per task (ms) | {fmt(doc['added_ms_per_task'], 2)} | {DASH} | "
        f"{DASH} |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
