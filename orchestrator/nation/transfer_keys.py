"""Custodian-side key operations of a model transfer.

Runs inside a nation's custodian, the only code that touches its KEK. Facts come
from the custodian's own records and from custody-log entries whose signatures
it verifies against pinned keys, never from the orchestrator's catalogue:

:func:`export_model_key` (each *owner's* custodian, deciding for its own
    nation's agreements; a transfer needs every owner's permit)
    Under the custodian's lock (the one terminations hold too): the model's
    label, job and wrapped DEK from its own record of the object it wrapped;
    every presented consent verified against the pinned officer keys; completed
    transfers and spent consents from custodian-signed log entries; decide
    (:func:`~orchestrator.policy.transfer.evaluate_transfer`), record
    ``transfer.decided`` (and ``transfer.denied``, then raise) *before* acting;
    then unwrap the DEK and HPKE-seal it (RFC 9180) to the recipient's pinned
    HPKE key, ``info`` binding transfer, model, digest and recipient.
:func:`import_model_key` (the *recipient's* custodian)
    Check that every owner's custodian recorded a permitting ``transfer.decided``
    for exactly this transfer (signature checked against its pinned key), open
    the DEK, wrap it under its own KEK, keep the object's record, record
    ``transfer.completed``.
:func:`open_transferred_key`
    For the recipient's own officer: record ``transfer.opened``, unwrap.
:func:`accept_consent`
    An owner's officer's ``transfer.consented`` event, checked and recorded.

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
from orchestrator.labels import Label
from orchestrator.nation.context import CustodianContext
from orchestrator.nation.store import OwnedObject
from orchestrator.policy.transfer import (
    CONSENT_TYPE,
    ConsentFacts,
    ModelFacts,
    TransferDecision,
    TransferFacts,
    combine_decisions,
    evaluate_transfer,
)
from orchestrator.protocol.agreements import Agreement
from orchestrator.protocol.log import SignedEvent
from orchestrator.protocol.statements import SignedStatement, verify_statement
from orchestrator.protocol.transfer import TransferRequest, transfer_hpke_info
from orchestrator.timeutil import rfc3339
from orchestrator.tlog.events import SignedEntry

__all__ = ["accept_consent", "export_model_key", "import_model_key",
           "open_transferred_key", "verify_consents"]


def verify_consents(signed: Iterable[SignedStatement],
                    officer_keys: Mapping[str, bytes]
                    ) -> tuple[list[ConsentFacts], list[str]]:
    """Verify consent statements against pinned officer keys (fail closed).

    Returns
    -------
    tuple
        ``(verified, problems)``: the content of every statement whose signature
        verifies for the nation it claims, and one line per refused statement.
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


def _custodian_entries(ctx: CustodianContext, kind: str,
                       **match: str) -> list[SignedEntry]:
    """Log entries of ``kind`` signed by the pinned key of the custodian they name
    (this nation's own included); others are ignored (fail closed)."""
    out = []
    for entry in ctx.log.find(kind, **match):
        role, _, nation = entry.event.actor.partition(":")
        if role != "custodian":
            continue
        try:
            public = ctx.peer_custodian_key(nation)
        except NotFound:
            continue
        if entry.signer != key_id_of(public):
            continue
        try:
            verify_signature(public, entry.signature, entry.signed_bytes())
        except IntegrityError:
            continue
        out.append(entry)
    return out


