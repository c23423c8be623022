"""Transfer facts and decisions: what an owner's custodian decides a model
transfer on (:class:`TransferFacts`, gathered and verified beforehand), what it
decides (:class:`TransferDecision`), how the owners' decisions combine
(:func:`combine_decisions`) and the error a refusal raises
(:class:`TransferDenied`). The rules themselves are
:func:`orchestrator.policy.transfer.evaluate_transfer`. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.errors import ConfigError, PolicyDenied
from orchestrator.labels import Label
from orchestrator.policy.access import Reason
from orchestrator.protocol.agreements import Agreement
from orchestrator.timeutil import parse_rfc3339

__all__ = [
    "ConsentFacts",
    "ModelFacts",
    "TransferDecision",
    "TransferDenied",
    "TransferFacts",
    "combine_decisions",
]

# -- facts -------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelFacts:
    """What the policy needs of the model: identity, digest and label fields.

    Attributes
    ----------
    model_id
        Registry id of the sealed model.
    model_digest
        ``"sha256:<hex>"`` of the sealed file (registry ``sealed_digest``).
    owners, releasable_to
        ISO 3166-1 alpha-3 codes (label ``ownerProducer`` / ``releasableTo``).
    export_controls
        Export-control tags as stored (see :func:`classify_export_control`).
    caveats
        End-use caveats (upper-case tokens).
    job_id
        The job that trained it (``""`` if unknown).
    """

    model_id: str
    model_digest: str
    owners: frozenset[str]
    releasable_to: frozenset[str]
    export_controls: frozenset[str] = frozenset()
    caveats: frozenset[str] = frozenset()
    job_id: str = ""

    @classmethod
    def from_label(cls, model_id: str, model_digest: str, label: Mapping[str, Any],
                   job_id: str = "") -> ModelFacts:
        """Facts of a model from its label (as JSON).

        Raises
        ------
        ConfigError
            If the label is malformed (the transfer must then fail closed).
        """
        parsed = Label.from_json(dict(label), source=f"model {model_id}",
                                 derived=True)
        return cls(model_id=model_id, model_digest=model_digest,
                   owners=parsed.owners, releasable_to=parsed.releasable_to,
                   export_controls=parsed.export_controls, caveats=parsed.caveats,
                   job_id=job_id)


@dataclass(frozen=True)
class ConsentFacts:
    """The content of one *verified* ``transfer-consent/v1`` statement.

    Attributes
    ----------
    consent_id
        The statement's ``consent_id``.
    nation
        The signing officer's nation.
    model_id, model_digest, recipient, end_use
        What the consent is bound to.
    expires_at
        Timezone-aware instant from which it no longer counts; ``None`` (malformed
        or naive) never counts.
    export_controls
        Export-control tags the officer names (attests authorised), possibly empty.
    """

    consent_id: str
    nation: str
    model_id: str
    model_digest: str
    recipient: str
    end_use: str
    expires_at: datetime | None
    export_controls: frozenset[str] = frozenset()

    @classmethod
    def from_statement(cls, statement: Mapping[str, Any]) -> ConsentFacts:
        """Read a verified statement; a bad ``expires_at`` gives ``None``.

        Raises
        ------
        ConfigError
            If a bound field is not text or ``export_controls`` is not a list of
            text (the caller treats the consent as refused).
        """
        values = {}
        for key in ("consent_id", "nation", "model_id", "model_digest", "recipient",
                    "end_use"):
            value = statement.get(key)
            if not isinstance(value, str):
                raise ConfigError(f"consent field {key} must be text", field=key)
            values[key] = value
        tags = statement.get("export_controls", [])
        if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
            raise ConfigError("consent export_controls must be a list of tags",
                              field="export_controls")
        expires: datetime | None
        try:
            expires = parse_rfc3339(str(statement.get("expires_at")))
        except ValueError:
            expires = None
        return cls(expires_at=expires, export_controls=frozenset(tags), **values)


@dataclass(frozen=True)
class TransferFacts:
    """Everything :func:`evaluate_transfer` decides on (gathered and verified
    beforehand by the deciding custodian).

    Attributes
    ----------
    model
        The model (:class:`ModelFacts`).
    recipient
        ISO 3166-1 alpha-3 code of the receiving nation.
    end_use
        The declared end use (lower-case slug).
    at
        The decision instant, timezone-aware; its UTC date is the day agreements
        must be valid on.
    consents
        Verified consents (any model, recipient or end use: non-matching ones are
        explained, never counted).
    consent_problems
        One line per presented consent that did not verify (altered, foreign or
        unknown officer, malformed), cited in the ``consent`` reason.
    agreements
        The effective agreements.
    ended
        Agreement id -> why it is not in force (terminated, revoked, awaiting
        signatures), as :func:`orchestrator.policy.standing.effective_in`
        returns it.
    documents
        Agreement id -> its document (the effective version, else the latest),
        for agreements named by ``derived_under`` and ``holders``.
    derived_under
        Ids of the agreements under which the model was derived (the permitting
        training decisions of its job); empty for domestic training.
    sender
        For a re-transfer, the non-owner nation passing the model on; ``None`` (or
        an owner) for a transfer by the owners.
    holders
        Nation -> ids of the agreements relied on by the completed transfer(s)
        through which it holds the model.
    used_consents
        Consent id -> id of the earlier permitted transfer that relied on it.
    request_problems
        Problems the caller found with the request (cited by rule ``request``).
    deciding_owners
        The owners whose agreements with the recipient this decision answers
        for: a custodian knows only its own nation's agreements, so each owner's
        custodian decides for itself and a transfer needs every owner's permit
        (:func:`combine_decisions`). Empty: every owner.
    """

    model: ModelFacts
    recipient: str
    end_use: str
    at: datetime
    consents: tuple[ConsentFacts, ...] = ()
    consent_problems: tuple[str, ...] = ()
    agreements: tuple[Agreement, ...] = ()
    ended: Mapping[str, str] = field(default_factory=dict)
    documents: Mapping[str, Agreement] = field(default_factory=dict)
    derived_under: tuple[str, ...] = ()
    sender: str | None = None
    holders: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    used_consents: Mapping[str, str] = field(default_factory=dict)
    request_problems: tuple[str, ...] = ()
    deciding_owners: tuple[str, ...] = ()


@dataclass(frozen=True)
class TransferDecision:
    """One custodian's decision on a transfer.

    Attributes
    ----------
    model_id, recipient, end_use, sender
        What was decided (``sender`` ``None`` for a transfer by the owners).
    permit
        True only if every rule passed.
    reasons
        One reason per rule of :data:`RULES`, in that order.
    relied_agreement_ids
        The agreements the transfer relies on (direct agreements, and those it was
        derived under for a third-party transfer or re-transfer), sorted.
    consent_ids
        The consents that counted, one per owner, in owner order.
    third_party
        True when the recipient is a third party for at least one owner.
    re_transfer
        True when a non-owner sender passes the model on.
    """

    model_id: str
    recipient: str
    end_use: str
    sender: str | None
    permit: bool
    reasons: tuple[Reason, ...]
    relied_agreement_ids: tuple[str, ...] = ()
    consent_ids: tuple[str, ...] = ()
    third_party: bool = False
    re_transfer: bool = False

    @property
    def outcome(self) -> str:
        """``"permit"`` or ``"deny"``."""
        return "permit" if self.permit else "deny"

    def denial_reasons(self) -> list[str]:
        """``"rule: detail"`` for every rule that did not pass."""
        return [f"{r.rule}: {r.detail}" for r in self.reasons if not r.passed]

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form (custody events, CLI ``--json``)."""
        return {"model_id": self.model_id, "recipient": self.recipient,
                "end_use": self.end_use, "sender": self.sender,
                "outcome": self.outcome, "permit": self.permit,
                "relied_agreement_ids": list(self.relied_agreement_ids),
                "consent_ids": list(self.consent_ids),
                "third_party": self.third_party, "re_transfer": self.re_transfer,
                "reasons": [{"rule": r.rule, "passed": r.passed, "detail": r.detail}
                            for r in self.reasons]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TransferDecision:
        """Read :meth:`to_json` output.

        Raises
        ------
        ConfigError
            If a field is missing or of the wrong type.
        """
        try:
            return cls(
                model_id=str(doc["model_id"]), recipient=str(doc["recipient"]),
                end_use=str(doc["end_use"]),
                sender=None if doc.get("sender") is None else str(doc["sender"]),
                permit=doc["permit"] is True,
                reasons=tuple(Reason(str(r["rule"]), r["passed"] is True,
                                     str(r["detail"])) for r in doc["reasons"]),
                relied_agreement_ids=tuple(doc.get("relied_agreement_ids", ())),
                consent_ids=tuple(doc.get("consent_ids", ())),
                third_party=doc.get("third_party") is True,
                re_transfer=doc.get("re_transfer") is True)
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"malformed transfer decision: {exc}") from exc


