"""Generated batch scripts and Parsl objects (cf. Parsl's test_slurm_template.py).

``check_site`` renders through the provider's own ``submit`` with its shell seam
recording commands: these tests also assert that nothing was submitted or queried.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_siteconfig import pbs_doc, slurm_doc, to_toml
from testkit import ROOT

from orchestrator.errors import ConfigError
from orchestrator.submit.providers import to_parsl_config
from orchestrator.submit.sitecheck import check_site
from orchestrator.submit.siteconfig import (
    load_site_config,
    parse_site_config,
)

CONFIGS = ROOT / "site_configs"


def lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def test_local_slurm_script() -> None:
    check = check_site(load_site_config(CONFIGS / "local-slurm.toml"))
    script = lines(check.script)
    for expected in (
        "#!/bin/bash",
        "#SBATCH --job-name=parsl.local-slurm.block-0.<time>",
        "#SBATCH --nodes=1",
        "#SBATCH --time=10",  # 00:10:00 in minutes, as Parsl writes it
        "#SBATCH --ntasks-per-node=1",
        "#SBATCH --exclusive",
        "#SBATCH --partition=debug",
        "srun --ntasks 1 -l  bash ${SCRIPT_DIR:+$SCRIPT_DIR/}cmd_$SLURM_JOB_NAME.sh",
    ):
        assert expected in script, expected
    worker = next(x for x in script if x.startswith("process_worker_pool.py"))
    assert "--max_workers_per_node=2" in worker and "-a 127.0.0.1" in worker
    assert check.commands == [
        "sbatch <run_dir>/submit_scripts/parsl.local-slurm.block-0.<time>"
    ]
    assert not any("#SBATCH --gpus" in x or "--mem" in x for x in script)


def test_perlmutter_like_gpu_script() -> None:
    script = lines(check_site(load_site_config(CONFIGS / "slurm-gpu.toml")).script)
    for expected in (
        "#SBATCH --time=60",
        "#SBATCH --account=m0000",
        "#SBATCH --qos=regular",
        "#SBATCH --constraint=gpu",
        "#SBATCH --gpus-per-node=4",
        "#SBATCH --mem=200g",
        "#SBATCH --gpu-bind=none",
        "#SBATCH --licenses=scratch",
        "module load cudatoolkit",
        "export PARSL_MEMORY_GB=200",
    ):
        assert expected in script, expected
    srun = next(x for x in script if x.startswith("srun "))
    assert "--cpus-per-task=64 --gpus-per-task=4" in srun
    worker = next(x for x in script if x.startswith("process_worker_pool.py"))
    assert worker.endswith("--available-accelerators 0 1 2 3")
    # Directives come before the first command, as sbatch requires.
    last_directive = max(i for i, x in enumerate(script) if x.startswith("#SBATCH"))
    assert last_directive < script.index("module load python")


def test_polaris_like_pbs_script() -> None:
    check = check_site(load_site_config(CONFIGS / "pbspro.toml"))
    script = lines(check.script)
    for expected in (
        "#PBS -l walltime=00:30:00",
        "#PBS -l select=1:ncpus=32:system=polaris:ngpus=4",
        "#PBS -l filesystems=home:eagle",
        "#PBS -l place=scatter",
        "conda activate /eagle/SovereignAI/envs/sovereign",
    ):
        assert expected in script, expected
    mpiexec = next(x for x in script if x.startswith("mpiexec "))
    assert mpiexec.startswith("mpiexec --cpu-bind none --depth=64 --ppn 1 -n ")
    assert check.commands == [
        "qsub  -q debug -A SovereignAI "
        "<run_dir>/submit_scripts/parsl.polaris.block-0.<time>"
    ]


def test_pbs_memory_gpus_and_exclusive_go_into_select_and_place() -> None:
    doc = pbs_doc()
    doc["provider"].update(
        cpus_per_node=8, gpus_per_node=2, mem_per_node_gb=64, exclusive=True
    )
    script = lines(check_site(parse_site_config(to_toml(doc), source="p")).script)
    assert "#PBS -l select=1:ncpus=8:ngpus=2:mem=64gb" in script
    assert "#PBS -l place=scatter:excl" in script


def test_slurm_cores_and_no_exclusive() -> None:
    doc = slurm_doc()
    doc["provider"].update(exclusive=False, cores_per_node=8)
    script = check_site(parse_site_config(to_toml(doc), source="s")).script
    assert "#SBATCH --exclusive" not in script
    assert "#SBATCH --cpus-per-task=8" in script


def test_local_check_is_the_block_script() -> None:
    check = check_site(load_site_config(CONFIGS / "local.toml"))
    assert "export JOBNAME=parsl.local.block-0" in check.script
    assert "process_worker_pool.py" in check.script
    assert "--max_workers_per_node=2" in check.script


def test_globus_compute_check_names_the_endpoint() -> None:
    check = check_site(load_site_config(CONFIGS / "globus-compute.toml"))
    assert "endpoint_id = 4b116d3c-1703-4f8f-9f6f-39921e5864df" in check.script
    assert "GlobusComputeExecutor(label='gc-endpoint'" in check.script
    assert check.commands == []


def test_check_runs_no_scheduler_command(monkeypatch: pytest.MonkeyPatch) -> None:
    import parsl.providers.cluster_provider
    import parsl.providers.local.local

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"a shell command ran: {args}")

    monkeypatch.setattr(parsl.providers.cluster_provider, "execute_wait", refuse)
    monkeypatch.setattr(parsl.providers.local.local, "execute_wait", refuse)
    for name in ("local.toml", "local-slurm.toml", "slurm-gpu.toml", "pbspro.toml"):
        check_site(load_site_config(CONFIGS / name))


def test_to_parsl_config_local(tmp_path: Path) -> None:
    from parsl.executors import HighThroughputExecutor
    from parsl.launchers import SingleNodeLauncher
    from parsl.providers import LocalProvider

    cfg = to_parsl_config(load_site_config(CONFIGS / "local.toml"), tmp_path)
    (ex,) = cfg.executors
    assert isinstance(ex, HighThroughputExecutor) and ex.label == "local"
    assert isinstance(ex.provider, LocalProvider)
    assert isinstance(ex.provider.launcher, SingleNodeLauncher)
    assert (cfg.strategy_period, cfg.retries, cfg.run_dir) == (0.5, 2, str(tmp_path))


def test_to_parsl_config_slurm_and_mpi(tmp_path: Path) -> None:
    from parsl.executors import MPIExecutor
    from parsl.launchers import SimpleLauncher, SrunLauncher
    from parsl.providers import SlurmProvider

    cfg = to_parsl_config(load_site_config(CONFIGS / "local-slurm.toml"), tmp_path)
    provider = cfg.executors[0].provider
    assert isinstance(provider, SlurmProvider) and provider.partition == "debug"
    assert isinstance(provider.launcher, SrunLauncher) and provider.exclusive
    assert provider.walltime == "00:10:00" and cfg.strategy_period == 1.0

    doc = slurm_doc()
    doc["provider"]["launcher"] = {"type": "simple"}
    doc["executor"] = {"type": "mpi", "mpi_launcher": "srun"}
    cfg = to_parsl_config(parse_site_config(to_toml(doc), source="m"), tmp_path)
    (ex,) = cfg.executors
    assert isinstance(ex, MPIExecutor) and ex.mpi_launcher == "srun"
    assert isinstance(ex.provider.launcher, SimpleLauncher)


def test_globus_compute_without_sdk_is_a_config_error(tmp_path: Path) -> None:
    pytest.importorskip("parsl")
    try:
        import globus_compute_sdk  # noqa: F401
    except ImportError:
        pass
    else:
        pytest.skip("globus-compute-sdk is installed")
    config = load_site_config(CONFIGS / "globus-compute.toml")
    with pytest.raises(ConfigError, match="globus-compute-sdk is not installed"):
        to_parsl_config(config, tmp_path)
