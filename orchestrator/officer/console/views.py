"""What the console's dashboard shows one nation's officer (read-only queries).

Everything is read at request time from what the officer may read: its own
custodian (its approval requests and its view of the agreements) and the
custody log's public entries (this quarter's allocation reports, oversight
notifications and denials).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from orchestrator.protocol.agreements import Agreement, quarter_of
from orchestrator.protocol.approvals import ApprovalRequest, Notification
from orchestrator.protocol.custodian import CustodianApi
from orchestrator.protocol.log import LogReader
from orchestrator.tlog.events import SignedEntry

__all__ = ["DENIAL_KINDS", "AgreementRow", "Dashboard", "Denial", "agreement_rows",
           "dashboard", "notifications", "quarter_usage", "recent_denials"]

#: Custody-log kinds listed as denials (``policy.decided`` only with ``deny``).
DENIAL_KINDS = ("key.denied", "policy.decided", "approval.denied",
                "transfer.denied", "model.open.denied")


@dataclass(frozen=True)
class AgreementRow:
    """One agreement version the nation is party to, and its use this quarter.

    Attributes
    ----------
    agreement_id, version, status, detail
        From :class:`~orchestrator.policy.standing.Standing`.
    parties, signed_by, missing
        Nation codes.
    oversight_body
        Who is notified above the thresholds.
    quarter
        ``"YYYY-Qn"`` of the use shown.
    used_gpu_hours
        GPU-hours recorded under the agreement in ``quarter``.
    request_threshold_gpu_hours
        Per-request notification threshold (GPU-hours).
    quarterly_threshold_gpu_hours
        Cumulative quarterly threshold (GPU-hours), if the agreement sets one.
    """

    agreement_id: str
    version: int
    status: str
    detail: str
    parties: tuple[str, ...]
    signed_by: tuple[str, ...]
    missing: tuple[str, ...]
    oversight_body: str
    quarter: str
    used_gpu_hours: float
    request_threshold_gpu_hours: float
    quarterly_threshold_gpu_hours: float | None

    @property
    def used_percent(self) -> float | None:
        """Use as a percentage of the quarterly threshold (``None``: no threshold)."""
        limit = self.quarterly_threshold_gpu_hours
        if limit is None:
            return None
        if limit <= 0:
            return 100.0 if self.used_gpu_hours > 0 else 0.0
        return 100.0 * self.used_gpu_hours / limit

    @property
    def over_threshold(self) -> bool:
        """True when the quarter's use exceeds the quarterly threshold."""
        limit = self.quarterly_threshold_gpu_hours
        return limit is not None and self.used_gpu_hours > limit


@dataclass(frozen=True)
class Denial:
    """One refusal from the custody log (``seq``, ``time`` RFC 3339 UTC)."""

    seq: int
    time: str
    kind: str
    actor: str
    subject: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class Dashboard:
    """Everything on the officer's dashboard."""

    nation: str
    quarter: str
    pending: list[ApprovalRequest]
    decided: list[ApprovalRequest]
    agreements: list[AgreementRow]
    denials: list[Denial]
    notifications: list[Notification]


def quarter_usage(log: LogReader, quarter: str) -> dict[str, float]:
    """Agreement id -> GPU-hours the orchestrator reported in ``quarter``."""
    used: dict[str, float] = {}
    for entry in log.find("allocation.recorded", quarter=quarter):
        hours = float(entry.event.body.get("gpu_hours", 0.0))
        for agreement_id in sorted(set(entry.event.body.get("agreement_ids", []))):
            used[agreement_id] = used.get(agreement_id, 0.0) + hours
    return used


def agreement_rows(custodian: CustodianApi, log: LogReader, nation: str,
                   quarter: str) -> list[AgreementRow]:
    """Every agreement version ``nation`` is party to, with ``quarter``'s use."""
    used = quarter_usage(log, quarter)
    rows = []
    documents = {(a.id, a.version): a for a in (
        Agreement.from_json(s["document"]) for s in _documents(custodian))}
    for standing in custodian.standings():
        doc = documents.get((standing["agreement_id"], standing["version"]))
        if doc is None or nation not in doc.parties:
            continue
        rows.append(AgreementRow(
            agreement_id=doc.id, version=doc.version, status=str(standing["status"]),
            detail=str(standing["detail"]), parties=tuple(doc.parties),
            signed_by=tuple(standing["signed_by"]),
            missing=tuple(standing["missing"]),
            oversight_body=doc.oversight_body, quarter=quarter,
            used_gpu_hours=used.get(doc.id, 0.0),
            request_threshold_gpu_hours=doc.notification_threshold_gpu_hours,
            quarterly_threshold_gpu_hours=doc.quarterly_threshold_gpu_hours))
    return rows


