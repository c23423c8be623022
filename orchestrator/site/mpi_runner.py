"""Multi-rank enclave tasks: Parsl ``MPIExecutor`` + mpi4py + torch.distributed.

On a site whose executor is ``mpi`` every task runs through
:func:`mpi_enclave_task`, a Parsl ``python_app`` called with
``parsl_resource_specification={"num_nodes": nodes, "ranks_per_node": rpn}`` from
the workflow's ``[resources]``. On the worker it writes the task spec (ids, paths,
public metadata, workflow source: nothing secret) to a fresh directory under the
job's Parsl run dir and runs ``$PARSL_MPI_PREFIX python -m
orchestrator.site.mpi_runner SPEC`` (``mpiexec``/``srun`` with the ranks Parsl
placed).

Each rank (:func:`main`) takes its rank and size from mpi4py; rank 0 draws the
attempt id and a free TCP port and broadcasts ``(attempt, host, port)``; the ranks
join a torch.distributed process group (NCCL when CUDA is available, else gloo)
and each runs :func:`orchestrator.site.runner.enclave_task` as an enclave of its
own: it attests and receives its own DEK releases under attempt id
``<attempt>-r<rank>`` and decrypts in memory. The workflow sees ``ctx.rank``,
``ctx.world_size`` and ``ctx.distributed`` (and may wrap its model in
``DistributedDataParallel``); only rank 0 seals the model. Every rank writes
``result-r<rank>.json`` (rank 0: the whole result, ciphertext base64-encoded; a
failed rank: its error, after which it aborts the MPI job), which the app reads
back into :func:`enclave_task`'s dict, re-raising a rank's security error as the
same :class:`~orchestrator.errors.SovereignError` subclass (never retried).
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from orchestrator import errors

__all__ = ["main", "mpi_enclave_task", "read_results"]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("", 0))
        return int(sock.getsockname()[1])


def _init_distributed(comm: Any, host: str, port: int) -> None:
    """Join the torch.distributed group of ``comm`` at ``host:port`` (rank 0's)."""
    import torch
    import torch.distributed as dist

    backend = "gloo"
    if torch.cuda.is_available():
        from mpi4py import MPI

        local = comm.Split_type(MPI.COMM_TYPE_SHARED).Get_rank()
        torch.cuda.set_device(local % torch.cuda.device_count())
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")  # determinism
        backend = "nccl"
    dist.init_process_group(
        backend,
        init_method=f"tcp://{host}:{port}",
        rank=comm.Get_rank(),
        world_size=comm.Get_size(),
        timeout=timedelta(minutes=10),
    )


def _encode(result: dict[str, Any]) -> dict[str, Any]:
    out = dict(result)
    if "model" in out:
        model = dict(out["model"])
        model["ciphertext"] = base64.b64encode(model["ciphertext"]).decode("ascii")
        out["model"] = model
    return out


def _decode(result: dict[str, Any]) -> dict[str, Any]:
    out = dict(result)
    if "model" in out:
        model = dict(out["model"])
        model["ciphertext"] = base64.b64decode(model["ciphertext"])
        out["model"] = model
    return out


def _write(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(payload, default=str))
    tmp.replace(path)


def main(argv: list[str] | None = None) -> int:
    """One rank of a task: ``python -m orchestrator.site.mpi_runner SPECFILE``."""
    from mpi4py import MPI

    from orchestrator.site.runner import enclave_task

    args = sys.argv[1:] if argv is None else argv
    spec_path = Path(args[0])
    comm = MPI.COMM_WORLD
    rank, size = comm.Get_rank(), comm.Get_size()
    out = spec_path.parent / f"result-r{rank}.json"
    offer = None
    if rank == 0:
        offer = (uuid.uuid4().hex, socket.gethostname(), _free_port())
    attempt, host, port = comm.bcast(offer, root=0)
    try:
        spec = json.loads(spec_path.read_text())
        if size > 1:
            _init_distributed(comm, host, port)
        result = enclave_task(
            spec,
            rank=rank,
            world_size=size,
            distributed=size > 1,
            attempt_id=f"{attempt}-r{rank}",
        )
        if size > 1:
            import torch.distributed as dist

            dist.barrier()
            dist.destroy_process_group()
        result["world_size"] = size
        result["rank"] = rank
        _write(out, {"ok": True, "result": _encode(result) if rank == 0 else {
            "attempt_id": result["attempt_id"], "rank": rank}})
    except BaseException as exc:  # reported to the driver, then abort
        state = {k: v for k, v in vars(exc).items() if _jsonable(v)}
        _write(out, {"ok": False, "rank": rank, "error": type(exc).__name__,
                     "message": getattr(exc, "message", str(exc)), "state": state})
        sys.stderr.write(f"rank {rank}: {type(exc).__name__}: {exc}\n")
        sys.stderr.flush()
        if size > 1:
            comm.Abort(1)  # the other ranks may wait in a collective
        return 1
    return 0


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def _error_from(record: dict[str, Any]) -> BaseException:
    """The exception a rank reported: the same SovereignError subclass, if one."""
    name, message = str(record.get("error")), str(record.get("message", ""))
    cls = getattr(errors, name, None)
    if isinstance(cls, type) and issubclass(cls, errors.SovereignError):
        error = cls.__new__(cls)
        Exception.__init__(error, message)
        error.__dict__.update(record.get("state") or {})
        error.message = message
        error.source = error.__dict__.get("source")
        error.field = error.__dict__.get("field")
        return error
    return RuntimeError(f"rank {record.get('rank')}: {name}: {message}")


def read_results(
    workdir: Path, expected_ranks: int, detail: str = ""
) -> dict[str, Any]:
    """Rank 0's result from ``workdir`` as :func:`enclave_task` returns it.

    Raises a rank's error (rank 0's first), or ``RuntimeError`` when rank 0 wrote
    nothing or ran in a world of another size than ``expected_ranks`` (e.g. ranks
    started as MPI singletons by ``srun`` without PMI).
    """
    records = []
    for path in sorted(workdir.glob("result-r*.json")):
        records.append(json.loads(path.read_text()))
    failed = sorted((r for r in records if not r["ok"]), key=lambda r: r["rank"])
    if failed:
        raise _error_from(failed[0])
    first = workdir / "result-r0.json"
    if not first.exists():
        raise RuntimeError(f"rank 0 wrote no result; {detail}")
    result = json.loads(first.read_text())["result"]
    if result.get("world_size") != expected_ranks:
        raise RuntimeError(
            f"ranks ran in a world of size {result.get('world_size')}, expected "
            f"{expected_ranks} (MPI singletons?); {detail}"
        )
    return _decode(result)


def mpi_enclave_task(
    spec: dict[str, Any], inputs: Sequence[Any] = (),
    parsl_resource_specification: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Parsl app body: run ``spec``'s task on the ranks Parsl placed, over the
    dataset Parsl staged in (``inputs``); see module doc.

    Needs ``$PARSL_MPI_PREFIX`` (set by ``MPIExecutor`` workers).
    """
    from orchestrator.site.runner import site_root, staged_spec

    spec = staged_spec(spec, inputs)
    prefix = os.environ.get("PARSL_MPI_PREFIX")
    if not prefix:
        raise errors.ConfigError(
            "PARSL_MPI_PREFIX is not set: multi-rank tasks need an 'mpi' executor",
            source=spec.get("site"),
        )
    res = parsl_resource_specification or {}
    ranks = int(res.get("num_ranks") or int(res.get("num_nodes", 1)) * int(
        res.get("ranks_per_node", 1)))
    workdir = (
        site_root(spec.get("site_dir")) / "runs" / spec["job_id"] / "mpi"
        / f"{spec['task']}-{uuid.uuid4().hex[:8]}"
    )
    workdir.mkdir(parents=True, mode=0o700)
    try:
        spec_path = workdir / "spec.json"
        spec_path.write_text(json.dumps(spec))
        cmd = (
            f"{prefix} {shlex.quote(sys.executable)} -m orchestrator.site.mpi_runner"
            f" {shlex.quote(str(spec_path))}"
        )
        proc = subprocess.run(
            cmd, shell=True, capture_output=True, text=True, check=False
        )
        detail = f"exit {proc.returncode}: {proc.stderr[-2000:]}"
        return read_results(workdir, ranks, detail)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        if inputs:
            Path(spec["dataset"]["path"]).unlink(missing_ok=True)


if __name__ == "__main__":
    sys.exit(main())
