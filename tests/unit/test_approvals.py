"""Case-by-case approvals: request, officer's signed decision, single use.

Real party directories, real custodians (``LocalCustodian``, each deciding
from its own journal) and real officer signatures; time is moved with the
custodian's ``clock=``; tampering is done on the custodian's stored journal, as
an attacker with write access to its database would.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from testkit import (
    World,
    attested_release,
    ctx_of,
    custodian_of,
    edit_journal_body,
    inject_journal,
    officer_key,
    register_job,
)

from orchestrator.crypto import SigningKey
from orchestrator.embedded import decide_request
from orchestrator.errors import (
    ConfigError,
    DecisionPending,
    IntegrityError,
    NotFound,
    PolicyDenied,
)
from orchestrator.log.store import CustodyLog
from orchestrator.nation.approval_uses import ApprovalUses
from orchestrator.nation.approvals import approval_requests as requests_in
from orchestrator.nation.approvals import cancel_pending
from orchestrator.nation.custodian import LocalCustodian
from orchestrator.protocol.approvals import (
    ApprovalRequest,
    approval_statement,
    request_id_for,
)
from orchestrator.protocol.release import JobRequest
from orchestrator.protocol.statements import SignedStatement, sign_statement
from orchestrator.tlog.events import SignedEntry

AREA = "quantum-sensing"  # case-by-case under AUS-USA


# -- helpers ---------------------------------------------------------------------------
def _job(world: World, job_id: str, area: str = AREA) -> JobRequest:
    """Register ``job_id`` (so keys can be released for it) and return its request."""
    return register_job(world, job_id, area)  # type: ignore[no-any-return]


def _pending(world: World, custodian: LocalCustodian, request: JobRequest) -> str:
    with pytest.raises(DecisionPending) as pending:
        custodian.decide(request)
    assert pending.value.outcome == "needs-approval"
    rid = request_id_for(request.job_id, "AUS", world.site)
    assert rid in pending.value.message
    return rid


def _log(world: World) -> CustodyLog:
    return CustodyLog(world.state.custody_db)


def _found(world: World, kind: str, **match: str) -> list[SignedEntry]:
    return _log(world).find(kind, **match)


def approval_requests(world: World, *, nation: str = "AUS",
                      at: datetime | None = None) -> list[ApprovalRequest]:
    """``nation``'s approval requests, as its custodian holds them."""
    return requests_in(ctx_of(world.state, nation).journal,
                       at=at or datetime.now(UTC))


def _status(world: World, rid: str, at: datetime | None = None) -> str:
    return next(r.status for r in approval_requests(world, at=at)
                if r.request_id == rid)


def record_decision(world: World, signed: SignedStatement) -> ApprovalRequest:
    """Hand a signed decision to the AUS custodian, as the officer tools do."""
    return ApprovalRequest.from_json(custodian_of(world.state, "AUS")
                                     .decide_approval(signed))


def _journal_granted(world: World, rid: str, statement: dict[str, Any],
                     key: SigningKey) -> SignedEntry:
    """Insert ``approval.granted`` carrying ``statement`` signed by ``key`` into the
    AUS custodian's journal, skipping every check its delivery makes."""
    signed = sign_statement(statement, key)
    return inject_journal(world.state, "AUS", "approval.granted", "custodian:AUS", {
        "request_id": rid, "job_id": statement["job_id"], "owner": "AUS",
        "decision": statement["decision"], "approval_id": statement["approval_id"],
        "expires_at": statement["expires_at"], **signed.to_json()}, key)


def _statement_for(world: World, rid: str, nation: str = "AUS") -> dict[str, Any]:
    request = next(r for r in approval_requests(world) if r.request_id == rid)
    return approval_statement(request, decision="approve", nation=nation,
                              now=datetime.now(UTC))


