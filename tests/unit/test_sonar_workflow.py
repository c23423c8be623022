"""Tests of the sonar workflow (``workflows/sonar_classification.py``), in-process."""

from __future__ import annotations

import importlib.util
import io
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest
import torch

from orchestrator.site.api import Table, TaskOutput
from orchestrator.tabular import parse_csv

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / "workflows" / "sonar_classification.py"
MANIFEST = ROOT / "workflows" / "sonar_classification.toml"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("sonar_classification", WORKFLOW)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


wf = _load()


@pytest.fixture(scope="module")
def sonar() -> Table:
    return parse_csv((ROOT / "data" / "sonar" / "sonar.csv").read_bytes(),
                     source="sonar.csv")


@pytest.fixture(scope="module")
def params() -> dict[str, Any]:
    """The manifest's ``[training]`` table, as the enclave passes it."""
    with MANIFEST.open("rb") as fh:
        return dict(tomllib.load(fh)["training"])


@dataclass
class Ctx:
    """Minimal :class:`orchestrator.site.api.TaskContext` for in-process runs."""

    task: str
    params: dict[str, Any]
    table: Table
    reports: list[tuple[int, int]] = field(default_factory=list)

    def dataset(self) -> Table:
        return self.table

    def progress(self, done: int, total: int) -> None:
        self.reports.append((done, total))


def _run(table: Table, task: str, params: dict[str, Any]) -> TaskOutput:
    out = wf.run_task(Ctx(task, params, table))
    assert isinstance(out, TaskOutput)
    return out


def test_manifest_matches_module_defaults(params: dict[str, Any]) -> None:
    assert params == wf.DEFAULTS
    with MANIFEST.open("rb") as fh:
        manifest = tomllib.load(fh)
    assert (MANIFEST.parent / manifest["workflow"]["code"]).is_file()


def test_tasks(params: dict[str, Any]) -> None:
    names = wf.tasks(params)
    assert names == [f"fold-{i}" for i in range(13)] + ["final"]
    assert wf.tasks({**params, "final_model": False})[-1] == "fold-12"
    assert wf.tasks({"folds": 3}) == ["fold-0", "fold-1", "fold-2", "final"]


def test_folds_partition_and_stratify(sonar: Table, params: dict[str, Any]) -> None:
    folds = wf.fold_assignment(sonar.labels, 13, params["seed"])
    assert folds.shape == (208,)
    assert sorted(set(folds.tolist())) == list(range(13))
    assert np.bincount(folds).tolist() == [16] * 13
    m_per_fold = np.bincount(folds[sonar.labels == 0], minlength=13)
    assert set(m_per_fold.tolist()) == {8, 9}
    assert int(m_per_fold.sum()) == 111
    assert int((m_per_fold == 9).sum()) == 7  # 111 = 13 * 8 + 7
    again = wf.fold_assignment(sonar.labels.copy(), 13, params["seed"])
    np.testing.assert_array_equal(folds, again)
    other = wf.fold_assignment(sonar.labels, 13, params["seed"] + 1)
    assert not np.array_equal(folds, other)


def test_fold_assignment_rejects_too_many_folds() -> None:
    with pytest.raises(ValueError, match="folds"):
        wf.fold_assignment(np.array([0, 1, 0], dtype=np.int64), 4, 0)


def test_one_fold_is_quick_deterministic_and_reports_progress(
        sonar: Table, params: dict[str, Any]) -> None:
    ctx = Ctx("fold-4", params, sonar)
    first = wf.run_task(ctx)
    second = _run(sonar, "fold-4", params)
    assert first.model_state is None
    for key in ("test_accuracy", "train_accuracy", "test_rows", "final_loss"):
        assert key in first.metrics
        assert first.metrics[key] == second.metrics[key]
    assert first.metrics["test_rows"] == 16
    assert 0.0 <= first.metrics["test_accuracy"] <= 1.0
    assert first.metrics["train_accuracy"] >= 0.95
    assert first.metrics["wall_seconds"] < 5.0
    assert ctx.reports[-1] == (300, 300)
    assert len(ctx.reports) == 10
    assert [d for d, _ in ctx.reports] == sorted(d for d, _ in ctx.reports)


