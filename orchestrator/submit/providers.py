"""Parsl objects (providers, launchers, executors, ``Config``) for a site config.

The one module that builds Parsl providers, launchers and executors. Each allowed
``type`` maps to exactly one Parsl class through ``isinstance`` on the validated
section (an explicit allow-list; never ``getattr`` on a module with a user-given
name, cf. globus-compute's ``endpoint/config/dispatch.py``):

==============  ================================================================
provider        ``local`` LocalProvider, ``slurm`` SlurmProvider,
                ``pbspro`` PBSProProvider, ``site-started`` LocalProvider
                with no blocks (the site runs its own pools, under its own
                account: ``sovereign site workers``)
launcher        ``simple`` SimpleLauncher, ``single-node`` SingleNodeLauncher,
                ``srun`` SrunLauncher, ``mpiexec`` MpiExecLauncher
executor        ``htex`` HighThroughputExecutor, ``mpi`` MPIExecutor,
                ``globus-compute`` GlobusComputeExecutor
==============  ================================================================

``dry_run`` builds the same batch provider with its one shell seam
(``execute_wait``) recording commands instead of running them; see
:mod:`orchestrator.submit.sitecheck`.
"""

from __future__ import annotations

import importlib
import os
import shutil
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.submit.siteconfig import (
    EndpointFactory,
    GlobusComputeSection,
    HtexSection,
    LauncherSection,
    LocalProviderSection,
    MpiExecLauncherSection,
    MpiSection,
    PBSProProviderSection,
    SimpleLauncherSection,
    SingleNodeLauncherSection,
    SiteConfig,
    SiteStartedProviderSection,
    SlurmProviderSection,
    SrunLauncherSection,
)

#: Canned scheduler answers for the dry run: (return code, stdout, stderr).
_DRY_ANSWERS = {
    "sbatch": (0, "Submitted batch job 0", ""),
    "qsub": (0, "0.dry-run", ""),
}


def ensure_parsl_on_path() -> None:
    """Put this interpreter's ``bin`` first on ``PATH``.

    HTEX starts ``interchange.py`` and ``process_worker_pool.py`` through ``PATH``
    (and batch jobs inherit the submitter's environment): a driver run as
    ``.venv/bin/python`` without activation would not find them.
    """
    bindir = str(Path(sys.executable).parent)
    if shutil.which("interchange.py") is None or not os.environ.get(
        "PATH", ""
    ).startswith(bindir):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def build_launcher(section: LauncherSection | None) -> Any:
    """Return the Parsl launcher for ``section`` (``None``: SingleNodeLauncher)."""
    from parsl.launchers import (
        MpiExecLauncher,
        SimpleLauncher,
        SingleNodeLauncher,
        SrunLauncher,
    )

    if section is None or isinstance(section, SingleNodeLauncherSection):
        return SingleNodeLauncher()
    if isinstance(section, SimpleLauncherSection):
        return SimpleLauncher()
    if isinstance(section, SrunLauncherSection):
        return SrunLauncher(overrides=section.overrides)
    if isinstance(section, MpiExecLauncherSection):
        return MpiExecLauncher(bind_cmd=section.bind_cmd, overrides=section.overrides)
    raise ConfigError(f"launcher {section!r} is not allowed", field="provider.launcher")


def pbs_select_options(section: PBSProProviderSection) -> str:
    """``select_options`` plus ``ngpus=<GPUs>`` and ``mem=<GB>gb``, ``:``-joined."""
    parts = [section.select_options] if section.select_options else []
    if section.gpus_per_node:
        parts.append(f"ngpus={section.gpus_per_node}")
    if section.mem_per_node_gb is not None:
        parts.append(f"mem={section.mem_per_node_gb}gb")
    return ":".join(parts)