def _facts(ctx: CustodianContext, request: TransferRequest, record: OwnedObject
           ) -> tuple[TransferFacts, list[SignedStatement]]:
    """The facts of ``request``, and the presented consents that verified."""
    model = ModelFacts.from_label(record.id, record.sealed_digest, record.label,
                                  record.job_id)
    pairs, consent_problems = _verified_pairs(request.consents, ctx.officer_keys())
    effective, ended = ctx.agreements()
    documents: dict[str, Agreement] = {
        d["id"]: Agreement.from_json(d["document"], source=f"agreement {d['id']}")
        for d in ctx.store.agreement_documents()}
    documents.update({a.id: a for a in effective})
    derived: set[str] = set()
    for entry in ctx.journal.find("policy.decided", job_id=record.job_id):
        decision = entry.event.body.get("decision") or {}
        if decision.get("outcome") != "permit":
            continue
        if decision.get("agreement_id"):
            derived.add(str(decision["agreement_id"]))
        derived.update(str(a) for a in decision.get("joint_agreement_ids", ()))
    holders: dict[str, tuple[str, ...]] = {}
    for entry in _custodian_entries(ctx, "transfer.completed", model_id=record.id):
        body = entry.event.body
        if entry.event.actor != f"custodian:{body.get('recipient')}":
            continue
        recipient = str(body["recipient"])
        holders[recipient] = tuple(sorted(
            set(holders.get(recipient, ()))
            | {str(a) for a in body.get("relied_agreement_ids", ())}))
    used: dict[str, str] = {}  # a consent authorises one transfer
    for entry in _custodian_entries(ctx, "transfer.decided", model_id=record.id):
        if entry.event.body.get("transfer_id") == request.transfer_id:
            continue  # another owner's permit of this very transfer
        decision_doc = entry.event.body.get("decision") or {}
        owner = str(entry.event.body.get("owner"))
        if (decision_doc.get("permit") is True and owner in model.owners
                and entry.event.actor == f"custodian:{owner}"):
            for cid in decision_doc.get("consent_ids", ()):
                used.setdefault(str(cid), str(entry.event.body.get("transfer_id")))
    problems = []
    if record.sealed_digest and request.model_digest != record.sealed_digest:
        problems.append(f"request names digest {request.model_digest}, the sealed "
                        f"model this custodian keyed is {record.sealed_digest}")
    if request.recipient != ctx.code and request.recipient not in ctx.nation.peers():
        problems.append(f"{request.recipient} has no custodian known to "
                        f"{ctx.code} to receive the key")
    return TransferFacts(
        model=model, recipient=request.recipient, end_use=request.end_use,
        at=ctx.clock(), consents=tuple(f for f, _ in pairs),
        consent_problems=tuple(consent_problems), agreements=tuple(effective),
        ended=dict(ended), documents=documents, derived_under=tuple(sorted(derived)),
        sender=request.sender, holders=holders, used_consents=used,
        request_problems=tuple(problems), deciding_owners=(ctx.code,),
    ), [item for _, item in pairs]


def _deny(ctx: CustodianContext, base: dict[str, Any], reasons: list[str],
          seq: int | None = None) -> NoReturn:
    extra = {} if seq is None else {"decision_seq": seq}
    ctx.record("transfer.denied", {**base, "reasons": reasons, **extra})
    raise PolicyDenied(f"{ctx.code} custodian: deny", reasons=reasons)


def export_model_key(ctx: CustodianContext,
                     request_doc: Mapping[str, Any]) -> dict[str, Any]:
    """Decide a transfer as an owner and seal the model DEK to the recipient.

    Returns
    -------
    dict
        ``transfer_id``, ``model_id``, ``model_digest``, ``recipient``,
        ``end_use``, ``sender``, ``exporter`` (this nation), ``hpke_suite``,
        ``sealed_dek`` (base64 HPKE ``enc || ct``), ``decision``,
        ``consents_digest`` and ``decision_seq``.

    Raises
    ------
    PolicyDenied
        The decision denies, this nation keyed no such model, or its KEK version
        is unavailable; ``transfer.denied`` is recorded first.
    ConfigError
        The request is malformed.
    LedgerError
        The decision could not be recorded (nothing is released).
    """
    request = TransferRequest.from_json(request_doc)
    base = {"transfer_id": request.transfer_id, "model_id": request.model_id,
            "model_digest": request.model_digest, "recipient": request.recipient,
            "end_use": request.end_use, "sender": request.sender,
            "owner": ctx.code, "request_digest": request.digest()}
    with ctx.lock():
        try:
            record = ctx.store.object(request.model_id)
        except NotFound:
            _deny(ctx, base, [f"{ctx.code} keyed no model {request.model_id}"])
        try:
            facts, verified = _facts(ctx, request, record)
        except ConfigError as exc:
            _deny(ctx, base, [exc.message])
        if ctx.code not in facts.model.owners:
            _deny(ctx, base, [f"{ctx.code} is not an owner of {record.id}"])
        decision = evaluate_transfer(facts)
        counted = [c.to_json() for c in verified
                   if c.statement.get("consent_id") in decision.consent_ids
                   and c.nation in facts.model.owners]
        consents_digest = digest_of(sorted(
            SignedStatement.from_json(c).digest() for c in counted))
        seq = ctx.record("transfer.decided", {
            **base, "consents": counted, "consents_digest": consents_digest,
            "decision": decision.to_json()})
        if not decision.permit:
            _deny(ctx, base, decision.denial_reasons(), seq)
        wrapped = record.wrapped
        keystore = ctx.keys.keystore(clock=ctx.clock, audit=ctx.record)
        try:
            keystore.check_unwrap(wrapped["kek_id"], int(wrapped["kek_version"]))
        except PolicyDenied as exc:  # KeyUnavailable: disabled, pending, ...
            _deny(ctx, base, [f"KEK: {exc.message}"], seq)
        recipient_public = ctx.nation.peers()[request.recipient].hpke_public
        dek = keystore.unwrap(wrapped["kek_id"], int(wrapped["kek_version"]),
                              b64d(wrapped["wrapped_dek"]))
    sealed = hpke_seal(HpkeSuite.X25519, recipient_public, dek, transfer_hpke_info(
        request.transfer_id, record.id, request.recipient, request.model_digest))
    return {"transfer_id": request.transfer_id, "model_id": record.id,
            "model_digest": request.model_digest, "recipient": request.recipient,
            "end_use": request.end_use, "sender": request.sender,
            "exporter": ctx.code, "hpke_suite": HpkeSuite.X25519.value,
            "sealed_dek": b64e(sealed), "decision": decision.to_json(),
            "consents_digest": consents_digest, "decision_seq": seq,
            "label": record.label}


