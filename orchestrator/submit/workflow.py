"""Workflow manifests (``workflows/*.toml``) and the code they name.

::

    [workflow]   name, code (path relative to the TOML), dataset, priority_area
    [resources]  gpu_hours (requested allocation, GPU-hours), cpus_per_task,
                 gpus_per_task, nodes, accelerator (site selection),
                 ranks_per_node (MPI ranks per node on an ``mpi`` site)
    [training]   free-form parameters handed to the workflow's run_task
"""

from __future__ import annotations

import tomllib
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from orchestrator.errors import ConfigError
from orchestrator.measurement import code_measurement

_STRICT = ConfigDict(extra="forbid", frozen=True)


class WorkflowSection(BaseModel):
    """Identity of a workflow and what it asks for."""

    model_config = _STRICT
    name: str = Field(pattern=r"^[a-z][a-z0-9-]{0,62}$")
    code: str = Field(min_length=1)
    dataset: str = Field(min_length=1)
    priority_area: str = Field(pattern=r"^[a-z][a-z0-9-]*$")
    description: str = ""


class ResourcesSection(BaseModel):
    """Requested resources."""

    model_config = _STRICT
    gpu_hours: float = Field(ge=0, allow_inf_nan=False, description="GPU-hours")
    cpus_per_task: int = Field(default=1, ge=1, le=1024)
    gpus_per_task: int = Field(default=0, ge=0, le=64, description="GPUs per task")
    nodes: int = Field(default=1, ge=1, le=1_000_000, description="nodes per task")
    ranks_per_node: int = Field(
        default=1, ge=1, le=1024,
        description="MPI ranks per node (torch.distributed) on an 'mpi' site",
    )
    accelerator: str = Field(default="", max_length=128, description="GPU model")


class WorkflowManifest(BaseModel):
    """A whole workflow TOML document."""

    model_config = _STRICT
    workflow: WorkflowSection
    resources: ResourcesSection
    training: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Workflow:
    """A validated manifest with its code loaded and measured."""

    manifest: WorkflowManifest
    path: Path
    code_path: Path
    source: bytes
    measurement: str

    def module(self) -> types.ModuleType:
        """Execute the workflow code in a fresh module (submit side: for ``tasks``)."""
        module = types.ModuleType(f"sovereign_workflow_{self.manifest.workflow.name}")
        try:
            exec(compile(self.source, str(self.code_path), "exec"), module.__dict__)
        except SyntaxError as exc:
            raise ConfigError(
                f"workflow code does not compile: {exc.msg}",
                source=str(self.code_path),
                field=f"line {exc.lineno}",
            ) from exc
        for name in ("tasks", "run_task"):
            if not callable(getattr(module, name, None)):
                raise ConfigError(
                    f"workflow code defines no {name}()", source=str(self.code_path)
                )
        return module

    def tasks(self) -> list[str]:
        """The task names of one run, from the workflow's ``tasks(params)``."""
        names = self.module().tasks(dict(self.manifest.training))
        if (
            not names
            or not all(isinstance(n, str) for n in names)
            or len(set(names)) != len(names)
        ):
            raise ConfigError(
                "tasks() must return distinct task names", source=str(self.code_path)
            )
        return list(names)


def load_workflow(path: Path) -> Workflow:
    """Read, validate and measure the workflow manifest at ``path``.

    Raises
    ------
    ConfigError
        For unreadable or malformed TOML, a bad field (named), or missing code.
    """
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(
            f"cannot read workflow: {exc.strerror}", source=str(path)
        ) from exc
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"malformed TOML: {exc}", source=str(path)) from exc
    try:
        manifest = WorkflowManifest.model_validate(data)
    except ValidationError as exc:
        err = exc.errors()[0]
        raise ConfigError(
            str(err["msg"]),
            source=str(path),
            field=".".join(str(p) for p in err["loc"]),
        ) from exc
    code_path = (path.parent / manifest.workflow.code).resolve()
    try:
        source = code_path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read workflow code {code_path}: {exc.strerror}",
            source=str(path),
            field="workflow.code",
        ) from exc
    return Workflow(
        manifest=manifest,
        path=path,
        code_path=code_path,
        source=source,
        measurement=code_measurement(source),
    )
