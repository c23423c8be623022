"""Model transfer between nations: the pure decision, and its orchestration.

A trained model stays owned by its data-owner nations (the ``ownerProducer`` of
its label). ``sovereign model transfer MODEL --to CAN --end-use research`` gives a
*recipient* nation the model's data-encryption key (DEK), wrapped under the
recipient's own KEK, so the recipient can open the weights. This module holds

* :func:`evaluate_transfer`, the transfer policy: a pure function (no I/O, no
  clock: the instant is :attr:`TransferFacts.at`) that every owner's custodian
  runs itself before it releases anything, and
* the orchestration (:func:`consent_to_transfer`, :func:`transfer_model`,
  :func:`receive_model`, :func:`transfer_history`), which only relays
  ciphertext: the DEK is unwrapped by an owner's custodian and HPKE-sealed
  (RFC 9180) straight to the recipient custodian's registered static key
  (:mod:`orchestrator.nation.transfer_keys`); the orchestrator never sees it.

Rules
-----
Every rule is evaluated and recorded as a :class:`~orchestrator.policy.access.Reason`
(``rule``, ``passed``, ``detail``), in this order, so that a refusal lists *all*
its causes; the transfer is permitted only if every rule passes (:data:`RULES`).
Anything malformed (a naive datetime, a non-slug end use, an unknown code or
tag) fails closed.

(1) ``request``: the model id and digest are present, the recipient is an
    ISO 3166-1 alpha-3 code, is not already an owner, and is not the sender; the
    end use is a lower-case slug (``research``, ``weapons-targeting``); ``at`` is
    timezone-aware; and the caller found no problem with the request
    (:attr:`TransferFacts.request_problems`: e.g. the recipient has no registered
    custodian, or the request names another digest than the registered one).
(2) ``consent``: every owner's officer has signed a ``transfer-consent/v1``
    statement (:mod:`orchestrator.protocol.statements`; signatures are verified by the
    caller, statements that do not verify arrive in
    :attr:`TransferFacts.consent_problems`) for exactly this model id, sealed
    digest, recipient and end use, with ``at < expires_at``, not already relied
    on by an earlier permitted transfer (a consent authorises one transfer; a
    permit whose key hand-over then failed spends it too). Consents by nations
    that are not owners never count.
(3) ``releasability``: the recipient is in the label's ``releasableTo``.
(4) ``export-control``: see *Export control* below.
(5) ``end-use``: the end use is not in the ``prohibited_end_uses`` of any
    agreement relied on (the agreements chosen in (6), every agreement the model
    was derived under, whatever its current standing: a prohibition does not lapse
    with the agreement, and for a re-transfer those of the sender's own transfer),
    and no end-use caveat of the label forbids it: ``NO-<USE>`` forbids end use
    ``<use>``; ``<USE>-ONLY`` permits only ``<use>``; ``NOFORN`` forbids every
    transfer to a foreign nation; any other caveat is not understood and denies
    (fail closed).
(6) ``agreement``: for each owner, an effective agreement (every party's officer
    signed it; :mod:`orchestrator.agreement_state`) between that owner and the
    recipient, valid on ``at``'s UTC date (inclusive), is chosen (latest
    ``valid_from``, then smallest id). Without one the recipient is a *third
    party* for that owner: allowed only if the model was derived under at least
    one agreement and *every* agreement it was derived under
    (:attr:`TransferFacts.derived_under`) is in force and says
    ``third_party_transfer = "with-consent"`` (the consents themselves are rule
    (2)). A terminated, revoked or unsigned agreement never permits and is named
    (:attr:`TransferFacts.ended`): terminating an agreement refuses new transfers
    relying on it from the next decision on.
(7) ``re-transfer``: a sender that is not an owner must hold the model by a
    completed transfer (:attr:`TransferFacts.holders`); its onward transfer is a
    third-party re-transfer, allowed only if every agreement relied on (those the
    model was derived under and those of the sender's own transfer, at least one)
    is in force and says ``third_party_transfer = "with-consent"``. A transfer
    made by the owners (no sender) passes.

Export control
--------------
Tags are those of :func:`orchestrator.labels.parse_export_control`. The
orchestrator cannot decide whether an export is licensed; the owner can, so:

* ``ITAR:USML-<cat>`` (technical data of a defense article on the US Munitions
  List, 22 CFR 121; exports, reexports and retransfers need an authorisation,
  22 CFR 120.50-120.52, parts 123-126) and ``EAR:<ECCN>`` (an item on the
  Commerce Control List, 15 CFR 774 Supp. 1, which may need a licence, 15 CFR
  738 and 740-742): the recipient must be in ``releasableTo`` *and* every
  owner's counting consent must name the exact tag in its ``export_controls``
  list, i.e. each owner's officer attests that the export is authorised (licence,
  agreement or exemption) for this recipient and end use.
* ``EAR99`` (subject to the EAR but on no ECCN, 15 CFR 734.3(c)): the recipient
  must be in ``releasableTo``; owners express embargo and end-user screening
  (15 CFR 744, 746) through releasability.
* Any other tag is unknown and denies (fail closed).

Sources: 22 CFR parts 120-130 (International Traffic in Arms Regulations, ITAR);
15 CFR parts 730-774 (Export Administration Regulations, EAR).
"""

