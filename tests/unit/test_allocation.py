"""Allocation accounting and oversight notifications (thresholds, holds, acks).

Real state directories, real custodians, real officer signatures; a full sonar
submission (real Parsl workers) checks the ``allocation.recorded`` of a job.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from testkit import (
    ROOT,
    World,
    attested_release,
    custodian_of,
    edit_journal_body,
    make_world,
    officer_event,
    officer_key,
    register_job,
)

from orchestrator.canonical import digest_of
from orchestrator.embedded import Deployment, acknowledge, notifications
from orchestrator.errors import ConfigError, DecisionPending, IntegrityError, NotFound
from orchestrator.log.store import CustodyLog
from orchestrator.nation.custodian import LocalCustodian
from orchestrator.nation.usage import notification_id_for, quarter_usage
from orchestrator.protocol.agreements import quarter_of
from orchestrator.protocol.release import JobRequest
from orchestrator.protocol.statements import sign_statement
from orchestrator.submit.context import ORCHESTRATOR_ACTOR
from orchestrator.timeutil import system_clock
from orchestrator.tlog.events import SignedEntry

AUS_USA = ROOT / "agreements" / "aus-usa.toml"
AID = "AUS-USA-SONAR-2026"
OVERSIGHT = "AUKUS Joint Steering Group"
AREA = "undersea-autonomy"  # pre-approved under AUS-USA


# -- helpers ---------------------------------------------------------------------------
def _world(tmp_path: Path, extra: str = "") -> World:
    """A world whose AUS-USA agreement has the ``extra`` [agreement] keys."""
    text = AUS_USA.read_text()
    anchor = f'oversight_body = "{OVERSIGHT}"\n'
    assert anchor in text
    path = tmp_path / "aus-usa.toml"
    path.write_text(text.replace(anchor, anchor + extra))
    return make_world(tmp_path, agreement=path)


def _job(world: World, job_id: str, gpu_hours: float) -> JobRequest:
    return register_job(world, job_id, AREA, gpu_hours)  # type: ignore[no-any-return]


def _found(world: World, kind: str, **match: str) -> list[SignedEntry]:
    return CustodyLog(world.state.custody_db).find(kind, **match)


def _used(world: World, gpu_hours: float, quarter: str, n: int = 0) -> None:
    """An earlier job AUS admitted finished: the orchestrator logs its
    ``allocation.recorded`` and reports it to AUS, as the pipeline does."""
    job_id = f"job-earlier-{quarter}-{n}"
    register_job(world, job_id, AREA, 0.01, admit=("AUS",))
    entry = Deployment(world.state).orchestrator().record("allocation.recorded", {
        "job_id": job_id, "gpu_hours": gpu_hours, "quarter": quarter,
        "agreement_ids": [AID], "tasks": 1})
    custodian_of(world.state, "AUS").accept_allocation(entry.seq)


def _held(world: World, custodian: LocalCustodian, request: JobRequest) -> str:
    """Decide ``request`` (over the threshold, held); return its notification id."""
    with pytest.raises(DecisionPending) as held:
        custodian.decide(request)
    assert held.value.outcome == "held"
    nid = notification_id_for(digest_of(request.to_json()), AID)
    assert nid in held.value.message
    assert any(r.startswith(f"threshold: held: awaiting acknowledgement by {OVERSIGHT}")
               for r in held.value.reasons), held.value.reasons
    return nid


def _acked_by(world: World, nid: str) -> str | None:
    return next(n.acknowledged_by for n in notifications(world.state)
                if n.notification_id == nid)


# -- thresholds ------------------------------------------------------------------------
def test_per_request_threshold_notifies_the_oversight_body(world: World) -> None:
    aus = custodian_of(world.state, "AUS")
    small = aus.decide(_job(world, "job-small", 500.0))  # at the threshold: no
    assert small["outcome"] == "permit" and small["notices"] == []
    assert _found(world, "notification.recorded") == []
    request = _job(world, "job-big", 900.0)
    decision = aus.decide(request)
    assert decision["outcome"] == "permit" and decision["notices"] == ["per-request"]
    (note,) = _found(world, "notification.recorded")
    body = note.event.body
    assert body["oversight_body"] == OVERSIGHT
    assert body["agreement_id"] == AID and body["job_id"] == "job-big"
    assert body["kinds"] == ["per-request"] and body["hold"] is False
    assert body["gpu_hours"] == 900.0 and body["threshold_gpu_hours"] == 500.0
    assert note.event.actor == "custodian:AUS"
    aus.decide(request)  # the same request again: notified once
    assert len(_found(world, "notification.recorded")) == 1
    (listed,) = notifications(world.state)
    assert (listed.job_id, listed.kinds, listed.acknowledged_by) == (
        "job-big", ("per-request",), None)


def test_quarterly_threshold_counts_usage_in_the_same_quarter(tmp_path: Path) -> None:
    world = _world(tmp_path, "quarterly_threshold_gpu_hours = 100.0\n")
    quarter = quarter_of(system_clock().date())
    _used(world, 1000.0, "2020-Q1")  # another quarter: does not count
    _used(world, 60.0, quarter, 1)
    _used(world, 30.0, quarter, 2)
    aus = custodian_of(world.state, "AUS")
    assert quarter_usage(aus.ctx.journal, quarter) == {AID: 90.0}  # what AUS holds
    within = aus.decide(_job(world, "job-within", 10.0))  # 90 + 10 = 100: not above
    assert within["outcome"] == "permit" and within["notices"] == []
    crossing = aus.decide(_job(world, "job-crossing", 20.0))
    assert crossing["outcome"] == "permit" and crossing["notices"] == ["quarterly"]
    (note,) = _found(world, "notification.recorded")
    body = note.event.body
    assert body["kinds"] == ["quarterly"] and body["job_id"] == "job-crossing"
    assert body["quarter"] == quarter and body["quarter_used_gpu_hours"] == 90.0
    assert body["quarterly_threshold_gpu_hours"] == 100.0
    assert body["oversight_body"] == OVERSIGHT
    both = aus.decide(_job(world, "job-both", 600.0))
    assert both["notices"] == ["per-request", "quarterly"]


# -- holds and acknowledgements --------------------------------------------------------
def test_hold_until_acknowledged_then_permit_and_release(tmp_path: Path) -> None:
    world = _world(tmp_path, "hold_until_acknowledged = true\n")
    aus = custodian_of(world.state, "AUS")
    assert aus.decide(_job(world, "job-small", 1.0))["outcome"] == "permit"
    request = _job(world, "job-big", 900.0)
    nid = _held(world, aus, request)
    _held(world, aus, request)  # still held; notified once
    (note,) = _found(world, "notification.recorded")
    assert note.event.body["hold"] is True
    with pytest.raises(ConfigError) as outsider:
        acknowledge(world.state, nid, "GBR")
    assert outsider.value.field == "--as"
    with pytest.raises(NotFound):
        acknowledge(world.state, "ntf-nope", "USA")
    assert _found(world, "notification.acknowledged") == []

    acked = acknowledge(world.state, nid, "USA")
    assert acked.acknowledged_by == "USA" and acked.hold
    (ack,) = _found(world, "notification.acknowledged")
    assert ack.event.actor == "officer:USA"
    assert ack.event.body["oversight_body"] == OVERSIGHT
    with pytest.raises(ConfigError, match="already acknowledged"):
        acknowledge(world.state, nid, "AUS")
    decision = aus.decide(request)
    assert decision["outcome"] == "permit"
    threshold = next(r for r in decision["reasons"] if r["rule"] == "threshold")
    assert f"acknowledged on behalf of {OVERSIGHT}" in threshold["detail"]
    assert attested_release(world, aus, "job-big").job_id == "job-big"


@pytest.mark.parametrize("forgery", ["foreign-key", "non-party", "altered"])
def test_forged_or_altered_acknowledgement_does_not_count(
        tmp_path: Path, forgery: str) -> None:
    world = _world(tmp_path, "hold_until_acknowledged = true\n")
    aus = custodian_of(world.state, "AUS")
    request = _job(world, "job-big", 900.0)
    nid = _held(world, aus, request)
    if forgery == "altered":
        acknowledge(world.state, nid, "USA")
        (ack,) = aus.ctx.journal.find("notification.acknowledged")

        def alter(body: dict[str, Any]) -> None:
            body["statement"]["issued_at"] = "2020-01-01T00:00:00.000000Z"

        edit_journal_body(world.state, "AUS", ack.seq, alter)
        _held(world, aus, request)  # AUS's own copy no longer verifies: still held
        return
    nation = "USA" if forgery == "foreign-key" else "GBR"
    gbr = officer_key(world, "GBR")
    signed = sign_statement({"type": "notification-ack/v1", "nation": nation,
                             "issued_at": "2026-11-21T00:00:00.000000Z",
                             "notification_id": nid, "agreement_id": AID}, gbr)
    with pytest.raises((IntegrityError, ConfigError)):
        aus.accept(officer_event(
            "notification.acknowledged", nation,
            {"notification_id": nid, "agreement_id": AID,
             "oversight_body": OVERSIGHT, **signed.to_json()}, gbr))
    _held(world, aus, request)  # the custodian still holds it
    assert _acked_by(world, nid) is None  # and officers are not told otherwise
    acknowledge(world.state, nid, "AUS")  # a genuine acknowledgement still can
    assert _acked_by(world, nid) == "AUS"
    assert aus.decide(request)["outcome"] == "permit"


# -- a real job ------------------------------------------------------------------------
@pytest.mark.slow
def test_submitted_job_records_its_allocation(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestrator.embedded import job_view, submit

    monkeypatch.setenv(  # Parsl's workers are started from the virtualenv
        "PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"])
    world = make_world(tmp_path)
    workflow = tmp_path / "sonar.toml"
    text = (ROOT / "workflows" / "sonar_classification.toml").read_text()
    for old, new in (
        ('code = "sonar_classification.py"',
         f'code = "{ROOT / "workflows" / "sonar_classification.py"}"'),
        ("folds = 13", "folds = 2"), ("epochs = 300", "epochs = 20"),
        ("final_model = true", "final_model = false"),
    ):
        assert old in text
        text = text.replace(old, new)
    workflow.write_text(text)
    result = submit(world.state, workflow, world.site)
    assert len(result.tasks) == 2 and result.model_ids == []
    (allocation,) = _found(world, "allocation.recorded")
    body = allocation.event.body
    view = job_view(world.state, result.job_id)
    quarter = quarter_of(system_clock().date())
    assert body == {"job_id": result.job_id, "gpu_hours": float(view["gpu_hours"]),
                    "quarter": quarter, "agreement_ids": [AID],
                    "tasks": len(view["tasks"])}
    assert allocation.event.actor == ORCHESTRATOR_ACTOR
    kinds = [e.event.kind for e in CustodyLog(world.state.custody_db).entries()]
    assert kinds.index("allocation.recorded") < kinds.index("job.completed")
    assert quarter_usage(custodian_of(world.state, "AUS").ctx.journal, quarter) == {
        AID: body["gpu_hours"]}  # reported to AUS, the data owner