# -- the happy path, and single use ----------------------------------------------------
def test_approve_then_permit_use_and_release(world: World) -> None:
    aus = custodian_of(world.state, "AUS")
    request = _job(world, "job-1")
    rid = _pending(world, aus, request)
    _pending(world, aus, request)  # asking again does not log a second request
    assert len(_found(world, "approval.requested")) == 1
    (listed,) = approval_requests(world, nation="AUS")
    assert (listed.request_id, listed.status, listed.priority_area) == (
        rid, "pending", AREA)
    assert approval_requests(world, nation="USA") == []
    with pytest.raises(PolicyDenied):  # no approval used yet: no key
        attested_release(world, aus, "job-1", "a0")

    approved = decide_request(world.state, rid, "AUS", "approve")
    assert approved.status == "approved" and approved.decision is not None
    decision = aus.decide(request)
    assert decision["outcome"] == "permit"
    tier = next(r for r in decision["reasons"] if r["rule"] == "tier")
    assert tier["passed"] and "approved by AUS officer" in tier["detail"]
    (used,) = _found(world, "approval.used")
    assert used.event.body["approval_id"] == approved.decision["approval_id"]
    assert used.event.actor == "custodian:AUS"
    assert _status(world, rid) == "used"
    grant = attested_release(world, aus, "job-1")
    assert grant.job_id == "job-1"
    assert _log(world).get(grant.log_index).event.kind == "key.released"
    # The release still counts the (used) approval once it has expired.
    later = datetime.now(UTC) + timedelta(days=30)
    afterwards = custodian_of(world.state, "AUS", clock=lambda: later)
    assert attested_release(world, afterwards, "job-1", "a2",
                    clock=lambda: later).job_id == "job-1"


def test_replayed_approval_is_refused_also_after_a_restart(world: World) -> None:
    """An approval admits one job. Presented for another job (its id re-issued in a
    statement for job-2's request, validly signed) it is a replay: refused by the
    same custodian and by a restarted one. Deciding job-1 itself again (a
    co-owner approved later, the job resumes) re-uses its admission: nothing new
    is consumed."""
    aus = custodian_of(world.state, "AUS")
    request = _job(world, "job-1")
    rid = _pending(world, aus, request)
    approved = decide_request(world.state, rid, "AUS", "approve", expires_in_s=60)
    assert aus.decide(request)["outcome"] == "permit"
    later = custodian_of(world.state, "AUS",
                           clock=lambda: datetime.now(UTC) + timedelta(hours=2))
    assert later.decide(request)["outcome"] == "permit"  # as of its use: unexpired
    assert len(_found(world, "approval.used")) == 1

    other = _job(world, "job-2")
    rid2 = _pending(world, aus, other)
    statement = {**_statement_for(world, rid2),
                 "approval_id": (approved.decision or {})["approval_id"]}
    record_decision(world, sign_statement(statement, officer_key(world, "AUS")))
    for custodian in (aus, custodian_of(world.state, "AUS")):  # same, restarted
        with pytest.raises(DecisionPending) as replay:
            custodian.decide(other)
        assert any("already used by job job-1" in r and "single use" in r
                   for r in replay.value.reasons), replay.value.reasons
        refused = _found(world, "approval.refused")[-1]
        assert "already used" in refused.event.body["reason"]
        assert refused.event.body["request_id"] == rid2
    assert len(_found(world, "approval.used")) == 1
    assert len(_found(world, "approval.refused")) == 2
    with pytest.raises(PolicyDenied):  # job-1's request is settled: used
        decide_request(world.state, rid, "AUS", "approve")


def test_approval_uses_are_durable_single_use(tmp_path: Path) -> None:
    now = datetime.now(UTC)
    uses = ApprovalUses(tmp_path / "approvals.db")
    uses.use("apr-x-1", job_id="job-1", request_digest="sha256:aa",
             expires_at=now + timedelta(hours=1), now=now)
    again = ApprovalUses(tmp_path / "approvals.db")  # reopened
    with pytest.raises(PolicyDenied) as replay:
        again.use("apr-x-1", job_id="job-2", request_digest="sha256:bb",
                  expires_at=now + timedelta(hours=1), now=now)
    assert "already used by job job-1" in replay.value.reasons[0]
    assert [u[0] for u in again.used_for("job-1")] == ["apr-x-1"]
    assert again.used_for("job-2") == []
    assert again.used_for_approval("apr-x-1")[0][0] == "job-1"


