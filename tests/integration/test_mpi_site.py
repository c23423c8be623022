"""Multi-rank enclave tasks (Parsl MPIExecutor + mpi4py + torch.distributed DDP).

The sonar workflow asks for 2 ranks on 1 node; on an ``mpi`` site each task runs as
2 MPI ranks (MPICH ``mpiexec`` from the venv), every rank an enclave with its own
attestation and DEK release (attempt ids ``<attempt>-r0``/``-r1``), the ranks
training one DDP model whose weights stay identical, and rank 0 alone sealing the
model. Locally (LocalProvider with a fake PBS node file) and through the
single-node Slurm cluster (``slurm_cluster`` of ``test_slurm_site``).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from test_slurm_site import slurm_cluster  # noqa: F401 - the module fixture
from testkit import ROOT, make_world

pytestmark = [pytest.mark.slow]

pytest.importorskip("mpi4py")

SONAR_TOML = ROOT / "workflows" / "sonar_classification.toml"


def _two_rank_workflow(root: Path) -> Path:
    """The sonar workflow with ``ranks_per_node = 2`` (same code, absolute path)."""
    text = SONAR_TOML.read_text()
    text = text.replace(
        'code = "sonar_classification.py"',
        f'code = "{ROOT / "workflows" / "sonar_classification.py"}"',
    ).replace("cpus_per_task = 1", "cpus_per_task = 1\nnodes = 1\nranks_per_node = 2")
    assert "ranks_per_node = 2" in text
    path = root / "sonar-ddp.toml"
    path.write_text(text)
    return path


def run_two_ranks(root: Path, site_config: str, site: str) -> None:
    from testkit import register_accredited_site as register_site

    from orchestrator.embedded import job_view, submit
    from orchestrator.log.store import CustodyLog
    from orchestrator.submit.registry import Registry

    world = make_world(root)
    register_site(world.state, ROOT / "site_configs" / site_config)
    t0 = time.monotonic()
    job = submit(world.state, _two_rank_workflow(root), site)
    sys.stderr.write(
        f"\n{site}: 2-rank sonar job {time.monotonic() - t0:.1f} s "
        f"(first result {job.first_result_s:.1f} s)\n"
    )
    assert len(job.tasks) == 14
    for name, metrics in job.tasks.items():
        assert metrics["world_size"] == 2.0, name
        assert metrics["params_in_sync"] == 1.0, name
    assert job.summary["mean_test_accuracy"] >= 0.847

    log = CustodyLog(world.state.custody_db)
    released = [e.event.body for e in log.find("key.released", job_id=job.job_id)]
    per_task: dict[str, set[str]] = {}
    for body in released:
        per_task.setdefault(body["task"], set()).add(body["attempt_id"])
    assert Counter(b["task"] for b in released) == {t: 2 for t in job.tasks}
    for task, attempts in per_task.items():
        assert len(attempts) == 2, task  # one release per rank, own attempt ids
        base = {a.rsplit("-r", 1)[0] for a in attempts}
        assert len(base) == 1 and {a[-3:] for a in attempts} == {"-r0", "-r1"}
    started = [e.event.body for e in log.find("task.started", job_id=job.job_id)]
    assert len(started) == 14 and all(b["world_size"] == 2 for b in started)
    assert all(b["site"] == site for b in started)
    in_slurm = {b["slurm_job_id"] is not None for b in started}
    assert in_slurm == {site_config.startswith("local-slurm")}

    # Exactly one sealed model, by rank 0 of the final task.
    sealed = [
        e.event.body
        for e in log.find("model.sealed")
        if e.event.body["lineage"]["job_id"] == job.job_id
    ]
    assert len(sealed) == 1 and len(job.model_ids) == 1
    assert sealed[0]["lineage"]["task"] == "final"
    assert sealed[0]["lineage"]["attempt_id"].endswith("-r0")
    model = Registry(world.state.registry_db).model(job.model_ids[0])
    assert model.job_id == job.job_id
    assert len(list(world.state.models_dir.glob("*.sealed"))) == 1

    view = job_view(world.state, job.job_id)
    assert view["task_states"] == {"COMPLETED": 14}


def test_two_rank_sonar_on_local_mpi(tmp_path: Path) -> None:
    run_two_ranks(tmp_path, "local-mpi.toml", "local-mpi")


@pytest.mark.slurm
def test_two_rank_sonar_on_slurm_mpi(
    slurm_cluster: Path,  # noqa: F811 - the fixture imported above
) -> None:
    run_two_ranks(slurm_cluster, "local-slurm-mpi.toml", "local-slurm-mpi")
