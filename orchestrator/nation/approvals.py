"""Case-by-case review at the custodian: requests, officers' decisions, single use.

Flow (every step a custody-log entry, kept in the custodian's own journal):

(1) A decision on a request in a ``case-by-case`` priority area is
    ``needs-approval``: the custodian records ``approval.requested`` (request id
    ``apr-<job>-<owner>-<site>``, bound to the request digest) and the job waits.
(2) Its officer lists the pending requests (through its custodian: the console,
    ``sovereign approvals list``) and signs an ``approval/v1`` statement
    (:mod:`orchestrator.protocol.approvals`), delivered to the custodian inside an
    ``approval.granted`` or ``approval.denied`` event signed by the officer key.
    :func:`accept_decision` verifies both against the *pinned* officer key,
    checks the request is pending and the statement bound to it, then records
    the event.
(3) When the job resumes, the custodian finds the statement, verifies it again
    (a foreign, altered or misplaced statement is refused and
    ``approval.refused`` recorded), evaluates policy with it and, on a permit,
    consumes it in :class:`~orchestrator.nation.approval_uses.ApprovalUses`
    (``<nation>/approvals.db``): an approval
    admits one job, also across a restart; presented for another job it is
    refused as a replay. ``approval.used`` is recorded.
(4) Terminating the agreement, or the job failing, cancels open requests
    (``approval.cancelled``); a cancelled request, or one whose job now falls
    under another agreement, is asked again (a new round, same id).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from orchestrator.errors import IntegrityError, NotFound, PolicyDenied
from orchestrator.protocol.approvals import ApprovalRequest, request_id_for
from orchestrator.protocol.statements import SignedStatement, verify_statement
from orchestrator.timeutil import parse_rfc3339
from orchestrator.tlog.events import SignedEntry

if TYPE_CHECKING:
    from orchestrator.nation.context import CustodianContext

__all__ = ["accept_decision", "approval_requests", "cancel_pending",
           "find_decision", "request_approval", "request_id_for"]


class _Finder(Protocol):
    def find(self, kind: str | None = None, **match: Any) -> list[SignedEntry]: ...


def request_approval(ctx: CustodianContext, *, request_id: str, owner: str,
                     job_id: str, request_digest: str, dataset_id: str, site: str,
                     priority_area: str, gpu_hours: float, agreement_id: str,
                     reasons: list[str]) -> str:
    """Record ``approval.requested`` once per (job, owner, site); return its id.

    The request is not recorded again while its latest round for the same digest
    and agreement is open or settled; a round that was cancelled, or one
    reviewed under another agreement (a successor needs its own review), is
    asked again: a new round.
    """
    current = _rounds(ctx.journal).get(request_id)
    if (current is not None and current[1] != "cancelled"
            and current[0].event.body.get("request_digest") == request_digest
            and current[0].event.body.get("agreement_id") == agreement_id):
        return request_id
    ctx.record("approval.requested", {
        "request_id": request_id, "job_id": job_id, "owner": owner,
        "request_digest": request_digest, "dataset_id": dataset_id, "site": site,
        "priority_area": priority_area, "gpu_hours": gpu_hours,
        "agreement_id": agreement_id, "reasons": reasons})
    return request_id


_APPROVAL_KINDS = ("approval.requested", "approval.granted", "approval.denied",
                   "approval.used", "approval.cancelled")


def _rounds(source: _Finder) -> dict[str, tuple[SignedEntry, str, Any]]:
    """request id -> (its latest ``approval.requested`` entry, status, statement).

    Events are replayed in log order; each ``approval.requested`` starts a new
    round for its id. Statuses: ``pending``, ``approved``, ``denied``, ``used``,
    ``cancelled`` (expiry is applied by :func:`approval_requests`).
    """
    entries = sorted((e for kind in _APPROVAL_KINDS for e in source.find(kind)),
                     key=lambda e: e.seq)
    out: dict[str, tuple[SignedEntry, str, Any]] = {}
    for entry in entries:
        body, kind = entry.event.body, entry.event.kind
        rid = str(body.get("request_id", ""))
        if kind == "approval.requested":
            out[rid] = (entry, "pending", None)
            continue
        if rid not in out:
            continue  # a settling event without a request: ignored
        requested, status, statement = out[rid]
        if kind == "approval.granted" and status in ("pending", "approved"):
            out[rid] = (requested, "approved", body.get("statement"))
        elif kind == "approval.denied" and status in ("pending", "approved"):
            out[rid] = (requested, "denied", body.get("statement"))
        elif kind == "approval.used":
            out[rid] = (requested, "used", statement)
        elif kind == "approval.cancelled" and status in ("pending", "approved"):
            out[rid] = (requested, "cancelled", statement)
    return out


def approval_requests(source: _Finder, *, nation: str | None = None,
                      status: str | None = None,
                      at: datetime) -> list[ApprovalRequest]:
    """Every approval request in ``source`` (a custodian's journal; its latest
    round), oldest first; approvals past their expiry at ``at`` are ``expired``."""
    out = []
    rounds = sorted(_rounds(source).items(), key=lambda item: item[1][0].seq)
    for rid, (entry, st, statement) in rounds:
        if st == "approved":
            try:
                expires = parse_rfc3339(str((statement or {}).get("expires_at")))
            except ValueError:
                expires = at
            if expires <= at:
                st = "expired"
        b = entry.event.body
        req = ApprovalRequest(
            request_id=rid, job_id=str(b["job_id"]), owner=str(b["owner"]),
            request_digest=str(b["request_digest"]),
            dataset_id=str(b["dataset_id"]), site=str(b["site"]),
            priority_area=str(b["priority_area"]), gpu_hours=float(b["gpu_hours"]),
            agreement_id=str(b.get("agreement_id") or ""),
            reasons=tuple(str(r) for r in b.get("reasons", [])),
            requested_at=entry.event.time, status=st,
            decision=statement if isinstance(statement, dict) else None)
        if nation is not None and req.owner != nation:
            continue
        if status is not None and req.status != status:
            continue
        out.append(req)
    return out


def accept_decision(ctx: CustodianContext, signed: SignedStatement) -> ApprovalRequest:
    """Verify this nation's officer's signed ``approval/v1`` decision and record
    it (``approval.granted`` or ``approval.denied``, carrying the statement).

    Raises
    ------
    NotFound
        The statement names a request this custodian does not hold.
    IntegrityError
        The statement is not signed by the pinned officer key of this nation,
        or is bound to another digest or job.
    PolicyDenied
        The request is not pending (already decided, used or cancelled); an
        approval that expired unused may be replaced by a new decision.
    """
    officer = ctx.officer_key(ctx.code)
    now = ctx.clock()
    rid = str(signed.statement.get("request_id", ""))
    found = [r for r in approval_requests(ctx.journal, at=now) if r.request_id == rid]
    if not found:
        raise NotFound(f"no approval request {rid!r} at the {ctx.code} custodian")
    request = found[0]
    statement = verify_statement(signed, public_key=officer,
                                 expected_type="approval/v1",
                                 expected_nation=request.owner, source=rid)
    if (statement["request_digest"] != request.request_digest
            or statement["job_id"] != request.job_id):
        raise IntegrityError("approval is bound to another request", source=rid)
    kind = ("approval.granted" if statement["decision"] == "approve"
            else "approval.denied")
    with ctx.lock():
        current = next(r for r in approval_requests(ctx.journal, at=now)
                       if r.request_id == rid)
        if current.status not in ("pending", "expired"):
            raise PolicyDenied(f"approval request {rid} is {current.status}, not "
                               "pending")
        ctx.record(kind, {
            "request_id": rid, "job_id": request.job_id, "owner": request.owner,
            "decision": statement["decision"],
            "approval_id": statement["approval_id"],
            "expires_at": statement["expires_at"], **signed.to_json()})
    return next(r for r in approval_requests(ctx.journal, at=now)
                if r.request_id == rid)


def cancel_pending(ctx: CustodianContext, *, reason: str,
                   agreement_id: str | None = None,
                   job_id: str | None = None) -> list[str]:
    """Cancel this custodian's open requests (pending, or approved but unused)
    under an agreement or of a job; record ``approval.cancelled`` for each."""
    cancelled = []
    for req in approval_requests(ctx.journal, at=ctx.clock()):
        if req.status not in ("pending", "approved", "expired"):
            continue
        if agreement_id is not None and req.agreement_id != agreement_id:
            continue
        if job_id is not None and req.job_id != job_id:
            continue
        ctx.record("approval.cancelled", {
            "request_id": req.request_id, "job_id": req.job_id, "owner": req.owner,
            "agreement_id": req.agreement_id, "reason": reason})
        cancelled.append(req.request_id)
    return cancelled


def find_decision(source: _Finder, request_id: str
                  ) -> tuple[SignedStatement | None, int | None]:
    """The latest recorded decision statement for ``request_id`` (unverified).

    Returns ``(statement, seq)`` or ``(None, None)``; a cancelled request gives
    ``(None, None)``. The caller must verify it (:func:`verify_statement`).
    """
    latest: tuple[SignedStatement | None, int | None] = (None, None)
    for entry in source.find(None, request_id=request_id):
        kind = entry.event.kind
        if kind == "approval.requested":
            latest = (None, None)  # a new round: earlier decisions are spent
        elif kind in ("approval.granted", "approval.denied"):
            try:
                latest = (SignedStatement.from_json(entry.event.body,
                                                    source=f"entry {entry.seq}"),
                          entry.seq)
            except IntegrityError:
                latest = (None, entry.seq)
        elif kind == "approval.cancelled":
            latest = (None, None)
    return latest