def _permit_entries(ctx: CustodianContext, sealed: Mapping[str, Any],
                    owners: Iterable[str]) -> list[SignedEntry] | None:
    """The permitting ``transfer.decided`` of every owner's custodian for exactly
    this transfer (the exporter's first), or ``None`` if one is missing."""
    found: dict[str, SignedEntry] = {}
    for entry in _custodian_entries(ctx, "transfer.decided",
                                    transfer_id=str(sealed["transfer_id"])):
        body = entry.event.body
        owner = str(body.get("owner"))
        if (entry.event.actor == f"custodian:{owner}"
                and body.get("model_id") == sealed.get("model_id")
                and body.get("model_digest") == sealed.get("model_digest")
                and body.get("recipient") == ctx.code
                and body.get("end_use") == sealed.get("end_use")
                and body.get("sender") == sealed.get("sender")
                and (body.get("decision") or {}).get("permit") is True):
            found.setdefault(owner, entry)
    exporter = str(sealed.get("exporter"))
    wanted = sorted(set(owners), key=lambda o: (o != exporter, o))
    if exporter not in wanted or any(o not in found for o in wanted):
        return None
    return [found[o] for o in wanted]


def import_model_key(ctx: CustodianContext,
                     sealed: Mapping[str, Any]) -> dict[str, Any]:
    """Receive a transferred model DEK and wrap it under this nation's KEK.

    Returns
    -------
    dict
        ``transfer_id``, ``recipient``, ``kek_id``, ``kek_version``,
        ``wrapped_dek`` (base64 RFC 5649 under this nation's KEK) and
        ``completed_seq``.

    Raises
    ------
    PolicyDenied
        The transfer is for another nation, or not every owner's custodian
        (each signature checked against its pinned key) recorded a permitting
        ``transfer.decided`` matching it (``transfer.denied`` recorded).
    AlreadyExists
        The transfer is already completed (a replay).
    IntegrityError
        Malformed, or the sealed DEK does not open for this transfer and key.
    """
    try:
        transfer_id = str(sealed["transfer_id"])
        model_id = str(sealed["model_id"])
        model_digest = str(sealed["model_digest"])
        blob = b64d(str(sealed["sealed_dek"]), what="sealed_dek")
        label = dict(sealed["label"])
        Label.from_json(label, derived=True)
    except (KeyError, TypeError, ValueError, ConfigError) as exc:
        raise IntegrityError(f"malformed sealed transfer key: {exc}") from exc
    base = {"transfer_id": transfer_id, "model_id": model_id,
            "model_digest": model_digest, "recipient": str(sealed.get("recipient")),
            "end_use": str(sealed.get("end_use")), "sender": sealed.get("sender"),
            "by": ctx.code}
    if sealed.get("recipient") != ctx.code:
        reason = f"transfer {transfer_id} is for {sealed.get('recipient')}, not " \
                 f"{ctx.code}"
        ctx.record("transfer.denied", {**base, "reasons": [reason]})
        raise PolicyDenied(f"{ctx.code} custodian: refuse", reasons=[reason])
    if ctx.journal.find("transfer.completed", transfer_id=transfer_id):
        raise AlreadyExists(f"transfer {transfer_id} is already completed")
    owners = Label.from_json(label, derived=True).owners
    permits = _permit_entries(ctx, sealed, owners)
    if permits is None:
        reason = (f"no permitting transfer.decided by every owner's custodian "
                  f"({', '.join(sorted(owners))}) matches transfer {transfer_id}")
        ctx.record("transfer.denied", {**base, "reasons": [reason]})
        raise PolicyDenied(f"{ctx.code} custodian: refuse", reasons=[reason])
    decided = permits[0]
    dek = hpke_open(ctx.keys.hpke_key(), blob, transfer_hpke_info(
        transfer_id, model_id, ctx.code, model_digest))
    if len(dek) != DEK_SIZE:
        raise IntegrityError(f"transferred DEK has {len(dek)} bytes, not {DEK_SIZE}",
                             source=transfer_id)
    keystore = ctx.keys.keystore(clock=ctx.clock, audit=ctx.record)
    version, wrapped = keystore.wrap(dek)
    decision = combine_decisions([TransferDecision.from_json(e.event.body["decision"])
                                  for e in permits])
    seq = ctx.record("transfer.completed", {
        **base, "exporter": decided.event.body["owner"],
        "end_use": decided.event.body["end_use"],
        "sender": decided.event.body.get("sender"), "kek_id": keystore.kek_id,
        "kek_version": version, "consent_ids": list(decision.consent_ids),
        "relied_agreement_ids": list(decision.relied_agreement_ids),
        "decision_seq": decided.seq, "decision_seqs": [e.seq for e in permits]})
    ctx.store.add_object(OwnedObject(
        id=f"{transfer_id}:{model_id}", kind="transferred-model", label=label,
        job_id="", attempt_id="", site="", inputs=[model_id],
        wrapped={"kek_id": keystore.kek_id, "kek_version": version,
                 "wrapped_dek": b64e(wrapped)},
        sealed_digest=model_digest, created=rfc3339(ctx.clock())))
    return {"transfer_id": transfer_id, "recipient": ctx.code,
            "kek_id": keystore.kek_id, "kek_version": version,
            "wrapped_dek": b64e(wrapped), "completed_seq": seq}