def build_provider(
    section: LocalProviderSection | SlurmProviderSection | PBSProProviderSection
    | SiteStartedProviderSection,
    *,
    dry_run: list[str] | None = None,
) -> Any:
    """Return the Parsl provider for ``section``.

    Parameters
    ----------
    section
        A validated provider table.
    dry_run
        When given, a batch provider that appends every scheduler command to this
        list instead of running it (``sbatch``/``qsub`` answer a fake job id).
    """
    from parsl.providers import LocalProvider, PBSProProvider, SlurmProvider

    if isinstance(section, SiteStartedProviderSection):  # the site starts pools
        return LocalProvider(init_blocks=0, min_blocks=0,  # type: ignore[no-untyped-call]
                             max_blocks=0)
    launcher = build_launcher(section.launcher)
    blocks = {
        "init_blocks": section.init_blocks,
        "min_blocks": section.min_blocks,
        "max_blocks": section.max_blocks,
        "worker_init": section.worker_init,
        "launcher": launcher,
    }
    if isinstance(section, LocalProviderSection):
        return LocalProvider(**blocks)  # type: ignore[no-untyped-call]
    if isinstance(section, SlurmProviderSection):
        cls = _dry(SlurmProvider, dry_run) if dry_run is not None else SlurmProvider
        return cls(
            partition=section.partition,
            account=section.account,
            qos=section.qos,
            constraint=section.constraint,
            nodes_per_block=section.nodes_per_block,
            cores_per_node=section.cores_per_node,
            mem_per_node=section.mem_per_node_gb,
            gpus_per_node=section.gpus_per_node,
            walltime=section.walltime,
            exclusive=section.exclusive,
            scheduler_options="\n".join(section.scheduler_options),
            **blocks,
        )
    if isinstance(section, PBSProProviderSection):
        cls = _dry(PBSProProvider, dry_run) if dry_run is not None else PBSProProvider
        lines = list(section.scheduler_options)
        if section.exclusive:
            lines.append("#PBS -l place=scatter:excl")
        return cls(
            account=section.account,
            queue=section.queue,
            nodes_per_block=section.nodes_per_block,
            cpus_per_node=section.cpus_per_node,
            select_options=pbs_select_options(section),
            walltime=section.walltime,
            scheduler_options="\n".join(lines),
            **blocks,
        )
    raise ConfigError(f"provider {section!r} is not allowed", field="provider.type")


def _dry(base: Any, log: list[str]) -> Any:
    class DryRun(base):  # type: ignore[misc]
        def execute_wait(
            self, cmd: str, timeout: float | None = None
        ) -> tuple[int, str, str]:
            log.append(cmd)
            return _DRY_ANSWERS.get(cmd.split()[0], (1, "", "dry run"))

    DryRun.__name__ = base.__name__
    return DryRun


def sdk_endpoint_executor(section: GlobusComputeSection) -> Any:
    """Return ``globus_compute_sdk.Executor`` bound to ``section.endpoint_id``.

    Raises
    ------
    ConfigError
        If ``globus-compute-sdk`` is not installed (``pip install
        globus-compute-sdk``; it is not a dependency of this project).
    """
    try:  # optional: a fixed module name, imported only for globus-compute sites
        sdk = importlib.import_module("globus_compute_sdk")
    except ImportError as exc:
        raise ConfigError(
            "globus-compute-sdk is not installed (pip install globus-compute-sdk)",
            field="executor.type",
        ) from exc
    return sdk.Executor(
        endpoint_id=str(section.endpoint_id),
        user_endpoint_config=dict(section.user_endpoint_config) or None,
    )


def build_executor(
    config: SiteConfig,
    *,
    endpoint_executor: EndpointFactory | None = None,
    dry_run: list[str] | None = None,
    working_dir: str | None = None,
    cert_dir: str | None = None,
) -> Any:
    """Return the Parsl executor of ``config``, labelled with the site name.

    Inputs staged over HTTP (:class:`parsl.data_provider.http.HTTPInTaskStaging`,
    inside each task, no shared file system) land in ``working_dir``, the site's
    own staging directory, besides Parsl's default staging providers. A
    ``site-started`` site's interchange listens on its ``worker_port`` and
    accepts the site's pools with the CurveZMQ certificates in ``cert_dir``
    (:func:`orchestrator.submit.channel.channel_certificates`) instead of fresh
    per-run ones.
    """
    from parsl.data_provider.data_manager import default_staging
    from parsl.data_provider.http import HTTPInTaskStaging
    from parsl.executors import (
        GlobusComputeExecutor,
        HighThroughputExecutor,
        MPIExecutor,
    )

    ex = config.executor
    label = config.site.name
    staging = [HTTPInTaskStaging(), *default_staging]
    if isinstance(ex, GlobusComputeSection):
        factory = endpoint_executor or sdk_endpoint_executor
        return GlobusComputeExecutor(executor=factory(ex), label=label,
                                     storage_access=staging, working_dir=working_dir)
    assert config.provider is not None  # enforced by parse_site_config
    provider = build_provider(config.provider, dry_run=dry_run)
    common = {
        "label": label,
        "address": ex.address,
        "heartbeat_period": ex.heartbeat_period,
        "heartbeat_threshold": ex.heartbeat_threshold,
        "provider": provider,
        "storage_access": staging,
        "working_dir": working_dir,
    }
    if isinstance(ex, HtexSection):
        prov = config.provider
        site_started = isinstance(prov, SiteStartedProviderSection)
        htex: Any = HighThroughputExecutor(
            max_workers_per_node=ex.max_workers_per_node,
            cores_per_worker=ex.cores_per_worker,
            available_accelerators=ex.available_accelerators,
            cpu_affinity=ex.cpu_affinity,
            prefetch_capacity=ex.prefetch_capacity,
            # this interpreter's interchange, found without PATH
            interchange_launch_cmd=[sys.executable, "-m",
                                    "parsl.executors.high_throughput.interchange"],
            worker_port=(prov.worker_port
                         if isinstance(prov, SiteStartedProviderSection) else None),
            **common,
        )
        if site_started:
            if cert_dir is None:
                raise ConfigError("a site-started site needs its channel "
                                  "certificates", field="provider.type")
            htex.cert_dir = cert_dir  # used by start() instead of fresh ones
        return htex
    if isinstance(ex, MpiSection):
        return MPIExecutor(
            max_workers_per_block=ex.max_workers_per_block,
            mpi_launcher=ex.mpi_launcher,
            **common,
        )
    raise ConfigError(f"executor {ex!r} is not allowed", field="executor.type")


