"""Case-by-case review: pending approvals, officers' signed decisions, single use.

Flow (every step a custody-log entry):

(1) A custodian's decision on a request in a ``case-by-case`` priority area is
    ``needs-approval``: it logs ``approval.requested`` (request id
    ``apr-<job>-<owner>-<site>``, bound to the request digest) and the job waits
    (``pending-approval``).
(2) The owner's officer lists it (``sovereign approvals list``, the console) and
    signs an ``approval/v1`` statement (:mod:`orchestrator.protocol.statements`):
    approve
    or deny, bound to the request digest, with an expiry. :func:`record_decision`
    verifies it against the *registered* officer key of the owner and logs
    ``approval.granted`` or ``approval.denied`` carrying the signed statement.
(3) When the job resumes, the owner's custodian finds the statement, verifies
    it again (a foreign, altered or misplaced statement is refused and
    ``approval.refused`` logged), evaluates policy with it (expiry, binding to the
    request digest and to the agreement it was reviewed under: a successor
    agreement needs its own review) and, on a permit, consumes it in its own
    durable store (:class:`ApprovalUses`, ``<nation>/approvals.db``): an approval
    admits one job, also across a custodian restart; presented for another job
    it is refused as a replay. ``approval.used`` is logged. Deciding the same job
    again (a co-owner's officer approved later) re-uses its admission.
(4) Terminating or revoking the agreement, or the job failing, cancels open
    requests (``approval.cancelled``); a cancelled request, or one whose job now
    falls under another agreement, is asked again (a new round, same id).
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from orchestrator.canonical import b64d
from orchestrator.errors import ConfigError, IntegrityError, NotFound, PolicyDenied
from orchestrator.log.store import CustodyLog
from orchestrator.protocol.statements import (
    SignedStatement,
    sign_statement,
    verify_statement,
)
from orchestrator.timeutil import parse_rfc3339, rfc3339, system_clock
from orchestrator.tlog.events import CustodyEvent, SignedEntry

__all__ = ["ApprovalRequest", "ApprovalUses", "approval_requests",
           "approval_statement", "cancel_pending", "decide_request",
           "find_decision", "record_decision", "request_approval", "request_id_for"]

#: Default lifetime of an approval (seconds): 7 days.
DEFAULT_EXPIRY_S = 7 * 24 * 3600
#: Longest lifetime an officer may give an approval (seconds): 90 days.
MAX_EXPIRY_S = 90 * 24 * 3600


def request_id_for(job_id: str, owner: str, site: str) -> str:
    """The id of ``owner``'s approval request for ``job_id`` at ``site``:
    ``apr-<job>-<owner>-<site>`` (a multi-site job asks once per site)."""
    return f"apr-{job_id}-{owner}-{site}"


@dataclass(frozen=True)
class ApprovalRequest:
    """One owner's pending (or settled) case-by-case request.

    Attributes
    ----------
    request_id
        ``apr-<job>-<owner>-<site>``.
    job_id, owner, request_digest
        The job, the owner nation whose officer decides, and the request's
        ``"sha256:<hex>"`` digest every approval must be bound to.
    dataset_id, site, priority_area, gpu_hours, agreement_id
        What is asked (GPU-hours requested), under which agreement.
    reasons
        The custodian's reasons (``rule: detail``) at request time.
    requested_at
        RFC 3339 UTC.
    status
        ``pending``, ``approved``, ``denied``, ``used``, ``cancelled`` or
        ``expired`` (approved but past ``expires_at`` unused).
    decision
        The recorded signed statement's JSON (``approved``/``denied``/``used``).
    """

    request_id: str
    job_id: str
    owner: str
    request_digest: str
    dataset_id: str
    site: str
    priority_area: str
    gpu_hours: float
    agreement_id: str
    reasons: tuple[str, ...]
    requested_at: str
    status: str = "pending"
    decision: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (CLI ``--json``, console)."""
        return {"request_id": self.request_id, "job_id": self.job_id,
                "owner": self.owner, "request_digest": self.request_digest,
                "dataset_id": self.dataset_id, "site": self.site,
                "priority_area": self.priority_area, "gpu_hours": self.gpu_hours,
                "agreement_id": self.agreement_id, "reasons": list(self.reasons),
                "requested_at": self.requested_at, "status": self.status,
                "decision": self.decision}


