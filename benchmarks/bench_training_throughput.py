#!/usr/bin/env python3
"""Training throughput on a large sealed synthetic dataset: sovereign vs plain PyTorch.

Setup (not timed): ``orchestrator.synthetic.write_csv`` writes ``--size-gb`` GB of
synthetic sonar returns (60 bands) to ``/dev/shm`` when it has room, else
``$TMPDIR``; the CSV is sealed as dataset ``synth-large`` (owner AUS) in a fresh state
dir, as ``sovereign dataset seal`` does.

Per rep, both sides run (order alternating), each in a fresh child process of this
script, on the same bytes, with the same benchmark-local workflow source
(:data:`TRAIN_WORKFLOW`: standardise, then ``epochs`` of shuffled minibatch Adam on an
MLP 60-64-64-2, one torch thread, fixed seeds):

* **sovereign**: the job is registered and every owner's custodian takes its
  job-level decision (as ``pipeline.submit`` steps 1-3 do), then one
  ``orchestrator.site.runner.enclave_task`` runs in-process: custody
  ``task.started``, attestation, key release, reading the 1 GB ciphertext,
  decrypting it in memory, parsing it, training, ``task.completed``. In-process
  rather than as a Parsl task, because Parsl's own cost (about 3 s of HTEX start)
  is what ``bench_dispatch.py`` measures, and a worker's timings cannot be split
  from the driver. ``parse_csv`` and ``Enclave.open_input`` are wrapped with timers
  in the child (nothing else is changed) to split key release + decryption from
  parsing.
* **plain**: read the plaintext CSV, ``orchestrator.tabular.parse_csv``, run the same
  workflow's ``run_task``. Nothing sealed, attested or logged.

Reported: training-only samples/s (samples = rows x epochs over the timed minibatch
loop, measured inside ``run_task`` identically on both sides) and end-to-end samples/s
(the same samples over read + decrypt + parse + prepare + train), ratios
sovereign/plain pair by pair. Final losses must be identical (asserted).

Usage: ``bench_training_throughput.py [--size-gb 1.0] [--reps 3] [--epochs 2]
[--quick] [--json benchmarks/results/training_throughput.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DASH, RESULTS, ROOT, fmt, machine, run_measured, summary
from bench_dispatch import SITE, make_state, write_workflow

DATASET = "synth-large"

TRAIN_WORKFLOW = '''"""Benchmark-local workflow: minibatch MLP training."""
import time
from typing import Any

import numpy as np
import torch

from orchestrator.site.api import TaskContext, TaskOutput


def tasks(params: dict[str, Any]) -> list[str]:
    return ["train"]


def run_task(ctx: TaskContext) -> TaskOutput:
    p = ctx.params
    started = time.perf_counter()
    torch.set_num_threads(int(p["threads"]))
    table = ctx.dataset()
    mean = table.features.mean(axis=0, dtype=np.float64).astype(np.float32)
    std = table.features.std(axis=0, dtype=np.float64).astype(np.float32)
    std[std == 0] = 1.0
    x = torch.from_numpy((table.features - mean) / std)
    y = torch.from_numpy(table.labels)
    torch.manual_seed(int(p["seed"]))
    hidden = int(p["hidden"])
    model = torch.nn.Sequential(
        torch.nn.Linear(x.shape[1], hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, hidden), torch.nn.ReLU(),
        torch.nn.Linear(hidden, len(table.classes)))
    opt = torch.optim.Adam(model.parameters(), lr=float(p["learning_rate"]))
    loss_fn = torch.nn.CrossEntropyLoss()
    gen = torch.Generator().manual_seed(int(p["seed"]))
    n, batch, epochs = x.shape[0], int(p["batch_size"]), int(p["epochs"])
    loss = torch.zeros(())
    t0 = time.perf_counter()
    for epoch in range(epochs):
        order = torch.randperm(n, generator=gen)
        for i in range(0, n, batch):
            idx = order[i:i + batch]
            opt.zero_grad()
            loss = loss_fn(model(x[idx]), y[idx])
            loss.backward()
            opt.step()
        ctx.progress(epoch + 1, epochs)
    train_s = time.perf_counter() - t0
    with torch.no_grad():
        head = slice(0, min(n, 100_000))
        acc = float((model(x[head]).argmax(1) == y[head]).float().mean())
    return TaskOutput(metrics={
        "rows": float(n), "samples": float(n * epochs), "train_s": train_s,
        "prepare_s": t0 - started, "task_s": time.perf_counter() - started,
        "final_loss": float(loss.detach()), "train_accuracy_first_100k": acc})
'''


def _timed(fn: Any, key: str, sink: dict[str, float]) -> Any:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        t0 = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            sink[key] = sink.get(key, 0.0) + time.perf_counter() - t0
    return wrapper


def child_sovereign(state_dir: Path, workflow_path: Path) -> dict[str, Any]:
    """Register the job, get the custodians' decisions, run one enclave in-process."""
    import torch  # noqa: F401  (imported before the clock, as on the plain side)

    import orchestrator.site.enclave as enclave_mod
    from orchestrator.canonical import digest_of
    from orchestrator.embedded import Deployment
    from orchestrator.embedded.layout import StateDir
    from orchestrator.labels import Label
    from orchestrator.protocol.release import JobRequest
    from orchestrator.site.runner import enclave_task, staged_spec
    from orchestrator.submit.dispatch import task_spec
    from orchestrator.submit.registry import JobRecord, Registry
    from orchestrator.submit.workflow import load_workflow
    from orchestrator.timeutil import rfc3339, system_clock

    state = StateDir(state_dir)
    deployment = Deployment(state)
    orch = deployment.orchestrator()
    registry = Registry(state.registry_db)
    wf = load_workflow(workflow_path)
    dataset = registry.dataset(DATASET)
    job_id = "job-" + uuid.uuid4().hex[:16]
    request = {"dataset_ids": [dataset.id], "priority_area": "undersea-autonomy",
               "gpu_hours": wf.manifest.resources.gpu_hours,
               "workflow": wf.manifest.workflow.name,
               "workflow_digest": digest_of(wf.manifest.model_dump(mode="json")),
               "tasks": ["train"]}
    registry.add_job(JobRecord(id=job_id, workflow=wf.manifest.workflow.name,
                               site="local", request=request,
                               measurement=wf.measurement, state="submitted",
                               summary={}, created=rfc3339(system_clock()),
                               finished=None))
    owners = sorted(Label.from_json(dataset.label).owners)
    for owner in owners:
        deployment.connect(owner).decide(JobRequest(
            job_id=job_id, dataset_id=dataset.id, site="local",
            priority_area="undersea-autonomy",
            gpu_hours=wf.manifest.resources.gpu_hours,
            code_measurement=wf.measurement))
    endpoints_cm = deployment.task_endpoints()
    endpoints = endpoints_cm.__enter__()  # the log and custodians on loopback
    spec = staged_spec(task_spec(
        orch, wf, job_id, "train", "local", dataset, endpoints,
        "DHKEM-X25519-HKDF-SHA256/HKDF-SHA256/AES-256-GCM",
        {o: registry.nation(o).hpke_public for o in owners}),
        [dataset.object_path])
    spec["torch_threads"] = wf.manifest.training["threads"]
    times: dict[str, float] = {}
    enclave_mod.parse_csv = _timed(  # type: ignore[attr-defined]
        enclave_mod.parse_csv, "parse_s", times)  # type: ignore[attr-defined]
    enclave_mod.Enclave.open_input = _timed(  # type: ignore[method-assign]
        enclave_mod.Enclave.open_input, "open_s", times)
    t0 = time.perf_counter()
    try:
        out = enclave_task(spec)
    finally:
        endpoints_cm.__exit__(None, None, None)
    total = time.perf_counter() - t0
    m = out["metrics"]
    return {"mode": "sovereign", "total_s": total, "parse_s": times["parse_s"],
            "release_decrypt_s": times["open_s"] - times["parse_s"],
            "other_s": total - times["open_s"] - m["task_s"], "metrics": m}


