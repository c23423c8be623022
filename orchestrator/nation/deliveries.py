"""What reaches a custodian from other parties, checked before it counts.

* agreement documents (:func:`add_agreement`: any party may hand one over; it
  counts only once every party's officer signed that exact version);
* officers' signed events (:func:`accept`): agreement signatures and
  terminations, acknowledgements and transfer consents, each
  verified against the *pinned* key of the officer it names, then recorded in
  the custody log (idempotent: the first custodian to receive an officer's
  event places it; every party's custodian journals the same entry);
* this nation's accreditations of sites (:func:`accredit`,
  :func:`revoke_accreditation`: its officer decides, its custodian signs);
* the orchestrator's cancellation of a failed job's pending requests
  (:func:`cancel_job`).

Terminations and revocations are recorded under the custodian's lock, which
every key release holds too: no release relying on them is ordered after them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.errors import AlreadyExists, ConfigError, IntegrityError, NotFound
from orchestrator.labels import Classification
from orchestrator.nation.accreditation_state import REVOKED_KIND, signed_row
from orchestrator.nation.approvals import cancel_pending
from orchestrator.nation.code_approvals import APPROVED_KIND, accept_code_event
from orchestrator.nation.code_approvals import REVOKED_KIND as CODE_REVOKED_KIND
from orchestrator.nation.context import CustodianContext
from orchestrator.nation.store import AccreditationRow
from orchestrator.nation.usage import accept_acknowledgement
from orchestrator.policy.standing import AgreementStatus
from orchestrator.protocol.agreements import Agreement
from orchestrator.protocol.log import SignedEvent
from orchestrator.protocol.parties import Accreditation, SiteDescription
from orchestrator.protocol.statements import SignedStatement, verify_statement
from orchestrator.timeutil import rfc3339
from orchestrator.tlog.events import SignedEntry

__all__ = ["accept", "accredit", "add_agreement", "cancel_job",
           "revoke_accreditation"]


def add_agreement(ctx: CustodianContext, document: dict[str, Any]) -> dict[str, Any]:
    """Keep one version of an agreement this nation is a party to.

    Returns
    -------
    dict
        Its standing (:meth:`~orchestrator.policy.standing.Standing.to_json`).

    Raises
    ------
    ConfigError
        Malformed, this nation is not a party, or the version is below one held.
    AlreadyExists
        That id and version are held with another document.
    """
    agreement = Agreement.from_json(document, source="agreement document")
    if ctx.code not in agreement.parties:
        raise ConfigError(f"{ctx.code} is not a party to agreement {agreement.id}",
                          field="agreement.parties")
    versions = [int(d["version"]) for d in ctx.store.agreement_documents()
                if d["id"] == agreement.id]
    if versions and agreement.version < max(versions) and (
            agreement.version not in versions):
        raise ConfigError(f"version {agreement.version} is below the recorded version "
                          f"{max(versions)} of agreement {agreement.id!r}",
                          field="agreement.version")
    with ctx.lock():
        ctx.store.add_agreement(agreement.id, agreement.version, agreement.to_json(),
                                agreement.digest(), rfc3339(ctx.clock()))
    return _standing(ctx, agreement.id, agreement.version)


def _standing(ctx: CustodianContext, agreement_id: str, version: int) -> dict[str, Any]:
    for standing in ctx.standings():
        if standing.agreement.id == agreement_id and (
                standing.agreement.version == version):
            return standing.to_json()
    raise NotFound(f"agreement {agreement_id!r} v{version} is not held here")


def _accept_agreement_event(ctx: CustodianContext, signed: SignedEvent) -> SignedEntry:
    event = signed.event
    nation = ctx.check_officer_event(signed)
    agreement_id = str(event.body.get("agreement_id", ""))
    docs = [d for d in ctx.store.agreement_documents() if d["id"] == agreement_id]
    if not docs:
        raise NotFound(f"{ctx.code} holds no agreement {agreement_id!r}")
    parties = docs[-1]["document"]["parties"]
    if nation not in parties:
        raise IntegrityError(f"{nation} is not a party to {agreement_id}")
    kind = ("agreement-signature/v1" if event.kind == "agreement.signed"
            else "agreement-termination/v1")
    statement = verify_statement(SignedStatement.from_json(event.body),
                                 public_key=ctx.officer_key(nation), expected_type=kind,
                                 expected_nation=nation, source=agreement_id)
    if statement["agreement_id"] != agreement_id:
        raise IntegrityError("the event does not match the statement it carries")
    with ctx.lock():
        _refuse_repeat(ctx, signed, nation)
        before = {(s.agreement.id, s.agreement.version): s.status
                  for s in ctx.standings()}
        entry = ctx.submit(signed)
        after = {(s.agreement.id, s.agreement.version): s for s in ctx.standings()}
        for (aid, version), standing in after.items():
            if aid != agreement_id or before.get((aid, version)) is standing.status:
                continue
            if standing.status is AgreementStatus.EFFECTIVE:
                ctx.record("agreement.effective", {
                    "agreement_id": aid, "version": version,
                    "digest": standing.agreement.digest(),
                    "signed_by": list(standing.signed_by), "nation": ctx.code})
            elif standing.status is AgreementStatus.SUPERSEDED:
                top = max(v for (a, v), s in after.items()
                          if a == aid and s.status is AgreementStatus.EFFECTIVE)
                ctx.record("agreement.superseded", {
                    "agreement_id": aid, "version": version, "superseded_by": top,
                    "nation": ctx.code})
            elif standing.status is AgreementStatus.TERMINATED:
                cancel_pending(ctx, agreement_id=aid,
                               reason=f"agreement {aid} terminated")
        return entry


def _refuse_repeat(ctx: CustodianContext, signed: SignedEvent, nation: str) -> None:
    """Refuse a second signature of one version, or a second termination, by
    the same nation's officer (the same event delivered again is not refused:
    :meth:`CustodianContext.submit` returns its entry)."""
    event = signed.event
    for entry in ctx.journal.find(event.kind, agreement_id=event.body["agreement_id"]):
        if entry.event.event_id == event.event_id:
            return
        body = entry.event.body
        if body.get("statement", {}).get("nation") != nation:
            continue
        if event.kind == "agreement.terminated":
            raise AlreadyExists(f"{nation} officer has already terminated agreement "
                                f"{event.body['agreement_id']}")
        if body.get("version") == event.body.get("version"):
            raise AlreadyExists(f"{nation} officer has already signed agreement "
                                f"{event.body['agreement_id']} v{body.get('version')}")


def accept(ctx: CustodianContext, signed: SignedEvent) -> SignedEntry:
    """Check and record an officer's signed event delivered to this custodian.

    Raises
    ------
    ConfigError
        A kind a custodian does not accept, or not from an officer.
    IntegrityError
        Not signed by the pinned key of the officer it names, or its statement
        does not verify.
    NotFound, PolicyDenied
        It refers to something this custodian does not hold, or to a request
        that is no longer pending.
    """
    kind = signed.event.kind
    if kind in ("agreement.signed", "agreement.terminated"):
        return _accept_agreement_event(ctx, signed)
    if kind == "notification.acknowledged":
        return accept_acknowledgement(ctx, signed)
    if kind in (APPROVED_KIND, CODE_REVOKED_KIND):
        return accept_code_event(ctx, signed)
    if kind == "transfer.consented":
        from orchestrator.nation.transfer_keys import accept_consent

        return accept_consent(ctx, signed)
    raise ConfigError(f"a custodian does not accept {kind} events", field="event.kind")


def accredit(ctx: CustodianContext, description: dict[str, Any], *, ceiling: str,
             tee_kinds: list[str], expires_at: datetime,
             operator_nation: str | None = None) -> Accreditation:
    """Sign and keep this nation's accreditation of a site's key.

    Raises
    ------
    IntegrityError
        The site description is not signed by the key it names.
    ConfigError
        Bad ceiling, TEE kinds or expiry.
    """
    site = SiteDescription.verify(description)
    accreditation = Accreditation.create(
        ctx.code, site, custodian=ctx.signer,
        ceiling=Classification.parse(ceiling, field="--ceiling"),
        tee_kinds=tee_kinds, expires_at=expires_at, now=ctx.clock(),
        operator_nation=operator_nation)
    with ctx.lock():
        ctx.record("site.accredited", {
            "site": site.site, "accreditation_id": accreditation.accreditation_id,
            "site_key_id": site.key_id, "operator_nation":
            accreditation.operator_nation, "ceiling": ceiling,
            "tee_kinds": list(accreditation.tee_kinds),
            "expires_at": rfc3339(expires_at), **accreditation.signed.to_json()})
        ctx.store.add_accreditation(signed_row(AccreditationRow(
            accreditation.accreditation_id, site.site, accreditation.to_json(),
            rfc3339(ctx.clock())), ctx.signer.sign))
    return accreditation


def revoke_accreditation(ctx: CustodianContext, site: str, *, reason: str) -> list[str]:
    """Revoke every live accreditation of ``site`` at once (under the release
    lock, so no release to it follows the revocation).

    Raises
    ------
    ConfigError
        An empty reason.
    NotFound
        The site has no live accreditation by this nation.
    """
    if not reason.strip():
        raise ConfigError("a revocation needs a reason", field="--reason")
    with ctx.lock():
        live = [r for r in ctx.accreditation_rows()
                if r.site == site and r.revoked is None]
        if not live:
            raise NotFound(f"{ctx.code} holds no live accreditation of site {site}")
        ctx.record(REVOKED_KIND, {
            "site": site, "nation": ctx.code, "reason": reason,
            "accreditation_ids": [r.id for r in live]})
        at = rfc3339(ctx.clock())
        ctx.store.put_accreditation_state([signed_row(AccreditationRow(
            r.id, r.site, r.document, r.issued, at, reason), ctx.signer.sign)
            for r in live])
        return [r.id for r in live]


def cancel_job(ctx: CustodianContext, job_id: str, *, reason: str) -> list[str]:
    """Cancel this custodian's open approval requests of a failed job."""
    with ctx.lock():
        return cancel_pending(ctx, job_id=job_id, reason=reason)