def request_approval(log: CustodyLog, signer: Any, actor: str, *, request_id: str,
                     owner: str, job_id: str, request_digest: str,
                     dataset_id: str, site: str, priority_area: str,
                     gpu_hours: float, agreement_id: str, reasons: list[str]) -> str:
    """Log ``approval.requested`` once per (job, owner, site); return its request id.

    Called by the owner's custodian (``actor`` ``custodian:<owner>``, ``signer``
    its key). The request is not logged again while its latest round for the same
    digest and agreement is open or settled; a round that was cancelled
    (termination, revocation, failed job), or one reviewed under another
    agreement (a successor needs its own review), is asked again: a new round.
    """
    current = _rounds(log).get(request_id)
    if (current is not None and current[1] != "cancelled"
            and current[0].event.body.get("request_digest") == request_digest
            and current[0].event.body.get("agreement_id") == agreement_id):
        return request_id
    log.append(CustodyEvent.create("approval.requested", actor, {
        "request_id": request_id, "job_id": job_id, "owner": owner,
        "request_digest": request_digest, "dataset_id": dataset_id, "site": site,
        "priority_area": priority_area, "gpu_hours": gpu_hours,
        "agreement_id": agreement_id, "reasons": reasons}), signer)
    return request_id


_APPROVAL_KINDS = ("approval.requested", "approval.granted", "approval.denied",
                   "approval.used", "approval.cancelled")


