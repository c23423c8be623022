"""Site configuration files: schema, validation and rendering into a Parsl ``Config``.

A site file (TOML) has these tables::

    [site]              name, operator_nation, accreditation, description
    [capacity]          optional: nodes, gpus_per_node, accelerator (site selection)
    [provider]          type = "local" | "slurm" | "pbspro"  (where blocks run)
    [provider.launcher] type = "simple" | "single-node" | "srun" | "mpiexec"
    [executor]          type = "htex" | "mpi" | "globus-compute"  (how tasks run)

A ``globus-compute`` executor has no ``[provider]``: the endpoint owns its blocks.
Every type comes from an explicit allow-list and is mapped to a Parsl class in
:mod:`orchestrator.submit.providers` (never looked up by a user-given name, cf.
globus-compute's endpoint ``config/dispatch.py``). Units: walltime ``"HH:MM:SS"``,
memory in GB, GPUs per node, periods in seconds.

Models follow the Parsl configuration guide
(https://parsl.readthedocs.io/en/stable/userguide/configuration/examples.html) and
``parsl/configs/polaris.py``; scheduler knobs map one to one onto ``SlurmProvider``
and ``PBSProProvider`` arguments.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.canonical import digest_of
from orchestrator.errors import ConfigError
from orchestrator.labels import Classification, parse_nation

_STRICT = ConfigDict(extra="forbid", frozen=True)
#: Scheduler names (partition, account, qos, queue, ...): no blanks, no newlines,
#: so they cannot add lines to a batch script.
_NAME = r"^[A-Za-z0-9_.:,+@=/-]{1,128}$"
_WALLTIME = r"^(\d{1,3}):([0-5]\d):([0-5]\d)$"


class SiteSection(BaseModel):
    """Sovereignty attributes of a facility."""

    model_config = _STRICT
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    operator_nation: str
    accreditation: str
    description: str = ""
    #: The site's own directory as its workers see it (set by the site admin;
    #: the embedded default fills it in).
    state_dir: str = ""

    @field_validator("operator_nation")
    @classmethod
    def _nation(cls, value: str) -> str:
        try:
            return parse_nation(value)
        except ConfigError as exc:  # let pydantic attach the field path
            raise ValueError(exc.message) from exc

    @field_validator("accreditation")
    @classmethod
    def _accreditation(cls, value: str) -> str:
        try:
            return Classification.parse(value).name
        except ConfigError as exc:
            raise ValueError(exc.message) from exc


class CapacitySection(BaseModel):
    """What the facility offers, for site selection (not sent to the scheduler).

    ``nodes`` compute nodes; ``gpus_per_node`` GPUs; ``accelerator`` the GPU model
    (e.g. ``"NVIDIA A100-SXM4-40GB"``); ``cores_per_node`` CPU cores;
    ``mem_per_node_gb`` memory in GB.
    """

    model_config = _STRICT
    nodes: int = Field(ge=1, le=1_000_000)
    gpus_per_node: int = Field(default=0, ge=0, le=64)
    accelerator: str = Field(default="", max_length=128)
    cores_per_node: int | None = Field(default=None, ge=1, le=100_000)
    mem_per_node_gb: int | None = Field(default=None, ge=1, le=1_000_000)


# -- launchers (how a block's worker pools are started on its nodes) -----------------
class SimpleLauncherSection(BaseModel):
    """``SimpleLauncher``: the command once, on the block's first node (MPI mode)."""

    model_config = _STRICT
    type: Literal["simple"]


class SingleNodeLauncherSection(BaseModel):
    """``SingleNodeLauncher``: the command ``tasks_per_node`` times on one node."""

    model_config = _STRICT
    type: Literal["single-node"]


class SrunLauncherSection(BaseModel):
    """``SrunLauncher``: ``srun --ntasks N -l <overrides> bash cmd.sh`` (Slurm)."""

    model_config = _STRICT
    type: Literal["srun"]
    overrides: str = Field(default="", max_length=512, pattern=r"^[^\n\r]*$")


class MpiExecLauncherSection(BaseModel):
    """``MpiExecLauncher``: ``mpiexec <bind_cmd> none <overrides> -n N ...`` (PBS)."""

    model_config = _STRICT
    type: Literal["mpiexec"]
    bind_cmd: Literal["--bind-to", "--cpu-bind"] = "--bind-to"
    overrides: str = Field(default="", max_length=512, pattern=r"^[^\n\r]*$")


