"""Who may do what at a custodian: every (caller, operation) cell, over mTLS.

AUS's custodian is served on loopback with its real TLS context; each caller
uses the certificate AUS's CA issued it when the parties were introduced (the
site, the orchestrator, the log operator, and the officers of AUS, GBR and the
USA). Every operation is called by every caller with a request it cannot
misuse; the cell is *refused* when the answer is 403 with a ``role:``,
``whose:`` or ``owner:`` reason (the authorisation refused it, before any
work), else *allowed* (the request went on to be judged on its merits). The
expected table is the one in README ("Who may do what at a custodian"), and
this test reads it from there too, so the two cannot drift apart.
"""

from __future__ import annotations

import json
import re
import ssl
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from testkit import ROOT, World, make_world

from orchestrator.canonical import b64e
from orchestrator.crypto import load_private_key, new_dek
from orchestrator.labels import Label
from orchestrator.nation.pki import server_context
from orchestrator.nation.service import create_app
from orchestrator.nation.store import OwnedObject
from orchestrator.net.service import ServiceThread
from orchestrator.protocol.custodian import OPERATIONS
from orchestrator.protocol.log import SignedEvent
from orchestrator.tlog.events import CustodyEvent

CALLERS = ("site", "orchestrator", "officer-AUS", "officer-GBR", "officer-USA", "log")
Y, N = True, False

#: operation -> allowed for (site, orchestrator, officer-AUS, officer-GBR,
#: officer-USA, log) at AUS's custodian.
EXPECTED: dict[str, tuple[bool, ...]] = {
    "challenge": (Y, N, N, N, N, N),
    "release": (Y, N, N, N, N, N),
    "wrap": (Y, N, N, N, N, N),
    "decide": (N, Y, N, N, N, N),
    "card": (Y, Y, Y, Y, Y, Y),
    "add_agreement": (N, Y, Y, Y, Y, N),
    "accept": (N, Y, Y, N, N, N),
    "accept_allocation": (N, Y, N, N, N, N),
    "accept_dataset_share": (N, Y, N, N, N, N),
    "cancel_job": (N, Y, N, N, N, N),
    "export_model_key": (N, Y, N, N, N, N),
    "import_model_key": (N, Y, N, N, N, N),
    "approvals": (N, N, Y, N, N, N),
    "decide_approval": (N, N, Y, N, N, N),
    "console_login": (N, N, Y, N, N, N),
    "standings": (N, Y, Y, Y, Y, N),
    "accredit": (N, N, Y, N, N, N),
    "revoke_accreditation": (N, N, Y, N, N, N),
    "accreditations": (Y, Y, Y, Y, Y, N),
    "open_model_key": (N, N, Y, N, N, N),
    "open_transferred_key": (N, N, Y, N, N, N),
    "witness": (N, N, N, N, N, Y),
    "witness_history": (N, N, Y, Y, Y, N),
}


@dataclass
class Served:
    world: World
    url: str
    model_id: str
    thread: ServiceThread


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    world = make_world(tmp_path_factory.mktemp("authority"))
    custodian = world.custodian("AUS")
    # an AUS-owned model (REL TO every nation): its key is AUS's to give
    keystore = custodian.ctx.keys.keystore()
    version, wrapped = keystore.wrap(new_dek())
    label = Label.create(owners=["AUS"], classification="SECRET",
                         releasable_to=["AUS", "GBR", "USA"])
    custodian.ctx.store.add_object(OwnedObject(
        id="model-aus-owned", kind="model", label=label.to_json(), job_id="job-x",
        attempt_id="a-x", site="local", inputs=[world.dataset_id],
        wrapped={"kek_id": keystore.kek_id, "kek_version": version,
                 "wrapped_dek": b64e(wrapped)}, sealed_digest="sha256:" + "0" * 64,
        created="2026-12-07T00:00:00Z"))
    thread = ServiceThread(create_app(custodian),
                           server_context(world.deployment.nation("AUS"))).start()
    try:
        yield Served(world, thread.url, "model-aus-owned", thread)
    finally:
        thread.stop()


def _identity(world: World, caller: str) -> tuple[Path, Path]:
    state = world.state
    if caller == "site":
        tls = state.site_dir("local") / "tls"
    elif caller == "orchestrator":
        tls = state.orchestrator_dir / "tls"
    elif caller == "log":
        tls = state.log_dir / "client"
    else:
        tls = state.officer_dir(caller.split("-")[1]) / "tls"
    return tls / "AUS.pem", tls / "client.key"


