"""Model transfer at the orchestrator: it relays ciphertext between custodians.

:func:`transfer_model` gives a *recipient* nation a model's DEK, wrapped under the
recipient's own KEK: it collects the consents the owners' officers logged
(``transfer.consented``, plus any given from files), asks the first owner's
custodian (sorted order) to decide and export the key
(:func:`orchestrator.nation.transfer_keys.export_model_key`: it re-evaluates the
decision itself and records ``transfer.decided`` first, then HPKE-seals the DEK to
the recipient's pinned key), relays that ciphertext to the recipient's custodian
(:func:`~orchestrator.nation.transfer_keys.import_model_key`) and registers the
transfer. The orchestrator only ever holds ciphertext; the decision rules are
:mod:`orchestrator.policy.transfer`.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from orchestrator.errors import ConfigError, NotFound, PolicyDenied
from orchestrator.labels import parse_nation
from orchestrator.policy.transfer import (
    SLUG,
    ModelFacts,
    TransferDecision,
    TransferDenied,
    combine_decisions,
)
from orchestrator.protocol.statements import SignedStatement, statements_in
from orchestrator.protocol.transfer import TransferRequest
from orchestrator.submit.context import Orchestrator
from orchestrator.submit.registry import Registry, TransferRecord, as_json
from orchestrator.timeutil import rfc3339, system_clock

__all__ = ["MAX_CONSENT_S", "TransferResult", "collect_consents", "find_transfer",
           "load_consent_file", "parse_duration", "transfer_history",
           "transfer_model"]

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


def collect_consents(orch: Orchestrator, model_id: str) -> list[SignedStatement]:
    """Every consent logged for ``model_id`` (``transfer.consented``), unverified:
    each owner's custodian verifies them against its pinned officer keys."""
    return statements_in(orch.log.find("transfer.consented", model_id=model_id))


def load_consent_file(path: Path) -> SignedStatement:
    """Read a signed consent (:meth:`SignedStatement.to_json` as JSON) from ``path``.

    Raises
    ------
    ConfigError
        If the file cannot be read or is not a signed statement.
    """
    import json

    from orchestrator.errors import IntegrityError

    try:
        doc = json.loads(Path(path).read_bytes())
        return SignedStatement.from_json(doc, source=str(path))
    except OSError as exc:
        raise ConfigError(f"cannot read consent: {exc.strerror}",
                          source=str(path)) from exc
    except (ValueError, IntegrityError) as exc:
        raise ConfigError("not a signed consent statement", source=str(path)) from exc


def _decided(orch: Orchestrator, transfer_id: str,
             owner: str) -> TransferDecision | None:
    for entry in reversed(orch.log.find("transfer.decided", transfer_id=transfer_id,
                                        owner=owner)):
        try:
            return TransferDecision.from_json(entry.event.body["decision"])
        except (ConfigError, KeyError, TypeError):
            continue
    return None


def transfer_model(orch: Orchestrator, model_id: str, recipient: str, end_use: str,
                   *, sender: str | None = None,
                   consents: Sequence[SignedStatement] = ()) -> TransferResult:
    """Transfer ``model_id`` to ``recipient``: every owner's custodian decides
    for its own nation (and seals the DEK to the recipient); the recipient's
    custodian takes the first owner's sealed key once it found every owner's
    permit in the log.

    Raises
    ------
    TransferDenied
        (a :class:`PolicyDenied`) the owner's custodian refused; ``decision`` and
        ``reasons`` list every failed rule.
    NotFound
        Unknown model.
    ConfigError
        A bad code or end use.
    IntegrityError
        The sealed key did not open for the recipient.
    """
    recipient = parse_nation(recipient, field="--to")
    sender = None if sender is None else parse_nation(sender, field="--from")
    if not SLUG.fullmatch(end_use):
        raise ConfigError(f"end use {end_use!r} must be a lower-case slug such as "
                          "'research'", field="--end-use")
    registry = Registry(orch.registry_db)
    record = registry.model(model_id)
    owners = sorted(ModelFacts.from_label(record.id, record.sealed_digest,
                                          record.label).owners)
    request = TransferRequest(
        transfer_id="xfer-" + uuid.uuid4().hex[:16], model_id=record.id,
        model_digest=record.sealed_digest, recipient=recipient, end_use=end_use,
        sender=sender, consents=(*collect_consents(orch, record.id), *consents))
    sealed_by: dict[str, dict[str, Any]] = {}
    for owner in owners:  # every owner's custodian decides for its own nation
        try:
            sealed_by[owner] = orch.connect(owner).export_model_key(request.to_json())
        except PolicyDenied as exc:
            raise TransferDenied(
                f"transfer of {record.id} to {recipient} refused by the "
                f"{owner} custodian", reasons=exc.reasons,
                decision=_decided(orch, request.transfer_id, owner),
                transfer_id=request.transfer_id) from exc
    exporter_nation = owners[0]
    sealed = sealed_by[exporter_nation]
    wrapped = orch.connect(recipient).import_model_key(sealed)
    decision = combine_decisions([TransferDecision.from_json(s["decision"])
                                  for s in sealed_by.values()])
    transfer = TransferRecord(
        id=request.transfer_id, model_id=record.id, model_digest=record.sealed_digest,
        recipient=recipient, sender=sender or "", exporter=exporter_nation,
        end_use=end_use,
        wrapped_key={k: wrapped[k] for k in ("kek_id", "kek_version", "wrapped_dek")},
        consents_digest=str(sealed.get("consents_digest", "")),
        decision=decision.to_json(), created=rfc3339(system_clock()))
    registry.add_transfer(transfer)
    return TransferResult(request.transfer_id, decision, transfer)


def find_transfer(orch: Orchestrator, ref: str, nation: str) -> TransferRecord:
    """The transfer ``ref`` (``xfer-...``), or the latest of model ``ref`` to
    ``nation``.

    Raises
    ------
    NotFound
        If there is none.
    """
    registry = Registry(orch.registry_db)
    if ref.startswith("xfer-"):
        return registry.transfer(ref)
    mine = [t for t in registry.transfers(model_id=ref) if t.recipient == nation]
    if not mine:
        raise NotFound(f"no completed transfer of {ref!r} to {nation}")
    return mine[-1]


def transfer_history(orch: Orchestrator, model_id: str | None = None
                     ) -> list[dict[str, Any]]:
    """Every transfer attempt in the custody log, oldest first.

    One item per transfer id: ``transfer_id``, ``model_id``, ``recipient``,
    ``end_use``, ``sender``, ``status`` (``completed``, ``denied``, or
    ``decided`` when permitted but not completed), ``decided_by``,
    ``reasons`` (the failed rules when denied), ``relied_agreement_ids``,
    ``consent_ids`` and the log ``seq`` of each step (``steps``). Entries are
    read, not verified (``sovereign custody verify`` does that).
    """
    log = orch.log
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

