"""The sonar workflow on a real single-node Slurm cluster (SlurmProvider + srun).

The module fixture runs ``scripts/slurm-start.sh`` (installs Debian's slurm-wlm and
munge when missing; needs root) and always tears down with
``scripts/slurm-stop.sh``, after checking that the run leaked nothing: ``squeue -h``
empty and no ``process_worker_pool``/interchange process of this test left. It
never skips as root: a cluster that cannot start fails the test with the script's
output.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from testkit import ROOT, make_world

pytestmark = [pytest.mark.slurm, pytest.mark.slow]

START = ROOT / "scripts" / "slurm-start.sh"
STOP = ROOT / "scripts" / "slurm-stop.sh"
WORKFLOW = ROOT / "workflows" / "sonar_classification.toml"


def _ours(marker: str) -> list[str]:
    """Parsl processes of this test: our children, or carrying our run dir."""
    me = psutil.Process()
    children = {p.pid for p in me.children(recursive=True)}
    found = []
    for proc in psutil.process_iter(["pid", "cmdline", "status"]):
        cmd = " ".join(proc.info["cmdline"] or [])
        if proc.info["status"] == psutil.STATUS_ZOMBIE:
            continue
        if ("process_worker_pool" in cmd or "interchange" in cmd) and (
            proc.info["pid"] in children or marker in cmd
        ):
            found.append(f"{proc.info['pid']}: {cmd[:120]}")
    return found


@pytest.fixture(scope="module")
def slurm_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip("the local Slurm cluster needs root (apt-get, munged, slurmd)")
    t0 = time.monotonic()
    proc = subprocess.run(
        ["bash", str(START)], capture_output=True, text=True, timeout=600, check=False
    )
    if proc.returncode != 0:
        subprocess.run(["bash", str(STOP)], capture_output=True, timeout=120)
        pytest.fail(
            f"scripts/slurm-start.sh failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    sys.stderr.write(f"\nslurm-start.sh: {time.monotonic() - t0:.1f} s\n")
    root = tmp_path_factory.mktemp("slurm-world")
    leaked_jobs = leaked_procs = ""
    try:
        yield root
    finally:
        deadline = time.monotonic() + 20  # dfk.cleanup() scancels; squeue lags
        while time.monotonic() < deadline:
            queue = subprocess.run(
                ["squeue", "-h"], capture_output=True, text=True, check=False
            )
            leaked_jobs = queue.stdout.strip()
            leaked_procs = "\n".join(_ours(str(root)))
            if not leaked_jobs and not leaked_procs:
                break
            time.sleep(0.5)
        subprocess.run(["bash", str(STOP)], capture_output=True, timeout=120)
    assert not leaked_jobs, f"Slurm jobs left after the test:\n{leaked_jobs}"
    assert not leaked_procs, f"Parsl processes left:\n{leaked_procs}"


def test_sonar_on_slurm_matches_local(slurm_cluster: Path) -> None:
    from testkit import register_accredited_site as register_site

    from orchestrator.embedded import submit
    from orchestrator.log.store import CustodyLog

    world = make_world(slurm_cluster)  # local site, sealed sonar, AUS-USA agreement
    register_site(world.state, ROOT / "site_configs" / "local-slurm.toml")

    t0 = time.monotonic()
    on_slurm = submit(world.state, WORKFLOW, "local-slurm")
    slurm_s = time.monotonic() - t0
    on_local = submit(world.state, WORKFLOW, "local")
    sys.stderr.write(
        f"slurm job: {slurm_s:.1f} s (first result {on_slurm.first_result_s:.1f} s);"
        f" local job: {on_local.elapsed_s:.1f} s\n"
    )

    # Same seeds, same code, same thread count: the same numbers.
    assert on_slurm.summary == on_local.summary
    def results(tasks: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        return {
            t: {k: v for k, v in m.items() if k != "wall_seconds"}
            for t, m in tasks.items()
        }

    assert results(on_slurm.tasks) == results(on_local.tasks)
    assert len(on_slurm.tasks) == 14 and on_slurm.model_ids

    log = CustodyLog(world.state.custody_db)
    started = [e.event.body for e in log.find("task.started", job_id=on_slurm.job_id)]
    assert len(started) == 14
    job_ids = {b["slurm_job_id"] for b in started}
    assert None not in job_ids, "a task ran outside a Slurm job"
    assert all(b["site"] == "local-slurm" for b in started)
    local = [e.event.body for e in log.find("task.started", job_id=on_local.job_id)]
    assert {b["slurm_job_id"] for b in local} == {None}