def _request(served: Served, operation: str) -> tuple[str, str, dict[str, Any]]:
    """A request for ``operation`` that cannot do harm if allowed."""
    officer = load_private_key(served.world.state.officer_dir("AUS") / "officer.key")
    event = SignedEvent.create(CustodyEvent.create(
        "agreement.signed", "officer:AUS", {"agreement_id": "none"}), officer)
    return {
        "challenge": ("POST", "/v1/challenge", {"json": {}}),
        "release": ("POST", "/v1/release", {"json": {}}),
        "wrap": ("POST", "/v1/wrap", {"json": {}}),
        "decide": ("POST", "/v1/decide", {"json": {}}),
        "card": ("GET", "/v1/card", {}),
        "add_agreement": ("POST", "/v1/agreements", {"json": {}}),
        "accept": ("POST", "/v1/events", {"json": event.to_json()}),
        "accept_allocation": ("POST", "/v1/allocations", {"json": {"seq": "x"}}),
        "accept_dataset_share": ("POST", "/v1/datasets/shares", {"json": {}}),
        "cancel_job": ("POST", "/v1/jobs/job-none/cancel", {"json": {}}),
        "export_model_key": ("POST", "/v1/transfers/export", {"json": {}}),
        "import_model_key": ("POST", "/v1/transfers/import", {"json": {}}),
        "approvals": ("GET", "/v1/approvals", {}),
        "decide_approval": ("POST", "/v1/approvals/decisions", {"json": {}}),
        "console_login": ("POST", "/v1/console/logins", {"json": {}}),
        "standings": ("GET", "/v1/agreements", {}),
        "accredit": ("POST", "/v1/accreditations", {"json": {}}),
        "revoke_accreditation": ("POST", "/v1/accreditations/none/revoke",
                                 {"json": {"reason": "authority test"}}),
        "accreditations": ("GET", "/v1/accreditations", {}),
        "open_model_key": ("POST", f"/v1/objects/{served.model_id}/open", {}),
        "open_transferred_key": ("POST", "/v1/transfers/t-none/open", {"json": {}}),
        "witness": ("POST", "/add-checkpoint", {"content": b"not a checkpoint"}),
        "witness_history": ("GET", "/v1/witness/history",
                            {"params": {"origin": "some-log"}}),
    }[operation]


def _refused(response: httpx.Response) -> bool:
    if response.status_code != 403:
        return False
    reasons = response.json().get("reasons") or [""]
    return str(reasons[0]).startswith(("role:", "whose:", "owner:"))


def test_the_table_covers_every_operation() -> None:
    assert set(EXPECTED) == set(OPERATIONS)


@pytest.mark.parametrize("caller", CALLERS)
def test_each_caller_gets_exactly_its_cells(served: Served, caller: str) -> None:
    cert, key = _identity(served.world, caller)
    ca = served.world.state.nation_dir("AUS") / "pki" / "ca.pem"
    context = ssl.create_default_context(cafile=str(ca))
    context.load_cert_chain(str(cert), str(key))
    column = CALLERS.index(caller)
    got = {}
    with httpx.Client(base_url=served.url, verify=context, trust_env=False,
                      timeout=30) as client:
        for operation in sorted(EXPECTED):
            method, path, kwargs = _request(served, operation)
            answer = client.request(method, path, **kwargs)
            got[operation] = not _refused(answer)
    expected = {op: cells[column] for op, cells in EXPECTED.items()}
    wrong = {op: f"{'allowed' if got[op] else 'refused'}, expected "
                 f"{'allowed' if expected[op] else 'refused'}"
             for op in expected if got[op] != expected[op]}
    assert not wrong, wrong


def test_every_refusal_is_on_the_record_naming_the_certificate(
        served: Served) -> None:
    log = served.world.deployment.log()
    denied = [e.event.body for e in log.find("access.denied")]
    peers = {b["peer"] for b in denied if b["nation"] == "AUS"}
    assert "spiffe://aus/officer/gbr" in peers and "spiffe://aus/officer/usa" in peers
    gbr = {b["operation"] for b in denied if b["peer"] == "spiffe://aus/officer/gbr"}
    assert {"accredit", "revoke_accreditation", "approvals"} <= gbr
    # the open by another nation's officer is refused before any key is
    # touched, and recorded naming its certificate
    opens = {b["peer"] for b in denied if b["operation"] == "open_model_key"
             and b["peer"].startswith("spiffe://aus/officer/")}
    assert opens == {"spiffe://aus/officer/gbr", "spiffe://aus/officer/usa"}
    opened = [e.event.body for e in log.find("model.opened")]
    assert [o["requester"] for o in opened] == ["AUS"]


def test_readme_states_the_same_table() -> None:
    text = (ROOT / "README.md").read_text()
    section = text.split("### Who may do what at a custodian", 1)[1].split("\n#", 1)[0]
    rows = {}
    for line in section.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 1 + len(CALLERS) and re.fullmatch(r"`[a-z_]+`", cells[0]):
            rows[cells[0].strip("`")] = tuple(c.startswith("✓") for c in cells[1:])
    assert rows == EXPECTED, json.dumps({k: v for k, v in rows.items()
                                         if EXPECTED.get(k) != v})
