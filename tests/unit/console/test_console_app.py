"""The officer console over FastAPI's TestClient: login, sessions, CSRF, signing.

The browser's part (WebCrypto) is played by Python here: the test reads the
server-provided signing input from the page and signs it with the officer key,
exactly as ``console.js`` does. tests/integration/test_console.py drives the real
page in headless Chromium.
"""

from __future__ import annotations

import html
import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from testkit import World, ctx_of, make_world

from orchestrator.canonical import b64d, b64e, sha256_hex
from orchestrator.crypto import SigningKey, load_private_key
from orchestrator.embedded import approval_requests
from orchestrator.errors import IntegrityError
from orchestrator.log.store import CustodyLog
from orchestrator.nation.approvals import request_approval
from orchestrator.officer.console import create_app
from orchestrator.protocol.agreements import quarter_of
from orchestrator.protocol.approvals import request_id_for
from orchestrator.protocol.statements import (
    SignedStatement,
    sign_statement,
    verify_statement,
)

ORIGIN = "http://testserver"
AGREEMENT = "AUS-USA-SONAR-2026"
RID = "apr-job-case-1-AUS-local"  # request_id_for("job-case-1", "AUS", "local")
SIGN = f"/approvals/{RID}/sign"


class Clock:
    """A settable clock (aware UTC)."""

    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now


def add_request(world: World, job_id: str = "job-case-1", owner: str = "AUS") -> str:
    return request_approval(
        ctx_of(world.state, owner), request_id=request_id_for(job_id, owner,
        world.site), owner=owner,
        job_id=job_id, request_digest="sha256:" + sha256_hex(job_id.encode()),
        dataset_id=world.dataset_id, site=world.site, priority_area="quantum-sensing",
        gpu_hours=42.5, agreement_id=AGREEMENT,
        reasons=["tier: quantum-sensing is case-by-case under " + AGREEMENT])


def officer(world: World, nation: str) -> SigningKey:
    return load_private_key(world.state.officer_dir(nation) / "officer.key")


def field(page: str, pattern: str) -> str:
    match = re.search(pattern, page)
    assert match, f"{pattern!r} not in page"
    return html.unescape(match.group(1))


def signed_form(page: str, key: SigningKey, **extra: str) -> dict[str, str]:
    """What console.js posts: the hidden fields, plus signature and key id."""
    data = b64d(field(page, r'data-signing-input="([^"]+)"'))
    form = {name: html.unescape(value) for name, value in re.findall(
        r'<input type="hidden" name="(\w+)" value="([^"]*)"', page)}
    form["signature"] = b64e(key.sign(data))
    form["key_id"] = key.key_id
    form.update(extra)
    return form


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = make_world(tmp_path)
    add_request(world)
    return world


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def client(world: World, clock: Clock) -> TestClient:
    return TestClient(app(world, origin=ORIGIN, clock=clock))


def app(world: World, nation: str = "AUS", **options: Any) -> Any:
    """The console of ``nation``'s officer over the AUS custodian and the log."""
    return create_app(world.custodian("AUS"), world.deployment.log(), nation,
                      **options)


def login(client: TestClient, key: SigningKey) -> tuple[Any, dict[str, str]]:
    page = client.get("/login").text
    form = signed_form(page, key)
    return client.post("/login", data=form, follow_redirects=False), form


def logged_in(client: TestClient, world: World) -> TestClient:
    response, _ = login(client, officer(world, "AUS"))
    assert response.status_code == 303, response.text
    return client


# -- login ------------------------------------------------------------------------


