"""The console's FastAPI application: routes, strict headers, error pages.

Routes (HTML unless noted; every page but ``/login`` needs a session and
redirects to ``/login`` without one)::

    GET  /login                      fresh challenge + key-file sign-in form
    POST /login                      signed console-login/v1 -> session cookie
    POST /logout                     end the session (CSRF)
    GET  /                           dashboard: approvals, agreements, denials
    GET  /approvals/{id}/sign        the exact approval/v1 statement to sign
    POST /approvals/{id}/sign        its signature -> the custodian (CSRF)
    GET  /static/console.js          the page script (WebCrypto signing)
    GET  /favicon.ico                204 (no icon, no stray 404s)

Every response carries ``Content-Security-Policy`` (``default-src 'self'``, the
inline style only by per-response nonce, scripts only from this origin, no
framing), ``X-Frame-Options: DENY``, ``Cache-Control: no-store``,
``X-Content-Type-Options: nosniff`` and ``Referrer-Policy: same-origin``. POST
bodies are small ``application/x-www-form-urlencoded`` forms; a POST whose
``Origin`` is another origin, or whose ``Sec-Fetch-Site`` is cross-site, is
refused.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.concurrency import run_in_threadpool

from orchestrator.canonical import b64e
from orchestrator.errors import (
    ConfigError,
    IntegrityError,
    LedgerError,
    NotFound,
    PolicyDenied,
    SovereignError,
)
from orchestrator.officer.console.auth import (
    CHALLENGE_TTL_S,
    SESSION_TTL_S,
    ChallengeStore,
    Session,
    SessionStore,
    parse_signature,
    verify_login,
)
from orchestrator.officer.console.views import dashboard
from orchestrator.protocol.approvals import (
    DEFAULT_EXPIRY_S,
    ApprovalRequest,
    approval_statement,
)
from orchestrator.protocol.custodian import CustodianApi
from orchestrator.protocol.log import LogReader
from orchestrator.protocol.parties import NationCard
from orchestrator.protocol.statements import SignedStatement, signing_input
from orchestrator.timeutil import Clock, system_clock

__all__ = ["MAX_FORM_BYTES", "create_app"]

HERE = Path(__file__).resolve().parent
#: Largest accepted POST body (bytes).
MAX_FORM_BYTES = 64 * 1024
#: Most approval statements one session keeps prepared for signing.
MAX_PREPARED = 64


class Refused(Exception):
    """A request the console turns down with an error page (status, title, reason)."""

    def __init__(self, status: int, title: str, reason: str) -> None:
        super().__init__(reason)
        self.status, self.title, self.reason = status, title, reason


def _status_of(exc: SovereignError) -> int:
    for kind, status in ((NotFound, 404), (ConfigError, 400), (IntegrityError, 403),
                         (PolicyDenied, 409), (LedgerError, 503)):
        if isinstance(exc, kind):
            return status
    return 500


async def _form(request: Request) -> dict[str, str]:
    """Parse a small urlencoded POST body (no multipart: nothing is uploaded)."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype != "application/x-www-form-urlencoded":
        raise Refused(415, "Bad request", "expected a form "
                      "(application/x-www-form-urlencoded)")
    body = await request.body()
    if len(body) > MAX_FORM_BYTES:
        raise Refused(413, "Bad request", f"form over {MAX_FORM_BYTES} bytes")
    try:
        pairs = parse_qsl(body.decode("utf-8"), keep_blank_values=True,
                          max_num_fields=16, strict_parsing=False)
    except (UnicodeDecodeError, ValueError) as exc:
        raise Refused(400, "Bad request", f"malformed form: {exc}") from exc
    return dict(pairs)


def _days(text: str) -> int:
    try:
        days = int(text)
    except ValueError:
        raise Refused(400, "Bad request", f"expiry must be a whole number of days, "
                      f"got {text!r}") from None
    return days


