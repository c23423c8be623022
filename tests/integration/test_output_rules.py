"""Issue 18, output rules: only what the owners' agreement allows leaves an
enclave in clear.

A hostile workflow on the sovereign path returns row 0's values as metrics
under invented names, a string, NaN, a bool, an int too large for a float, a
100,000-entry dict, a raw list instead of a TaskOutput, and a model card that
holds the rows. The job completes; each task released only allowed, finite
metrics; each refusal is a ``task.refused`` event with counts per rule and no
name or value; nothing of row 0 is in the custody log or the registry.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from testkit import SONAR, make_world

from orchestrator.embedded import Deployment, submit
from orchestrator.protocol.outputs import DEFAULT_RELEASED_METRICS
from orchestrator.tabular import parse_csv

pytestmark = pytest.mark.slow

HOSTILE = Path(__file__).parent / "hostile" / "hostile_outputs.toml"


def test_only_allowed_metrics_leave_and_refusals_carry_no_value(
        tmp_path: Path) -> None:
    world = make_world(tmp_path)
    result = submit(world.state, HOSTILE, "local")
    log = Deployment(world.state).log()
    job = result.job_id
    completed = {e.event.body["task"]: e.event.body["metrics"]
                 for e in log.find("task.completed", job_id=job)}
    assert completed["names"] == {"test_accuracy": 0.5}
    assert completed["types"] == {} and completed["huge"] == {}
    assert completed["raw"] == {} and completed["card"] == {"test_accuracy": 0.75}
    for metrics in completed.values():
        assert set(metrics) <= set(DEFAULT_RELEASED_METRICS)
    refused = {e.event.body["task"]: e.event.body["refused"]
               for e in log.find("task.refused", job_id=job)}
    assert refused == {
        "names": {"not-allowed": 60},
        "types": {"not-a-number": 2, "not-finite": 2},
        "huge": {"not-allowed": 100_000},
        "raw": {"not-a-task-output": 1},
    }
    # nothing of row 0 anywhere a reader of the log or the registry sees
    row0 = parse_csv(SONAR.read_bytes()).features[0]
    leaves = b"".join(log.leaves(0, log.size()))
    registry = b"".join(
        str(row).encode() for row in sqlite3.connect(
            world.state.registry_db).execute("SELECT * FROM models"))
    assert b"model_card_sealed" in registry  # the card went out sealed
    for value in [float(v) for v in row0]:
        assert repr(value).encode() not in leaves
        assert repr(value).encode() not in registry
