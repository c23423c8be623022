"""Smoke tests: the issue 5 benchmarks' ``--quick`` runs finish and write their JSON.

``bench_training_throughput.py --quick`` (20 MB sealed synthetic CSV) and
``bench_dispatch.py --quick`` (50 tasks) run on this machine; the Slurm one reuses
the ``slurm_cluster`` fixture of ``test_slurm_site.py`` (start/stop scripts, leak
checks) and is also marked ``slurm``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from test_slurm_site import slurm_cluster

__all__ = ["slurm_cluster"]

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def _bench(script: str, out: Path, *extra: str) -> dict[str, Any]:
    env = {**os.environ,
           "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), "--quick", "--json",
         str(out), *extra],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "|---|" in proc.stdout
    doc: dict[str, Any] = json.loads(out.read_text())
    return doc


def test_training_throughput_quick(tmp_path: Path) -> None:
    doc = _bench("bench_training_throughput.py", tmp_path / "t.json")
    assert doc["config"]["size_bytes"] > 1.5e7
    ratio = doc["ratio_sovereign_over_plain"]
    assert ratio["train_samples_per_s"]["median"] > 0.5
    assert ratio["e2e_samples_per_s"]["median"] > 0
    assert doc["sovereign"]["parse_s"]["median"] > 0
    assert doc["train_accuracy_first_100k"] > 0.6


def test_dispatch_quick(tmp_path: Path) -> None:
    doc = _bench("bench_dispatch.py", tmp_path / "d.json")
    assert doc["config"]["tasks"] == 50
    for mode in ("sovereign", "plain"):
        assert doc[mode]["throughput_per_s"]["median"] > 0
    assert doc["added_ms_per_task"]["n"] == 1


@pytest.mark.slurm
def test_slurm_first_result_quick(slurm_cluster: Path, tmp_path: Path) -> None:
    doc = _bench("bench_slurm_first_result.py", tmp_path / "s.json")
    assert doc["config"]["started_cluster"] is False  # the fixture started it
    assert doc["accuracy_equal"] is True
    for mode in ("sovereign", "plain"):
        assert doc[mode]["first_result_s"]["median"] > 0
