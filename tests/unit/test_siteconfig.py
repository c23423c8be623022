"""Site configs: every example validates and every invalid field is named.

Negative tests mutate one field of a valid config and assert the file, the field
path and the message of the one-line error (``file: field: message``).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from testkit import ROOT

from orchestrator.errors import ConfigError
from orchestrator.submit.siteconfig import load_site_config, parse_site_config

EXAMPLES = sorted((ROOT / "site_configs").glob("*.toml"))


def to_toml(doc: dict[str, Any]) -> str:
    """Tiny TOML writer for these tests (tables, one nested level, scalars, lists)."""

    def value(v: Any) -> str:
        return "true" if v is True else "false" if v is False else json.dumps(v)

    out: list[str] = []

    def table(name: str, body: dict[str, Any]) -> None:
        out.append(f"[{name}]")
        nested = {k: v for k, v in body.items() if isinstance(v, dict)}
        out.extend(f"{k} = {value(v)}" for k, v in body.items() if k not in nested)
        for key, sub in nested.items():
            table(f"{name}.{key}", sub)

    for name, body in doc.items():
        table(name, body)
    return "\n".join(out) + "\n"


def slurm_doc() -> dict[str, Any]:
    return {
        "site": {"name": "hpc", "operator_nation": "USA", "accreditation": "SECRET"},
        "capacity": {"nodes": 4, "gpus_per_node": 4, "accelerator": "A100"},
        "provider": {
            "type": "slurm",
            "partition": "debug",
            "walltime": "00:10:00",
            "gpus_per_node": 4,
            "mem_per_node_gb": 64,
            "scheduler_options": ["#SBATCH --mail-type=NONE"],
            "launcher": {"type": "srun"},
        },
        "executor": {"type": "htex"},
    }


def pbs_doc() -> dict[str, Any]:
    doc = slurm_doc()
    doc["provider"] = {
        "type": "pbspro",
        "queue": "debug",
        "scheduler_options": ["#PBS -l filesystems=home:eagle"],
        "launcher": {"type": "mpiexec"},
    }
    return doc


def site_started_doc() -> dict[str, Any]:
    doc = slurm_doc()
    del doc["capacity"]
    doc["provider"] = {"type": "site-started", "worker_port": 54390}
    return doc


def gc_doc() -> dict[str, Any]:
    doc = slurm_doc()
    del doc["provider"]
    doc["executor"] = {
        "type": "globus-compute",
        "endpoint_id": "4b116d3c-1703-4f8f-9f6f-39921e5864df",
    }
    return doc


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_every_example_validates(path: Path) -> None:
    config = load_site_config(path)
    assert config.executor.type in ("htex", "mpi", "globus-compute")
    assert config.digest().startswith("sha256:")


def test_examples_cover_every_provider_and_globus_compute() -> None:
    kinds = {
        (load_site_config(p).provider or load_site_config(p).executor).type
        for p in EXAMPLES
    }
    assert {"local", "slurm", "pbspro", "site-started", "globus-compute"} <= kinds


def test_local_toml_keeps_its_meaning() -> None:
    config = load_site_config(ROOT / "site_configs" / "local.toml")
    assert config.provider is not None and config.provider.type == "local"
    assert (config.provider.init_blocks, config.provider.max_blocks) == (1, 1)
    assert config.provider.launcher is None  # Parsl's default SingleNodeLauncher
    assert config.provider.strategy_period == 0.5
    assert config.executor.type == "htex"
    assert config.executor.max_workers_per_node == 2
    assert config.capacity is None


def test_registered_dump_round_trips() -> None:
    # The registry stores model_dump(mode="json"); the pipeline re-validates it.
    from orchestrator.submit.siteconfig import SiteConfig

    for doc in (slurm_doc(), pbs_doc(), gc_doc(), site_started_doc()):
        config = parse_site_config(to_toml(doc), source="s.toml")
        again = SiteConfig.model_validate(config.model_dump(mode="json"))
        assert again == config and again.digest() == config.digest()


def _set(doc: dict[str, Any], dotted: str, val: Any) -> None:
    *path, last = dotted.split(".")
    node = doc
    for part in path:
        node = node.setdefault(part, {})
    if val is _DELETE:
        del node[last]
    else:
        node[last] = val


_DELETE = object()

CASES = [
    # (doc, dotted key to set, value, field named, message fragment)
    (slurm_doc, "provider.type", "kubernetes", "provider.type", "does not match"),
    (slurm_doc, "executor.type", "threads", "executor.type", "does not match"),
    (slurm_doc, "provider.walltime", "1h", "provider.walltime", "'HH:MM:SS'"),
    (slurm_doc, "provider.walltime", "00:75:00", "provider.walltime", "'HH:MM:SS'"),
    (slurm_doc, "provider.walltime", "00:00:00", "provider.walltime", "longer"),
    (
        slurm_doc,
        "provider.scheduler_options",
        ["--exclusive"],
        "provider.scheduler_options",
        "starting with '#SBATCH '",
    ),
    (
        slurm_doc,
        "provider.scheduler_options",
        ["#SBATCH --x\nrm -rf /"],
        "provider.scheduler_options",
        "one line",
    ),
    (
        pbs_doc,
        "provider.scheduler_options",
        ["#SBATCH --exclusive"],
        "provider.scheduler_options",
        "starting with '#PBS '",
    ),
    (slurm_doc, "provider.partition", "debug\n#SBATCH -x", "provider.partition", ""),
    (slurm_doc, "provider.account", "a b", "provider.account", "pattern"),
    (slurm_doc, "provider.mem_per_node_gb", 0, "provider.mem_per_node_gb", "to 1"),
    (slurm_doc, "provider.gpus_per_node", -1, "provider.gpus_per_node", "equal to 0"),
    (slurm_doc, "provider.nodes", 2, "provider.nodes", "Extra inputs"),
    (slurm_doc, "provider.queue", "q", "provider.queue", "Extra inputs"),
    (pbs_doc, "provider.partition", "p", "provider.partition", "Extra inputs"),
    (
        slurm_doc,
        "provider.launcher.type",
        "aprun",
        "provider.launcher.type",
        "does not match",
    ),
    (
        slurm_doc,
        "provider.launcher.type",
        "mpiexec",
        "provider.launcher.type",
        "not allowed with provider 'slurm'",
    ),
    (
        pbs_doc,
        "provider.launcher.type",
        "srun",
        "provider.launcher.type",
        "not allowed with provider 'pbspro'",
    ),
    (
        slurm_doc,
        "provider.launcher.overrides",
        "--x\nrm",
        "provider.launcher.overrides",
        "pattern",
    ),
    (
        pbs_doc,
        "provider.launcher.bind_cmd",
        "--bind",
        "provider.launcher.bind_cmd",
        "'--bind-to' or '--cpu-bind'",
    ),
    (slurm_doc, "executor.type", "mpi", "provider.launcher.type", "needs launcher"),
    (slurm_doc, "provider.min_blocks", 3, "provider.max_blocks", "min_blocks"),
    (slurm_doc, "provider.gpus_per_node", 8, "provider.gpus_per_node", "exceeds"),
    (slurm_doc, "provider.nodes_per_block", 5, "provider.nodes_per_block", "exceeds"),
    (slurm_doc, "capacity.nodes", 0, "capacity.nodes", "equal to 1"),
    (slurm_doc, "capacity.gpu_model", "A100", "capacity.gpu_model", "Extra inputs"),
    (slurm_doc, "provider", _DELETE, "provider", "required with executor type"),
    (gc_doc, "executor.endpoint_id", "not-a-uuid", "executor.endpoint_id", "UUID"),
    (gc_doc, "provider.type", "local", "provider", "not allowed with a globus"),
    (slurm_doc, "site.accreditation", "ULTRA", "site.accreditation", "ULTRA"),
    (slurm_doc, "executor.address", "a b", "executor.address", "pattern"),
    (site_started_doc, "provider.worker_port", 80, "provider.worker_port", "1024"),
    (site_started_doc, "provider.worker_port", 70000, "provider.worker_port",
     "65535"),
    (site_started_doc, "provider.worker_port", _DELETE, "provider.worker_port",
     "required"),
    (site_started_doc, "provider.launcher", {"type": "srun"}, "provider.launcher",
     "Extra inputs"),
    (site_started_doc, "executor.type", "mpi", "provider.type",
     "needs executor type 'htex'"),
]


@pytest.mark.parametrize(
    ("make", "key", "val", "field", "fragment"),
    CASES,
    ids=[f"{c[0].__name__}-{c[1]}-{c[2]!r}"[:60] for c in CASES],
)
def test_invalid_field_is_named_with_file(
    make: Any, key: str, val: Any, field: str, fragment: str, tmp_path: Path
) -> None:
    doc = make()
    _set(doc, key, val)
    path = tmp_path / "site.toml"
    path.write_text(to_toml(doc))
    with pytest.raises(ConfigError) as err:
        load_site_config(path)
    assert err.value.source == str(path)
    assert err.value.field == field
    assert fragment in err.value.message
    assert str(err.value).startswith(f"{path}: {field}: ")


def test_malformed_toml_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[provider\n")
    with pytest.raises(ConfigError, match=r"bad\.toml: malformed TOML"):
        load_site_config(path)
