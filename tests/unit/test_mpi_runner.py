"""The driver side of multi-rank tasks: reading the ranks' result files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from orchestrator.errors import AttestationError, PolicyDenied
from orchestrator.protocol.tasks import resource_spec
from orchestrator.site.mpi_runner import read_results


def _write(workdir: Path, rank: int, payload: dict[str, object]) -> None:
    (workdir / f"result-r{rank}.json").write_text(json.dumps(payload))


def test_resource_spec() -> None:
    assert resource_spec(1, 2) == {"num_nodes": 1, "ranks_per_node": 2}


def test_rank_zero_result_decoded(tmp_path: Path) -> None:
    result = {"task": "final", "attempt_id": "a-r0", "world_size": 2, "metrics": {},
              "model": {"object_id": "m", "ciphertext": "AAEC"}}
    _write(tmp_path, 0, {"ok": True, "result": result})
    _write(tmp_path, 1, {"ok": True, "result": {"attempt_id": "a-r1", "rank": 1}})
    out = read_results(tmp_path, 2)
    assert out["model"]["ciphertext"] == b"\x00\x01\x02"
    assert out["attempt_id"] == "a-r0"


def test_singletons_are_refused(tmp_path: Path) -> None:
    _write(tmp_path, 0, {"ok": True, "result": {"world_size": 1, "metrics": {}}})
    with pytest.raises(RuntimeError, match="size 1, expected 2"):
        read_results(tmp_path, 2)


def test_missing_rank_zero_result(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="rank 0 wrote no result"):
        read_results(tmp_path, 2, "exit 1")


def test_security_errors_keep_their_class(tmp_path: Path) -> None:
    _write(tmp_path, 1, {"ok": False, "rank": 1, "error": "AttestationError",
                         "message": "bad evidence", "state": {"source": "job-1"}})
    with pytest.raises(AttestationError, match="bad evidence") as info:
        read_results(tmp_path, 2)
    assert info.value.source == "job-1"
    _write(tmp_path, 0, {"ok": False, "rank": 0, "error": "PolicyDenied",
                         "message": "denied", "state": {"reasons": ["x"]}})
    with pytest.raises(PolicyDenied, match="denied") as denied:  # rank 0's first
        read_results(tmp_path, 2)
    assert getattr(denied.value, "reasons", None) == ["x"]


def test_other_errors_are_transient(tmp_path: Path) -> None:
    _write(tmp_path, 0, {"ok": False, "rank": 0, "error": "OSError",
                         "message": "disk full", "state": {}})
    with pytest.raises(RuntimeError, match="rank 0: OSError: disk full"):
        read_results(tmp_path, 2)