from __future__ import annotations

import json
import os
import re
import tempfile
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from orchestrator.errors import ConfigError, NotFound, PolicyDenied, SovereignError
from orchestrator.policy.transfer import (
    CONSENT_TYPE,
    SLUG,
    ModelFacts,
    TransferDecision,
)
from orchestrator.protocol.statements import SignedStatement
from orchestrator.protocol.transfer import (
    TransferCustodian,
    TransferDenied,
    TransferRequest,
)
from orchestrator.timeutil import Clock, rfc3339, system_clock

if TYPE_CHECKING:
    from orchestrator.registry import TransferRecord
    from orchestrator.state import StateDir

__all__ = [
    "TransferResult",
    "collect_consents",
    "consent_to_transfer",
    "load_consent_file",
    "parse_duration",
    "receive_model",
    "transfer_history",
    "transfer_model",
]

#: Longest consent validity the CLI accepts (seconds): 365 days.
MAX_CONSENT_S = 365 * 24 * 3600
_DURATION = re.compile(r"([1-9][0-9]{0,8})([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}

@dataclass(frozen=True)
class TransferResult:
    """A completed transfer: its decision and the stored registry record."""

    transfer_id: str
    decision: TransferDecision
    record: TransferRecord

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary (CLI ``--json``); holds no key material beyond the
        recipient-KEK-wrapped DEK."""
        from orchestrator.registry import as_json

        return {"transfer_id": self.transfer_id, "status": "completed",
                "decision": self.decision.to_json(), "transfer": as_json(self.record)}

def parse_duration(text: str) -> timedelta:
    """Parse ``"7d"``, ``"12h"``, ``"30m"`` or ``"600s"`` (one positive number, one
    unit: seconds, minutes, hours, days).

    Raises
    ------
    ConfigError
        On any other text, or more than :data:`MAX_CONSENT_S` seconds (365 days).
    """
    m = _DURATION.fullmatch(text.strip().lower()) if isinstance(text, str) else None
    if m is None:
        raise ConfigError(f"bad duration {text!r} (expected e.g. 7d, 12h, 30m, 600s)",
                          field="--expires-in")
    seconds = int(m.group(1)) * _UNIT_S[m.group(2)]
    if seconds > MAX_CONSENT_S:
        raise ConfigError(f"duration {text!r} exceeds 365 days", field="--expires-in")
    return timedelta(seconds=seconds)


def consent_to_transfer(
    state: StateDir, model_id: str, nation: str, *, recipient: str, end_use: str,
    expires_in: timedelta = timedelta(days=7),
    export_controls: Iterable[str] = (), clock: Clock = system_clock,
) -> SignedStatement:
    """Sign, as ``nation``'s officer, consent to transfer ``model_id`` to
    ``recipient`` for ``end_use``; log ``transfer.consented``.

    The officer key is ``<state>/nations/<nation>/officer.key`` (the officer signs
    where the key is). The statement binds the model's sealed digest and expires
    ``expires_in`` after now; ``export_controls`` lists the tags the officer
    attests are authorised for this export (see the module docstring). The event's
    actor is ``officer:<nation>``, signed with the officer key, and its body holds
    the signed statement.

    Raises
    ------
    NotFound
        Unknown model, or ``nation`` / ``recipient`` not initialised.
    PolicyDenied
        ``nation`` is not an owner of the model.
    ConfigError
        Bad code, end use, tag or duration (non-positive, over 365 days), or no
        officer key for ``nation`` in this state dir.
    """
    from orchestrator.crypto import load_private_key
    from orchestrator.labels import parse_export_control, parse_nation
    from orchestrator.log.store import CustodyLog
    from orchestrator.protocol.statements import sign_statement
    from orchestrator.registry import Registry
    from orchestrator.tlog.events import CustodyEvent

    nation = parse_nation(nation, field="--as")
    recipient = parse_nation(recipient, field="--to")
    if not SLUG.fullmatch(end_use):
        raise ConfigError(f"end use {end_use!r} must be a lower-case slug such as "
                          "'research'", field="--end-use")
    seconds = expires_in.total_seconds()
    if not 0 < seconds <= MAX_CONSENT_S:
        raise ConfigError("a consent must expire within 365 days", field="--expires-in")
    tags = sorted({parse_export_control(t, field="--export-control")
                   for t in export_controls})
    registry = Registry(state.registry_db)
    record = registry.model(model_id)
    registry.nation(nation)
    registry.nation(recipient)
    owners = ModelFacts.from_record(record).owners
    if nation not in owners:
        raise PolicyDenied(
            f"{nation} may not consent to transferring {model_id}",
            reasons=[f"only its owners may: {', '.join(sorted(owners))}"])
    if recipient in owners:
        raise ConfigError(f"{recipient} already owns {model_id}", field="--to")
    key_path = state.nation_dir(nation) / "officer.key"
    if not key_path.exists():
        raise ConfigError(f"no officer key for {nation} in this state dir; the "
                          "officer signs where the key is", source=str(key_path))
    key = load_private_key(key_path)
    now = clock()
    signed = sign_statement(
        {"type": CONSENT_TYPE, "nation": nation, "issued_at": rfc3339(now),
         "consent_id": "consent-" + uuid.uuid4().hex[:16], "model_id": record.id,
         "model_digest": record.sealed_digest, "recipient": recipient,
         "end_use": end_use, "expires_at": rfc3339(now + expires_in),
         "export_controls": tags},
        key)
    CustodyLog(state.custody_db).append(CustodyEvent.create(
        "transfer.consented", f"officer:{nation}",
        {"consent_id": signed.statement["consent_id"], "model_id": record.id,
         "recipient": recipient, "end_use": end_use, "nation": nation,
         **signed.to_json()}), key)
    return signed


def collect_consents(state: StateDir, model_id: str) -> list[SignedStatement]:
    """Every consent logged for ``model_id`` (``transfer.consented``), unverified."""
    from orchestrator.log.store import CustodyLog
    from orchestrator.protocol.statements import statements_in

    return statements_in(CustodyLog(state.custody_db).find("transfer.consented",
                                                             model_id=model_id))


def load_consent_file(path: Path) -> SignedStatement:
    """Read a signed consent (:meth:`SignedStatement.to_json` as JSON) from ``path``.

    Raises
    ------
    ConfigError
        If the file cannot be read or is not such a document.
    """
    try:
        doc = json.loads(Path(path).read_bytes())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read consent: {exc}", source=str(path)) from exc
    if not isinstance(doc, dict):
        raise ConfigError("consent file must hold a JSON object", source=str(path))
    try:
        return SignedStatement.from_json(doc, source=str(path))
    except SovereignError as exc:
        raise ConfigError(exc.message, source=str(path)) from exc


Connector = Callable[[str], object]


def _transfer_custodian(connect: Connector, nation: str) -> TransferCustodian:
    custodian = connect(nation)
    if not isinstance(custodian, TransferCustodian):
        raise ConfigError(f"the custodian of {nation} does not support model "
                          "transfer (network custodians cannot yet)",
                          source=nation)
    return custodian


def _decided(state: StateDir, transfer_id: str) -> TransferDecision | None:
    from orchestrator.log.store import CustodyLog

    for entry in reversed(CustodyLog(state.custody_db).find(
            "transfer.decided", transfer_id=transfer_id)):
        try:
            return TransferDecision.from_json(entry.event.body["decision"])
        except (ConfigError, KeyError, TypeError):
            continue
    return None


def transfer_model(
    state: StateDir, model_id: str, recipient: str, end_use: str, *,
    sender: str | None = None, consents: Sequence[SignedStatement] = (),
    connect: Connector | None = None,
) -> TransferResult:
    """Transfer ``model_id`` to ``recipient``: decided and keyed by custodians.

    Steps: collect the consents logged for the model (plus ``consents``, e.g.
    from files signed offline); ask the first owner's custodian (sorted order) to
    :meth:`~TransferCustodian.export_model_key`: it re-evaluates the decision
    itself, logs ``transfer.decided`` (and ``transfer.denied``), and seals the DEK
    to the recipient custodian's registered HPKE key; relay that ciphertext to the
    recipient custodian's :meth:`~TransferCustodian.import_model_key`, which wraps
    it under its own KEK and logs ``transfer.completed``; store the transfer in the
    registry. The orchestrator only ever holds ciphertext.

    Parameters
    ----------
    sender
        For a re-transfer: the non-owner nation passing on a copy it received.
    connect
        Nation -> custodian (default :func:`orchestrator.embedded.custodian_connector`).

    Raises
    ------
    TransferDenied
        (a :class:`PolicyDenied`, exit code 4) the owner's custodian refused;
        ``decision`` and ``reasons`` list every failed rule.
    NotFound
        Unknown model.
    ConfigError
        A bad code or end use, or a custodian that cannot do transfers.
    IntegrityError
        The sealed key did not open for the recipient.
    """
    from orchestrator.labels import parse_nation
    from orchestrator.registry import Registry, TransferRecord

    recipient = parse_nation(recipient, field="--to")
    sender = None if sender is None else parse_nation(sender, field="--from")
    if not SLUG.fullmatch(end_use):
        raise ConfigError(f"end use {end_use!r} must be a lower-case slug such as "
                          "'research'", field="--end-use")
    registry = Registry(state.registry_db)
    record = registry.model(model_id)
    owners = sorted(ModelFacts.from_record(record).owners)
    if connect is None:
        from orchestrator.embedded import custodian_connector

        connect = custodian_connector(state)
    exporter_nation = owners[0]
    request = TransferRequest(
        transfer_id="xfer-" + uuid.uuid4().hex[:16], model_id=record.id,
        model_digest=record.sealed_digest, recipient=recipient, end_use=end_use,
        sender=sender, consents=(*collect_consents(state, record.id), *consents))
    exporter = _transfer_custodian(connect, exporter_nation)
    try:
        sealed = exporter.export_model_key(request.to_json())
    except PolicyDenied as exc:
        raise TransferDenied(
            f"transfer of {record.id} to {recipient} refused by the "
            f"{exporter_nation} custodian", reasons=exc.reasons,
            decision=_decided(state, request.transfer_id),
            transfer_id=request.transfer_id) from exc
    importer = _transfer_custodian(connect, recipient)
    wrapped = importer.import_model_key(sealed)
    decision = TransferDecision.from_json(sealed["decision"])
    transfer = TransferRecord(
        id=request.transfer_id, model_id=record.id, model_digest=record.sealed_digest,
        recipient=recipient, sender=sender or "", exporter=exporter_nation,
        end_use=end_use,
        wrapped_key={k: wrapped[k] for k in ("kek_id", "kek_version", "wrapped_dek")},
        consents_digest=str(sealed.get("consents_digest", "")),
        decision=decision.to_json(), created=rfc3339(system_clock()))
    registry.add_transfer(transfer)
    return TransferResult(request.transfer_id, decision, transfer)


def _find_transfer(state: StateDir, ref: str, nation: str) -> TransferRecord:
    from orchestrator.registry import Registry

    registry = Registry(state.registry_db)
    if ref.startswith("xfer-"):
        return registry.transfer(ref)
    mine = [t for t in registry.transfers(model_id=ref) if t.recipient == nation]
    if not mine:
        raise NotFound(f"no completed transfer of {ref!r} to {nation}")
    return mine[-1]


def receive_model(state: StateDir, ref: str, nation: str, out: Path, *,
                  connect: Connector | None = None) -> dict[str, Any]:
    """Decrypt a transferred model for its recipient ``nation`` into ``out``.

    ``ref`` is a transfer id (``xfer-...``) or a model id (then the latest
    completed transfer of it to ``nation``). The recipient's custodian checks the
    transfer and logs ``transfer.opened`` (or ``model.open.denied``) before it
    unwraps the DEK under its own KEK; the file is written atomically, mode 0600.

    Returns
    -------
    dict
        ``model_id``, ``transfer_id``, ``out`` and ``sha256`` (hex of the weights).

    Raises
    ------
    NotFound
        Unknown transfer, or no transfer of that model to ``nation``.
    PolicyDenied
        ``nation`` is not the transfer's recipient (or its KEK is unavailable).
    IntegrityError
        The sealed file is tampered with, truncated, or of another object.
    """
    import hashlib

    from orchestrator.crypto import open_stream
    from orchestrator.errors import IntegrityError
    from orchestrator.labels import parse_nation
    from orchestrator.registry import Registry, as_json

    nation = parse_nation(nation, field="--as")
    transfer = _find_transfer(state, ref, nation)
    record = Registry(state.registry_db).model(transfer.model_id)
    if connect is None:
        from orchestrator.embedded import custodian_connector

        connect = custodian_connector(state)
    dek = _transfer_custodian(connect, nation).open_transferred_key(as_json(transfer))
    out = Path(out)
    out.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.")
    h = hashlib.sha256()
    try:
        with os.fdopen(fd, "wb") as dst, open(record.object_path, "rb") as src:
            header, segments = open_stream(src, dek)
            if header.object_id != record.id:
                raise IntegrityError(f"sealed file holds {header.object_id}, not "
                                     f"{record.id}", source=record.object_path)
            for segment in segments:
                h.update(segment)
                dst.write(segment)
            dst.flush()
            os.fsync(dst.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return {"model_id": record.id, "transfer_id": transfer.id, "out": str(out),
            "sha256": h.hexdigest()}


def transfer_history(state: StateDir, model_id: str | None = None
                     ) -> list[dict[str, Any]]:
    """Every transfer attempt in the custody log, oldest first.

    One item per transfer id: ``transfer_id``, ``model_id``, ``recipient``,
    ``end_use``, ``sender``, ``status`` (``completed``, ``denied``, or
    ``decided`` when permitted but not completed), ``decided_by``,
    ``reasons`` (the failed rules when denied), ``relied_agreement_ids``,
    ``consent_ids`` and the log ``seq`` of each step (``steps``). Entries are
    read, not verified (``sovereign custody verify`` does that).
    """
    from orchestrator.log.store import CustodyLog

    log = CustodyLog(state.custody_db)
    items: dict[str, dict[str, Any]] = {}
    for kind in ("transfer.decided", "transfer.denied", "transfer.completed",
                 "transfer.opened"):
        for entry in log.find(kind):
            body = entry.event.body
            tid = str(body.get("transfer_id", ""))
            if not tid or (model_id is not None and body.get("model_id") != model_id):
                continue
            item = items.setdefault(tid, {
                "transfer_id": tid, "model_id": body.get("model_id"),
                "recipient": body.get("recipient"), "end_use": body.get("end_use"),
                "sender": body.get("sender"), "status": "decided", "decided_by": None,
                "reasons": [], "relied_agreement_ids": [], "consent_ids": [],
                "steps": {}, "time": entry.event.time})
            item["steps"].setdefault(kind, []).append(entry.seq)
            if kind == "transfer.decided":
                decision = body.get("decision") or {}
                item["decided_by"] = body.get("owner")
                item["relied_agreement_ids"] = decision.get("relied_agreement_ids", [])
                item["consent_ids"] = decision.get("consent_ids", [])
                item["outcome"] = decision.get("outcome")
                item["time"] = min(item["time"], entry.event.time)
            elif kind == "transfer.denied":
                item["status"] = "denied"
                item["reasons"] = list(body.get("reasons", []))
            elif kind == "transfer.completed" and item["status"] != "denied":
                item["status"] = "completed"
    return sorted(items.values(), key=lambda i: (i["time"], i["transfer_id"]))

