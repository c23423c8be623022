"""A nation's custodian as a network service: FastAPI over mutual TLS, by role.

``sovereign custodian serve --nation AUS`` runs :func:`create_app` over one
:class:`~orchestrator.nation.custodian.LocalCustodian`, in the nation's own
process: the only one that reads its KEK. The TLS context requires a client
certificate issued by the nation's own CA; its SPIFFE URI
(``spiffe://aus/<role>/<name>``) names the caller's role, and every operation is
refused with 403 to a role that does not hold it
(:data:`orchestrator.protocol.custodian.ROLE_OPERATIONS`) and to a caller it is
not the business of (:data:`~orchestrator.protocol.custodian.OPERATION_SCOPE`:
a site acts only for itself, an officer only for its own nation, an open only
for an owner's officer), each denial recorded as ``access.denied``.

Endpoints (JSON unless stated; errors as :mod:`orchestrator.protocol.wire`):

=========================================  ==================  ================
``POST /v1/challenge``                     site                ``{"nonce"}``
``POST /v1/release`` ReleaseRequest        site                Grant
``POST /v1/wrap`` WrapRequest              site                WrappedKey
``POST /v1/decide`` JobRequest             orchestrator        decision
``POST /v1/agreements`` document           orchestrator/officer standing
``GET /v1/agreements``                     officer/orchestrator standings
``POST /v1/events`` signed event           officer/orchestrator ``{"seq"}``
``POST /v1/allocations`` ``{"seq"}``       orchestrator        ``{"seq"}``
``POST /v1/datasets/shares`` statement     orchestrator        ``{"dataset_id"}``
``POST /v1/jobs/<id>/cancel``              orchestrator        ``{"cancelled"}``
``POST /v1/transfers/export``/``import``   orchestrator        sealed / wrapped
``GET /v1/approvals``                      officer             requests
``POST /v1/approvals/decisions`` statement officer             request
``POST /v1/console/logins`` statement      officer             ``{"seq"}``
``POST /v1/accreditations``                officer             accreditation
``POST /v1/accreditations/<site>/revoke``  officer             ``{"revoked"}``
``GET /v1/accreditations``                 officer/orch./site  accreditations
``POST /v1/objects/<id>/open``             officer             ``{"dek"}``
``POST /v1/transfers/<id>/open``           officer             ``{"dek"}``
``POST /add-checkpoint`` (text)            log                 cosignatures
``GET /v1/witness/history?origin=``        officer             ``{"note"}``
``GET /v1/card``, ``GET /v1/health``       any                 card / status
=========================================  ==================  ================
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request, Response
from fastapi.responses import PlainTextResponse
from starlette.concurrency import run_in_threadpool

from orchestrator.canonical import b64e
from orchestrator.errors import ConfigError, PolicyDenied
from orchestrator.nation.custodian import LocalCustodian
from orchestrator.net.service import install_common, peer_identity
from orchestrator.net.tls import PeerIdentity
from orchestrator.protocol.custodian import OPERATION_SCOPE, ROLE_OPERATIONS
from orchestrator.protocol.log import SignedEvent
from orchestrator.protocol.release import JobRequest, ReleaseRequest, WrapRequest
from orchestrator.timeutil import parse_rfc3339
from orchestrator.tlog.witness_api import SIZE_MEDIA_TYPE, WitnessRefusal

__all__ = ["DEFAULT_PORT", "create_app"]

#: Default TCP port.
DEFAULT_PORT = 8443

JsonBody = Annotated[Any, Body()]


def _object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ConfigError("request body must be a JSON object")
    return body


def create_app(custodian: LocalCustodian) -> FastAPI:
    """The FastAPI application serving ``custodian`` (TLS: see the CLI's
    ``custodian serve``)."""
    app = FastAPI(title=f"{custodian.nation} custodian", docs_url=None,
                  redoc_url=None, openapi_url=None)
    install_common(app)
    served: Counter[str] = Counter()
    lock = threading.Lock()
    domain = custodian.nation.lower()

    def allow(request: Request, operation: str) -> PeerIdentity:
        peer = peer_identity(request)
        roles = ROLE_OPERATIONS[operation]
        reason = None
        if peer is None:
            reason = "no client certificate with a SPIFFE identity"
        elif peer.trust_domain != domain:
            reason = f"identity {peer} is not of trust domain {domain}"
        elif peer.role not in roles:
            reason = f"role {peer.role} may not call {operation}"
        if reason is not None:
            custodian.ctx.record("access.denied", {
                "operation": operation, "peer": str(peer) if peer else None,
                "reason": reason, "nation": custodian.nation})
            raise PolicyDenied(f"{custodian.nation} custodian: {operation} refused",
                               reasons=[f"role: {reason}"])
        assert peer is not None
        with lock:
            served[operation] += 1
        return peer

    def refuse(peer: PeerIdentity, operation: str, reason: str) -> None:
        custodian.ctx.record("access.denied", {
            "operation": operation, "peer": str(peer), "nation": custodian.nation,
            "reason": reason})
        raise PolicyDenied(f"{custodian.nation} custodian: {operation} refused",
                           reasons=[f"whose: {reason}"])

    def same_site(peer: PeerIdentity, site: str, operation: str) -> None:
        if peer.name != site.lower():
            refuse(peer, operation, f"site {peer.name} may not act for site {site}")

    def own_nation(request: Request, operation: str) -> PeerIdentity:
        """Role check, then: an officer acts only for this nation."""
        peer = allow(request, operation)
        assert OPERATION_SCOPE[operation] == "own-nation"
        if peer.name != domain:
            refuse(peer, operation, f"the officer of {peer.name.upper()} may not "
                   f"act for {custodian.nation}")
        return peer

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        with lock:
            counts = dict(served)
        return {"status": "ok", "nation": custodian.nation, "pid": os.getpid(),
                "served": counts}

    @app.get("/v1/card")
    def card(request: Request) -> dict[str, Any]:
        allow(request, "card")
        return custodian.card()

    @app.post("/v1/challenge")
    def challenge(request: Request, _: JsonBody = None) -> dict[str, Any]:
        allow(request, "challenge")
        return {"nonce": custodian.challenge()}

    @app.post("/v1/release")
    def release(request: Request, body: JsonBody) -> dict[str, Any]:
        peer = allow(request, "release")
        parsed = _parse(ReleaseRequest.from_json, body)
        same_site(peer, parsed.site, "release")
        return custodian.release_key(parsed).to_json()

    @app.post("/v1/wrap")
    def wrap(request: Request, body: JsonBody) -> dict[str, Any]:
        peer = allow(request, "wrap")
        parsed = _parse(WrapRequest.from_json, body)
        same_site(peer, parsed.site, "wrap")
        return custodian.wrap_key(parsed).to_json()

    @app.post("/v1/decide")
    def decide(request: Request, body: JsonBody) -> dict[str, Any]:
        allow(request, "decide")
        return custodian.decide(_parse(JobRequest.from_json, body))

    @app.post("/v1/agreements")
    def add_agreement(request: Request, body: JsonBody) -> dict[str, Any]:
        allow(request, "add_agreement")
        return custodian.add_agreement(_object(body))

    @app.get("/v1/agreements")
    def standings(request: Request) -> list[dict[str, Any]]:
        allow(request, "standings")
        return custodian.standings()

    @app.post("/v1/events")
    def accept(request: Request, body: JsonBody) -> dict[str, Any]:
        peer = allow(request, "accept")
        signed = SignedEvent.from_json(body)
        own = f"officer:{peer.name.upper()}"
        if peer.role == "officer" and signed.event.actor != own:
            refuse(peer, "accept", f"the officer of {peer.name.upper()} may not "
                   f"deliver an event of {signed.event.actor}")
        entry = custodian.accept(signed)
        return {"seq": entry.seq, "leaf": b64e(entry.leaf_bytes())}

    @app.post("/v1/allocations")
    def allocation(request: Request, body: JsonBody) -> dict[str, Any]:
        allow(request, "accept_allocation")
        seq = _object(body).get("seq")
        if not isinstance(seq, int) or isinstance(seq, bool):
            raise ConfigError("seq must be an integer", field="seq")
        entry = custodian.accept_allocation(seq)
        return {"seq": entry.seq, "leaf": b64e(entry.leaf_bytes())}

    @app.post("/v1/datasets/shares")
    def dataset_share(request: Request, body: JsonBody) -> dict[str, Any]:
        allow(request, "accept_dataset_share")
        return {"dataset_id": custodian.accept_dataset_share(_object(body))}

    @app.post("/v1/jobs/{job_id}/cancel")
    def cancel(request: Request, job_id: str, body: JsonBody) -> dict[str, Any]:
        allow(request, "cancel_job")
        reason = str(_object(body).get("reason") or f"job {job_id} failed")
        return {"cancelled": custodian.cancel_job(job_id, reason)}

    @app.post("/v1/transfers/export")
    def export_key(request: Request, body: JsonBody) -> dict[str, Any]:
        allow(request, "export_model_key")
        return custodian.export_model_key(_object(body))

    @app.post("/v1/transfers/import")
    def import_key(request: Request, body: JsonBody) -> dict[str, Any]:
        allow(request, "import_model_key")
        return custodian.import_model_key(_object(body))

    @app.get("/v1/approvals")
    def approvals(request: Request, status: str | None = None) -> list[dict[str, Any]]:
        own_nation(request, "approvals")
        return custodian.approvals(status)

    @app.post("/v1/approvals/decisions")
    def decide_approval(request: Request, body: JsonBody) -> dict[str, Any]:
        own_nation(request, "decide_approval")
        from orchestrator.protocol.statements import SignedStatement

        return custodian.decide_approval(SignedStatement.from_json(_object(body)))

    @app.post("/v1/console/logins")
    def console_login(request: Request, body: JsonBody) -> dict[str, Any]:
        own_nation(request, "console_login")
        from orchestrator.protocol.statements import SignedStatement

        return {"seq": custodian.console_login(
            SignedStatement.from_json(_object(body)))}

    @app.post("/v1/accreditations")
    def accredit(request: Request, body: JsonBody) -> dict[str, Any]:
        own_nation(request, "accredit")
        doc = _object(body)
        try:
            expires = parse_rfc3339(str(doc["expires_at"]))
            kinds = [str(k) for k in doc["tee_kinds"]]
            description, ceiling = _object(doc["description"]), str(doc["ceiling"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed accreditation request: {exc}") from exc
        operator = doc.get("operator_nation")
        return custodian.accredit(description, ceiling=ceiling, tee_kinds=kinds,
                                  expires_at=expires,
                                  operator_nation=None if operator is None
                                  else str(operator))

    @app.post("/v1/accreditations/{site}/revoke")
    def revoke(request: Request, site: str, body: JsonBody) -> dict[str, Any]:
        own_nation(request, "revoke_accreditation")
        return {"revoked": custodian.revoke_accreditation(
            site, str(_object(body).get("reason") or ""))}

    @app.get("/v1/accreditations")
    def accreditations(request: Request,
                       site: str | None = None) -> list[dict[str, Any]]:
        allow(request, "accreditations")
        return custodian.accreditations(site)

    @app.post("/v1/objects/{object_id}/open")
    def open_model(request: Request, object_id: str) -> dict[str, Any]:
        peer = allow(request, "open_model_key")
        requester = peer.name.upper()
        owners = custodian.owners_of(object_id)
        if owners is not None and requester not in owners:
            refuse(peer, "open_model_key", f"the officer of {requester} is not an "
                   f"owner of {object_id} (owners: {', '.join(sorted(owners))})")
        return {"dek": b64e(custodian.open_model_key(object_id, requester=requester))}

    @app.post("/v1/transfers/{transfer_id}/open")
    def open_transfer(request: Request, transfer_id: str,
                      body: JsonBody) -> dict[str, Any]:
        own_nation(request, "open_transferred_key")
        doc = _object(body)
        return {"dek": b64e(custodian.open_transferred_key(
            transfer_id, str(doc.get("model_id")), str(doc.get("model_digest"))))}

    @app.get("/v1/witness/history")
    def witness_history(request: Request, origin: str) -> dict[str, Any]:
        allow(request, "witness_history")
        return {"note": custodian.witness_history(origin).decode("utf-8")}

    @app.post("/add-checkpoint")
    async def add_checkpoint(request: Request) -> Response:
        allow(request, "witness")
        body = await request.body()
        try:
            lines = await run_in_threadpool(custodian.witness, body)
        except WitnessRefusal as exc:
            if exc.status == 409 and exc.size is not None:
                # exactly text/x.tlog.size, no charset parameter (tlog-witness;
                # clients compare the header byte for byte)
                return Response(f"{exc.size}\n".encode("ascii"), status_code=409,
                                headers={"Content-Type": SIZE_MEDIA_TYPE})
            return PlainTextResponse(exc.message + "\n", status_code=exc.status)
        return PlainTextResponse(lines.decode("utf-8"),
                                 media_type="text/plain; charset=utf-8")

    return app


def _parse(parse: Any, body: Any) -> Any:
    try:
        return parse(_object(body))
    except (TypeError, AttributeError) as exc:
        raise ConfigError(f"malformed request: {exc}") from exc