# -- approvals that do not count -------------------------------------------------------
def test_expired_approval_is_not_counted(world: World) -> None:
    clock = [datetime.now(UTC)]
    aus = custodian_of(world.state, "AUS", clock=lambda: clock[0])
    request = _job(world, "job-1")
    rid = _pending(world, aus, request)
    approved = decide_request(world.state, rid, "AUS", "approve", expires_in_s=60)
    assert approved.decision is not None
    clock[0] = datetime.now(UTC) + timedelta(seconds=120)
    with pytest.raises(DecisionPending) as pending:
        aus.decide(request)
    assert any("expired at" in r for r in pending.value.reasons), pending.value.reasons
    assert _found(world, "approval.used") == []
    assert _found(world, "approval.refused") == []  # valid, merely expired
    assert _status(world, rid, at=clock[0]) == "expired"
    assert _status(world, rid) == "approved"
    clock[0] = datetime.now(UTC)  # before its expiry it would have counted
    assert aus.decide(request)["outcome"] == "permit"


@pytest.mark.parametrize("claim", ["AUS", "GBR"])
def test_foreign_approval_is_refused(world: World, claim: str) -> None:
    aus = custodian_of(world.state, "AUS")
    request = _job(world, "job-1")
    rid = _pending(world, aus, request)
    statement = _statement_for(world, rid, nation=claim)
    gbr = officer_key(world, "GBR")
    with pytest.raises(IntegrityError):  # the custodian refuses to record it
        record_decision(world, sign_statement(statement, gbr))
    _journal_granted(world, rid, statement, gbr)  # ... but someone writes it in
    with pytest.raises(DecisionPending) as pending:
        aus.decide(request)
    (refused,) = _found(world, "approval.refused")
    why = {"AUS": "is not the registered AUS officer key",
           "GBR": "signed for 'GBR', not AUS"}[claim]
    assert why in refused.event.body["reason"]
    assert any(why in r for r in pending.value.reasons)
    assert _found(world, "approval.used") == []


@pytest.mark.parametrize("field", ["expires_at", "request_digest", "decision"])
def test_altered_approval_is_refused(world: World, field: str) -> None:
    aus = custodian_of(world.state, "AUS")
    request = _job(world, "job-1")
    rid = _pending(world, aus, request)
    decide_request(world.state, rid, "AUS",
                   "deny" if field == "decision" else "approve", expires_in_s=60)
    (granted,) = ctx_of(world.state, "AUS").journal.find(None, request_id=rid)[-1:]

    def alter(body: dict[str, Any]) -> None:
        body["statement"][field] = {
            "expires_at": "2099-01-01T00:00:00.000000Z",
            "request_digest": "sha256:" + "00" * 32,
            "decision": "approve"}[field]

    edit_journal_body(world.state, "AUS", granted.seq, alter)
    with pytest.raises(DecisionPending):
        aus.decide(request)
    (refused,) = _found(world, "approval.refused")
    assert "AUS officer signature does not verify" in refused.event.body["reason"]
    assert refused.event.body["entry"] == granted.seq
    assert _found(world, "approval.used") == []


def test_approval_moved_to_another_request_is_refused(world: World) -> None:
    aus = custodian_of(world.state, "AUS")
    first, second = _job(world, "job-1"), _job(world, "job-2")
    rid1, rid2 = _pending(world, aus, first), _pending(world, aus, second)
    # The AUS officer's genuine approval of job-1, written in under job-2's request.
    _journal_granted(world, rid2, _statement_for(world, rid1),
                     officer_key(world, "AUS"))
    with pytest.raises(DecisionPending):
        aus.decide(second)
    (refused,) = _found(world, "approval.refused")
    assert refused.event.body["reason"] == "approval is bound to another request"


