"""``sovereign site check``: what a site would submit, rendered without submitting.

For Slurm and PBS Pro the batch script is written by the provider's own ``submit``
(same template, same ``#SBATCH``/``#PBS`` lines, same launcher wrapping) on a
provider built by :func:`orchestrator.submit.providers.build_provider` with
``dry_run``: its single shell seam, ``execute_wait``, records ``sbatch``/``qsub``
instead of running them (the seam Parsl's own
``parsl/tests/test_providers/test_slurm_template.py`` mocks). No job is submitted
and no scheduler is queried.
"""

from __future__ import annotations

import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.submit.providers import build_executor
from orchestrator.submit.siteconfig import (
    GlobusComputeSection,
    LocalProviderSection,
    SiteConfig,
    SiteStartedProviderSection,
)


@dataclass
class SiteCheck:
    """What ``sovereign site check`` shows: what a block submission would run.

    ``script`` is the batch script (Slurm/PBS), the local block's shell script, or
    the endpoint settings (globus-compute); ``commands`` the scheduler commands the
    provider would have run (``sbatch <script>``, ``qsub -q debug -A ... <script>``).
    """

    summary: str
    script: str
    commands: list[str] = field(default_factory=list)


def _worker_command(executor: Any) -> str:
    # The HTEX worker-pool command, with placeholders where the interchange's
    # run-time values (port, log config) would go (cf. HTEX.initialize_scaling).
    executor.run_dir = "<run_dir>"
    executor.worker_port = "<port>"
    executor.all_addresses = [executor.address]
    executor.logconf_path = f"<run_dir>/{executor.label}/log_config.pkl"
    executor.initialize_scaling()
    return str(executor._get_launch_command("0"))


def check_site(config: SiteConfig) -> SiteCheck:
    """Render what submitting one block of ``config`` would run, without submitting.

    Returns
    -------
    SiteCheck
        For ``slurm``/``pbspro``: the ``#SBATCH``/``#PBS`` script written by the
        provider's own ``submit``; for ``local``: the block script LocalProvider
        runs (``worker_init`` + launcher-wrapped worker command); for
        ``globus-compute``: the endpoint UUID and executor settings.
    """
    ex = config.executor
    if isinstance(ex, GlobusComputeSection):
        body = [
            "# Tasks go to a Globus Compute endpoint; its config provisions blocks.",
            f"endpoint_id = {ex.endpoint_id}",
            "executor = parsl.executors.GlobusComputeExecutor("
            f"label={config.site.name!r}, executor=globus_compute_sdk.Executor("
            f"endpoint_id={str(ex.endpoint_id)!r},"
            f" user_endpoint_config={dict(ex.user_endpoint_config)!r}))",
        ]
        return SiteCheck(
            f"site {config.site.name}: executor globus-compute", "\n".join(body) + "\n"
        )
    assert config.provider is not None
    prov = config.provider
    if isinstance(prov, SiteStartedProviderSection):
        body = [
            "# The site starts its own pools, under its own account:",
            f"#   sovereign site workers <this file>   (at {config.site.name})",
            f"interchange worker port = {ex.address}:{prov.worker_port} (CurveZMQ)",
            "blocks started by the orchestrator = 0",
        ]
        return SiteCheck(f"site {config.site.name}: provider site-started, executor "
                         f"{ex.type}", "\n".join(body) + "\n")
    launcher = prov.launcher.type if prov.launcher else "single-node"
    summary = (
        f"site {config.site.name}: provider {prov.type}, launcher {launcher},"
        f" executor {ex.type}"
    )
    commands: list[str] = []
    executor = build_executor(config, dry_run=commands)
    command = _worker_command(executor)
    provider = executor.provider
    job_name = f"parsl.{config.site.name}.block-0"
    if isinstance(prov, LocalProviderSection):
        # As LocalProvider.submit composes it (parsl/providers/local/local.py).
        script = (
            prov.worker_init
            + f"\nexport JOBNAME={job_name}\n"
            + provider.launcher(command, 1, 1, "<run_dir>/submit_scripts")
        )
        return SiteCheck(
            summary, script, [f"bash <run_dir>/submit_scripts/{job_name}.sh"]
        )
    with tempfile.TemporaryDirectory(prefix="sovereign-site-check-") as tmp:
        provider.script_dir = tmp
        provider.submit(command, 1, job_name)
        (path,) = (p for p in Path(tmp).iterdir() if p.name.startswith(job_name))
        script = _placeholders(path.read_text(encoding="utf-8"), tmp, job_name)
    shown = [_placeholders(c, tmp, job_name) for c in commands]
    return SiteCheck(summary, script, [c for c in shown if not c.startswith("sacct")])


def _placeholders(text: str, tmp: str, job_name: str) -> str:
    # Parsl names a job "<job_name>.<time.time()>" and writes it under script_dir.
    text = text.replace(tmp, "<run_dir>/submit_scripts")
    return re.sub(re.escape(job_name) + r"\.\d+(\.\d+)?", job_name + ".<time>", text)