LauncherSection = Annotated[
    SimpleLauncherSection
    | SingleNodeLauncherSection
    | SrunLauncherSection
    | MpiExecLauncherSection,
    Field(discriminator="type"),
]


# -- providers (where blocks run) ----------------------------------------------------
class _BlockSection(BaseModel):
    model_config = _STRICT
    init_blocks: int = Field(default=1, ge=0, le=64)
    min_blocks: int = Field(default=0, ge=0, le=64)
    max_blocks: int = Field(default=1, ge=1, le=64)
    worker_init: str = Field(default="", max_length=8192)
    launcher: LauncherSection | None = None


class LocalProviderSection(_BlockSection):
    """Parsl ``LocalProvider``: blocks are process trees on this machine.

    ``strategy_period`` (seconds) is how often Parsl's scaling strategy runs; 0.5 s
    starts the first block at once rather than at the first 5 s tick.
    """

    type: Literal["local"]
    strategy_period: float = Field(default=0.5, gt=0, le=60)


class _BatchSection(_BlockSection):
    """Knobs every batch scheduler shares (units in the field descriptions)."""

    account: str | None = Field(default=None, pattern=_NAME)
    nodes_per_block: int = Field(default=1, ge=1, le=100_000)
    walltime: str = Field(default="00:10:00", description='"HH:MM:SS" per block')
    mem_per_node_gb: int | None = Field(default=None, ge=1, le=1_000_000)
    gpus_per_node: int | None = Field(default=None, ge=0, le=64)
    exclusive: bool = True
    scheduler_options: list[str] = Field(default_factory=list, max_length=64)
    strategy_period: float = Field(default=1.0, gt=0, le=600)

    @field_validator("walltime")
    @classmethod
    def _walltime(cls, value: str) -> str:
        match = re.match(_WALLTIME, value)
        if match is None:
            raise ValueError(
                f"walltime must be 'HH:MM:SS' (e.g. '00:30:00'), got {value!r}"
            )
        if not any(int(g) for g in match.groups()):
            raise ValueError("walltime must be longer than '00:00:00'")
        return value


def _check_directives(lines: list[str], prefix: str) -> list[str]:
    for i, line in enumerate(lines):
        if "\n" in line or "\r" in line or not line.startswith(prefix + " "):
            raise ValueError(
                f"line {i + 1} must be one line starting with '{prefix} ', got {line!r}"
            )
    return lines


class SlurmProviderSection(_BatchSection):
    """Parsl ``SlurmProvider`` (``sbatch``/``squeue``/``scancel``).

    ``partition``, ``qos``, ``constraint`` (e.g. ``gpu``), ``account`` become
    ``#SBATCH`` lines; ``mem_per_node_gb`` becomes ``--mem=<N>g``;
    ``gpus_per_node`` ``--gpus-per-node``; ``cores_per_node`` ``--cpus-per-task``;
    ``exclusive`` ``--exclusive`` (without it a block gets one CPU);
    ``scheduler_options`` extra ``#SBATCH ...`` lines.
    """

    type: Literal["slurm"]
    partition: str | None = Field(default=None, pattern=_NAME)
    qos: str | None = Field(default=None, pattern=_NAME)
    constraint: str | None = Field(default=None, pattern=_NAME)
    cores_per_node: int | None = Field(default=None, ge=1, le=100_000)

    @field_validator("scheduler_options")
    @classmethod
    def _sbatch(cls, value: list[str]) -> list[str]:
        return _check_directives(value, "#SBATCH")


class PBSProProviderSection(_BatchSection):
    """Parsl ``PBSProProvider`` (``qsub``/``qstat``/``qdel``).

    ``queue`` and ``account`` go to ``qsub -q/-A``; ``select_options`` (e.g.
    ``system=polaris``), ``gpus_per_node`` (``ngpus=``) and ``mem_per_node_gb``
    (``mem=<N>gb``) are appended to ``#PBS -l select=N:ncpus=C``; ``exclusive``
    adds ``#PBS -l place=scatter:excl``; ``scheduler_options`` extra ``#PBS`` lines
    (e.g. ``#PBS -l filesystems=home:eagle``).
    """

    type: Literal["pbspro"]
    queue: str | None = Field(default=None, pattern=_NAME)
    cpus_per_node: int = Field(default=1, ge=1, le=100_000)
    select_options: str = Field(default="", pattern=r"^[A-Za-z0-9_.=:+-]{0,256}$")
    exclusive: bool = False

    @field_validator("scheduler_options")
    @classmethod
    def _pbs(cls, value: list[str]) -> list[str]:
        return _check_directives(value, "#PBS")