def create_app(custodian: CustodianApi, log: LogReader, nation: str, *, origin: str,
               clock: Clock = system_clock, challenge_ttl_s: int = CHALLENGE_TTL_S,
               session_ttl_s: int = SESSION_TTL_S) -> FastAPI:
    """The console of ``nation``'s officer.

    The console holds no key and no state of its own beyond sessions: approval
    requests and agreements come from ``custodian`` (the nation's own, reached
    with the officer's client certificate), allocation reports, notifications
    and denials from ``log``; signed decisions and logins go to ``custodian``,
    which checks them under the officer key it pinned.

    Parameters
    ----------
    origin
        The origin browsers use to reach the console, scheme://host:port (bound
        into login statements and checked against POST ``Origin`` headers). An
        ``https`` origin makes the session cookie ``Secure`` (``__Host-`` name).
    clock
        Current aware UTC time (tests inject one).
    challenge_ttl_s, session_ttl_s
        Lifetimes of a login challenge and of a session, in seconds.

    Raises
    ------
    IntegrityError
        If ``custodian`` is not ``nation``'s.
    """
    NationCard.verify(custodian.card(), source="console custodian", expect=nation)
    origin = origin.rstrip("/")
    secure = origin.startswith("https://")
    cookie = "__Host-sovereign-console" if secure else "sovereign-console"
    challenges = ChallengeStore(nation, origin, clock, challenge_ttl_s)
    sessions = SessionStore(clock, session_ttl_s)
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                      undefined=StrictUndefined)
    script = (HERE / "static" / "console.js").read_bytes()
    app = FastAPI(title=f"{nation} sovereignty console", docs_url=None,
                  redoc_url=None, openapi_url=None)

    def page(request: Request, template: str, status: int = 200,
             **context: Any) -> HTMLResponse:
        context.setdefault("session", None)
        html = env.get_template(template).render(
            nonce=request.state.nonce, nation=nation, **context)
        return HTMLResponse(html, status_code=status)

    def current(request: Request) -> Session | None:
        return sessions.get(request.cookies.get(cookie))

    def same_origin(request: Request) -> None:
        sent = request.headers.get("origin")
        site = request.headers.get("sec-fetch-site")
        if (sent is not None and sent != origin) or site not in (
                None, "same-origin", "none"):
            raise Refused(403, "Cross-origin request refused",
                          f"this console only accepts forms from {origin}")

    @app.middleware("http")
    async def strict_headers(request: Request,
                             call_next: Callable[[Request], Awaitable[Response]]
                             ) -> Response:
        nonce = secrets.token_urlsafe(16)
        request.state.nonce = nonce
        response = await call_next(request)
        response.headers["Content-Security-Policy"] = (
            f"default-src 'self'; script-src 'self'; style-src 'nonce-{nonce}'; "
            "img-src 'self'; object-src 'none'; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'")
        response.headers["X-Frame-Options"] = "DENY"
        response.headers["Cache-Control"] = "no-store"
        response.headers["Pragma"] = "no-cache"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["Cross-Origin-Opener-Policy"] = "same-origin"
        return response

    @app.exception_handler(Refused)
    async def refused(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, Refused)
        return page(request, "error.html", exc.status, title=exc.title,
                    reason=exc.reason, session=current(request))

    @app.exception_handler(SovereignError)
    async def sovereign_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, SovereignError)
        return page(request, "error.html", _status_of(exc), title="Refused",
                    reason=exc.diagnostics(), session=current(request))

    @app.get("/static/console.js")
    def static_script() -> Response:
        return Response(script, media_type="text/javascript; charset=utf-8")

    @app.get("/favicon.ico")
    def favicon() -> Response:
        return Response(status_code=204)

    @app.get("/login")
    def login_page(request: Request) -> Response:
        statement = challenges.issue()
        return page(request, "login.html", title="Sign in",
                    statement=json.dumps(statement, sort_keys=True),
                    statement_text=json.dumps(statement, indent=2, sort_keys=True),
                    signing_input=b64e(signing_input(statement)),
                    ttl=challenge_ttl_s)

    @app.post("/login")
    async def login(request: Request) -> Response:
        same_origin(request)
        form = await _form(request)
        try:
            try:
                doc = {"statement": json.loads(form.get("statement", "")),
                       "signature": form.get("signature", ""),
                       "key_id": form.get("key_id", "")}
            except ValueError as exc:
                raise IntegrityError(f"login statement is not JSON: {exc}") from exc
            signed = SignedStatement.from_json(doc, source="console login")
            key_id = await run_in_threadpool(verify_login, custodian, challenges,
                                              signed)
        except SovereignError as exc:
            raise Refused(403, "Login refused", exc.diagnostics()) from exc
        token, _ = sessions.create(nation, key_id)
        response = RedirectResponse("/", status_code=303)
        response.set_cookie(cookie, token, max_age=sessions.ttl_s, path="/",
                            secure=secure, httponly=True, samesite="strict")
        return response

    def checked(request: Request, form: dict[str, str]) -> Session:
        session = current(request)
        if session is None:
            raise Refused(401, "Not signed in", "your session has ended; sign in "
                          "again")
        if not session.csrf_ok(form.get("csrf")):
            raise Refused(403, "Request refused", "missing or wrong CSRF token")
        return session

    @app.post("/logout")
    async def logout(request: Request) -> Response:
        same_origin(request)
        checked(request, await _form(request))
        sessions.drop(request.cookies.get(cookie))
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(cookie, path="/", secure=secure, httponly=True,
                               samesite="strict")
        return response

    @app.get("/")
    def index(request: Request) -> Response:
        session = current(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        flash, session.flash = session.flash, None
        return page(request, "dashboard.html", title="Dashboard", session=session,
                    board=dashboard(custodian, log, nation, clock().date()),
                    flash=flash,
                    default_days=DEFAULT_EXPIRY_S // 86400)

    @app.get("/approvals/{request_id}/sign")
    def sign_page(request: Request, request_id: str, decision: str = "approve",
                  expires_days: str = str(DEFAULT_EXPIRY_S // 86400)) -> Response:
        session = current(request)
        if session is None:
            return RedirectResponse("/login", status_code=303)
        found = [r for r in map(ApprovalRequest.from_json, custodian.approvals())
                 if r.request_id == request_id]
        if not found:
            raise Refused(404, "Not found", f"no approval request {request_id!r} "
                          f"for the {nation} officer")
        if found[0].status != "pending":
            raise Refused(409, "Already settled", f"approval request {request_id} "
                          f"is {found[0].status}, not pending")
        statement = approval_statement(found[0], decision=decision, nation=nation,
                                       now=clock(),
                                       expires_in_s=_days(expires_days) * 86400)
        while len(session.prepared) >= MAX_PREPARED:
            session.prepared.pop(next(iter(session.prepared)))
        session.prepared[statement["approval_id"]] = statement
        return page(request, "sign.html", title="Sign decision", session=session,
                    req=found[0], statement=statement,
                    statement_text=json.dumps(statement, indent=2, sort_keys=True),
                    signing_input=b64e(signing_input(statement)))

    @app.post("/approvals/{request_id}/sign")
    async def sign_submit(request: Request, request_id: str) -> Response:
        same_origin(request)
        session = checked(request, form := await _form(request))
        approval_id = form.get("approval_id", "")
        statement = session.prepared.get(approval_id)
        if statement is None or statement["request_id"] != request_id:
            raise Refused(400, "Nothing to sign", "no approval statement was "
                          "prepared for this request in this session; open it again")
        signed = SignedStatement(statement=dict(statement),
                                 signature=parse_signature(form.get("signature", "")),
                                 key_id=form.get("key_id", ""))
        result = ApprovalRequest.from_json(
            await run_in_threadpool(custodian.decide_approval, signed))
        session.prepared.pop(approval_id, None)
        verb = "approved" if statement["decision"] == "approve" else "denied"
        session.flash = (f"{request_id} {verb} by the {nation} officer "
                         f"({signed.key_id}); status now {result.status}, "
                         f"statement {approval_id} expires {statement['expires_at']}")
        return RedirectResponse("/", status_code=303)

    return app
