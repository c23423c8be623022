"""Site configuration files and their rendering into a Parsl ``Config``.

A site file (TOML) has three tables::

    [site]       name, operator_nation, accreditation, description   (sovereignty)
    [provider]   type = "local" ...                                  (where blocks run)
    [executor]   type = "htex" ...                                   (how tasks run)

Provider, launcher and executor types come from an explicit allow-list and are
mapped to Parsl classes here (never looked up by a user-given name, cf.
globus-compute's endpoint config dispatch). Today: ``local`` + ``htex``.
"""

from __future__ import annotations

import os
import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from orchestrator.canonical import digest_of
from orchestrator.errors import ConfigError
from orchestrator.labels import Classification, parse_nation

_STRICT = ConfigDict(extra="forbid", frozen=True)


class SiteSection(BaseModel):
    """Sovereignty attributes of a facility."""

    model_config = _STRICT
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    operator_nation: str
    accreditation: str
    description: str = ""

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


class LocalProviderSection(BaseModel):
    """Parsl ``LocalProvider``: blocks are process trees on this machine."""

    model_config = _STRICT
    type: Literal["local"]
    init_blocks: int = Field(default=1, ge=0, le=64)
    min_blocks: int = Field(default=0, ge=0, le=64)
    max_blocks: int = Field(default=1, ge=1, le=64)
    worker_init: str = ""


class HtexSection(BaseModel):
    """Parsl ``HighThroughputExecutor`` settings (workers are separate processes)."""

    model_config = _STRICT
    type: Literal["htex"]
    max_workers_per_node: int = Field(default=2, ge=1, le=1024)
    cores_per_worker: float = Field(default=1.0, gt=0)
    heartbeat_period: int = Field(default=5, ge=1, description="seconds")
    heartbeat_threshold: int = Field(default=30, ge=2, description="seconds")
    address: str = "127.0.0.1"


class SiteConfig(BaseModel):
    """A whole site file."""

    model_config = _STRICT
    site: SiteSection
    provider: LocalProviderSection
    executor: HtexSection

    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical JSON of this config."""
        return digest_of(self.model_dump(mode="json"))


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc)


def parse_site_config(text: str, *, source: str) -> SiteConfig:
    """Parse and validate a site TOML document.

    Raises
    ------
    ConfigError
        Naming ``source`` and the first offending field (``provider.type``, ...).
    """
    try:
        data: dict[str, Any] = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"malformed TOML: {exc}", source=source) from exc
    try:
        return SiteConfig.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        message = str(err["msg"]).removeprefix("Value error, ")
        raise ConfigError(
            message, source=source, field=_field_path(err["loc"])
        ) from exc


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


def _ensure_parsl_on_path() -> None:
    # HTEX starts interchange.py and process_worker_pool.py through PATH; a driver
    # run as venv/bin/python without activation would not find them.
    bindir = str(Path(sys.executable).parent)
    if shutil.which("interchange.py") is None or not os.environ.get(
        "PATH", ""
    ).startswith(bindir):
        os.environ["PATH"] = bindir + os.pathsep + os.environ.get("PATH", "")


def to_parsl_config(config: SiteConfig, run_dir: Path) -> Any:
    """Render a validated site config into a ``parsl.config.Config``.

    ``run_dir`` receives Parsl's logs (no plaintext: task arguments are ids, paths
    and public metadata). ``strategy_period`` is 0.5 s so the first block starts
    at once rather than at the first 5 s tick.
    """
    from parsl.config import Config
    from parsl.executors import HighThroughputExecutor
    from parsl.providers import LocalProvider

    _ensure_parsl_on_path()
    prov = config.provider
    ex = config.executor
    provider = LocalProvider(  # type: ignore[no-untyped-call]
        init_blocks=prov.init_blocks,
        min_blocks=prov.min_blocks,
        max_blocks=prov.max_blocks,
        worker_init=prov.worker_init,
    )
    executor = HighThroughputExecutor(
        label=config.site.name,
        address=ex.address,
        max_workers_per_node=ex.max_workers_per_node,
        cores_per_worker=ex.cores_per_worker,
        heartbeat_period=ex.heartbeat_period,
        heartbeat_threshold=ex.heartbeat_threshold,
        provider=provider,
    )
    return Config(
        executors=[executor], run_dir=str(run_dir), strategy_period=0.5, retries=0
    )