def _documents(custodian: CustodianApi) -> list[dict[str, Any]]:
    return [s for s in custodian.standings() if isinstance(s.get("document"), dict)]


def _concerns(body: dict[str, Any], nation: str) -> bool:
    decision = body.get("decision")
    owners = body.get("owners")
    return (nation in (body.get("owner"), body.get("nation"), body.get("recipient"))
            or (isinstance(owners, list) and nation in owners)
            or (isinstance(decision, dict) and decision.get("owner") == nation))


def _denial(entry: SignedEntry) -> Denial | None:
    body = dict(entry.event.body)
    kind = entry.event.kind
    if kind == "policy.decided":
        decision = body.get("decision")
        if not isinstance(decision, dict) or decision.get("outcome") != "deny":
            return None
        reasons = [str(r.get("rule", "")) + ": " + str(r.get("detail", ""))
                   for r in decision.get("reasons", [])
                   if isinstance(r, dict) and not r.get("passed")] or ["deny"]
    elif kind == "approval.denied":
        reasons = [f"officer denied {body.get('request_id', '')} "
                   f"(statement {body.get('approval_id', '')})"]
    else:
        given = body.get("reasons")
        reasons = ([str(r) for r in given] if isinstance(given, list)
                   else [str(body.get("reason") or kind)])
    subject = next((str(body[k]) for k in ("job_id", "model_id", "request_id",
                                           "object_id", "dataset_id")
                    if body.get(k)), "")
    return Denial(entry.seq, entry.event.time, kind, entry.event.actor, subject,
                  tuple(reasons))


def recent_denials(log: LogReader, nation: str, limit: int = 20) -> list[Denial]:
    """The latest ``limit`` denials concerning ``nation``, newest first."""
    entries = [e for kind in DENIAL_KINDS for e in log.find(kind)
               if _concerns(dict(e.event.body), nation)]
    out = []
    for entry in sorted(entries, key=lambda e: e.seq, reverse=True):
        denial = _denial(entry)
        if denial is not None:
            out.append(denial)
        if len(out) >= limit:
            break
    return out


def notifications(log: LogReader) -> list[Notification]:
    """Every oversight notification in the log, with the first party whose
    officer's acknowledgement a custodian recorded."""
    acks: dict[str, str] = {}
    for entry in log.find("notification.acknowledged"):
        acks.setdefault(str(entry.event.body.get("notification_id")),
                        entry.event.actor.split(":", 1)[-1])
    out = []
    for e in log.find("notification.recorded"):
        b = e.event.body
        nid = str(b.get("notification_id"))
        out.append(Notification(
            nid, str(b.get("job_id", "")), str(b.get("agreement_id", "")),
            str(b.get("oversight_body", "")),
            tuple(b.get("kinds", ["per-request"])), float(b.get("gpu_hours", 0.0)),
            bool(b.get("hold")), e.event.time, acks.get(nid)))
    return out


def dashboard(custodian: CustodianApi, log: LogReader, nation: str,
              today: date) -> Dashboard:
    """Gather the dashboard of ``nation``'s officer (``today``: for the quarter)."""
    quarter = quarter_of(today)
    requests = [ApprovalRequest.from_json(r) for r in custodian.approvals()]
    rows = agreement_rows(custodian, log, nation, quarter)
    mine = {row.agreement_id for row in rows}
    return Dashboard(
        nation=nation, quarter=quarter,
        pending=[r for r in requests if r.status == "pending"],
        decided=[r for r in reversed(requests) if r.status != "pending"][:20],
        agreements=rows, denials=recent_denials(log, nation),
        notifications=[n for n in notifications(log) if n.agreement_id in mine])
