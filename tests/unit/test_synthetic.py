"""Synthetic sonar returns: shapes, ranges, determinism, class balance and signal."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import pytest

from orchestrator.site.api import Table
from orchestrator.synthetic import generate, row_bytes, rows_for_bytes, write_csv
from orchestrator.tabular import parse_csv

ROOT = Path(__file__).resolve().parents[2]


def _all(rows: int, bands: int, seed: int, **kw: Any) -> tuple[np.ndarray, np.ndarray]:
    chunks = list(generate(rows, bands, seed, **kw))
    return (np.concatenate([c[0] for c in chunks]),
            np.concatenate([c[1] for c in chunks]))


def test_shapes_dtypes_ranges_and_chunks() -> None:
    chunks = list(generate(2_500, 60, 1, chunk_rows=1_000))
    assert [c[0].shape for c in chunks] == [(1000, 60), (1000, 60), (500, 60)]
    x, y = _all(2_500, 60, 1, chunk_rows=1_000)
    assert x.dtype == np.float32 and y.shape == (2_500,)
    assert x.min() >= 0.0 and x.max() <= 1.0
    assert set(np.unique(y)) == {"M", "R"}
    q = np.rint(x.astype(np.float64) * 1e4) / 1e4
    assert np.array_equal(q.astype(np.float32), x)  # 4 decimals
    assert list(generate(0, 60, 1)) == []


@pytest.mark.parametrize("bands", [1, 8, 60, 128])
def test_bands_configurable(bands: int) -> None:
    x, _ = _all(300, bands, 2)
    assert x.shape == (300, bands)


def test_deterministic_for_a_seed() -> None:
    a, la = _all(1_200, 60, 5)
    b, lb = _all(1_200, 60, 5)
    c, _ = _all(1_200, 60, 6)
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert not np.array_equal(a, c)


def test_class_proportion() -> None:
    _, y = _all(20_000, 16, 3)
    assert abs(float(np.mean(y == "M")) - 111 / 208) < 0.02
    _, y = _all(20_000, 16, 3, p_mine=0.2)
    assert abs(float(np.mean(y == "M")) - 0.2) < 0.02


def test_bad_arguments() -> None:
    for args in ((-1, 60, 0), (10, 0, 0), (10, 60, -1)):
        with pytest.raises(ValueError):
            next(generate(*args))
    with pytest.raises(ValueError):
        next(generate(10, 60, 0, p_mine=1.5))


def test_csv_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    n = write_csv(path, 1_234, 60, 9, chunk_rows=500)
    assert n == path.stat().st_size == 1_234 * row_bytes(60)
    table = parse_csv(path.read_bytes())
    x, y = _all(1_234, 60, 9, chunk_rows=500)
    assert np.array_equal(table.features, x)
    assert table.classes == ("M", "R")
    assert np.array_equal(np.asarray(table.classes)[table.labels], y)
    assert rows_for_bytes(1e6) == round(1e6 / row_bytes(60))


def test_small_mlp_learns_it_well_above_chance(tmp_path: Path) -> None:
    path = tmp_path / "s.csv"
    write_csv(path, 2_000, 60, 11)
    table = parse_csv(path.read_bytes())
    spec = importlib.util.spec_from_file_location(
        "sonar_wf", ROOT / "workflows" / "sonar_classification.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    class Ctx:
        task = "fold-0"
        params: ClassVar[dict[str, Any]] = {"folds": 5, "final_model": False}

        def dataset(self) -> Table:
            return table

        def progress(self, done: int, total: int) -> None:
            pass

    metrics = module.run_task(Ctx()).metrics
    assert metrics["test_rows"] == 400
    assert metrics["test_accuracy"] > 0.8, metrics  # chance is ~0.53


def test_cli_synth(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from orchestrator.cli import app

    out = tmp_path / "syn.csv"
    result = CliRunner().invoke(
        app, ["dataset", "synth", str(out), "--rows", "100", "--bands", "12",
              "--seed", "4"])
    assert result.exit_code == 0, result.output
    assert out.stat().st_size == 100 * row_bytes(12)
    x, _ = _all(100, 12, 4)
    assert np.array_equal(parse_csv(out.read_bytes()).features, x)