class SiteStartedProviderSection(BaseModel):
    """Workers the site starts itself, under its own account
    (``sovereign site workers``): the orchestrator starts no blocks; its HTEX
    interchange listens on ``worker_port`` at ``executor.address`` and the site's
    pools connect to it over CurveZMQ, each side holding only the other's public
    key (:mod:`orchestrator.net.channel`). Only with ``executor.type = "htex"``."""

    model_config = _STRICT
    type: Literal["site-started"]
    worker_port: int = Field(ge=1024, le=65535, description="TCP port")
    strategy_period: float = Field(default=1.0, gt=0, le=60)


ProviderSection = Annotated[
    LocalProviderSection
    | SlurmProviderSection
    | PBSProProviderSection
    | SiteStartedProviderSection,
    Field(discriminator="type"),
]


# -- executors (how tasks run) -------------------------------------------------------
class _HtexBase(BaseModel):
    model_config = _STRICT
    heartbeat_period: int = Field(default=5, ge=1, description="seconds")
    heartbeat_threshold: int = Field(default=30, ge=2, description="seconds")
    address: str = Field(default="127.0.0.1", pattern=_NAME)
    #: Parsl ``Config.retries``: retries of a task after a transient failure (worker
    #: or manager lost, timeout); security failures are never retried
    #: (:mod:`orchestrator.submit.retry`).
    retries: int = Field(default=2, ge=0, le=10)
    #: Parsl monitoring (``MonitoringHub``) into ``<run dir>/monitoring.db``.
    monitoring: bool = False


class HtexSection(_HtexBase):
    """Parsl ``HighThroughputExecutor`` settings (workers are separate processes).

    ``available_accelerators``: GPUs per node; one worker is pinned to each
    (``CUDA_VISIBLE_DEVICES``), as in ``parsl/configs/polaris.py``.
    """

    type: Literal["htex"]
    max_workers_per_node: int = Field(default=2, ge=1, le=1024)
    cores_per_worker: float = Field(default=1.0, gt=0)
    available_accelerators: int = Field(default=0, ge=0, le=64)
    cpu_affinity: Literal["none", "block", "alternating", "block-reverse"] = "none"
    prefetch_capacity: int = Field(default=0, ge=0, le=1024)


class MpiSection(_HtexBase):
    """Parsl ``MPIExecutor`` (HTEX in MPI mode): each task launches its own ranks.

    Needs a ``simple`` launcher; ``max_workers_per_block`` MPI applications run at
    once per block; ``mpi_launcher`` composes ``$PARSL_MPI_PREFIX``.
    """

    type: Literal["mpi"]
    max_workers_per_block: int = Field(default=1, ge=1, le=100_000)
    mpi_launcher: Literal["srun", "mpiexec"] = "mpiexec"


class GlobusComputeSection(BaseModel):
    """Parsl ``GlobusComputeExecutor`` wrapping ``globus_compute_sdk.Executor``.

    ``endpoint_id`` is the endpoint's UUID; ``user_endpoint_config`` fills a
    multi-user endpoint's template (e.g. ``account``, ``walltime``).
    """

    model_config = _STRICT
    type: Literal["globus-compute"]
    endpoint_id: UUID
    user_endpoint_config: dict[str, str | int | float | bool] = Field(
        default_factory=dict
    )


ExecutorSection = Annotated[
    HtexSection | MpiSection | GlobusComputeSection, Field(discriminator="type")
]


