"""Child process for ``bench_workflow.py``: one timed run of the sonar workflow.

Usage::

    _workflow_worker.py sovereign --state-dir DIR --workflow TOML --site NAME
    _workflow_worker.py plain --run-dir DIR --workflow TOML --site-config TOML \
        --csv CSV

``sovereign`` calls :func:`orchestrator.submit.pipeline.submit` on a state directory
already set up through the CLI (nations, site, sealed dataset, agreement).
``plain`` runs the same workflow module's ``run_task`` for every task of
``tasks(params)`` as Parsl ``python_app``\\ s on a HighThroughputExecutor +
LocalProvider built from the same site TOML (same executor settings, same
``strategy_period=0.5`` and ``retries=0`` as :func:`to_parsl_config`), on the
plaintext CSV, with no sealing, policy, attestation or custody log.

Heavy imports (parsl, torch, numpy, the orchestrator) happen before the clock
starts in both modes, so ``wall_s`` is the job alone: for ``sovereign`` the
``submit()`` call, for ``plain`` ``parsl.load()`` .. every result .. ``cleanup()``.
``first_fold_s`` is the time from the same start to the first ``fold-*`` result.
One JSON line goes to stdout.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as _numpy  # noqa: F401  (imported before the clock starts)
import parsl
import torch as _torch  # noqa: F401


def plain_task(
    workflow_py: str,
    csv_path: str,
    task: str,
    params: dict[str, Any],
    torch_threads: int,
) -> dict[str, float]:
    """Parsl app body (runs in the worker): load the workflow by path, train."""
    import importlib.util
    from pathlib import Path

    import torch

    from orchestrator.tabular import parse_csv

    torch.set_num_threads(torch_threads)
    spec = importlib.util.spec_from_file_location("plain_sonar_workflow", workflow_py)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = parse_csv(Path(csv_path).read_bytes(), source=csv_path)

    class Ctx:
        def __init__(self) -> None:
            self.task = task
            self.params = dict(params)

        def dataset(self) -> Any:
            return table

        def progress(self, done: int, total: int) -> None:
            pass

    out = module.run_task(Ctx())
    return dict(out.metrics)


def _load_module(path: Path) -> Any:
    import importlib.util

    spec = importlib.util.spec_from_file_location("plain_sonar_driver", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_plain(args: argparse.Namespace) -> dict[str, Any]:
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    from orchestrator.submit.siteconfig import load_site_config

    manifest = tomllib.loads(args.workflow.read_text())
    workflow_py = (args.workflow.parent / manifest["workflow"]["code"]).resolve()
    params = dict(manifest.get("training", {}))
    threads = int(manifest.get("resources", {}).get("cpus_per_task", 1))
    module = _load_module(workflow_py)
    names = list(module.tasks(params))
    site = load_site_config(args.site_config)
    prov, ex = site.provider, site.executor

    t0 = time.perf_counter()
    config = Config(
        executors=[
            HighThroughputExecutor(
                label=site.site.name,
                address=ex.address,
                max_workers_per_node=ex.max_workers_per_node,
                cores_per_worker=ex.cores_per_worker,
                heartbeat_period=ex.heartbeat_period,
                heartbeat_threshold=ex.heartbeat_threshold,
                provider=LocalProvider(
                    init_blocks=prov.init_blocks,
                    min_blocks=prov.min_blocks,
                    max_blocks=prov.max_blocks,
                    worker_init=prov.worker_init,
                ),
            )
        ],
        run_dir=str(args.run_dir),
        strategy_period=0.5,
        retries=0,
    )
    dfk = parsl.load(config)
    first_result = first_fold = 0.0
    results: dict[str, dict[str, float]] = {}
    try:
        app = parsl.python_app(plain_task, executors=[site.site.name])
        futures = {
            app(str(workflow_py), str(args.csv.resolve()), name, params, threads): name
            for name in names
        }
        for fut in concurrent.futures.as_completed(list(futures)):
            name = futures[fut]
            results[name] = fut.result()
            now = time.perf_counter() - t0
            first_result = first_result or now
            if name.startswith("fold-") and not first_fold:
                first_fold = now
    finally:
        dfk.cleanup()
        parsl.clear()
    wall = time.perf_counter() - t0
    return {
        "mode": "plain",
        "wall_s": wall,
        "first_fold_s": first_fold,
        "first_result_s": first_result,
        "tasks": results,
        "summary": module.summarize(results),
    }


def run_sovereign(args: argparse.Namespace) -> dict[str, Any]:
    from orchestrator.embedded import submit as embedded_submit
    from orchestrator.embedded.layout import StateDir
    from orchestrator.submit import pipeline

    class Sink(pipeline.ProgressSink):
        first_fold = 0.0

        def task_done(self, name: str, metrics: dict[str, float]) -> None:
            if name.startswith("fold-") and not self.first_fold:
                self.first_fold = time.perf_counter() - t0

    sink = Sink()
    state = StateDir(args.state_dir)
    t0 = time.perf_counter()
    result = embedded_submit(state, args.workflow, args.site, progress=sink)
    wall = time.perf_counter() - t0
    return {
        "mode": "sovereign",
        "wall_s": wall,
        "first_fold_s": sink.first_fold,
        "first_result_s": result.first_result_s,
        "pipeline_elapsed_s": result.elapsed_s,
        "job_id": result.job_id,
        "tasks": result.tasks,
        "summary": result.summary,
        "models": result.model_ids,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="One timed sonar workflow run.")
    ap.add_argument("mode", choices=["sovereign", "plain"])
    ap.add_argument("--workflow", type=Path, required=True)
    ap.add_argument("--state-dir", type=Path)
    ap.add_argument("--site", default="local")
    ap.add_argument("--run-dir", type=Path)
    ap.add_argument("--site-config", type=Path)
    ap.add_argument("--csv", type=Path)
    args = ap.parse_args(argv)
    out = run_sovereign(args) if args.mode == "sovereign" else run_plain(args)
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
