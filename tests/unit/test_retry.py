"""Retry classification (reliability plan, test 26): security never, transient 1."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import pytest
from parsl.app.errors import AppTimeout, RemoteExceptionWrapper
from parsl.executors.high_throughput.errors import ManagerLost, WorkerLost

from orchestrator.errors import (
    AttestationError,
    ConfigError,
    DataError,
    DispatchError,
    IntegrityError,
    LedgerError,
    LedgerVerificationError,
    NotFound,
    PolicyDenied,
)
from orchestrator.net.custodian_client import CustodianUnavailable
from orchestrator.submit.retry import NEVER, classify, make_retry_handler, unwrap

SECURITY = [
    PolicyDenied("release refused", reasons=["no agreement"]),
    AttestationError("stale evidence"),
    IntegrityError("bad tag"),
    LedgerVerificationError("bad entry", index=3),
    ConfigError("bad field"),
    DataError("bad row"),
]
TRANSIENT = [
    ManagerLost(b"manager-1", "node-1"),
    WorkerLost(3, "node-1"),
    AppTimeout("walltime"),
    CustodianUnavailable("connection refused"),
    LedgerError("database is locked"),
    TimeoutError("timed out"),
    ConnectionResetError("reset"),
]


def _wrapped(exc: BaseException) -> RemoteExceptionWrapper:
    """What a Parsl worker sends back: the exception in a RemoteExceptionWrapper."""
    try:
        raise exc
    except BaseException:
        return RemoteExceptionWrapper(*sys.exc_info())


@pytest.mark.parametrize("exc", SECURITY, ids=lambda e: type(e).__name__)
def test_security_failures_are_never_retried(exc: BaseException) -> None:
    assert classify(exc) == NEVER == math.inf
    assert classify(_wrapped(exc)) == NEVER


@pytest.mark.parametrize("exc", TRANSIENT, ids=lambda e: type(e).__name__)
def test_transient_failures_cost_one(exc: BaseException) -> None:
    assert classify(exc) == 1.0
    assert classify(_wrapped(exc)) == 1.0


@pytest.mark.parametrize(
    "exc", [ValueError("bad task"), NotFound("no dataset"), DispatchError("x")]
)
def test_unknown_and_deterministic_failures_are_not_retried(exc: Exception) -> None:
    assert classify(exc) == NEVER


def test_a_transient_error_caused_by_a_security_failure_is_not_retried() -> None:
    try:
        try:
            raise PolicyDenied("denied")
        except PolicyDenied as inner:
            raise TimeoutError("gave up") from inner
    except TimeoutError as outer:
        assert classify(outer) == NEVER
        assert classify(_wrapped(outer)) == NEVER


def test_unwrap_returns_the_original_exception_after_pickling() -> None:
    import pickle

    exc = PolicyDenied("release refused", reasons=["r1", "r2"])
    wrapper = pickle.loads(pickle.dumps(_wrapped(exc)))
    inner = unwrap(wrapper)
    assert isinstance(inner, PolicyDenied) and inner.reasons == ["r1", "r2"]
    assert unwrap(exc) is exc


def _record(spec: dict[str, Any], try_id: int, fail_cost: float) -> dict[str, Any]:
    return {"args": (spec,), "try_id": try_id, "fail_cost": fail_cost, "id": 7}


def test_handler_reports_only_retries_that_will_happen() -> None:
    notices: list[dict[str, Any]] = []
    handler = make_retry_handler(2, on_retry=notices.append)
    spec = {"job_id": "job-1", "task": "final"}
    lost = WorkerLost(0, "node")
    assert handler(lost, _record(spec, 0, 0)) == 1.0
    assert handler(lost, _record(spec, 1, 1)) == 1.0
    assert handler(lost, _record(spec, 2, 2)) == 1.0  # budget spent: no notice
    assert handler(PolicyDenied("no"), _record(spec, 0, 0)) == NEVER
    assert [(n["task"], n["attempt"], n["error"]) for n in notices] == [
        ("final", 2, "WorkerLost"),
        ("final", 3, "WorkerLost"),
    ]
    assert notices[0]["job_id"] == "job-1"


def test_handler_fails_closed_when_the_retry_cannot_be_logged() -> None:
    def broken(_: dict[str, Any]) -> None:
        raise LedgerError("log unavailable")

    handler = make_retry_handler(2, on_retry=broken)
    assert handler(WorkerLost(0, "n"), _record({"task": "t"}, 0, 0)) == NEVER


def _count_attempts(tmp_path: Path, exc_name: str) -> tuple[int, str]:
    """Run one real Parsl app (threads) that raises; count how often it ran."""
    import parsl
    from parsl.config import Config
    from parsl.executors.threads import ThreadPoolExecutor

    counter = tmp_path / f"{exc_name}.count"
    counter.write_text("0")

    def flaky(path: str, name: str) -> None:
        p = Path(path)
        p.write_text(str(int(p.read_text()) + 1))
        if name == "policy":
            raise PolicyDenied("release refused", reasons=["no agreement"])
        raise WorkerLost(1, "node-1")

    config = Config(
        executors=[ThreadPoolExecutor(max_threads=1, label="threads")],
        retries=2,
        retry_handler=make_retry_handler(2),
        run_dir=str(tmp_path / "runinfo"),
        strategy="none",
    )
    dfk = parsl.load(config)
    try:
        future = parsl.python_app(flaky, executors=["threads"])(str(counter), exc_name)
        error = future.exception()
    finally:
        dfk.cleanup()
        parsl.clear()
    return int(counter.read_text()), type(error).__name__


def test_real_parsl_retries_transient_up_to_budget_and_security_never(
    tmp_path: Path,
) -> None:
    assert _count_attempts(tmp_path, "policy") == (1, "PolicyDenied")
    assert _count_attempts(tmp_path, "lost") == (3, "WorkerLost")
