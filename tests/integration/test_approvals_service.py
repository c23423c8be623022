"""Single-use approvals across a restart of a real custodian *service*.

The AUS custodian runs as ``python -m orchestrator custodian serve`` (mutual TLS
on loopback, over the AUS nation directory, as in ``test_custodian_service.py``)
and is reached through the orchestrator's directory (``sovereign custodian
register``). A case-by-case job is approved by the AUS officer and admitted;
the service process is then stopped and started again over the same nation
directory, and the replayed decision is refused over the wire.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from services import custodian_service
from testkit import (
    Sovereign,
    World,
    attested_release,
    custodian_of,
    make_world,
    officer_key,
    register_job,
)

from orchestrator.embedded import Deployment, approval_requests, decide_request
from orchestrator.errors import DecisionPending, PolicyDenied
from orchestrator.log.store import CustodyLog
from orchestrator.net.custodian_client import HttpCustodian
from orchestrator.protocol.approvals import approval_statement, request_id_for
from orchestrator.protocol.release import JobRequest
from orchestrator.protocol.statements import sign_statement

AREA = "quantum-sensing"  # case-by-case under AUS-USA


@pytest.fixture
def world(tmp_path: Path) -> World:
    return make_world(tmp_path)


def _client(world: World) -> HttpCustodian:
    aus = Deployment(world.state).connect("AUS")  # from the orchestrator directory
    assert isinstance(aus, HttpCustodian)
    return aus


def _site_client(world: World, url: str) -> HttpCustodian:
    tls = world.state.site_dir(world.site) / "tls"
    ca = world.state.nation_dir("AUS") / "pki" / "ca.pem"
    return HttpCustodian("AUS", url, ca=ca, cert=tls / "AUS.pem",
                         key=tls / "client.key")


def _job(world: World, job_id: str, area: str = AREA) -> JobRequest:
    """Register ``job_id`` (so keys can be released for it) and return its request."""
    return register_job(world, job_id, area)  # type: ignore[no-any-return]


def test_replay_after_a_service_restart_is_refused(world: World) -> None:
    log = CustodyLog(world.state.custody_db)
    request = _job(world, "job-1")
    first = custodian_service(world.state, "AUS")
    try:
        Sovereign(world.state.root)("custodian", "register", "AUS", "--url", first.url,
                                    "--ca", str(world.state.nation_dir("AUS") / "pki"
                                                / "ca.pem"))
        with _client(world) as aus, _site_client(world, first.url) as site:
            with pytest.raises(DecisionPending) as pending:
                aus.decide(request)
            assert pending.value.outcome == "needs-approval"
            rid = request_id_for("job-1", "AUS", world.site)
            assert rid in pending.value.message
            with pytest.raises(PolicyDenied):  # nothing approved: no key
                attested_release(world, site, "job-1", "a0")
            approved = decide_request(world.state, rid, "AUS", "approve")
            assert approved.status == "approved"
            assert aus.decide(request)["outcome"] == "permit"
            assert attested_release(world, site, "job-1", "a1").job_id == "job-1"
            served = aus.health()
            assert served["pid"] == first.proc.pid  # type: ignore[union-attr]
        (used,) = log.find("approval.used", request_id=rid)
        assert used.event.actor == "custodian:AUS"
    finally:
        first.stop()

    # A replay: the used approval's id re-issued for job-2's request.
    other = _job(world, "job-2")
    with pytest.raises(DecisionPending):
        custodian_of(world.state, "AUS").decide(other)
    rid2 = request_id_for("job-2", "AUS", world.site)
    pending = next(r for r in approval_requests(world.state) if r.request_id == rid2)
    statement = {**approval_statement(pending, decision="approve", nation="AUS",
                                      now=datetime.now(UTC)),
                 "approval_id": (approved.decision or {})["approval_id"]}
    custodian_of(world.state, "AUS").decide_approval(
        sign_statement(statement, officer_key(world, "AUS")))
    again = custodian_service(world.state, "AUS", port=first.port)  # same URL
    try:
        with _client(world) as aus, _site_client(world, again.url) as site:
            assert aus.health()["pid"] == again.proc.pid  # type: ignore[union-attr]
            assert again.proc.pid != first.proc.pid  # type: ignore[union-attr]
            with pytest.raises(DecisionPending) as replay:
                aus.decide(other)
            assert isinstance(replay.value, PolicyDenied)
            assert any("already used by job job-1" in r and "single use" in r
                       for r in replay.value.reasons), replay.value.reasons
            # job-1's own admission survived the restart: it is decided again
            # without consuming anything, and keeps its keys.
            assert aus.decide(request)["outcome"] == "permit"
            assert attested_release(world, site, "job-1", "a2").job_id == "job-1"
        (refused,) = log.find("approval.refused", request_id=rid2)
        assert refused.event.actor == "custodian:AUS"
        assert "already used" in refused.event.body["reason"]
        assert len(log.find("approval.used")) == 1
        assert [r.status for r in approval_requests(world.state)] == ["used",
                                                                      "approved"]
    finally:
        again.stop()
