"""An officer's decisions: signed where the officer's key is, delivered to custodians.

Each decision is a signed statement (:mod:`orchestrator.protocol.statements`)
inside a custody event signed by the officer's key, delivered to the custodians
that must act on it; each custodian checks both signatures against the officer
key it pinned and records the event in the custody log (the first to receive it
places it; the others find it there):

* :func:`sign_agreement` and :func:`terminate_agreement` go to every party's
  custodian (a termination takes effect at each as it arrives, under its lock);
* :func:`decide_approval` goes to the officer's own custodian (as a signed
  statement: the custodian records ``approval.granted`` or ``approval.denied``);
* :func:`acknowledge` goes to the custodians of the agreement's parties;
* :func:`consent_to_transfer` goes to the officer's own custodian.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import Any

from orchestrator.errors import ConfigError, SovereignError
from orchestrator.labels import parse_export_control, parse_nation
from orchestrator.officer.identity import OfficerState
from orchestrator.policy.transfer import CONSENT_TYPE, SLUG
from orchestrator.protocol.approvals import (
    DEFAULT_EXPIRY_S,
    ApprovalRequest,
    approval_statement,
)
from orchestrator.protocol.custodian import CustodianApi
from orchestrator.protocol.log import SignedEvent
from orchestrator.protocol.statements import sign_statement
from orchestrator.timeutil import Clock, rfc3339, system_clock
from orchestrator.tlog.events import SignedEntry

__all__ = ["Connector", "acknowledge", "consent_to_transfer", "decide_approval",
           "deliver", "sign_agreement", "terminate_agreement"]

#: Nation -> its custodian, as this officer reaches it.
Connector = Callable[[str], CustodianApi]

#: Longest consent validity (seconds): 365 days.
MAX_CONSENT_S = 365 * 24 * 3600


def deliver(connect: Connector, nations: Sequence[str],
            signed: SignedEvent) -> SignedEntry:
    """Deliver ``signed`` to the custodian of every nation in ``nations`` (in
    order); return the log entry.

    Every custodian is tried; the first refusal is raised after the others were
    tried (a custodian that did not receive it acts as if it had not been
    signed).

    Raises
    ------
    SovereignError
        The first custodian's refusal or unavailability.
    """
    entry: SignedEntry | None = None
    failure: SovereignError | None = None
    for nation in nations:
        try:
            entry = connect(nation).accept(signed)
        except SovereignError as exc:
            failure = failure or exc
    if failure is not None:
        raise failure
    assert entry is not None
    return entry


def _parties(connect: Connector, officer: OfficerState, agreement_id: str,
             field: str = "AGREEMENT") -> tuple[list[str], dict[str, Any]]:
    """The parties and standing of ``agreement_id`` as the officer's own
    custodian holds it (the latest version, or ``version``)."""
    standings = [s for s in connect(officer.nation).standings()
                 if s["agreement_id"] == agreement_id]
    if not standings:
        if field == "--as":
            raise ConfigError(f"{officer.nation} is not a party to {agreement_id} "
                              f"(the {officer.nation} custodian holds no such "
                              "agreement)", field=field)
        raise ConfigError(f"the {officer.nation} custodian holds no agreement "
                          f"{agreement_id!r}", field=field)
    return [str(p) for p in standings[-1]["parties"]], standings[-1]


def sign_agreement(officer: OfficerState, connect: Connector, agreement_id: str, *,
                   version: int | None = None,
                   clock: Clock = system_clock) -> SignedEntry:
    """Sign one version (default: the latest) of an agreement and deliver the
    signature to every party's custodian.

    Raises
    ------
    ConfigError
        Unknown agreement or version, or this officer's nation is not a party.
    AlreadyExists, IntegrityError
        As the custodians refuse.
    """
    standings = [s for s in connect(officer.nation).standings()
                 if s["agreement_id"] == agreement_id]
    chosen = [s for s in standings if version is None or s["version"] == version]
    if not chosen:
        raise ConfigError(f"the {officer.nation} custodian holds no agreement "
                          f"{agreement_id!r}" + (f" v{version}" if version else ""),
                          field="AGREEMENT")
    standing = chosen[-1]
    parties = [str(p) for p in standing["parties"]]
    if officer.nation not in parties:
        raise ConfigError(f"{officer.nation} is not a party to agreement "
                          f"{agreement_id} ({', '.join(parties)})", field="--as")
    if officer.nation in standing["signed_by"]:
        from orchestrator.errors import AlreadyExists

        raise AlreadyExists(f"{officer.nation} officer has already signed agreement "
                            f"{agreement_id} v{standing['version']}")
    signed = sign_statement({
        "type": "agreement-signature/v1", "nation": officer.nation,
        "issued_at": rfc3339(clock()), "agreement_id": agreement_id,
        "version": standing["version"], "digest": standing["digest"]}, officer.key())
    event = officer.sign_event("agreement.signed", {
        "agreement_id": agreement_id, "version": standing["version"],
        **signed.to_json()})
    return deliver(connect, parties, event)


def terminate_agreement(officer: OfficerState, connect: Connector,
                        agreement_id: str, *, reason: str,
                        clock: Clock = system_clock) -> SignedEntry:
    """Sign a termination of an agreement (every version) and deliver it to
    every party's custodian.

    Raises
    ------
    ConfigError
        Unknown agreement, not a party, or an empty reason.
    """
    if not reason.strip():
        raise ConfigError("a termination needs a reason", field="--reason")
    parties, _ = _parties(connect, officer, agreement_id)
    if officer.nation not in parties:
        raise ConfigError(f"{officer.nation} is not a party to agreement "
                          f"{agreement_id}", field="--as")
    signed = sign_statement({
        "type": "agreement-termination/v1", "nation": officer.nation,
        "issued_at": rfc3339(clock()), "agreement_id": agreement_id,
        "reason": reason}, officer.key())
    event = officer.sign_event("agreement.terminated", {
        "agreement_id": agreement_id, **signed.to_json()})
    own_first = [officer.nation, *(p for p in parties if p != officer.nation)]
    return deliver(connect, own_first, event)


def decide_approval(officer: OfficerState, connect: Connector, request_id: str,
                    decision: str, *, expires_in_s: int = DEFAULT_EXPIRY_S,
                    clock: Clock = system_clock) -> ApprovalRequest:
    """Sign ``decision`` (``approve``/``deny``) on a pending request of this
    officer's nation and deliver it to its custodian; return the request after.

    Raises
    ------
    NotFound
        The custodian holds no such request.
    ConfigError
        Bad decision or expiry, or the request is another nation's.
    IntegrityError, PolicyDenied
        As the custodian refuses.
    """
    custodian = connect(officer.nation)
    found = [ApprovalRequest.from_json(r) for r in custodian.approvals()
             if r.get("request_id") == request_id]
    if not found:
        from orchestrator.errors import NotFound

        raise NotFound(f"no approval request {request_id!r} "
                       "(see: sovereign approvals list)")
    request = found[0]
    if request.owner != officer.nation:
        raise ConfigError(f"{request_id} is for the {request.owner} officer, not "
                          f"{officer.nation}", field="--as")
    statement = approval_statement(request, decision=decision, nation=officer.nation,
                                   now=clock(), expires_in_s=expires_in_s)
    signed = sign_statement(statement, officer.key())
    return ApprovalRequest.from_json(custodian.decide_approval(signed))


def acknowledge(officer: OfficerState, connect: Connector, notification: dict[str, Any],
                *, clock: Clock = system_clock) -> SignedEntry:
    """Sign an acknowledgement of an oversight notification (for the oversight
    body) and deliver it to the custodians of the agreement's parties.

    Raises
    ------
    ConfigError
        This officer's nation is not a party to the notification's agreement.
    """
    agreement_id = str(notification["agreement_id"])
    parties, _ = _parties(connect, officer, agreement_id, field="--as")
    if officer.nation not in parties:
        raise ConfigError(f"{officer.nation} is not a party to {agreement_id}",
                          field="--as")
    signed = sign_statement({
        "type": "notification-ack/v1", "nation": officer.nation,
        "issued_at": rfc3339(clock()),
        "notification_id": notification["notification_id"],
        "agreement_id": agreement_id}, officer.key())
    event = officer.sign_event("notification.acknowledged", {
        "notification_id": notification["notification_id"],
        "agreement_id": agreement_id,
        "oversight_body": notification.get("oversight_body", ""), **signed.to_json()})
    own_first = [officer.nation, *(p for p in parties if p != officer.nation)]
    return deliver(connect, own_first, event)


def consent_to_transfer(officer: OfficerState, connect: Connector, *, model_id: str,
                        model_digest: str, recipient: str, end_use: str,
                        expires_in: timedelta = timedelta(days=7),
                        export_controls: Iterable[str] = (),
                        clock: Clock = system_clock) -> SignedEntry:
    """Sign this owner's consent to one transfer and deliver it to its custodian
    (which checks it keyed the model).

    Raises
    ------
    ConfigError
        Bad recipient, end use, expiry or export-control tag.
    """
    recipient = parse_nation(recipient, field="--to")
    if not SLUG.fullmatch(end_use):
        raise ConfigError(f"end use {end_use!r} must be a lower-case slug such as "
                          "'research'", field="--end-use")
    seconds = expires_in.total_seconds()
    if not 0 < seconds <= MAX_CONSENT_S:
        raise ConfigError("a consent must expire within 365 days",
                          field="--expires-in")
    if recipient == officer.nation:
        raise ConfigError(f"{recipient} already owns {model_id}", field="--to")
    tags = sorted({parse_export_control(t, field="--export-control")
                   for t in export_controls})
    now = clock()
    signed = sign_statement({
        "type": CONSENT_TYPE, "nation": officer.nation, "issued_at": rfc3339(now),
        "consent_id": "consent-" + uuid.uuid4().hex[:16], "model_id": model_id,
        "model_digest": model_digest, "recipient": recipient, "end_use": end_use,
        "expires_at": rfc3339(now + expires_in), "export_controls": tags},
        officer.key())
    event = officer.sign_event("transfer.consented", {
        "model_id": model_id, "recipient": recipient, "end_use": end_use,
        "consent_id": signed.statement["consent_id"], **signed.to_json()})
    return connect(officer.nation).accept(event)
