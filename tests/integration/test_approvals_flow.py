"""Officers at the command line: agreement signatures and termination, case-by-case
approvals of a submitted job, oversight notifications.

Every command is the real ``sovereign`` CLI in a subprocess (``testkit.Sovereign``)
over a real embedded world; the submit/resume flow trains in real Parsl workers.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from testkit import ROOT, Sovereign, World, custodian_of, make_world

from orchestrator.embedded import approval_requests
from orchestrator.errors import DecisionPending
from orchestrator.protocol.release import JobRequest
from orchestrator.timeutil import parse_rfc3339

AUS_USA = ROOT / "agreements" / "aus-usa.toml"
GBR_USA = ROOT / "agreements" / "gbr-usa.toml"
AID = "AUS-USA-SONAR-2026"
OVERSIGHT = "AUKUS Joint Steering Group"
MEASUREMENT = "sha256:" + "ab" * 32


def _pending_request(world: World, job_id: str = "job-review") -> str:
    """Leave a case-by-case request pending (in-process AUS custodian)."""
    with pytest.raises(DecisionPending):
        custodian_of(world.state, "AUS").decide(JobRequest(
            job_id, world.dataset_id, world.site, "quantum-sensing", 0.5, MEASUREMENT))
    (request,) = approval_requests(world.state)
    return request.request_id


def _by_id(listed: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {s["agreement_id"]: s for s in listed}


def _workflow(directory: Path, area: str) -> Path:
    """The sonar workflow, small (2 folds, 20 epochs, no final model), in ``area``."""
    text = (ROOT / "workflows" / "sonar_classification.toml").read_text()
    for old, new in (
        ('code = "sonar_classification.py"',
         f'code = "{ROOT / "workflows" / "sonar_classification.py"}"'),
        ('priority_area = "undersea-autonomy"', f'priority_area = "{area}"'),
        ("folds = 13", "folds = 2"), ("epochs = 300", "epochs = 20"),
        ("final_model = true", "final_model = false"),
    ):
        assert old in text
        text = text.replace(old, new)
    path = directory / f"sonar-{area}.toml"
    path.write_text(text)
    return path


def test_agreement_sign_list_and_terminate(tmp_path: Path) -> None:
    world = make_world(tmp_path, agreement=GBR_USA)  # AUS-USA is added below
    cli = Sovereign(world.state.root)
    added = cli("agreement", "add", str(AUS_USA), "--sign-as", "AUS")
    assert f"{AID} v1 recorded" in added.out
    assert "awaits the signature of USA" in added.out
    listed = _by_id(cli("agreement", "list", "--json").json())
    assert listed[AID]["status"] == "awaiting-signatures"
    assert (listed[AID]["signed_by"], listed[AID]["missing"]) == (["AUS"], ["USA"])
    assert listed["GBR-USA-SONAR-2026"]["status"] == "effective"

    signed = cli("agreement", "sign", AID, "--as", "USA", "--json").json()
    assert signed["status"] == "effective" and signed["signed_by"] == ["AUS", "USA"]
    twice = cli("agreement", "sign", AID, "--as", "USA", ok=False)
    assert twice.code == 6 and "already signed" in twice.err

    rid = _pending_request(world)
    ended = cli("agreement", "terminate", AID, "--as", "USA", "--reason",
                "exercise over", "--json").json()
    assert ended["status"] == "terminated"
    assert "terminated by USA officer" in ended["detail"]
    assert "exercise over" in ended["detail"]
    listed = _by_id(cli("agreement", "list", "--json").json())
    assert listed[AID]["status"] == "terminated"
    approvals = cli("approvals", "list", "--as", "AUS", "--json").json()
    assert [(a["request_id"], a["status"]) for a in approvals] == [(rid, "cancelled")]


@pytest.mark.parametrize("value", ["10x", "0s", "91d"])
def test_bad_expires_in_is_named(tmp_path: Path, value: str) -> None:
    world = make_world(tmp_path)
    rid = _pending_request(world)
    bad = Sovereign(world.state.root)(
        "approvals", "approve", rid, "--as", "AUS", f"--expires-in={value}", ok=False)
    assert bad.code == 2
    assert "--expires-in" in bad.err, bad.err
    assert [r.status for r in approval_requests(world.state)] == ["pending"]


def test_notifications_list_and_ack(tmp_path: Path) -> None:
    hold = tmp_path / "hold.toml"
    anchor = f'oversight_body = "{OVERSIGHT}"\n'
    hold.write_text(AUS_USA.read_text().replace(
        anchor, anchor + "hold_until_acknowledged = true\n"))
    world = make_world(tmp_path, agreement=hold)
    with pytest.raises(DecisionPending) as held:
        custodian_of(world.state, "AUS").decide(JobRequest(
            "job-big", world.dataset_id, world.site, "undersea-autonomy", 900.0,
            MEASUREMENT))
    assert held.value.outcome == "held"
    cli = Sovereign(world.state.root)
    (note,) = cli("notifications", "list", "--json").json()
    assert note["hold"] is True and note["acknowledged_by"] is None
    assert (note["job_id"], note["agreement_id"], note["oversight_body"],
            note["kinds"]) == ("job-big", AID, OVERSIGHT, ["per-request"])
    nid = note["notification_id"]
    outsider = cli("notifications", "ack", nid, "--as", "GBR", ok=False)
    assert outsider.code == 2 and f"GBR is not a party to {AID}" in outsider.err
    acked = cli("notifications", "ack", nid, "--as", "USA")
    assert f"{nid} acknowledged by USA" in acked.out
    assert "sovereign jobs resume job-big" in acked.out
    (note,) = cli("notifications", "list", "--json").json()
    assert note["acknowledged_by"] == "USA"


@pytest.mark.slow
def test_case_by_case_submit_approve_resume(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    cli = Sovereign(world.state.root)
    workflow = _workflow(tmp_path, "quantum-sensing")

    waiting = cli("submit", str(workflow), "--site", "local", ok=False)
    assert waiting.code == 5, waiting.err
    match = re.search(r"job (job-[0-9a-f]{16}) is waiting \(needs-approval\)",
                      waiting.err)
    assert match, waiting.err
    job_id = match.group(1)
    rid = f"apr-{job_id}-AUS-local"
    assert rid in waiting.err
    assert f"sovereign jobs resume {job_id}" in waiting.err
    assert "sovereign approvals list" in waiting.err

    (pending,) = cli("approvals", "list", "--as", "AUS", "--json").json()
    assert (pending["request_id"], pending["job_id"], pending["status"]) == (
        rid, job_id, "pending")
    assert cli("approvals", "list", "--as", "USA", "--json").json() == []
    # the USA officer's own custodian holds no AUS request: nothing to sign
    foreign = cli("approvals", "approve", rid, "--as", "USA", ok=False)
    assert foreign.code == 5 and f"no approval request {rid!r}" in foreign.err

    before = datetime.now(UTC)
    approved = cli("approvals", "approve", rid, "--as", "AUS", "--expires-in", "1h",
                   "--json").json()
    assert approved["status"] == "approved"
    expires = parse_rfc3339(approved["decision"]["expires_at"])
    assert before + timedelta(minutes=59) < expires < before + timedelta(minutes=61)

    done = cli("jobs", "resume", job_id, "--json").json()
    assert done["job_id"] == job_id and len(done["tasks"]) == 2
    assert done["sites"] == ["local"]
    again = cli("jobs", "resume", job_id, ok=False)
    assert again.code == 2 and "not waiting for officers" in again.err
    (used,) = cli("approvals", "list", "--json").json()
    assert used["status"] == "used"