def test_full_cross_validation_reaches_paper(sonar: Table,
                                             params: dict[str, Any]) -> None:
    """Gorman & Sejnowski (1988), 12 hidden units: 84.7 % mean test accuracy."""
    names = [n for n in wf.tasks(params) if n != "final"]
    results = {n: _run(sonar, n, params).metrics for n in names}
    assert sum(m["test_rows"] for m in results.values()) == 208
    summary = wf.summarize({**results, "final": {"train_accuracy": 1.0}})
    assert summary["folds"] == 13
    assert summary["mean_test_accuracy"] >= 0.847
    expected_sd = float(np.std([m["test_accuracy"] for m in results.values()],
                               ddof=1))
    assert summary["std_test_accuracy"] == pytest.approx(expected_sd)


def test_final_model_state_loads(sonar: Table, params: dict[str, Any]) -> None:
    out = _run(sonar, "final", params)
    assert out.metrics["rows"] == 208
    assert out.metrics["train_accuracy"] >= 0.95
    assert out.model_state is not None
    state = torch.load(io.BytesIO(out.model_state), weights_only=True)
    assert state["classes"] == ["M", "R"]
    assert state["mean"].shape == (60,)
    assert state["std"].shape == (60,)
    assert state["state_dict"]["0.weight"].shape == (12, 60)
    assert state["state_dict"]["2.weight"].shape == (2, 12)
    card = out.model_card
    assert card["architecture"] == "MLP(60-12-2)"
    assert card["activation"] == "relu"
    assert card["n_features"] == 60
    assert card["classes"] == ["M", "R"]
    assert card["params"]["hidden_units"] == 12

    # The saved model reproduces its training accuracy.
    model = torch.nn.Sequential(torch.nn.Linear(60, 12), torch.nn.ReLU(),
                                torch.nn.Linear(12, 2))
    model.load_state_dict(state["state_dict"])
    x = (torch.from_numpy(sonar.features) - state["mean"]) / state["std"]
    with torch.no_grad():
        acc = (model(x).argmax(1) == torch.from_numpy(sonar.labels)).float().mean()
    assert float(acc) == pytest.approx(out.metrics["train_accuracy"])


def test_features_and_classes_come_from_the_data() -> None:
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(3), 20)
    features = rng.normal(size=(60, 5)) + labels[:, None] * 2.0
    lines = [",".join([*(f"{v:.6f}" for v in row), "abc"[k]])
             for row, k in zip(features, labels, strict=True)]
    table = parse_csv(("\n".join(lines) + "\n").encode())
    params = {"folds": 4, "hidden_units": 6, "epochs": 50, "seed": 1}
    assert wf.tasks(params)[-1] == "final"
    fold = _run(table, "fold-2", params)
    assert fold.metrics["test_rows"] == 15
    assert fold.metrics["test_accuracy"] >= 0.8
    final = _run(table, "final", params)
    assert final.model_card["architecture"] == "MLP(5-6-3)"
    assert final.model_card["classes"] == ["a", "b", "c"]
    state = torch.load(io.BytesIO(final.model_state or b""), weights_only=True)
    assert state["state_dict"]["0.weight"].shape == (6, 5)
    assert state["state_dict"]["2.bias"].shape == (3,)


@pytest.mark.parametrize("task", ["fold-13", "fold-x", "train", "fold--1"])
def test_unknown_task(sonar: Table, params: dict[str, Any], task: str) -> None:
    with pytest.raises(ValueError, match="unknown task"):
        _run(sonar, task, params)


def test_bad_activation_rejected() -> None:
    with pytest.raises(ValueError, match="activation"):
        wf.tasks({"activation": "softplus"})


def test_summarize_ignores_final_and_handles_one_fold() -> None:
    one = wf.summarize({"fold-0": {"test_accuracy": 0.75, "train_accuracy": 1.0},
                        "final": {"train_accuracy": 1.0}})
    assert one["mean_test_accuracy"] == 0.75
    assert one["std_test_accuracy"] == 0.0
    assert one["folds"] == 1


def test_source_imports_only_allowed_modules_and_runs_from_text(
        sonar: Table) -> None:
    """The enclave execs the source text: stdlib, numpy, torch and the API only."""
    import ast
    import sys

    source = WORKFLOW.read_text(encoding="utf-8")
    allowed = {"numpy", "torch", "orchestrator.site.api", "__future__"}
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            names = [node.module or ""]
        elif isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        else:
            continue
        for name in names:
            assert (name in allowed or name.split(".")[0] in allowed
                    or name.split(".")[0] in sys.stdlib_module_names), name
    namespace: dict[str, Any] = {"__name__": "enclave_workflow"}
    exec(compile(source, "sonar_classification.py", "exec"), namespace)
    params = {"folds": 13, "epochs": 5}
    out = namespace["run_task"](Ctx("fold-0", params, sonar))
    assert out.metrics["test_rows"] == 16