def build_config(
    config: SiteConfig,
    run_dir: Path,
    *,
    endpoint_executor: EndpointFactory | None = None,
    more: Sequence[SiteConfig] = (),
    working_dirs: Mapping[str, str] | None = None,
    cert_dirs: Mapping[str, str] | None = None,
) -> Any:
    """Return the ``parsl.config.Config`` of a validated site config.

    Parameters
    ----------
    config
        A validated site config.
    run_dir
        Receives Parsl's logs and batch scripts (no plaintext: task arguments are
        ids, paths and public metadata).
    endpoint_executor
        For ``globus-compute`` sites: builds the ``globus_compute_sdk.Executor``
        bound to the endpoint (or a stand-in); default :func:`sdk_endpoint_executor`.
    more
        Further sites for one multi-site job: one executor each, labelled with its
        site name, in the same ``Config`` (as in Parsl's multi-site examples).
    working_dirs
        Site name -> the directory its workers stage inputs into.
    cert_dirs
        Site name -> its HTEX channel certificates (``site-started`` sites).

    Returns
    -------
    parsl.config.Config
        One executor per site labelled with the site name; ``retries`` from the first
        site's executor table (default 2) with
        :func:`orchestrator.submit.retry.make_retry_handler` (transient failures
        cost 1, security failures are never retried); ``strategy_period``
        (seconds): the smallest of the provider tables; a ``MonitoringHub``
        writing ``<run_dir>/monitoring.db`` when any site's ``[executor]
        monitoring`` is on.
    """
    from parsl.config import Config

    from orchestrator.submit.retry import DEFAULT_RETRIES, make_retry_handler

    ensure_parsl_on_path()
    # Transient failures cost 1 within the first site's budget; security never.
    retries = int(getattr(config.executor, "retries", DEFAULT_RETRIES))
    sites = [config, *more]
    dirs = working_dirs or {}
    certs = cert_dirs or {}
    executors = [build_executor(c, endpoint_executor=endpoint_executor,
                                working_dir=dirs.get(c.site.name),
                                cert_dir=certs.get(c.site.name)) for c in sites]
    period = min(c.provider.strategy_period if c.provider else 1.0 for c in sites)
    monitoring = None
    if any(getattr(c.executor, "monitoring", False) for c in sites):
        from parsl.monitoring import MonitoringHub

        run_dir.mkdir(parents=True, exist_ok=True)
        monitoring = MonitoringHub(
            hub_address="127.0.0.1",
            logging_endpoint=f"sqlite:///{run_dir / 'monitoring.db'}",
            resource_monitoring_interval=1.0,
        )
    return Config(
        executors=executors,
        run_dir=str(run_dir),
        strategy_period=period,
        retries=retries,
        retry_handler=make_retry_handler(retries),
        monitoring=monitoring,
    )


def to_parsl_config(
    config: SiteConfig,
    run_dir: Path,
    *,
    endpoint_executor: EndpointFactory | None = None,
    more: tuple[SiteConfig, ...] = (),
    working_dirs: dict[str, str] | None = None,
    cert_dirs: dict[str, str] | None = None,
) -> Any:
    """Render validated site configs into one ``parsl.config.Config``.

    See :func:`build_config` (parameters, returns);
    ``more`` adds one executor per further site (multi-site jobs).
    """
    return build_config(
        config, run_dir, endpoint_executor=endpoint_executor, more=more,
        working_dirs=working_dirs, cert_dirs=cert_dirs,
    )