def test_login_with_registered_officer_key(client: TestClient, world: World) -> None:
    page = client.get("/login")
    assert page.status_code == 200
    assert 'type="file" id="key-file"' in page.text
    assert "console-login/v1" in page.text and ORIGIN in page.text
    form = signed_form(page.text, officer(world, "AUS"))
    response = client.post("/login", data=form, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("sovereign-console=")
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace(
        "SameSite=Strict", "SameSite=strict")
    assert "Secure" not in cookie  # plain http on loopback
    token = cookie.split(";")[0].split("=", 1)[1]
    assert len(b64d(token.replace("-", "+").replace("_", "/") + "=")) == 32
    logins = CustodyLog(world.state.custody_db).find("console.login")
    assert len(logins) == 1
    body = logins[0].event.body
    # recorded by the nation's own custodian, which checked the signature again
    assert logins[0].event.actor == "custodian:AUS"
    assert logins[0].signer == ctx_of(world.state, "AUS").keys.custodian_signer().key_id
    challenge = json.loads(form["statement"])["challenge"]
    assert body == {"nation": "AUS", "key_id": officer(world, "AUS").key_id,
                    "origin": ORIGIN,
                    "challenge_digest": "sha256:" + sha256_hex(challenge.encode())}
    board = client.get("/")
    assert board.status_code == 200 and RID in board.text
    assert officer(world, "AUS").key_id in board.text


def test_wrong_key_is_refused(client: TestClient, world: World) -> None:
    response, _ = login(client, SigningKey.generate())
    assert response.status_code == 403
    assert "Login refused" in response.text
    assert "not the registered AUS officer key" in response.text
    assert "set-cookie" not in response.headers
    assert client.get("/", follow_redirects=False).status_code == 303
    assert not CustodyLog(world.state.custody_db).find("console.login")


def test_foreign_officer_key_is_refused(client: TestClient, world: World) -> None:
    response, _ = login(client, officer(world, "GBR"))
    assert response.status_code == 403
    assert "not the registered AUS officer key" in response.text
    assert "set-cookie" not in response.headers


def test_replayed_challenge_is_refused(client: TestClient, world: World) -> None:
    first, form = login(client, officer(world, "AUS"))
    assert first.status_code == 303
    client.cookies.clear()
    again = client.post("/login", data=form, follow_redirects=False)
    assert again.status_code == 403 and "already used" in again.text
    assert "set-cookie" not in again.headers
    assert len(CustodyLog(world.state.custody_db).find("console.login")) == 1


def test_expired_challenge_is_refused(client: TestClient, world: World,
                                      clock: Clock) -> None:
    form = signed_form(client.get("/login").text, officer(world, "AUS"))
    clock.now += timedelta(seconds=121)
    response = client.post("/login", data=form, follow_redirects=False)
    assert response.status_code == 403 and "expired" in response.text


def test_statement_for_another_origin_is_refused(client: TestClient,
                                                  world: World) -> None:
    page = client.get("/login").text
    statement = field(page, r'name="statement" value="([^"]+)"')
    other = statement.replace(ORIGIN, "http://phish.invalid")
    signed = sign_statement(json.loads(other), officer(world, "AUS"))
    response = client.post("/login", follow_redirects=False, data={
        "statement": other, "signature": b64e(signed.signature),
        "key_id": signed.key_id})
    assert response.status_code == 403 and "not http://testserver" in response.text


def test_garbage_login_is_refused(client: TestClient) -> None:
    client.get("/login")
    response = client.post("/login", data={"statement": "{", "signature": "x",
                                           "key_id": "k"}, follow_redirects=False)
    assert response.status_code == 403 and "not JSON" in response.text
    upload = client.post("/login", files={"statement": ("s", b"{}")},
                         follow_redirects=False)
    assert upload.status_code == 415


def test_session_expires(client: TestClient, world: World, clock: Clock) -> None:
    logged_in(client, world)
    assert client.get("/", follow_redirects=False).status_code == 200
    clock.now += timedelta(hours=2)
    response = client.get("/", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"


def test_unauthenticated_pages_redirect_to_login(client: TestClient) -> None:
    for path in ("/", SIGN + "?decision=approve"):
        response = client.get(path, follow_redirects=False)
        assert response.status_code == 303, path
        assert response.headers["location"] == "/login"
    post = client.post(SIGN,
                       data={"approval_id": "x", "signature": "", "key_id": ""},
                       follow_redirects=False)
    assert post.status_code == 401


def test_https_origin_gives_a_secure_host_cookie(world: World) -> None:
    client = TestClient(app(world, origin="https://testserver"),
                        base_url="https://testserver")
    response, _ = login(client, officer(world, "AUS"))
    assert response.status_code == 303
    cookie = response.headers["set-cookie"]
    assert cookie.startswith("__Host-sovereign-console=") and "Secure" in cookie
    assert "Path=/" in cookie and "Domain" not in cookie


def test_console_needs_its_own_nations_custodian(world: World) -> None:
    with pytest.raises(IntegrityError, match="not FRA"):
        app(world, "FRA", origin=ORIGIN)


# -- approvals --------------------------------------------------------------------


def test_approve_end_to_end(client: TestClient, world: World) -> None:
    logged_in(client, world)
    page = client.get(SIGN,
                      params={"decision": "approve", "expires_days": "3"})
    assert page.status_code == 200 and "Sign and submit" in page.text
    statement_text = field(page.text, r'<pre id="approval-statement">([^<]+)</pre>')
    assert '"decision": "approve"' in statement_text
    response = client.post(SIGN,
                           data=signed_form(page.text, officer(world, "AUS")),
                           follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/"
    (granted,) = CustodyLog(world.state.custody_db).find("approval.granted")
    signed = SignedStatement.from_json(granted.event.body)
    public = officer(world, "AUS").public_bytes()
    statement = verify_statement(signed, public_key=public,
                                 expected_type="approval/v1", expected_nation="AUS")
    issued = datetime.fromisoformat(statement["issued_at"].replace("Z", "+00:00"))
    expires = datetime.fromisoformat(statement["expires_at"].replace("Z", "+00:00"))
    assert expires - issued == timedelta(days=3)
    board = client.get("/").text
    assert 'id="flash"' in board and f"{RID} approved" in board
    assert 'id="pending-empty"' in board
    assert re.search(rf'id="decided-{RID}">.*?approved', board, re.S)
    # the same request cannot be decided again
    again = client.get(SIGN)
    assert again.status_code == 409 and "approved, not pending" in again.text


def test_deny_shows_in_denials(client: TestClient, world: World) -> None:
    logged_in(client, world)
    page = client.get(SIGN,
                      params={"decision": "deny"}).text
    response = client.post(SIGN,
                           data=signed_form(page, officer(world, "AUS")),
                           follow_redirects=False)
    assert response.status_code == 303
    (status,) = [r.status for r in approval_requests(world.state)]
    assert status == "denied"
    board = client.get("/").text
    assert f"{RID} denied" in board
    denials = board.split('id="denials"')[1].split("</section>")[0]
    assert "approval.denied" in denials and f"officer denied {RID}" in denials


def test_approval_signed_by_wrong_key_is_refused(client: TestClient,
                                                 world: World) -> None:
    logged_in(client, world)
    page = client.get(SIGN).text
    for key in (officer(world, "GBR"), SigningKey.generate()):
        response = client.post(SIGN,
                               data=signed_form(page, key), follow_redirects=False)
        assert response.status_code == 403, response.text
        assert "not the registered AUS officer key" in response.text
    # a right key id with a wrong signature: the signature itself is checked
    forged = signed_form(page, officer(world, "GBR"),
                         key_id=officer(world, "AUS").key_id)
    response = client.post(SIGN, data=forged,
                           follow_redirects=False)
    assert response.status_code == 403 and "does not verify" in response.text
    log = CustodyLog(world.state.custody_db)
    assert not log.find("approval.granted") and not log.find("approval.denied")
    assert [r.status for r in approval_requests(world.state)] == ["pending"]


def test_csrf_token_is_required(client: TestClient, world: World) -> None:
    logged_in(client, world)
    page = client.get(SIGN).text
    form = signed_form(page, officer(world, "AUS"))
    for csrf in (None, "", "wrong"):
        data = {k: v for k, v in form.items() if k != "csrf"}
        if csrf is not None:
            data["csrf"] = csrf
        response = client.post(SIGN, data=data,
                               follow_redirects=False)
        assert response.status_code == 403 and "CSRF" in response.text
    assert client.post("/logout", data={"next": "/"},
                       follow_redirects=False).status_code == 403
    assert not CustodyLog(world.state.custody_db).find("approval.granted")
    assert client.get("/", follow_redirects=False).status_code == 200


def test_cross_origin_post_is_refused(client: TestClient, world: World) -> None:
    logged_in(client, world)
    page = client.get(SIGN).text
    form = signed_form(page, officer(world, "AUS"))
    for headers in ({"Origin": "http://evil.invalid"},
                    {"Sec-Fetch-Site": "cross-site"}):
        response = client.post(SIGN, data=form,
                               headers=headers, follow_redirects=False)
        assert response.status_code == 403 and "Cross-origin" in response.text


def test_other_nations_requests_and_bad_input(client: TestClient,
                                              world: World) -> None:
    add_request(world, job_id="job-gbr", owner="GBR")
    logged_in(client, world)
    board = client.get("/").text
    assert RID in board and "apr-job-gbr-GBR-local" not in board
    assert client.get("/approvals/apr-job-gbr-GBR-local/sign").status_code == 404
    bad = client.get(SIGN,
                     params={"decision": "maybe"})
    assert bad.status_code == 400 and "approve or deny" in bad.text
    long = client.get(SIGN,
                      params={"expires_days": "91"})
    assert long.status_code == 400 and "expiry" in long.text
    nan = client.get(SIGN,
                     params={"expires_days": "soon"})
    assert nan.status_code == 400
    stale = client.post(SIGN, data={
        "csrf": field(board, r'name="csrf" value="([^"]+)"'),
        "approval_id": RID + "-0", "signature": "", "key_id": ""},
        follow_redirects=False)
    assert stale.status_code == 400 and "open it again" in stale.text


def test_logout_ends_the_session(client: TestClient, world: World) -> None:
    logged_in(client, world)
    board = client.get("/").text
    csrf = field(board, r'name="csrf" value="([^"]+)"')
    response = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/login"
    assert client.get("/", follow_redirects=False).status_code == 303


# -- dashboard content ------------------------------------------------------------


def test_dashboard_shows_agreements_use_and_denials(client: TestClient,
                                                    world: World) -> None:
    world.deployment.orchestrator().record("allocation.recorded", {
        "job_id": "job-done", "gpu_hours": 12.25,
        "quarter": quarter_of(datetime.now(UTC).date()),
        "agreement_ids": [AGREEMENT], "tasks": 1})
    for owner, reason in (("AUS", "site: <b>not accredited</b>"),
                          ("GBR", "gbr-only reason")):
        ctx_of(world.state, owner).record("key.denied", {
            "job_id": f"job-{owner}", "owner": owner, "reasons": [reason]})
    logged_in(client, world)
    board = client.get("/").text
    row = board.split(f'id="agreement-{AGREEMENT}-v1"')[1].split("</tr>")[0]
    assert "12.2" in row and "500.0" in row and "AUKUS Joint Steering Group" in row
    denials = board.split('id="denials"')[1].split("</section>")[0]
    assert "site: &lt;b&gt;not accredited&lt;/b&gt;" in denials  # escaped
    assert "<b>" not in denials and "gbr-only reason" not in denials
    pending = board.split('id="pending"')[1].split("</section>")[0]
    for text in ("job-case-1", world.dataset_id, "local", "quantum-sensing", "42.5",
                 "case-by-case", "Approve", "Deny"):
        assert text in pending


# -- headers and no external URLs -------------------------------------------------


def _pages(client: TestClient, world: World) -> list[Any]:
    out = [client.get("/login")]
    login(client, SigningKey.generate())
    out.append(client.post("/login", data={}, follow_redirects=False))
    logged_in(client, world)
    out += [client.get("/"), client.get(SIGN),
            client.get("/approvals/nope/sign"), client.get("/static/console.js")]
    return out


def test_no_url_to_another_host(client: TestClient, world: World) -> None:
    for response in _pages(client, world):
        hosts = re.findall(r"(?:https?:)?//([A-Za-z0-9.\-\[\]:]+)", response.text)
        foreign = [h for h in hosts if h != "testserver"]
        assert not foreign, (response.url, foreign)
        assert "@import" not in response.text
        assert not re.search(r"<(?:link|img|iframe)\b", response.text)


def test_strict_headers(client: TestClient, world: World) -> None:
    for response in _pages(client, world):
        csp = response.headers["content-security-policy"]
        assert "default-src 'self'" in csp and "script-src 'self'" in csp
        assert "frame-ancestors 'none'" in csp and "unsafe" not in csp
        assert response.headers["x-frame-options"] == "DENY"
        assert response.headers["cache-control"] == "no-store"
        assert response.headers["x-content-type-options"] == "nosniff"
        if response.headers["content-type"].startswith("text/html"):
            nonce = field(csp, r"'nonce-([^']+)'")
            assert f'<style nonce="{nonce}">' in response.text
            assert "<script>" not in response.text and " on" + "click=" not in (
                response.text)