def open_transferred_key(ctx: CustodianContext, transfer_id: str, model_id: str,
                         model_digest: str) -> bytes:
    """Unwrap the DEK of a model transferred to this nation, for its officer.

    Raises
    ------
    PolicyDenied
        This custodian completed no such transfer, or the KEK version is
        unavailable (``model.open.denied`` recorded).
    IntegrityError
        The digest differs from the transferred one.
    """
    body = {"object_id": model_id, "kind": "transferred-model", "nation": ctx.code,
            "transfer_id": transfer_id}

    def refuse(reason: str) -> PolicyDenied:
        ctx.record("model.open.denied", {**body, "reason": reason})
        return PolicyDenied(f"{ctx.code} may not open {model_id}", reasons=[reason])

    try:
        record = ctx.store.object(f"{transfer_id}:{model_id}")
    except NotFound:
        raise refuse(f"transfer {transfer_id} was not completed by the {ctx.code} "
                     "custodian") from None
    if record.sealed_digest != model_digest:
        raise IntegrityError(f"model {model_id} is not the one transferred",
                             source=transfer_id)
    wrapped = record.wrapped
    keystore = ctx.keys.keystore(clock=ctx.clock, audit=ctx.record)
    try:
        keystore.check_unwrap(str(wrapped["kek_id"]), int(wrapped["kek_version"]))
    except PolicyDenied as exc:
        raise refuse(exc.message) from exc
    completed = ctx.journal.find("transfer.completed", transfer_id=transfer_id)
    ctx.record("transfer.opened", {
        "transfer_id": transfer_id, "model_id": model_id, "recipient": ctx.code,
        "end_use": completed[-1].event.body.get("end_use") if completed else None,
        "nation": ctx.code})
    return keystore.unwrap(str(wrapped["kek_id"]), int(wrapped["kek_version"]),
                           b64d(str(wrapped["wrapped_dek"])))


def accept_consent(ctx: CustodianContext, signed: SignedEvent) -> SignedEntry:
    """Check and record this nation's officer's ``transfer.consented`` event.

    Raises
    ------
    ConfigError
        Not a consent of this nation's officer.
    IntegrityError
        The event or the statement is not signed by the pinned officer key.
    PolicyDenied
        This custodian keyed no such model (its nation is not an owner).
    """
    nation = ctx.check_officer_event(signed)
    if nation != ctx.code:
        raise ConfigError(f"{ctx.code} custodian records its own officer's consents "
                          f"only, not {nation}'s", field="event.actor")
    statement = verify_statement(SignedStatement.from_json(signed.event.body),
                                 public_key=ctx.officer_key(nation),
                                 expected_type=CONSENT_TYPE, expected_nation=nation)
    try:
        ctx.store.object(str(statement["model_id"]))
    except NotFound as exc:
        raise PolicyDenied(f"{ctx.code} keyed no model {statement['model_id']}: only "
                           "its owners' officers may consent to its transfer",
                           reasons=[f"consent: {ctx.code} is not an owner"]) from exc
    with ctx.lock():
        return ctx.submit(signed)
