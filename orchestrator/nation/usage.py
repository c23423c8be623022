"""Allocation use and oversight notifications, as a custodian holds them.

* **Use.** When a job ends, the orchestrator logs ``allocation.recorded`` (the
  GPU-hours the job actually used, the agreements each owner relied on, the
  quarter) and hands each owner's custodian the entry's index;
  :func:`accept_allocation` reads that entry back from the log (so the log
  vouches that the orchestrator signed it), checks it and journals it.
  :func:`quarter_usage` sums the journaled reports per agreement and quarter.
* **Notification.** A decision crossing an agreement's per-request or quarterly
  threshold records ``notification.recorded`` (:func:`record_notification`). If
  the agreement says ``hold_until_acknowledged`` the request is held until an
  officer of a party acknowledges it on the oversight body's behalf: a signed
  ``notification-ack/v1`` statement inside a ``notification.acknowledged`` event,
  delivered to the custodians of the agreement's parties
  (:func:`accept_acknowledgement`); :func:`is_acknowledged` re-verifies it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from orchestrator.errors import ConfigError, IntegrityError, NotFound
from orchestrator.protocol.agreements import Agreement
from orchestrator.protocol.log import SignedEvent
from orchestrator.protocol.statements import SignedStatement, verify_statement
from orchestrator.tlog.events import SignedEntry

if TYPE_CHECKING:
    from orchestrator.nation.context import CustodianContext

__all__ = ["accept_acknowledgement", "accept_allocation", "acknowledged_by",
           "is_acknowledged", "notification_id_for", "quarter_usage",
           "record_notification"]


class _Finder(Protocol):
    def find(self, kind: str | None = None, **match: Any) -> list[SignedEntry]: ...


def quarter_usage(source: _Finder, quarter: str) -> dict[str, float]:
    """Agreement id -> GPU-hours recorded (``allocation.recorded``) in ``quarter``.

    ``quarter`` is ``"YYYY-Qn"`` (:func:`orchestrator.protocol.agreements.quarter_of`).
    """
    used: dict[str, float] = {}
    for entry in source.find("allocation.recorded", quarter=quarter):
        hours = float(entry.event.body.get("gpu_hours", 0.0))
        for agreement_id in sorted(set(entry.event.body.get("agreement_ids", []))):
            used[agreement_id] = used.get(agreement_id, 0.0) + hours
    return used


def accept_allocation(ctx: CustodianContext, seq: int) -> SignedEntry:
    """Journal the orchestrator's ``allocation.recorded`` at log index ``seq``.

    Raises
    ------
    NotFound
        If the log has no such entry.
    ConfigError
        If it is not an allocation report of the orchestrator about a job this
        custodian admitted.
    """
    entry = ctx.log.get(seq)
    event = entry.event
    if event.kind != "allocation.recorded" or event.actor != "orchestrator":
        raise ConfigError(f"entry {seq} is {event.kind} by {event.actor}, not an "
                          "allocation report", field="seq")
    job_id = str(event.body.get("job_id", ""))
    if not ctx.journal.find("policy.decided", job_id=job_id):
        raise ConfigError(f"{ctx.code} never decided job {job_id!r}", field="seq")
    return ctx.journal.add(entry)


def notification_id_for(request_digest: str, agreement_id: str) -> str:
    """Stable id of the notification for one request under one agreement."""
    return f"ntf-{agreement_id}-{request_digest.removeprefix('sha256:')[:16]}"


def record_notification(ctx: CustodianContext, *, job_id: str, request_digest: str,
                        agreement: Agreement, kinds: list[str], gpu_hours: float,
                        used_gpu_hours: float, quarter: str, hold: bool) -> str:
    """Record ``notification.recorded`` once per (request, agreement); return its
    id."""
    nid = notification_id_for(request_digest, agreement.id)
    if ctx.journal.find("notification.recorded", notification_id=nid):
        return nid
    ctx.record("notification.recorded", {
        "notification_id": nid, "job_id": job_id, "request_digest": request_digest,
        "agreement_id": agreement.id, "oversight_body": agreement.oversight_body,
        "kinds": kinds, "gpu_hours": gpu_hours,
        "threshold_gpu_hours": agreement.notification_threshold_gpu_hours,
        "quarterly_threshold_gpu_hours": agreement.quarterly_threshold_gpu_hours,
        "quarter": quarter, "quarter_used_gpu_hours": used_gpu_hours,
        "hold": hold})
    return nid


def acknowledged_by(source: _Finder, notification_id: str, agreement_id: str,
                    parties: tuple[str, ...], officer_keys: Mapping[str, bytes]
                    ) -> str | None:
    """The party whose officer validly acknowledged it first, or ``None``.

    Statements that do not verify against the pinned ``officer_keys`` are
    ignored (fail closed).
    """
    for entry in source.find("notification.acknowledged",
                             notification_id=notification_id):
        try:
            signed = SignedStatement.from_json(entry.event.body)
            nation = signed.nation
            if nation not in parties or nation not in officer_keys:
                continue
            statement = verify_statement(
                signed, public_key=officer_keys[nation],
                expected_type="notification-ack/v1", expected_nation=nation)
        except (IntegrityError, ValueError):
            continue
        if (statement["notification_id"] == notification_id
                and statement["agreement_id"] == agreement_id):
            return nation
    return None


def is_acknowledged(source: _Finder, notification_id: str, agreement: Agreement,
                    officer_keys: Mapping[str, bytes]) -> bool:
    """True if a party's officer validly signed an acknowledgement of it."""
    return acknowledged_by(source, notification_id, agreement.id, agreement.parties,
                           officer_keys) is not None


def accept_acknowledgement(ctx: CustodianContext, signed: SignedEvent) -> SignedEntry:
    """Verify and record a delivered ``notification.acknowledged`` event.

    Raises
    ------
    ConfigError
        Not an acknowledgement event by an officer.
    NotFound
        The agreement it names is not held here.
    IntegrityError
        Not signed by the pinned key of a party's officer, or it does not verify.
    """
    event = signed.event
    role, _, nation = event.actor.partition(":")
    if event.kind != "notification.acknowledged" or role != "officer":
        raise ConfigError(f"expected notification.acknowledged by an officer, got "
                          f"{event.kind} by {event.actor}", field="event")
    agreement_id = str(event.body.get("agreement_id", ""))
    docs = [d for d in ctx.store.agreement_documents() if d["id"] == agreement_id]
    if not docs:
        raise NotFound(f"{ctx.code} holds no agreement {agreement_id!r}")
    parties = tuple(docs[-1]["document"]["parties"])
    if nation not in parties:
        raise IntegrityError(f"{nation} is not a party to {agreement_id}")
    ctx.check_officer_event(signed)
    officer = ctx.officer_key(nation)
    statement = verify_statement(SignedStatement.from_json(event.body),
                                 public_key=officer,
                                 expected_type="notification-ack/v1",
                                 expected_nation=nation)
    if statement["notification_id"] != event.body.get("notification_id"):
        raise IntegrityError("the event does not match the statement it carries")
    with ctx.lock():
        return ctx.submit(signed)