def combine_decisions(decisions: Sequence[TransferDecision]) -> TransferDecision:
    """The decision of a transfer from every owner's custodian's decision: it
    permits only if each permits; each rule passes only if it passed for each
    (the details joined); relied agreements and counted consents are the union.

    Raises
    ------
    ValueError
        If ``decisions`` is empty or they are not about one transfer.
    """
    if not decisions:
        raise ValueError("no decisions to combine")
    first = decisions[0]
    if any((d.model_id, d.recipient, d.end_use, d.sender)
           != (first.model_id, first.recipient, first.end_use, first.sender)
           for d in decisions):
        raise ValueError("decisions are about different transfers")
    reasons = []
    for i, reason in enumerate(first.reasons):
        details: list[str] = []
        for d in decisions:
            if d.reasons[i].detail not in details:
                details.append(d.reasons[i].detail)
        reasons.append(Reason(reason.rule, all(d.reasons[i].passed for d in decisions),
                              "; ".join(details)))
    return TransferDecision(
        model_id=first.model_id, recipient=first.recipient, end_use=first.end_use,
        sender=first.sender, permit=all(d.permit for d in decisions),
        reasons=tuple(reasons),
        relied_agreement_ids=tuple(sorted({a for d in decisions
                                           for a in d.relied_agreement_ids})),
        consent_ids=tuple(dict.fromkeys(c for d in decisions for c in d.consent_ids)),
        third_party=any(d.third_party for d in decisions),
        re_transfer=any(d.re_transfer for d in decisions))


class TransferDenied(PolicyDenied):
    """A transfer was refused; ``decision`` is the refusing owner's custodian's
    :class:`TransferDecision` when it was recorded (``None`` otherwise), and
    ``transfer_id`` the refused transfer's id."""

    def __init__(self, message: str, *, reasons: list[str] | None = None,
                 decision: TransferDecision | None = None,
                 transfer_id: str = "") -> None:
        super().__init__(message, reasons=reasons, source=transfer_id or None)
        self.decision = decision
        self.transfer_id = transfer_id
