"""One nation's custodian in-process: the policy decision point and key holder.

:class:`LocalCustodian` implements :class:`~orchestrator.protocol.custodian.
CustodianApi` over the nation's own directory and a custody-log handle; it is
what the nation's service (:mod:`orchestrator.nation.service`) runs and what the
embedded default calls in-process. It is the only code that touches the
nation's KEK, and it records every decision *before* acting (see
:mod:`.decide`, :mod:`.release`, :mod:`.deliveries`, :mod:`.transfer_keys`,
:mod:`.steward`); a failure to record raises and releases nothing.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.errors import SovereignError
from orchestrator.nation import decide as _decide
from orchestrator.nation import deliveries, release, steward, transfer_keys
from orchestrator.nation.admissions import sync_admissions
from orchestrator.nation.approvals import accept_decision, approval_requests
from orchestrator.nation.context import CustodianContext
from orchestrator.nation.identity import NationState
from orchestrator.nation.usage import accept_allocation
from orchestrator.nation.verifier import EvidenceVerifier, SoftwareEvidenceVerifier
from orchestrator.nation.witness import NationWitness
from orchestrator.protocol.log import LogClient, SignedEvent
from orchestrator.protocol.release import (
    Grant,
    JobRequest,
    ReleaseRequest,
    WrappedKey,
    WrapRequest,
)
from orchestrator.protocol.statements import SignedStatement
from orchestrator.timeutil import Clock, system_clock
from orchestrator.tlog.events import SignedEntry
from orchestrator.tlog.note import NoteVerifier

__all__ = ["ATTEMPT_LEASE_S", "GRANT_LIFETIME_S", "LocalCustodian"]

GRANT_LIFETIME_S = release.GRANT_LIFETIME_S
ATTEMPT_LEASE_S = release.ATTEMPT_LEASE_S


class LocalCustodian:
    """Custodian of ``nation`` over its own directory, recording to ``log``.

    Parameters
    ----------
    nation
        The nation's own (initialised) directory.
    log
        The custody log handle (service client, or the operator in-process).
    clock
        The custodian's clock.
    verifier
        The attestation evidence verifier (software evidence by default).
    witnessed_logs
        The logs this nation witnesses (their note verifiers).
    """

    def __init__(self, nation: NationState, log: LogClient, *,
                 clock: Clock = system_clock,
                 verifier: EvidenceVerifier | None = None,
                 witnessed_logs: tuple[NoteVerifier, ...] = ()) -> None:
        self.ctx = CustodianContext(nation, log, clock,
                                    verifier or SoftwareEvidenceVerifier())
        self._witnessed = witnessed_logs or nation.witnessed_logs()

    @property
    def nation(self) -> str:
        """ISO 3166-1 alpha-3 code of this custodian's nation."""
        return self.ctx.code

    @property
    def actor(self) -> str:
        """This custodian's actor name in the custody log."""
        return self.ctx.actor

    # -- key release (sites) ---------------------------------------------------
    def challenge(self) -> str:
        """Issue a single-use nonce (base64 of 32 bytes, valid 300 s)."""
        return self.ctx.nonces.issue(self.ctx.clock())

    def decide(self, request: JobRequest) -> dict[str, Any]:
        """See :func:`orchestrator.nation.decide.decide` (after logging the keys
        this nation admitted: :func:`.admissions.sync_admissions`)."""
        sync_admissions(self.ctx)
        return _decide.decide(self.ctx, request)

    def release_key(self, request: ReleaseRequest) -> Grant:
        """See :func:`orchestrator.nation.release.release_key`."""
        return release.release_key(self.ctx, request)

    def wrap_key(self, request: WrapRequest) -> WrappedKey:
        """See :func:`orchestrator.nation.release.wrap_key`."""
        return release.wrap_key(self.ctx, request)

    # -- identity --------------------------------------------------------------
    def card(self) -> dict[str, Any]:
        """The nation's signed card."""
        return self.ctx.nation.card(clock=self.ctx.clock).to_json()

    # -- deliveries --------------------------------------------------------------
    def add_agreement(self, document: dict[str, Any]) -> dict[str, Any]:
        """See :func:`orchestrator.nation.deliveries.add_agreement`."""
        return deliveries.add_agreement(self.ctx, document)

    def accept(self, signed: SignedEvent) -> SignedEntry:
        """See :func:`orchestrator.nation.deliveries.accept`."""
        return deliveries.accept(self.ctx, signed)

    def accept_allocation(self, seq: int) -> SignedEntry:
        """See :func:`orchestrator.nation.usage.accept_allocation`."""
        return accept_allocation(self.ctx, seq)

    def accept_dataset_share(self, share: dict[str, Any]) -> str:
        """See :func:`orchestrator.nation.steward.accept_dataset_share`."""
        return steward.accept_dataset_share(self.ctx, share)

    def cancel_job(self, job_id: str, reason: str) -> list[str]:
        """See :func:`orchestrator.nation.deliveries.cancel_job`."""
        return deliveries.cancel_job(self.ctx, job_id, reason=reason)

    def decide_approval(self, signed: SignedStatement) -> dict[str, Any]:
        """See :func:`orchestrator.nation.approvals.accept_decision`; returns the
        request after, as JSON."""
        return accept_decision(self.ctx, signed).to_json()

    def console_login(self, signed: SignedStatement) -> int:
        """Record an officer's console login (``console.login``) once its
        ``console-login/v1`` statement verifies under the pinned officer key;
        return the entry's log index.

        Raises
        ------
        IntegrityError
            If it does not.
        """
        from orchestrator.canonical import sha256_hex
        from orchestrator.protocol.statements import verify_statement

        statement = verify_statement(
            signed, public_key=self.ctx.officer_key(self.nation),
            expected_type="console-login/v1", expected_nation=self.nation,
            source="console login")
        return self.ctx.record("console.login", {
            "nation": self.nation, "key_id": signed.key_id,
            "origin": statement["origin"],
            "challenge_digest": "sha256:" + sha256_hex(
                str(statement["challenge"]).encode())})

    def approvals(self, status: str | None = None) -> list[dict[str, Any]]:
        """This nation's approval requests, as JSON."""
        return [r.to_json() for r in approval_requests(
            self.ctx.journal, nation=self.ctx.code, status=status,
            at=self.ctx.clock())]

    def standings(self) -> list[dict[str, Any]]:
        """Standing of every agreement version held here, each with its
        ``document``."""
        return [{**s.to_json(), "document": s.agreement.to_json()}
                for s in self.ctx.standings()]

    # -- accreditation -----------------------------------------------------------
    def accredit(self, description: dict[str, Any], *, ceiling: str,
                 tee_kinds: list[str], expires_at: datetime,
                 operator_nation: str | None = None) -> dict[str, Any]:
        """See :func:`orchestrator.nation.deliveries.accredit`."""
        return deliveries.accredit(self.ctx, description, ceiling=ceiling,
                                   tee_kinds=tee_kinds, expires_at=expires_at,
                                   operator_nation=operator_nation).to_json()

    def revoke_accreditation(self, site: str, reason: str) -> list[str]:
        """See :func:`orchestrator.nation.deliveries.revoke_accreditation`."""
        return deliveries.revoke_accreditation(self.ctx, site, reason=reason)

    def accreditations(self, site: str | None = None) -> list[dict[str, Any]]:
        """The accreditations held here: ``{"accreditation", "revoked_at",
        "reason"}`` each, newest first."""
        return [{"accreditation": doc, "revoked_at": revoked, "reason": reason}
                for doc, revoked, reason in [
                    (r.document, r.revoked, r.reason)
                    for r in self.ctx.accreditation_rows()
                    if site is None or r.site == site]]

    # -- transfers and owner-side opening --------------------------------------
    def export_model_key(self, request: dict[str, Any]) -> dict[str, Any]:
        """See :func:`orchestrator.nation.transfer_keys.export_model_key`."""
        return transfer_keys.export_model_key(self.ctx, request)

    def import_model_key(self, sealed: dict[str, Any]) -> dict[str, Any]:
        """See :func:`orchestrator.nation.transfer_keys.import_model_key`."""
        return transfer_keys.import_model_key(self.ctx, sealed)

    def owners_of(self, object_id: str) -> frozenset[str] | None:
        """The owners of a model this custodian keyed (``None``: none such)."""
        from orchestrator.labels import Label

        try:
            record = self.ctx.store.object(object_id)
        except SovereignError:
            return None
        return frozenset(Label.from_json(record.label, derived=True).owners)

    def open_model_key(self, object_id: str, *, requester: str | None = None
                       ) -> bytes:
        """See :func:`orchestrator.nation.steward.unwrap_for_owner` (``requester``:
        the nation whose officer asks, when it came over the network)."""
        return steward.unwrap_for_owner(self.ctx, object_id, kind="model",
                                        requester=requester)

    def open_transferred_key(self, transfer_id: str, model_id: str,
                             model_digest: str) -> bytes:
        """See :func:`orchestrator.nation.transfer_keys.open_transferred_key`."""
        return transfer_keys.open_transferred_key(self.ctx, transfer_id, model_id,
                                                  model_digest)

    # -- witness -----------------------------------------------------------------
    def witness(self, body: bytes) -> bytes:
        """See :meth:`orchestrator.nation.witness.NationWitness.add_checkpoint`."""
        return NationWitness(self.ctx.nation.root, self.ctx.code, self.ctx.signer,
                             self._witnessed).add_checkpoint(body)

    def witness_history(self, origin: str) -> bytes:
        """See :meth:`orchestrator.nation.witness.NationWitness.history`."""
        return NationWitness(self.ctx.nation.root, self.ctx.code, self.ctx.signer,
                             self._witnessed).history(origin)
