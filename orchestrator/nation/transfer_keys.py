"""Custodian-side key operations of a model transfer (:mod:`orchestrator.transfer`).

Runs inside a nation's custodian (:class:`~orchestrator.nation.custodian.LocalCustodian`
delegates to :class:`TransferKeys`), the only code that touches the nation's KEK:

:meth:`TransferKeys.export_model_key` (an *owner's* custodian)
    Under the agreement-state lock (the one terminations and revocations hold
    while they append, so no decision relying on an agreement is ordered after its
    end): verify every presented consent against the registered officer keys,
    gather the facts from the registry and the custody log (only entries whose
    custodian signature verifies count), decide
    (:func:`~orchestrator.transfer.evaluate_transfer`), log ``transfer.decided``
    (and ``transfer.denied``, then raise) *before* acting;
    then unwrap the model DEK under its own KEK and HPKE-seal it (RFC 9180,
    DHKEM(X25519, HKDF-SHA256), AES-256-GCM) to the recipient custodian's
    registered static HPKE key, the ``info`` binding transfer id, model id, model
    digest and recipient (:func:`~orchestrator.transfer.transfer_hpke_info`).
:meth:`TransferKeys.import_model_key` (the *recipient's* custodian)
    Check that the owner's custodian logged a permitting ``transfer.decided`` for
    exactly this transfer (signature verified) and that it is not completed yet;
    open the sealed DEK with its static HPKE key, wrap it under its own KEK, log
    ``transfer.completed`` and return the wrapped DEK.
:meth:`TransferKeys.open_transferred_key` (the recipient's custodian)
    Check the transfer is this nation's and completed, log ``transfer.opened``
    (or ``model.open.denied``), unwrap.

The orchestrator relays only the HPKE ciphertext and the KEK-wrapped result.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, NoReturn

from orchestrator.canonical import b64d, b64e, digest_of
from orchestrator.crypto import (
    DEK_SIZE,
    HpkeSuite,
    hpke_open,
    hpke_seal,
    key_id_of,
    verify_signature,
)
from orchestrator.errors import (
    AlreadyExists,
    ConfigError,
    IntegrityError,
    NotFound,
    PolicyDenied,
    SovereignError,
)
from orchestrator.log.store import CustodyLog
from orchestrator.nation.identity import NationKeys
from orchestrator.nation.locks import agreement_state_lock
from orchestrator.policy.transfer import (
    CONSENT_TYPE,
    ConsentFacts,
    ModelFacts,
    TransferDecision,
    TransferFacts,
    evaluate_transfer,
)
from orchestrator.protocol.agreements import Agreement
from orchestrator.protocol.statements import SignedStatement, verify_statement
from orchestrator.protocol.transfer import TransferRequest, transfer_hpke_info
from orchestrator.registry import Registry, SealedObjectRecord
from orchestrator.state import StateDir
from orchestrator.timeutil import Clock, system_clock
from orchestrator.tlog.events import CustodyEvent, SignedEntry

__all__ = ["TransferKeys", "verify_consents"]


def verify_consents(signed: Iterable[SignedStatement],
                    officer_keys: Mapping[str, bytes]
                    ) -> tuple[list[ConsentFacts], list[str]]:
    """Verify consent statements against registered officer keys (fail closed).

    Parameters
    ----------
    signed
        Presented ``transfer-consent/v1`` statements, unverified.
    officer_keys
        Nation -> registered 32-byte Ed25519 officer public key.

    Returns
    -------
    tuple
        ``(verified, problems)``: the content of every statement whose signature
        verifies for the nation it claims, and one line per refused statement
        (unknown nation, foreign key, altered content, wrong type, malformed).
        Duplicates of one consent id and nation are kept once.
    """
    pairs, problems = _verified_pairs(signed, officer_keys)
    return [facts for facts, _ in pairs], problems


def _verified_pairs(signed: Iterable[SignedStatement],
                    officer_keys: Mapping[str, bytes]
                    ) -> tuple[list[tuple[ConsentFacts, SignedStatement]], list[str]]:
    verified: dict[tuple[str, str], tuple[ConsentFacts, SignedStatement]] = {}
    problems: list[str] = []
    for item in signed:
        nation = item.nation
        cid = str(item.statement.get("consent_id", "?"))
        key = officer_keys.get(nation)
        if key is None:
            problems.append(f"consent {cid} claims unknown nation {nation!r}")
            continue
        try:
            statement = verify_statement(item, public_key=key,
                                         expected_type=CONSENT_TYPE,
                                         expected_nation=nation,
                                         source=f"consent {cid}")
            facts = ConsentFacts.from_statement(statement)
        except SovereignError as exc:
            problems.append(f"consent {cid}: {exc.message}")
            continue
        verified.setdefault((facts.nation, facts.consent_id), (facts, item))
    return list(verified.values()), problems


class TransferKeys:
    """Transfer key operations of nation ``nation``'s custodian over ``state``.

    Parameters
    ----------
    state
        The state directory (registry, custody log, the nation's key files).
    nation
        ISO 3166-1 alpha-3 code of this custodian's nation.
    clock
        Decision time source (aware UTC datetimes).
    """

    def __init__(self, state: StateDir, nation: str, *,
                 clock: Clock = system_clock) -> None:
        self._state = state
        self._nation = nation
        self._clock = clock
        self._keys = NationKeys(state.nation_dir(nation), nation)
        self._registry = Registry(state.registry_db)
        self._log = CustodyLog(state.custody_db)

    @property
    def actor(self) -> str:
        """This custodian's actor name in the custody log."""
        return f"custodian:{self._nation}"

    def _record(self, kind: str, body: dict[str, Any]) -> int:
        entry = self._log.append(CustodyEvent.create(kind, self.actor, body),
                                 self._keys.custodian_signer())
        return entry.seq

    # -- facts ---------------------------------------------------------------
    def _custodian_keys(self) -> dict[str, bytes]:
        keys: dict[str, bytes] = {}
        for nation in self._registry.nations():
            try:
                keys[f"custodian:{nation.code}"] = b64d(nation.custodian_public)
            except ValueError:
                continue
        return keys

    def _signed_entries(self, kind: str, **match: str) -> list[SignedEntry]:
        """Entries of ``kind`` signed by the registered key of a custodian actor."""
        keys = self._custodian_keys()
        out = []
        for entry in self._log.find(kind, **match):
            public = keys.get(entry.event.actor)
            if public is None or entry.signer != key_id_of(public):
                continue
            try:
                verify_signature(public, entry.signature, entry.signed_bytes())
            except IntegrityError:
                continue
            out.append(entry)
        return out

    def _officer_keys(self) -> dict[str, bytes]:
        keys: dict[str, bytes] = {}
        for nation in self._registry.nations():
            try:
                keys[nation.code] = b64d(nation.officer_public)
            except ValueError:
                continue  # a malformed key verifies nothing
        return keys

    def _facts(self, request: TransferRequest, record: SealedObjectRecord
               ) -> tuple[TransferFacts, list[SignedStatement]]:
        """The facts of ``request``, and the presented consents that verified."""
        from orchestrator.agreement_state import effective_agreements

        model = ModelFacts.from_record(record)
        pairs, consent_problems = _verified_pairs(request.consents,
                                                  self._officer_keys())
        consents = [facts for facts, _ in pairs]
        effective, ended = effective_agreements(self._state)
        documents: dict[str, Agreement] = {}
        for doc in self._registry.agreement_documents():
            documents[doc["id"]] = Agreement.from_json(
                doc["document"], source=f"agreement {doc['id']}")
        documents.update({a.id: a for a in effective})
        derived: set[str] = set()
        if model.job_id:
            for entry in self._signed_entries("policy.decided", job_id=model.job_id):
                decision = entry.event.body.get("decision") or {}
                if decision.get("outcome") != "permit":
                    continue
                if decision.get("agreement_id"):
                    derived.add(str(decision["agreement_id"]))
                derived.update(str(a) for a in decision.get("joint_agreement_ids", ()))
        holders: dict[str, tuple[str, ...]] = {}
        used: dict[str, str] = {}
        for entry in self._signed_entries("transfer.completed", model_id=record.id):
            body = entry.event.body
            if entry.event.actor != f"custodian:{body.get('recipient')}":
                continue
            recipient = str(body["recipient"])
            holders[recipient] = tuple(sorted(
                set(holders.get(recipient, ()))
                | {str(a) for a in body.get("relied_agreement_ids", ())}))
        # A consent authorises one transfer: spent once an owner's custodian has
        # logged a permit relying on it (under the lock, so never twice).
        for entry in self._signed_entries("transfer.decided", model_id=record.id):
            decision_doc = entry.event.body.get("decision") or {}
            owner = str(entry.event.body.get("owner"))
            if (decision_doc.get("permit") is True and owner in model.owners
                    and entry.event.actor == f"custodian:{owner}"):
                for cid in decision_doc.get("consent_ids", ()):
                    used.setdefault(str(cid), str(entry.event.body.get("transfer_id")))
        problems = []
        if request.model_digest != record.sealed_digest:
            problems.append(f"request names digest {request.model_digest}, the "
                            f"registered sealed model is {record.sealed_digest}")
        try:
            self._registry.nation(request.recipient)
        except NotFound:
            problems.append(f"{request.recipient} has no registered custodian to "
                            "receive the key")
        return TransferFacts(
            model=model, recipient=request.recipient, end_use=request.end_use,
            at=self._clock(), consents=tuple(consents),
            consent_problems=tuple(consent_problems), agreements=tuple(effective),
            ended=dict(ended), documents=documents,
            derived_under=tuple(sorted(derived)), sender=request.sender,
            holders=holders, used_consents=used, request_problems=tuple(problems),
        ), [item for _, item in pairs]

    # -- owner side ----------------------------------------------------------
    def export_model_key(self, request_doc: Mapping[str, Any]) -> dict[str, Any]:
        """Decide a transfer as an owner and seal the model DEK to the recipient.

        Parameters
        ----------
        request_doc
            :meth:`orchestrator.transfer.TransferRequest.to_json`.

        Returns
        -------
        dict
            ``transfer_id``, ``model_id``, ``model_digest``, ``recipient``,
            ``end_use``, ``sender``, ``exporter`` (this nation), ``hpke_suite``,
            ``sealed_dek`` (base64 HPKE ``enc || ct``: the DEK, openable only by the
            recipient custodian's static key), ``decision``, ``consents_digest``
            (over the verified consents that counted) and ``decision_seq`` (the
            custody-log index of ``transfer.decided``).

        Raises
        ------
        PolicyDenied
            The decision denies (``reasons``: every failed rule), this nation is
            not an owner of the model, or its KEK version is unavailable; the
            refusal is logged (``transfer.denied``) first.
        NotFound
            The model is not registered.
        ConfigError
            The request or the model's label is malformed.
        LedgerError
            The decision could not be logged (nothing is released).
        """
        request = TransferRequest.from_json(request_doc)
        with agreement_state_lock(self._state.root / "agreements.lock"):
            record = self._registry.model(request.model_id)
            base = {"transfer_id": request.transfer_id, "model_id": record.id,
                    "model_digest": record.sealed_digest,
                    "recipient": request.recipient, "end_use": request.end_use,
                    "sender": request.sender, "owner": self._nation,
                    "request_digest": request.digest()}
            try:
                facts, verified = self._facts(request, record)
            except ConfigError as exc:
                self._record("transfer.denied", {**base, "reasons": [exc.message]})
                raise PolicyDenied(f"{self._nation} custodian: deny",
                                   reasons=[exc.message]) from exc
            if (self._nation not in facts.model.owners
                    or self._nation not in record.wrapped_keys):
                reason = f"{self._nation} is not an owner of {record.id}"
                self._record("transfer.denied", {**base, "reasons": [reason]})
                raise PolicyDenied(f"{self._nation} custodian: deny", reasons=[reason])
            decision = evaluate_transfer(facts)
            counted = [c.to_json() for c in verified
                       if c.statement.get("consent_id") in decision.consent_ids
                       and c.nation in facts.model.owners]
            consents_digest = digest_of(sorted(
                SignedStatement.from_json(c).digest() for c in counted))
            seq = self._record("transfer.decided", {
                **base, "consents": counted, "consents_digest": consents_digest,
                "decision": decision.to_json()})
            if not decision.permit:
                self._deny(base, decision.denial_reasons(), seq)
            wrapped = record.wrapped_keys[self._nation]
            keystore = self._keys.keystore(clock=self._clock, audit=self._record)
            try:
                keystore.check_unwrap(wrapped["kek_id"], int(wrapped["kek_version"]))
            except PolicyDenied as exc:  # KeyUnavailable: disabled, pending, ...
                self._deny(base, [f"KEK: {exc.message}"], seq)
            recipient_public = b64d(self._registry.nation(request.recipient)
                                    .hpke_public)
            dek = keystore.unwrap(wrapped["kek_id"], int(wrapped["kek_version"]),
                                  b64d(wrapped["wrapped_dek"]))
        sealed = hpke_seal(HpkeSuite.X25519, recipient_public, dek, transfer_hpke_info(
            request.transfer_id, record.id, request.recipient, record.sealed_digest))
        return {"transfer_id": request.transfer_id, "model_id": record.id,
                "model_digest": record.sealed_digest, "recipient": request.recipient,
                "end_use": request.end_use, "sender": request.sender,
                "exporter": self._nation, "hpke_suite": HpkeSuite.X25519.value,
                "sealed_dek": b64e(sealed), "decision": decision.to_json(),
                "consents_digest": consents_digest, "decision_seq": seq}

    def _deny(self, base: dict[str, Any], reasons: list[str], seq: int) -> NoReturn:
        self._record("transfer.denied", {**base, "reasons": reasons,
                                         "decision_seq": seq})
        raise PolicyDenied(f"{self._nation} custodian: deny", reasons=reasons)

    # -- recipient side ------------------------------------------------------
    def _permit_entry(self, sealed: Mapping[str, Any], record: SealedObjectRecord
                      ) -> SignedEntry | None:
        owners = ModelFacts.from_record(record).owners
        for entry in self._signed_entries("transfer.decided",
                                          transfer_id=str(sealed["transfer_id"])):
            body = entry.event.body
            owner = str(body.get("owner"))
            if (entry.event.actor == f"custodian:{owner}" and owner in owners
                    and owner == sealed.get("exporter")
                    and body.get("model_id") == record.id
                    and body.get("model_digest") == record.sealed_digest
                    and body.get("recipient") == self._nation
                    and body.get("end_use") == sealed.get("end_use")
                    and (body.get("decision") or {}).get("permit") is True):
                return entry
        return None

    def import_model_key(self, sealed: Mapping[str, Any]) -> dict[str, Any]:
        """Receive a transferred model DEK and wrap it under this nation's KEK.

        Parameters
        ----------
        sealed
            :meth:`export_model_key` output, relayed by the orchestrator.

        Returns
        -------
        dict
            ``transfer_id``, ``recipient``, ``kek_id``, ``kek_version``,
            ``wrapped_dek`` (base64 RFC 5649 under this nation's KEK) and
            ``completed_seq``.

        Raises
        ------
        PolicyDenied
            The transfer is for another nation, or no permitting, signed
            ``transfer.decided`` by an owner's custodian matches it (logged as
            ``transfer.denied``).
        AlreadyExists
            The transfer is already completed (a replay).
        IntegrityError
            The sealed DEK does not open for this transfer and key.
        NotFound
            The model is not registered.
        """
        try:
            transfer_id = str(sealed["transfer_id"])
            model_id = str(sealed["model_id"])
            blob = b64d(str(sealed["sealed_dek"]), what="sealed_dek")
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"malformed sealed transfer key: {exc}") from exc
        record = self._registry.model(model_id)
        base = {"transfer_id": transfer_id, "model_id": record.id,
                "model_digest": record.sealed_digest,
                "recipient": str(sealed.get("recipient")),
                "end_use": str(sealed.get("end_use")),
                "sender": sealed.get("sender"), "by": self._nation}
        if sealed.get("recipient") != self._nation:
            reason = f"transfer {transfer_id} is for {sealed.get('recipient')}, not " \
                     f"{self._nation}"
            self._record("transfer.denied", {**base, "reasons": [reason]})
            raise PolicyDenied(f"{self._nation} custodian: refuse", reasons=[reason])
        if self._log.find("transfer.completed", transfer_id=transfer_id):
            raise AlreadyExists(f"transfer {transfer_id} is already completed")
        decided = self._permit_entry(sealed, record)
        if decided is None:
            reason = (f"no permitting transfer.decided by an owner's custodian "
                      f"matches transfer {transfer_id}")
            self._record("transfer.denied", {**base, "reasons": [reason]})
            raise PolicyDenied(f"{self._nation} custodian: refuse", reasons=[reason])
        dek = hpke_open(self._keys.hpke_key(), blob, transfer_hpke_info(
            transfer_id, record.id, self._nation, record.sealed_digest))
        if len(dek) != DEK_SIZE:
            raise IntegrityError(f"transferred DEK has {len(dek)} bytes, not "
                                 f"{DEK_SIZE}", source=transfer_id)
        keystore = self._keys.keystore(clock=self._clock, audit=self._record)
        version, wrapped = keystore.wrap(dek)
        decision = TransferDecision.from_json(decided.event.body["decision"])
        seq = self._record("transfer.completed", {
            **base, "exporter": decided.event.body["owner"],
            "end_use": decided.event.body["end_use"],
            "sender": decided.event.body.get("sender"),
            "kek_id": keystore.kek_id, "kek_version": version,
            "consent_ids": list(decision.consent_ids),
            "relied_agreement_ids": list(decision.relied_agreement_ids),
            "decision_seq": decided.seq})
        return {"transfer_id": transfer_id, "recipient": self._nation,
                "kek_id": keystore.kek_id, "kek_version": version,
                "wrapped_dek": b64e(wrapped), "completed_seq": seq}

    def open_transferred_key(self, transfer: Mapping[str, Any]) -> bytes:
        """Unwrap the DEK of a model transferred to this nation, for its officer.

        Parameters
        ----------
        transfer
            The registry :class:`~orchestrator.registry.TransferRecord` as JSON.

        Returns
        -------
        bytes
            The 32-byte model DEK (for decrypting the sealed model in this
            nation's trust boundary only).

        Raises
        ------
        PolicyDenied
            This nation is not the recipient, the transfer has no
            ``transfer.completed`` by this custodian with this key, or the KEK
            version is unavailable (logged as ``model.open.denied``).
        IntegrityError
            The registered model's digest differs from the transferred one.
        NotFound
            The model is not registered.
        """
        try:
            transfer_id = str(transfer["id"])
            model_id = str(transfer["model_id"])
            wrapped = dict(transfer["wrapped_key"])
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"malformed transfer record: {exc}") from exc
        record = self._registry.model(model_id)
        body = {"object_id": record.id, "kind": "transferred-model",
                "nation": self._nation, "transfer_id": transfer_id}

        def refuse(reason: str) -> PolicyDenied:
            self._record("model.open.denied", {**body, "reason": reason})
            return PolicyDenied(f"{self._nation} may not open {record.id}",
                                reasons=[reason])

        if transfer.get("recipient") != self._nation:
            raise refuse(f"transfer {transfer_id} is to {transfer.get('recipient')}")
        completed = [
            e for e in self._signed_entries("transfer.completed",
                                            transfer_id=transfer_id)
            if e.event.actor == self.actor
            and e.event.body.get("model_id") == record.id
            and e.event.body.get("kek_id") == wrapped.get("kek_id")
            and e.event.body.get("kek_version") == wrapped.get("kek_version")]
        if not completed:
            raise refuse(f"transfer {transfer_id} was not completed by the "
                         f"{self._nation} custodian with this key")
        if completed[-1].event.body.get("model_digest") != record.sealed_digest:
            raise IntegrityError(f"model {record.id} is not the one transferred",
                                 source=transfer_id)
        keystore = self._keys.keystore(clock=self._clock, audit=self._record)
        try:
            keystore.check_unwrap(str(wrapped["kek_id"]), int(wrapped["kek_version"]))
        except PolicyDenied as exc:
            raise refuse(exc.message) from exc
        self._record("transfer.opened", {
            "transfer_id": transfer_id, "model_id": record.id,
            "recipient": self._nation, "end_use": transfer.get("end_use"),
            "nation": self._nation})
        return keystore.unwrap(str(wrapped["kek_id"]), int(wrapped["kek_version"]),
                               b64d(str(wrapped["wrapped_dek"])))