def _rounds(log: CustodyLog) -> dict[str, tuple[SignedEntry, str, Any]]:
    """request id -> (its latest ``approval.requested`` entry, status, statement).

    Events are replayed in log order; each ``approval.requested`` starts a new
    round for its id (a request asked again after a cancellation). Statuses:
    ``pending``, ``approved``, ``denied``, ``used``, ``cancelled`` (expiry is
    applied by :func:`approval_requests`).
    """
    entries = sorted((e for kind in _APPROVAL_KINDS for e in log.find(kind)),
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
            # "approved" covers approvals that expired unused
            out[rid] = (requested, "cancelled", statement)
    return out


def approval_requests(state: Any, *, nation: str | None = None,
                      status: str | None = None,
                      at: datetime | None = None) -> list[ApprovalRequest]:
    """Every approval request in ``state``'s custody log (its latest round),
    oldest first.

    Parameters
    ----------
    nation
        Only requests whose owner is this nation.
    status
        Only requests in this status (see :class:`ApprovalRequest`).
    at
        The instant used to mark approvals ``expired`` (default: now).
    """
    at = at or system_clock()
    out = []
    rounds = sorted(_rounds(CustodyLog(state.custody_db)).items(),
                    key=lambda item: item[1][0].seq)
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


def _request(state: Any, request_id: str) -> ApprovalRequest:
    for req in approval_requests(state):
        if req.request_id == request_id:
            return req
    raise NotFound(f"no approval request {request_id!r} "
                   "(see: sovereign approvals list)")


def approval_statement(request: ApprovalRequest, *, decision: str, nation: str,
                       now: datetime, expires_in_s: int = DEFAULT_EXPIRY_S
                       ) -> dict[str, Any]:
    """The unsigned ``approval/v1`` statement an officer signs for ``request``.

    Raises
    ------
    ConfigError
        If ``decision`` is not ``approve``/``deny`` or ``expires_in_s`` is not in
        1 s .. :data:`MAX_EXPIRY_S`.
    """
    if decision not in ("approve", "deny"):
        raise ConfigError(f"decision must be approve or deny, got {decision!r}")
    if not 1 <= expires_in_s <= MAX_EXPIRY_S:
        raise ConfigError(f"expiry must be 1 s to {MAX_EXPIRY_S // 86400} days, got "
                          f"{expires_in_s} s", field="--expires-in")
    return {"type": "approval/v1", "nation": nation, "issued_at": rfc3339(now),
            "approval_id": f"{request.request_id}-{uuid.uuid4().hex[:16]}",
            "request_id": request.request_id, "request_digest": request.request_digest,
            "job_id": request.job_id, "agreement_id": request.agreement_id,
            "decision": decision,
            "expires_at": rfc3339(now + timedelta(seconds=expires_in_s))}


def _officer_key(state: Any, nation: str) -> bytes:
    from orchestrator.registry import Registry

    return b64d(Registry(state.registry_db).nation(nation).officer_public)


def record_decision(state: Any, signed: SignedStatement) -> ApprovalRequest:
    """Verify an officer's signed ``approval/v1`` and log it.

    Logs ``approval.granted`` or ``approval.denied`` (actor ``orchestrator``, the
    officer's statement and signature in the body).

    Raises
    ------
    NotFound
        The statement names an unknown request.
    IntegrityError
        The signature is not the registered key of the request's owner (foreign
        or altered), or the statement is bound to another digest or job.
    PolicyDenied
        The request is not pending (already decided, used or cancelled); an
        approval that expired unused may be replaced by a new decision.
    """
    from orchestrator.submit.registration import ORCHESTRATOR_ACTOR, orchestrator_signer

    request = _request(state, str(signed.statement.get("request_id", "")))
    statement = verify_statement(signed, public_key=_officer_key(state, request.owner),
                                 expected_type="approval/v1",
                                 expected_nation=request.owner,
                                 source=request.request_id)
    if (statement["request_digest"] != request.request_digest
            or statement["job_id"] != request.job_id):
        raise IntegrityError("approval is bound to another request",
                             source=request.request_id)
    if request.status not in ("pending", "expired"):  # expired unused: decide anew
        raise PolicyDenied(f"approval request {request.request_id} is "
                           f"{request.status}, not pending")
    kind = "approval.granted" if statement["decision"] == "approve" else (
        "approval.denied")
    CustodyLog(state.custody_db).append(CustodyEvent.create(kind, ORCHESTRATOR_ACTOR, {
        "request_id": request.request_id, "job_id": request.job_id,
        "owner": request.owner, "decision": statement["decision"],
        "approval_id": statement["approval_id"], "expires_at": statement["expires_at"],
        **signed.to_json()}), orchestrator_signer(state))
    return _request(state, request.request_id)


def decide_request(state: Any, request_id: str, nation: str, decision: str, *,
                   expires_in_s: int = DEFAULT_EXPIRY_S) -> ApprovalRequest:
    """Sign ``decision`` on ``request_id`` as ``nation``'s officer and record it.

    The officer key is ``<state>/nations/<nation>/officer.key`` (the embedded
    default keeps every nation's key in one state dir).

    Raises
    ------
    ConfigError
        Bad decision or expiry, no officer key here, or ``nation`` is not the
        request's owner.
    NotFound, IntegrityError, PolicyDenied
        As :func:`record_decision`.
    """
    from orchestrator.crypto import load_private_key

    request = _request(state, request_id)
    if request.owner != nation:
        raise ConfigError(f"{request_id} is for the {request.owner} officer, not "
                          f"{nation}", field="--as")
    path = state.nation_dir(nation) / "officer.key"
    if not path.exists():
        raise ConfigError(f"no officer key for {nation} here", source=str(path))
    statement = approval_statement(request, decision=decision, nation=nation,
                                   now=system_clock(), expires_in_s=expires_in_s)
    return record_decision(state, sign_statement(statement, load_private_key(path)))


def cancel_pending(state: Any, *, reason: str, agreement_id: str | None = None,
                   job_id: str | None = None) -> list[str]:
    """Cancel open requests (pending, or approved but unused, expired or not) under
    an agreement or of a job.

    Logs ``approval.cancelled`` for each; returns their request ids.
    """
    from orchestrator.submit.registration import ORCHESTRATOR_ACTOR, orchestrator_signer

    log = CustodyLog(state.custody_db)
    cancelled = []
    for req in approval_requests(state):
        if req.status not in ("pending", "approved", "expired"):
            continue
        if agreement_id is not None and req.agreement_id != agreement_id:
            continue
        if job_id is not None and req.job_id != job_id:
            continue
        log.append(CustodyEvent.create("approval.cancelled", ORCHESTRATOR_ACTOR, {
            "request_id": req.request_id, "job_id": req.job_id, "owner": req.owner,
            "agreement_id": req.agreement_id, "reason": reason}),
            orchestrator_signer(state))
        cancelled.append(req.request_id)
    return cancelled


def find_decision(log: CustodyLog, request_id: str
                  ) -> tuple[SignedStatement | None, int | None]:
    """The latest recorded decision statement for ``request_id`` (unverified).

    Returns ``(statement, seq)`` or ``(None, None)``; a cancelled request gives
    ``(None, None)``. The caller must verify it (:func:`verify_statement`).
    """
    latest: tuple[SignedStatement | None, int | None] = (None, None)
    for entry in log.find(None, request_id=request_id):
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


class ApprovalUses:
    """A custodian's durable record of consumed approvals (single use).

    SQLite at ``<nation dir>/approvals.db`` (WAL, ``synchronous=FULL``): one row
    per approval id with the job, request digest and agreement it admitted.
    Survives custodian restarts. An approval admits exactly one job: presented
    for any other job it is refused as a replay. Deciding the *same* job again
    (when a co-owner's officer approves later and the job resumes) re-uses that
    admission, checked as of the instant of use, and consumes nothing.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self._db() as con:
            con.execute("CREATE TABLE IF NOT EXISTS used (approval_id TEXT PRIMARY KEY,"
                        " job_id TEXT NOT NULL, request_digest TEXT NOT NULL,"
                        " used_at TEXT NOT NULL, expires_at TEXT NOT NULL,"
                        " agreement_id TEXT NOT NULL)")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30,
                                     isolation_level=None)) as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            yield con

    def use(self, approval_id: str, *, job_id: str, request_digest: str,
            expires_at: datetime, now: datetime, agreement_id: str = "") -> None:
        """Consume ``approval_id`` for ``job_id``.

        Raises
        ------
        PolicyDenied
            If it was already used (by any job): a replay.
        """
        with self._db() as con:
            try:
                con.execute("INSERT INTO used VALUES (?,?,?,?,?,?)",
                            (approval_id, job_id, request_digest, rfc3339(now),
                             rfc3339(expires_at), agreement_id))
            except sqlite3.IntegrityError:
                row = con.execute("SELECT job_id, used_at FROM used WHERE "
                                  "approval_id=?", (approval_id,)).fetchone()
                raise PolicyDenied("approval replayed", reasons=[
                    f"approval: {approval_id} was already used by job {row[0]} at "
                    f"{row[1]} (single use)"]) from None

    def used_for(self, job_id: str) -> list[tuple[str, str, str, str, str]]:
        """``(approval_id, request_digest, used_at, expires_at, agreement_id)`` of
        the approvals ``job_id`` used."""
        with self._db() as con:
            rows = con.execute("SELECT approval_id, request_digest, used_at, "
                               "expires_at, agreement_id FROM used WHERE job_id=?",
                               (job_id,)).fetchall()
        return [(str(a), str(d), str(t), str(e), str(g)) for a, d, t, e, g in rows]

    def used_for_approval(self, approval_id: str) -> list[tuple[str, str]]:
        """``(job_id, used_at)`` if ``approval_id`` was used, else ``[]``."""
        with self._db() as con:
            rows = con.execute("SELECT job_id, used_at FROM used WHERE approval_id=?",
                               (approval_id,)).fetchall()
        return [(str(j), str(t)) for j, t in rows]