def test_cancelled_approval_is_not_counted(world: World) -> None:
    aus = custodian_of(world.state, "AUS")
    request = _job(world, "job-1")
    rid = _pending(world, aus, request)
    decide_request(world.state, rid, "AUS", "approve")
    assert cancel_pending(ctx_of(world.state, "AUS"), job_id="job-1",
                          reason="job failed") == [rid]
    assert _status(world, rid) == "cancelled"
    with pytest.raises(DecisionPending):
        aus.decide(request)
    assert _found(world, "approval.used") == []
    assert _status(world, rid) == "pending"  # asked again: a new round
    assert len(_found(world, "approval.requested")) == 2
    assert cancel_pending(ctx_of(world.state, "AUS"), job_id="job-1",
                          reason="again") == [rid]


def test_denied_request_refuses_the_job(world: World) -> None:
    aus = custodian_of(world.state, "AUS")
    request = _job(world, "job-1")
    rid = _pending(world, aus, request)
    denied = decide_request(world.state, rid, "AUS", "deny")
    assert denied.status == "denied"
    assert len(_found(world, "approval.denied")) == 1
    with pytest.raises(PolicyDenied) as refused:
        aus.decide(request)
    assert not isinstance(refused.value, DecisionPending)
    assert any("denied by AUS officer" in r for r in refused.value.reasons)
    with pytest.raises(PolicyDenied):
        attested_release(world, aus, "job-1")
    assert _found(world, "approval.used") == []


# -- recording decisions ---------------------------------------------------------------
def test_record_decision_checks_signer_binding_and_state(world: World) -> None:
    aus = custodian_of(world.state, "AUS")
    request = _job(world, "job-1")
    rid = _pending(world, aus, request)
    statement = _statement_for(world, rid)
    for wrong in (officer_key(world, "USA"), SigningKey.generate()):
        with pytest.raises(IntegrityError) as caught:
            record_decision(world, sign_statement(statement, wrong))
        assert "not the registered AUS officer key" in caught.value.message
    other = {**statement, "job_id": "job-2"}
    with pytest.raises(IntegrityError, match="another request"):
        record_decision(world, sign_statement(other, officer_key(world, "AUS")))
    with pytest.raises(NotFound):
        record_decision(world, sign_statement(
            {**statement, "request_id": "apr-nope"}, officer_key(world, "AUS")))
    assert _status(world, rid) == "pending"

    assert record_decision(world, sign_statement(
        statement, officer_key(world, "AUS"))).status == "approved"
    with pytest.raises(PolicyDenied, match="is approved, not pending"):
        record_decision(world, sign_statement(
            {**statement, "decision": "deny"}, officer_key(world, "AUS")))
    with pytest.raises(PolicyDenied):
        decide_request(world.state, rid, "AUS", "deny")
    assert len(_found(world, "approval.granted")) == 1
    assert _found(world, "approval.denied") == []


def test_decide_request_checks_the_officer_and_expiry(world: World) -> None:
    rid = _pending(world, custodian_of(world.state, "AUS"), _job(world, "job-1"))
    with pytest.raises(NotFound):  # the USA custodian holds no AUS request
        decide_request(world.state, rid, "USA", "approve")
    for bad in (0, 91 * 86400):
        with pytest.raises(ConfigError) as expiry:
            decide_request(world.state, rid, "AUS", "approve", expires_in_s=bad)
        assert expiry.value.field == "--expires-in"
    with pytest.raises(ConfigError):
        decide_request(world.state, rid, "AUS", "maybe")
    with pytest.raises(NotFound):
        decide_request(world.state, "apr-unknown", "AUS", "approve")
    assert _status(world, rid) == "pending"