class SiteConfig(BaseModel):
    """A whole site file."""

    model_config = _STRICT
    site: SiteSection
    capacity: CapacitySection | None = None
    provider: ProviderSection | None = None
    executor: ExecutorSection

    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical JSON of this config."""
        return digest_of(self.model_dump(mode="json"))


_TAGS = {"local", "slurm", "pbspro", "site-started", "simple", "single-node", "srun",
         "mpiexec"}
_TAGS |= {"htex", "mpi", "globus-compute"}


def _field_path(loc: tuple[int | str, ...], error_type: str) -> str:
    # Drop the discriminator tags pydantic inserts ("provider.slurm.walltime").
    parts = [
        str(p)
        for i, p in enumerate(loc)
        if not (i and p in _TAGS and loc[i - 1] in ("provider", "launcher", "executor"))
    ]
    if error_type in ("union_tag_invalid", "union_tag_not_found"):
        parts.append("type")
    return ".".join(parts)


#: Launchers each provider may use (everything else is refused by name and field).
ALLOWED_LAUNCHERS: dict[str, tuple[str, ...]] = {
    "local": ("simple", "single-node"),
    "slurm": ("simple", "single-node", "srun"),
    "pbspro": ("simple", "single-node", "mpiexec"),
}


def cross_check(config: SiteConfig) -> tuple[str, str] | None:
    """Return ``(field, message)`` for the first combination Parsl would refuse.

    Provider/launcher pairs outside :data:`ALLOWED_LAUNCHERS`, ``mpi`` without a
    ``simple`` launcher (``MPIExecutor`` raises ``TypeError`` otherwise), a
    ``[provider]`` with or without ``globus-compute``, blocks or GPUs beyond the
    declared ``[capacity]``. ``None`` when consistent.
    """
    prov, ex, cap = config.provider, config.executor, config.capacity
    if isinstance(ex, GlobusComputeSection):
        if prov is not None:
            return "provider", "not allowed with a globus-compute executor"
        return None
    if prov is None:
        return "provider", f"required with executor type {ex.type!r}"
    if isinstance(prov, SiteStartedProviderSection):
        if not isinstance(ex, HtexSection):
            return "provider.type", "'site-started' needs executor type 'htex'"
        return None
    launcher = prov.launcher.type if prov.launcher else "single-node"
    if launcher not in ALLOWED_LAUNCHERS[prov.type]:
        allowed = ", ".join(ALLOWED_LAUNCHERS[prov.type])
        return (
            "provider.launcher.type",
            f"launcher {launcher!r} is not allowed with provider {prov.type!r}"
            f" (allowed: {allowed})",
        )
    if isinstance(ex, MpiSection) and launcher != "simple":
        return "provider.launcher.type", "executor type 'mpi' needs launcher 'simple'"
    if prov.min_blocks > prov.max_blocks or prov.init_blocks > prov.max_blocks:
        return "provider.max_blocks", "must be >= init_blocks and min_blocks"
    if cap is not None and isinstance(
        prov, SlurmProviderSection | PBSProProviderSection
    ):
        if prov.nodes_per_block > cap.nodes:
            return (
                "provider.nodes_per_block",
                f"{prov.nodes_per_block} exceeds capacity.nodes {cap.nodes}",
            )
        if (prov.gpus_per_node or 0) > cap.gpus_per_node:
            return (
                "provider.gpus_per_node",
                f"{prov.gpus_per_node} exceeds capacity.gpus_per_node "
                f"{cap.gpus_per_node}",
            )
    return None


def parse_site_config(text: str, *, source: str) -> SiteConfig:
    """Parse and validate a site TOML document.

    Raises
    ------
    ConfigError
        Naming ``source`` and the first offending field (``provider.walltime``,
        ``executor.endpoint_id``, ``provider.scheduler_options.0``, ...).
    """
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML: {exc}", source=source) from exc
    try:
        config = SiteConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(
            message, source=source, field=_field_path(err["loc"], err["type"])
        ) from exc
    problem = cross_check(config)
    if problem is not None:
        raise ConfigError(problem[1], source=source, field=problem[0])
    return config


def load_site_config(path: Path) -> SiteConfig:
    """Read and validate the site file at ``path`` (see :func:`parse_site_config`)."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(
            f"cannot read site config: {exc.strerror}", source=str(path)
        ) from exc
    except UnicodeDecodeError as exc:
        raise ConfigError("site config is not UTF-8 text", source=str(path)) from exc
    return parse_site_config(text, source=str(path))


#: Builds the endpoint's ``globus_compute_sdk.Executor`` (or a stand-in) for a site.
EndpointFactory = Callable[[GlobusComputeSection], Any]