def child_plain(csv: Path, workflow_path: Path) -> dict[str, Any]:
    """Read + parse the plaintext, run the same ``run_task``."""
    import tomllib
    import types

    import torch  # noqa: F401

    from orchestrator.site.api import Table
    from orchestrator.tabular import parse_csv

    manifest = tomllib.loads(workflow_path.read_text())
    source = (workflow_path.parent / manifest["workflow"]["code"]).read_text()
    t0 = time.perf_counter()
    data = csv.read_bytes()
    t1 = time.perf_counter()
    table = parse_csv(data, source=str(csv))
    t2 = time.perf_counter()
    del data
    module = types.ModuleType("plain_train")
    exec(compile(source, "plain_train", "exec"), module.__dict__)

    class Ctx:
        task = "train"
        params: ClassVar[dict[str, Any]] = dict(manifest["training"])

        def dataset(self) -> Table:
            return table

        def progress(self, done: int, total: int) -> None:
            pass

    m = dict(module.run_task(Ctx()).metrics)
    total = time.perf_counter() - t0
    return {"mode": "plain", "total_s": total, "read_s": t1 - t0, "parse_s": t2 - t1,
            "other_s": total - (t2 - t0) - m["task_s"], "metrics": m}


def _scratch(size: float) -> Path:
    shm = Path("/dev/shm")
    if shm.is_dir() and shutil.disk_usage(shm).free > 3 * size + 1e9:
        return Path(tempfile.mkdtemp(prefix="sov-bench-train-", dir=shm))
    return Path(tempfile.mkdtemp(prefix="sov-bench-train-"))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Sovereign vs plain training throughput.")
    ap.add_argument("--size-gb", type=float, default=1.0)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--quick", action="store_true", help="20 MB, 1 rep")
    ap.add_argument("--json", type=Path, default=RESULTS / "training_throughput.json")
    ap.add_argument("--child", choices=["sovereign", "plain"], help=argparse.SUPPRESS)
    ap.add_argument("--state-dir", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--csv", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--workflow", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        out = (child_sovereign(args.state_dir, args.workflow)
               if args.child == "sovereign" else child_plain(args.csv, args.workflow))
        print(json.dumps(out))
        return 0
    if args.quick:
        args.size_gb, args.reps = 0.02, 1
    from orchestrator.synthetic import rows_for_bytes, write_csv

    t_start = time.time()
    tmp = _scratch(args.size_gb * 1e9)
    runs: dict[str, list[dict[str, Any]]] = {"sovereign": [], "plain": []}
    try:
        csv = tmp / "synth.csv"
        rows = rows_for_bytes(args.size_gb * 1e9)
        t0 = time.perf_counter()
        size = write_csv(csv, rows, 60, 0)
        gen_s = time.perf_counter() - t0
        state = make_state(tmp, csv, DATASET, [SITE])
        seal_s = time.perf_counter() - t0 - gen_s
        print(f"# {size / 1e9:.3f} GB, {rows} rows: generated in {gen_s:.1f} s, "
              f"sealed in {seal_s:.1f} s", file=sys.stderr)
        training = {"epochs": args.epochs, "batch_size": args.batch_size,
                    "hidden": 64, "learning_rate": 0.001, "seed": 0,
                    "threads": args.threads}
        workflow = write_workflow(tmp / "wf", "train-throughput", TRAIN_WORKFLOW,
                                  DATASET, training, cpus_per_task=args.threads)
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
        for rep in range(args.reps):
            order = ("sovereign", "plain") if rep % 2 == 0 else ("plain", "sovereign")
            for mode in order:
                cmd = [sys.executable, str(Path(__file__).resolve()), "--child", mode,
                       "--workflow", str(workflow), "--state-dir", str(state.root),
                       "--csv", str(csv)]
                run = run_measured(cmd, env=env, cwd=ROOT, timeout=3600)
                if run.returncode != 0:
                    raise SystemExit(f"{mode} child exited {run.returncode}:\n"
                                     f"{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
                out = json.loads(run.stdout.strip().splitlines()[-1])
                out["process_wall_s"], out["maxrss_mib"] = run.wall_s, run.maxrss_mib
                runs[mode].append(out)
            s, p = runs["sovereign"][-1], runs["plain"][-1]
            print(f"# rep {rep + 1}/{args.reps}: train sovereign "
                  f"{s['metrics']['train_s']:.2f} s plain {p['metrics']['train_s']:.2f}"
                  f" s; total {s['total_s']:.1f} s vs {p['total_s']:.1f} s, load "
                  f"{os.getloadavg()[0]:.2f}", file=sys.stderr)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    for s, p in zip(runs["sovereign"], runs["plain"], strict=True):
        assert s["metrics"]["final_loss"] == p["metrics"]["final_loss"], (s, p)
    doc = _document(args, runs, size, rows, gen_s, seal_s, t_start)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    print(render(doc))
    print(f"\nJSON: {args.json}", file=sys.stderr)
    return 0


def _document(args: argparse.Namespace, runs: dict[str, list[dict[str, Any]]],
              size: int, rows: int, gen_s: float, seal_s: float,
              t_start: float) -> dict[str, Any]:
    def per(r: dict[str, Any]) -> dict[str, float]:
        m = r["metrics"]
        return {"train_samples_per_s": m["samples"] / m["train_s"],
                "e2e_samples_per_s": m["samples"] / r["total_s"],
                "train_s": m["train_s"], "total_s": r["total_s"],
                "parse_s": r["parse_s"], "prepare_s": m["prepare_s"],
                "maxrss_mib": r["maxrss_mib"],
                "decrypt_s": r.get("release_decrypt_s", r.get("read_s", 0.0))}
    flat = {mode: [per(r) for r in rs] for mode, rs in runs.items()}
    keys = list(flat["plain"][0])
    pairs = list(zip(flat["sovereign"], flat["plain"], strict=True))
    return {
        "benchmark": "training_throughput",
        "config": {"size_bytes": size, "rows": rows, "bands": 60, "reps": args.reps,
                   "epochs": args.epochs, "batch_size": args.batch_size,
                   "threads": args.threads, "model": "MLP 60-64-64-2, Adam 1e-3",
                   "generate_s": gen_s, "seal_s": seal_s},
        "machine": machine(), "started": t_start, "duration_s": time.time() - t_start,
        "sovereign": {k: summary([f[k] for f in flat["sovereign"]]) for k in keys},
        "plain": {k: summary([f[k] for f in flat["plain"]]) for k in keys},
        "ratio_sovereign_over_plain": {
            k: summary([s[k] / p[k] for s, p in pairs])
            for k in ("train_samples_per_s", "e2e_samples_per_s")},
        "final_loss": runs["plain"][0]["metrics"]["final_loss"],
        "train_accuracy_first_100k": runs["plain"][0]["metrics"][
            "train_accuracy_first_100k"],
        "raw": runs,
    }


def render(doc: dict[str, Any]) -> str:
    """The Markdown report of one run."""
    s, p, r = doc["sovereign"], doc["plain"], doc["ratio_sovereign_over_plain"]
    c = doc["config"]
    k = 1e3
    return "\n".join([
        f"### Training throughput, {c['size_bytes'] / 1e9:.2f} GB sealed synthetic "
        f"CSV ({c['rows']} rows x 60), {c['model']}, batch {c['batch_size']}, "
        f"{c['epochs']} epochs, {c['threads']} torch thread(s), {c['reps']} "
        f"interleaved reps, median [min{DASH}max]",
        "",
        "| measure | sovereign (enclave) | plain PyTorch | ratio sovereign/plain |",
        "|---|---|---|---|",
        f"| training only, k samples/s | "
        f"{fmt(_scaled(s['train_samples_per_s'], k), 1)}"
        f" | {fmt(_scaled(p['train_samples_per_s'], k), 1)} | "
        f"**{fmt(r['train_samples_per_s'], 3)}** |",
        f"| end to end incl. decrypt + parse, k samples/s | "
        f"{fmt(_scaled(s['e2e_samples_per_s'], k), 1)} | "
        f"{fmt(_scaled(p['e2e_samples_per_s'], k), 1)} | "
        f"{fmt(r['e2e_samples_per_s'], 3)} |",
        f"| training loop, s | {fmt(s['train_s'], 2)} | {fmt(p['train_s'], 2)} |"
        f" {DASH} |",
        f"| key release + decrypt (sovereign) / read (plain), s | "
        f"{fmt(s['decrypt_s'], 2)} | {fmt(p['decrypt_s'], 2)} | {DASH} |",
        f"| CSV parse, s | {fmt(s['parse_s'], 2)} | {fmt(p['parse_s'], 2)} | {DASH} |",
        f"| whole task (read .. trained), s | {fmt(s['total_s'], 2)} | "
        f"{fmt(p['total_s'], 2)} | {DASH} |",
        f"| child peak RSS, MiB | {fmt(s['maxrss_mib'], 0)} | "
        f"{fmt(p['maxrss_mib'], 0)} | {DASH} |",
        f"| final training loss | {doc['final_loss']:.5f} | {doc['final_loss']:.5f}"
        f" | identical (asserted) |",
    ])


def _scaled(s: dict[str, Any], k: float) -> dict[str, Any]:
    return {"median": s["median"] / k, "min": s["min"] / k, "max": s["max"] / k}


if __name__ == "__main__":
    raise SystemExit(main())
