#!/usr/bin/env python3
"""The whole sovereign sonar workflow against the same training in plain Parsl.

Per rep, both sides run (order alternating per rep), each in a fresh child process
(``_workflow_worker.py``) and a fresh directory under one temp dir:

* **sovereign**: a fresh state dir set up through the CLI exactly as
  ``scripts/demo.sh`` does (``nation init AUS GBR USA``; ``site register
  site_configs/local.toml``; ``dataset seal data/sonar/sonar.csv --name uci-sonar
  --owner AUS --classification SECRET --rel-to AUS,GBR,USA``; ``agreement add
  agreements/aus-usa.toml``; this setup is timed separately), then
  ``embedded.submit(state, workflows/sonar_classification.toml, "local")``: policy
  decisions, Parsl HTEX dispatch of 14 enclave tasks (attestation, key release,
  in-memory decryption, training, model sealing), custody log.
* **plain**: Parsl HTEX + LocalProvider with the same executor settings as
  ``site_configs/local.toml`` (``max_workers_per_node=2``, ``strategy_period=0.5``,
  ``retries=0``), one ``python_app`` per task running the same
  ``workflows/sonar_classification.py`` ``run_task`` (loaded by path inside the
  app) on the plaintext CSV parsed with ``orchestrator.tabular.parse_csv``; same 14
  tasks, same ``[training]`` params from the TOML. No sealing.

Reported (median [min-max] over ``--reps``, ratios pair by pair):

* ``wall_s``: the job alone, heavy imports done beforehand (sovereign: the
  ``submit()`` call; plain: ``parsl.load()`` .. results .. ``cleanup()``);
* ``process_wall_s``: the whole child process (interpreter, imports, job);
* ``first_fold_s``: from the same start to the first ``fold-*`` result;
* mean test accuracy of both; they must be identical (same seeds, same code,
  deterministic single-thread torch): the script asserts it, fold by fold.

Usage: ``bench_workflow.py [--reps 3] [--json benchmarks/results/workflow.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
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
    fmt,
    machine,
    run_measured,
    summary,
)

WORKER = Path(__file__).resolve().parent / "_workflow_worker.py"
WORKFLOW = ROOT / "workflows" / "sonar_classification.toml"
SITE = ROOT / "site_configs" / "local.toml"
CSV = ROOT / "data" / "sonar" / "sonar.csv"
AGREEMENT = ROOT / "agreements" / "aus-usa.toml"


def _env(state: Path | None = None) -> dict[str, str]:
    bindir = str(Path(sys.executable).parent)
    env = {
        **os.environ,
        "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
        "NO_COLOR": "1",
        "COLUMNS": "200",
    }
    if state is not None:
        env["SOVEREIGN_STATE_DIR"] = str(state)
    return env


def _cli(state: Path, *args: str) -> None:
    run = run_measured(
        [sys.executable, "-m", "orchestrator", *args],
        env=_env(state),
        cwd=ROOT,
        timeout=300,
    )
    if run.returncode != 0:
        raise SystemExit(
            f"sovereign {' '.join(args)} exited {run.returncode}:\n"
            f"{run.stdout}\n{run.stderr}"
        )


def setup_state(state: Path) -> float:
    """Set up ``state`` through the CLI as scripts/demo.sh does; return seconds."""
    t0 = time.perf_counter()
    for nation in ("AUS", "GBR", "USA"):
        _cli(state, "nation", "init", nation)
    _cli(state, "site", "register", str(SITE))
    for nation in ("AUS", "USA"):
        _cli(state, "site", "accredit", "local", "--by", nation)
    _cli(
        state,
        "dataset",
        "seal",
        str(CSV),
        "--name",
        "uci-sonar",
        "--owner",
        "AUS",
        "--classification",
        "SECRET",
        "--rel-to",
        "AUS,GBR,USA",
    )
    _cli(state, "agreement", "add", str(AGREEMENT), "--sign-as", "AUS,USA")
    return time.perf_counter() - t0


def _child(cmd: list[str], env: dict[str, str], what: str) -> dict[str, Any]:
    run = run_measured(cmd, env=env, cwd=ROOT, timeout=600)
    if run.returncode != 0:
        raise SystemExit(
            f"{what} run exited {run.returncode}:\n{run.stdout[-4000:]}"
            f"\n{run.stderr[-4000:]}"
        )
    out = json.loads(run.stdout.strip().splitlines()[-1])
    out["process_wall_s"] = run.wall_s
    out["process_maxrss_mib"] = run.maxrss_mib
    return out


def run_sovereign(base: Path) -> dict[str, Any]:
    state = base / "state"
    setup_s = setup_state(state)
    out = _child(
        [
            sys.executable,
            str(WORKER),
            "sovereign",
            "--state-dir",
            str(state),
            "--workflow",
            str(WORKFLOW),
            "--site",
            "local",
        ],
        _env(state),
        "sovereign",
    )
    out["setup_s"] = setup_s
    return out


def run_plain(base: Path) -> dict[str, Any]:
    return _child(
        [
            sys.executable,
            str(WORKER),
            "plain",
            "--run-dir",
            str(base / "runinfo"),
            "--workflow",
            str(WORKFLOW),
            "--site-config",
            str(SITE),
            "--csv",
            str(CSV),
        ],
        _env(),
        "plain",
    )


def _accuracies(out: dict[str, Any]) -> dict[str, float]:
    return {
        k: v["test_accuracy"] for k, v in out["tasks"].items() if "test_accuracy" in v
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Sovereign vs plain Parsl sonar job.")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--json", type=Path, default=RESULTS / "workflow.json")
    args = ap.parse_args(argv)

    t_start = time.time()
    runs: dict[str, list[dict[str, Any]]] = {"sovereign": [], "plain": []}
    load: list[dict[str, Any]] = []
    tmp = Path(tempfile.mkdtemp(prefix="sov-bench-wf-"))
    try:
        for rep in range(args.reps):
            order = ("sovereign", "plain") if rep % 2 == 0 else ("plain", "sovereign")
            for mode in order:
                base = tmp / f"{mode}-{rep}"
                base.mkdir()
                before = os.getloadavg()
                out = run_sovereign(base) if mode == "sovereign" else run_plain(base)
                out["loadavg_before"] = list(before)
                out["loadavg_after"] = list(os.getloadavg())
                runs[mode].append(out)
                shutil.rmtree(base, ignore_errors=True)
            sov, pl = runs["sovereign"][-1], runs["plain"][-1]
            load.append({"rep": rep, "order": list(order)})
            print(
                f"# rep {rep + 1}/{args.reps} ({order[0]} first): sovereign "
                f"{sov['wall_s']:.2f}s (setup {sov['setup_s']:.2f}s), plain "
                f"{pl['wall_s']:.2f}s, load {os.getloadavg()[0]:.2f}",
                file=sys.stderr,
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)

    # Same code, same seeds, deterministic single-thread torch: identical results.
    for sov, pl in zip(runs["sovereign"], runs["plain"], strict=True):
        a, b = _accuracies(sov), _accuracies(pl)
        assert a == b, f"fold accuracies differ: sovereign {a} plain {b}"
        assert len(a) == 13, f"expected 13 folds, got {sorted(a)}"
        assert set(sov["tasks"]) == set(pl["tasks"]), (sov["tasks"], pl["tasks"])
        ma = sov["summary"]["mean_test_accuracy"]
        mb = pl["summary"]["mean_test_accuracy"]
        assert ma == mb, f"mean accuracy differs: {ma} != {mb}"

    def agg(key: str, mode: str) -> dict[str, Any]:
        return summary([r[key] for r in runs[mode]])

    per_mode = {
        mode: {
            k: agg(k, mode)
            for k in (
                "wall_s",
                "process_wall_s",
                "first_fold_s",
                "first_result_s",
                "process_maxrss_mib",
            )
        }
        for mode in runs
    }
    per_mode["sovereign"]["setup_s"] = agg("setup_s", "sovereign")
    ratio = {
        k: summary(
            [s[k] / p[k] for s, p in zip(runs["sovereign"], runs["plain"], strict=True)]
        )
        for k in ("wall_s", "process_wall_s", "first_fold_s")
    }
    acc = {mode: runs[mode][0]["summary"]["mean_test_accuracy"] for mode in runs}
    doc = {
        "benchmark": "workflow",
        "config": {
            "reps": args.reps,
            "workflow": str(WORKFLOW.relative_to(ROOT)),
            "site_config": str(SITE.relative_to(ROOT)),
            "tasks": sorted(runs["plain"][0]["tasks"]),
            "n_tasks": len(runs["plain"][0]["tasks"]),
        },
        "machine": machine(),
        "started": t_start,
        "duration_s": time.time() - t_start,
        "sovereign": per_mode["sovereign"],
        "plain": per_mode["plain"],
        "ratio_sovereign_over_plain": ratio,
        "mean_test_accuracy": acc,
        "accuracy_equal": acc["sovereign"] == acc["plain"],
        "order": load,
        "raw": runs,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(render(doc))
    print(f"\nJSON: {args.json}", file=sys.stderr)
    return 0


def render(doc: dict[str, Any]) -> str:
    """The Markdown report of one run."""
    s, p, r = doc["sovereign"], doc["plain"], doc["ratio_sovereign_over_plain"]
    acc = doc["mean_test_accuracy"]
    n = doc["config"]["n_tasks"]
    lines = [
        f"### Sonar workflow, {n} tasks: sovereign vs plain PyTorch + Parsl HTEX, "
        f"{doc['config']['reps']} interleaved reps, median [min{DASH}max] seconds",
        "",
        "| measure | sovereign | plain | ratio sovereign/plain (pair by pair) |",
        "|---|---|---|---|",
        f"| job wall time (submit, imports done) | {fmt(s['wall_s'], 2)} | "
        f"{fmt(p['wall_s'], 2)} | {fmt(r['wall_s'], 2)} |",
        f"| whole child process (interpreter + imports + job) | "
        f"{fmt(s['process_wall_s'], 2)} | {fmt(p['process_wall_s'], 2)} | "
        f"{fmt(r['process_wall_s'], 2)} |",
        f"| submit → first fold result | {fmt(s['first_fold_s'], 2)} | "
        f"{fmt(p['first_fold_s'], 2)} | {fmt(r['first_fold_s'], 2)} |",
        f"| state-dir setup through the CLI (not in the job time) | "
        f"{fmt(s['setup_s'], 2)} | {DASH} | {DASH} |",
        f"| mean 13-fold test accuracy | {100 * acc['sovereign']:.2f} % | "
        f"{100 * acc['plain']:.2f} % | equal: {doc['accuracy_equal']} |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
