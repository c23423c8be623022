"""Owners approve the code that sees their data.

As data owners elsewhere bind key release to a workload digest (Confidential
Space image-digest conditions, Azure SKR measurement claims), a nation's
officer signs a ``code.approved`` event for one code measurement
(:func:`orchestrator.measurement.code_measurement`: the workflow source, the
orchestrator runtime and the installed environment): the workflow's name, the
agreement it is approved under (or ``null`` for this nation's domestic use),
the priority areas it covers, and an expiry. A ``code.revoked`` event by the
same officer ends an approval. Both reach the custodian as officers' events
(:func:`accept_code_event`), are checked against the officer key it pinned,
and are recorded in the custody log and the custodian's journal.

Under an agreement that requires it (``code_approval = "required"``) the
custodian releases a key only when the measurement the enclave attested is
approved by *its own* officer, unexpired and unrevoked, for that agreement and
area (:func:`approval_for`); otherwise the release is refused and the reason
logged.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.crypto import key_id_of, verify_signature
from orchestrator.errors import ConfigError, IntegrityError
from orchestrator.nation.context import CustodianContext
from orchestrator.protocol.log import SignedEvent
from orchestrator.timeutil import parse_rfc3339
from orchestrator.tlog.events import SignedEntry

__all__ = ["APPROVED_KIND", "REVOKED_KIND", "CodeApproval", "accept_code_event",
           "approval_for", "approvals"]

#: An officer approves a code measurement.
APPROVED_KIND = "code.approved"
#: An officer ends one of its approvals.
REVOKED_KIND = "code.revoked"

_MEASUREMENT = re.compile(r"^sha256:[0-9a-f]{64}$")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


@dataclass(frozen=True)
class CodeApproval:
    """One officer's approval of a code measurement.

    Attributes
    ----------
    approval_id, nation, workflow, measurement
        Its id, the approving nation, the workflow's name, ``"sha256:<hex>"``.
    agreement_id
        The agreement it is approved under (``None``: domestic use).
    areas
        Priority areas it covers (empty: every area of that agreement).
    expires_at
        When it stops counting.
    revoked
        Whether a ``code.revoked`` of the same officer ended it.
    seq
        Its custody log index.
    """

    approval_id: str
    nation: str
    workflow: str
    measurement: str
    agreement_id: str | None
    areas: tuple[str, ...]
    expires_at: datetime
    revoked: bool = False
    seq: int = -1

    def covers(self, measurement: str, agreement_id: str | None, area: str,
               at: datetime) -> bool:
        """Whether it approves ``measurement`` for that agreement and area at ``at``."""
        return (not self.revoked and self.measurement == measurement
                and self.agreement_id == agreement_id and at < self.expires_at
                and (not self.areas or area in self.areas))


def _parse(body: dict[str, Any], seq: int = -1) -> CodeApproval:
    try:
        approval = CodeApproval(
            approval_id=str(body["approval_id"]), nation=str(body["nation"]),
            workflow=str(body["workflow"]), measurement=str(body["measurement"]),
            agreement_id=(None if body["agreement_id"] is None
                          else str(body["agreement_id"])),
            areas=tuple(str(a) for a in body["areas"]),
            expires_at=parse_rfc3339(str(body["expires_at"])),
            seq=seq)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"a code approval needs approval_id, nation, workflow, "
                          f"measurement, agreement_id, areas, expires_at: {exc}",
                          field="event.body") from exc
    if not _ID.match(approval.approval_id) or not _MEASUREMENT.match(
            approval.measurement):
        raise ConfigError("approval_id must be an identifier and measurement "
                          "sha256:<64 hex>", field="event.body")
    return approval


def accept_code_event(ctx: CustodianContext, signed: SignedEvent) -> SignedEntry:
    """Check and record this nation's officer's ``code.approved`` or
    ``code.revoked`` event.

    Raises
    ------
    ConfigError
        A malformed body, or another kind.
    IntegrityError
        Not signed by the pinned key of this nation's officer (another nation's
        officer approves code for its own data only), or a revocation of an
        approval it does not hold.
    """
    nation = ctx.check_officer_event(signed)
    if nation != ctx.code:
        raise IntegrityError(f"the officer of {nation} approves code for its own "
                             f"nation's data, not for {ctx.code}'s")
    body = dict(signed.event.body)
    if signed.event.kind == APPROVED_KIND:
        if _parse(body).nation != ctx.code:
            raise ConfigError("the approval names another nation", field="nation")
    elif signed.event.kind == REVOKED_KIND:
        held = {a.approval_id for a in approvals(ctx)}
        if str(body.get("approval_id")) not in held:
            raise IntegrityError(f"{ctx.code} holds no code approval "
                                 f"{body.get('approval_id')!r}")
    else:
        raise ConfigError(f"not a code approval event: {signed.event.kind}",
                          field="event.kind")
    with ctx.lock():  # ordered before any release that relies on it
        return ctx.submit(signed)


def approvals(ctx: CustodianContext) -> list[CodeApproval]:
    """This nation's officer's approvals, each re-checked against its pinned key
    (an entry that does not verify is left out)."""
    officer = ctx.officer_key(ctx.code)
    actor = f"officer:{ctx.code}"

    def genuine(entry: SignedEntry) -> bool:
        if entry.event.actor != actor or entry.signer != key_id_of(officer):
            return False
        try:
            verify_signature(officer, entry.signature, entry.signed_bytes())
        except IntegrityError:
            return False
        return True

    revoked = {str(e.event.body.get("approval_id"))
               for e in ctx.journal.find(REVOKED_KIND) if genuine(e)}
    found = []
    for entry in ctx.journal.find(APPROVED_KIND):
        if genuine(entry):
            approval = _parse(dict(entry.event.body), entry.seq)
            found.append(CodeApproval(**{**approval.__dict__,
                                         "revoked": approval.approval_id in revoked}))
    return found


def approval_for(ctx: CustodianContext, measurement: str, agreement_id: str | None,
                 area: str, at: datetime) -> CodeApproval | None:
    """The approval that covers ``measurement`` (see :meth:`CodeApproval.covers`)."""
    return next((a for a in approvals(ctx)
                 if a.covers(measurement, agreement_id, area, at)), None)
