"""What one nation's custodian works with: its own state and the log it writes to.

:class:`CustodianContext` bundles a nation's directory (:class:`NationState`),
its stores, and a :class:`~orchestrator.protocol.log.LogWriter` (the custody log
service, or the log operator in-process in the embedded default). Every event
the custodian records goes through :meth:`CustodianContext.record`: signed with
the custodian key, durably appended to the custody log, then kept in the
custodian's journal; a failure at any step raises and nothing is acted on
(fail closed). The decision modules (:mod:`.decide`, :mod:`.release`,
:mod:`.deliveries`) read only this context.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.crypto import key_id_of, verify_signature
from orchestrator.errors import ConfigError, IntegrityError, NotFound, PolicyDenied
from orchestrator.nation.accreditation_state import (
    check_rows,
    journal_revocations,
    reconcile,
)
from orchestrator.nation.approval_uses import ApprovalUses
from orchestrator.nation.grants import GrantStore
from orchestrator.nation.identity import NationState
from orchestrator.nation.journal import Journal
from orchestrator.nation.locks import agreement_state_lock
from orchestrator.nation.nonces import NonceStore
from orchestrator.nation.store import AccreditationRow, CustodianStore
from orchestrator.nation.verifier import EvidenceVerifier, SoftwareEvidenceVerifier
from orchestrator.policy.standing import Standing, effective_in, standings
from orchestrator.protocol.agreements import Agreement
from orchestrator.protocol.log import LogClient, SignedEvent
from orchestrator.protocol.parties import Accreditation
from orchestrator.protocol.statements import statements_in
from orchestrator.timeutil import Clock, system_clock
from orchestrator.tlog.events import CustodyEvent, SignedEntry, event_signing_input

__all__ = ["CustodianContext"]


@dataclass
class CustodianContext:
    """Nation ``nation.code``'s custodian state (see the module docstring).

    Parameters
    ----------
    nation
        The nation's own directory (initialised).
    log
        Where custody events are recorded (durably, before anything is released).
    clock
        The custodian's clock.
    verifier
        The attestation evidence verifier.
    """

    nation: NationState
    log: LogClient
    clock: Clock = system_clock
    verifier: EvidenceVerifier = field(default_factory=SoftwareEvidenceVerifier)

    def __post_init__(self) -> None:
        self.nation.require()
        root = self.nation.root
        self.journal = Journal(root / "journal.db")
        self.store = CustodianStore(root / "store.db")
        self.nonces = NonceStore(root / "nonces.db")
        self.grants = GrantStore(root / "grants.db")
        self.approval_uses = ApprovalUses(root / "approvals.db")
        self.keys = self.nation.keys
        self._signer = self.keys.custodian_signer()

    @property
    def code(self) -> str:
        """ISO 3166-1 alpha-3 code of the nation."""
        return self.nation.code

    @property
    def actor(self) -> str:
        """The custodian's actor name in the custody log."""
        return self.nation.actor

    @property
    def signer(self) -> Any:
        """The custodian's signing key."""
        return self._signer

    @contextmanager
    def lock(self) -> Iterator[None]:
        """The lock serialising agreement-state changes and key releases."""
        with agreement_state_lock(self.nation.root / "agreements.lock"):
            yield

    # -- recording -------------------------------------------------------------
    def record(self, kind: str, body: dict[str, Any], *,
               event_id: str | None = None) -> int:
        """Sign, durably log, then journal one event; return its log index.

        Raises
        ------
        LedgerError
            If the log did not acknowledge the entry (nothing is acted on).
        """
        entry = self.log.append(
            CustodyEvent.create(kind, self.actor, body, event_id=event_id),
            self._signer)
        self.journal.add(entry)
        return entry.seq

    def submit(self, signed: SignedEvent) -> SignedEntry:
        """Have the log record an event another party signed (idempotent), then
        journal it; the caller verified it first."""
        entry = self.log.submit(signed)
        return self.journal.add(entry)

    # -- facts -----------------------------------------------------------------
    def officer_keys(self) -> dict[str, bytes]:
        """Officer keys this nation trusts (its own and its peers', pinned)."""
        return self.nation.officer_keys()

    def standings(self) -> list[Standing]:
        """Standing of every agreement version this custodian holds: documents
        from its store, signatures and terminations it accepted, checked again
        against the pinned officer keys."""
        documents = [Agreement.from_json(d["document"], source=f"agreement {d['id']}")
                     for d in self.store.agreement_documents()]
        return standings(documents,
                         statements_in(self.journal.find("agreement.signed")),
                         statements_in(self.journal.find("agreement.terminated")),
                         self.officer_keys())

    def agreements(self) -> tuple[list[Agreement], dict[str, str]]:
        """``(effective, ended)``: see
        :func:`orchestrator.policy.standing.effective_in`."""
        return effective_in(self.standings())

    def accreditation(self, site: str, at: datetime | None = None) -> Accreditation:
        """This nation's live accreditation of ``site`` (the newest).

        Raises
        ------
        PolicyDenied
            If the site has none, or every one is revoked or expired.
        IntegrityError
            If a stored accreditation does not verify under the custodian key.
        """
        now = at or self.clock()
        public = self._signer.public_bytes()
        for row in self.accreditation_rows():
            if row.site != site or row.revoked is not None:
                continue
            accreditation = Accreditation.verify(row.document, custodian_public=public,
                                                 source=f"accreditation of {site}")
            if accreditation.site == site and accreditation.live_at(now):
                return accreditation
        raise PolicyDenied(f"site {site} is not accredited by {self.code}", reasons=[
            f"accreditation: {self.code} holds no live accreditation of site "
            f"{site} (never accredited, revoked or expired)"])

    def accreditation_rows(self) -> list[AccreditationRow]:
        """Every accreditation row, newest first, once all are checked
        (:func:`orchestrator.nation.accreditation_state.check_rows`).

        Raises
        ------
        IntegrityError
            A row is not as the custodian signed it, or disagrees with its
            journal: every release stops until the operator reconciles.
        """
        public = bytes(self._signer.public_bytes())
        rows = self.store.accreditation_rows()
        check_rows(rows, journal_revocations(self.journal, self.actor, public), public,
                   source=str(self.store.path))
        return rows

    def reconcile_accreditations(self) -> list[str]:
        """Re-derive every accreditation row's state from the journal and re-sign
        it; log ``site.accreditation.reconciled`` naming the rows changed (if any);
        return their ids."""
        public = bytes(self._signer.public_bytes())
        with self.lock():
            rows = self.store.accreditation_rows()
            fixed = reconcile(rows, journal_revocations(self.journal, self.actor,
                                                        public), self._signer.sign)
            if fixed:
                self.record("site.accreditation.reconciled", {
                    "nation": self.code, "accreditation_ids": [r.id for r in fixed],
                    "revoked": {r.id: r.revoked for r in fixed}})
                self.store.put_accreditation_state(fixed)
        return [r.id for r in fixed]

    def peer_custodian_key(self, nation: str) -> bytes:
        """The pinned custodian key of ``nation`` (this nation's own included).

        Raises
        ------
        NotFound
            If the nation is not pinned.
        """
        if nation == self.code:
            return bytes(self._signer.public_bytes())
        card = self.nation.peers().get(nation)
        if card is None:
            raise NotFound(f"{self.code} does not know nation {nation} "
                           "(no pinned card)")
        return card.custodian_public

    def officer_key(self, nation: str) -> bytes:
        """The pinned officer key of ``nation``.

        Raises
        ------
        IntegrityError
            If none is pinned.
        """
        key = self.officer_keys().get(nation)
        if key is None:
            raise IntegrityError(f"{self.code} has no pinned officer key for {nation}")
        return key

    def check_officer_event(self, signed: SignedEvent) -> str:
        """The nation whose officer signed ``signed`` (the event's actor), after
        checking the signature against that officer's pinned key.

        Raises
        ------
        ConfigError
            The actor is not an officer.
        IntegrityError
            The officer is unknown here, or the signature is not by its pinned key.
        """
        role, _, nation = signed.event.actor.partition(":")
        if role != "officer":
            raise ConfigError(f"{signed.event.kind} must come from an officer, not "
                              f"{signed.event.actor}", field="event.actor")
        key = self.officer_key(nation)
        if signed.signer != key_id_of(key):
            raise IntegrityError(f"event is not signed by the pinned {nation} "
                                 "officer key")
        try:
            verify_signature(key, signed.signature, event_signing_input(signed.event))
        except IntegrityError as exc:
            raise IntegrityError(f"{nation} officer signature on the event does not "
                                 "verify") from exc
        return nation
