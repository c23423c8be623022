"""Allocation accounting and oversight notifications.

* **Use.** When a job ends, the orchestrator totals the GPU-hours its tasks
  actually used (``gpus x wall seconds / 3600`` per attempt, from the executor's
  task records: :mod:`orchestrator.submit.jobs`) and logs ``allocation.recorded``
  with the agreements each owner relied on and the calendar quarter.
  :func:`quarter_usage` sums them per agreement and quarter.
* **Notification.** A custodian whose decision crosses an agreement's per-request
  or quarterly threshold logs ``notification.recorded``, addressed to the
  agreement's oversight body (:func:`record_notification`). If the agreement says
  ``hold_until_acknowledged`` the request is held until an officer of a party
  acknowledges it on the oversight body's behalf with a signed
  ``notification-ack/v1`` statement (:func:`acknowledge`), logged as
  ``notification.acknowledged``; custodians re-verify that signature
  (:func:`is_acknowledged`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any

from orchestrator.canonical import b64d
from orchestrator.errors import ConfigError, IntegrityError, NotFound
from orchestrator.log.store import CustodyLog
from orchestrator.protocol.agreements import Agreement, quarter_of
from orchestrator.protocol.statements import (
    SignedStatement,
    sign_statement,
    verify_statement,
)
from orchestrator.timeutil import rfc3339, system_clock
from orchestrator.tlog.events import CustodyEvent

__all__ = ["Notification", "acknowledge", "is_acknowledged", "notification_id_for",
           "notifications", "quarter_usage", "record_allocation",
           "record_notification"]


def quarter_usage(log: CustodyLog, quarter: str) -> dict[str, float]:
    """Agreement id -> GPU-hours recorded (``allocation.recorded``) in ``quarter``.

    ``quarter`` is ``"YYYY-Qn"`` (:func:`orchestrator.protocol.agreements.quarter_of`).
    """
    used: dict[str, float] = {}
    for entry in log.find("allocation.recorded", quarter=quarter):
        hours = float(entry.event.body.get("gpu_hours", 0.0))
        for agreement_id in sorted(set(entry.event.body.get("agreement_ids", []))):
            used[agreement_id] = used.get(agreement_id, 0.0) + hours
    return used


def record_allocation(state: Any, job_id: str, *, day: date | None = None
                      ) -> dict[str, Any]:
    """Log ``allocation.recorded`` for a finished job; return its body.

    GPU-hours are the job's actual use from its task records (every attempt,
    retries included); the agreements are those named by the owners' permitting
    ``policy.decided`` entries for the job (joint agreements included).
    """
    from orchestrator.submit.jobs import job_view
    from orchestrator.submit.registration import ORCHESTRATOR_ACTOR, orchestrator_signer

    log = CustodyLog(state.custody_db)
    view = job_view(state, job_id)
    agreements: set[str] = set()
    for entry in log.find("policy.decided", job_id=job_id):
        decision = entry.event.body.get("decision", {})
        if decision.get("outcome") == "permit":
            if decision.get("agreement_id"):
                agreements.add(str(decision["agreement_id"]))
            agreements.update(str(a) for a in decision.get("joint_agreement_ids", []))
    body = {"job_id": job_id, "gpu_hours": float(view["gpu_hours"]),
            "quarter": quarter_of(day or system_clock().date()),
            "agreement_ids": sorted(agreements), "tasks": len(view["tasks"])}
    log.append(CustodyEvent.create("allocation.recorded", ORCHESTRATOR_ACTOR, body),
               orchestrator_signer(state))
    return body


def notification_id_for(request_digest: str, agreement_id: str) -> str:
    """Stable id of the notification for one request under one agreement."""
    return f"ntf-{agreement_id}-{request_digest.removeprefix('sha256:')[:16]}"


def record_notification(log: CustodyLog, signer: Any, actor: str, *, job_id: str,
                        request_digest: str, agreement: Agreement,
                        kinds: list[str], gpu_hours: float, used_gpu_hours: float,
                        quarter: str, hold: bool) -> str:
    """Log ``notification.recorded`` once per (request, agreement); return its id."""
    nid = notification_id_for(request_digest, agreement.id)
    if log.find("notification.recorded", notification_id=nid):
        return nid
    log.append(CustodyEvent.create("notification.recorded", actor, {
        "notification_id": nid, "job_id": job_id, "request_digest": request_digest,
        "agreement_id": agreement.id, "oversight_body": agreement.oversight_body,
        "kinds": kinds, "gpu_hours": gpu_hours,
        "threshold_gpu_hours": agreement.notification_threshold_gpu_hours,
        "quarterly_threshold_gpu_hours": agreement.quarterly_threshold_gpu_hours,
        "quarter": quarter, "quarter_used_gpu_hours": used_gpu_hours,
        "hold": hold}), signer)
    return nid


@dataclass(frozen=True)
class Notification:
    """One oversight notification and whether it was acknowledged."""

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


def notifications(state: Any) -> list[Notification]:
    """Every notification in the custody log, oldest first.

    ``acknowledged_by`` is set only by an acknowledgement that custodians accept
    (a party's officer signature that verifies: :func:`is_acknowledged`).
    """
    from orchestrator.registry import Registry

    log = CustodyLog(state.custody_db)
    registry = Registry(state.registry_db)
    keys = {n.code: n.officer_public for n in registry.nations()}
    parties = {d["id"]: tuple(d["document"]["parties"])
               for d in registry.agreement_documents()}
    out = []
    for e in log.find("notification.recorded"):
        b = e.event.body
        nid = str(b.get("notification_id", f"legacy-{e.seq}"))
        aid = str(b.get("agreement_id", ""))
        out.append(Notification(nid, str(b.get("job_id", "")), aid,
                                str(b.get("oversight_body", "")),
                                tuple(b.get("kinds", ["per-request"])),
                                float(b.get("gpu_hours", 0.0)), bool(b.get("hold")),
                                e.event.time, _acknowledged_by(
                                    log, nid, aid, parties.get(aid, ()), keys)))
    return out


def acknowledge(state: Any, notification_id: str, nation: str) -> Notification:
    """Sign and log ``nation``'s officer's acknowledgement of a notification.

    Raises
    ------
    NotFound
        Unknown notification.
    ConfigError
        ``nation`` is not a party to the notification's agreement, or its officer
        key is not in this state dir, or it is already acknowledged.
    """
    from orchestrator.crypto import load_private_key
    from orchestrator.registry import Registry

    found = [n for n in notifications(state) if n.notification_id == notification_id]
    if not found:
        raise NotFound(f"no notification {notification_id!r} "
                       "(see: sovereign notifications list)")
    note = found[0]
    if note.acknowledged_by:
        raise ConfigError(f"{notification_id} was already acknowledged by "
                          f"{note.acknowledged_by}")
    parties = {p for d in Registry(state.registry_db).agreement_documents()
               if d["id"] == note.agreement_id for p in d["document"]["parties"]}
    if nation not in parties:
        raise ConfigError(f"{nation} is not a party to {note.agreement_id}",
                          field="--as")
    path = state.nation_dir(nation) / "officer.key"
    if not path.exists():
        raise ConfigError(f"no officer key for {nation} here", source=str(path))
    key = load_private_key(path)
    signed = sign_statement({"type": "notification-ack/v1", "nation": nation,
                             "issued_at": rfc3339(system_clock()),
                             "notification_id": notification_id,
                             "agreement_id": note.agreement_id}, key)
    CustodyLog(state.custody_db).append(CustodyEvent.create(
        "notification.acknowledged", f"officer:{nation}",
        {"notification_id": notification_id, "agreement_id": note.agreement_id,
         "oversight_body": note.oversight_body, **signed.to_json()}), key)
    return next(n for n in notifications(state)
                if n.notification_id == notification_id)


def is_acknowledged(log: CustodyLog, notification_id: str, agreement: Agreement,
                    officer_keys: dict[str, str]) -> bool:
    """True if a party's officer validly signed an acknowledgement of it.

    ``officer_keys``: nation -> base64 registered officer key. Statements that
    do not verify are ignored (fail closed).
    """
    return _acknowledged_by(log, notification_id, agreement.id, agreement.parties,
                            officer_keys) is not None


def _acknowledged_by(log: CustodyLog, notification_id: str, agreement_id: str,
                     parties: tuple[str, ...], officer_keys: dict[str, str]
                     ) -> str | None:
    """The party whose officer validly acknowledged it first, or ``None``."""
    for entry in log.find("notification.acknowledged",
                          notification_id=notification_id):
        try:
            signed = SignedStatement.from_json(entry.event.body)
            nation = signed.nation
            if nation not in parties or nation not in officer_keys:
                continue
            statement = verify_statement(
                signed, public_key=b64d(officer_keys[nation]),
                expected_type="notification-ack/v1", expected_nation=nation)
        except (IntegrityError, ValueError):
            continue
        if (statement["notification_id"] == notification_id
                and statement["agreement_id"] == agreement_id):
            return nation
    return None
