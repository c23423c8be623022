"""Case-by-case review as officers see it: pending requests and their decisions.

A custodian tells its officer which requests wait (:class:`ApprovalRequest`);
the officer signs an ``approval/v1`` statement (:func:`approval_statement`,
:mod:`orchestrator.protocol.statements`) bound to the request digest, with an
expiry, and hands it back to its custodian inside an ``approval.granted`` or
``approval.denied`` event signed by the officer key.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from orchestrator.errors import ConfigError
from orchestrator.timeutil import rfc3339

__all__ = ["DEFAULT_EXPIRY_S", "MAX_EXPIRY_S", "ApprovalRequest", "Notification",
           "approval_statement", "request_id_for"]

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

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> ApprovalRequest:
        """Read :meth:`to_json` output.

        Raises
        ------
        ConfigError
            If a field is missing or of the wrong type.
        """
        try:
            return cls(
                request_id=str(doc["request_id"]), job_id=str(doc["job_id"]),
                owner=str(doc["owner"]), request_digest=str(doc["request_digest"]),
                dataset_id=str(doc["dataset_id"]), site=str(doc["site"]),
                priority_area=str(doc["priority_area"]),
                gpu_hours=float(doc["gpu_hours"]),
                agreement_id=str(doc["agreement_id"]),
                reasons=tuple(str(r) for r in doc["reasons"]),
                requested_at=str(doc["requested_at"]), status=str(doc["status"]),
                decision=doc.get("decision"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed approval request: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (CLI ``--json``, console)."""
        return {"request_id": self.request_id, "job_id": self.job_id,
                "owner": self.owner, "request_digest": self.request_digest,
                "dataset_id": self.dataset_id, "site": self.site,
                "priority_area": self.priority_area, "gpu_hours": self.gpu_hours,
                "agreement_id": self.agreement_id, "reasons": list(self.reasons),
                "requested_at": self.requested_at, "status": self.status,
                "decision": self.decision}




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


@dataclass(frozen=True)
class Notification:
    """One oversight notification a custodian recorded, and who acknowledged it."""

    notification_id: str
    job_id: str
    agreement_id: str
    oversight_body: str
    kinds: tuple[str, ...]
    gpu_hours: float
    hold: bool
    recorded_at: str
    acknowledged_by: str | None

    def to_json(self) -> dict[str, Any]:
        """JSON-ready (CLI ``--json``, console, reports)."""
        return {"notification_id": self.notification_id, "job_id": self.job_id,
                "agreement_id": self.agreement_id,
                "oversight_body": self.oversight_body, "kinds": list(self.kinds),
                "gpu_hours": self.gpu_hours, "hold": self.hold,
                "recorded_at": self.recorded_at,
                "acknowledged_by": self.acknowledged_by}
