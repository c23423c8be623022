"""Model transfer between nations: the pure decision every owner's custodian takes.

A trained model stays owned by its data-owner nations (the ``ownerProducer`` of
its label). ``sovereign model transfer MODEL --to CAN --end-use research`` gives a
*recipient* nation the model's data-encryption key (DEK), wrapped under the
recipient's own KEK, so the recipient can open the weights. This module holds
:func:`evaluate_transfer`, the transfer policy: a pure function (no I/O, no
clock: the instant is :attr:`TransferFacts.at`) that every owner's custodian
runs itself before it releases anything. Its inputs and outputs
(:class:`TransferFacts`, :class:`TransferDecision`, :func:`combine_decisions`)
are in :mod:`orchestrator.policy.transfer_facts` and re-exported here. The
orchestrator only relays ciphertext (:mod:`orchestrator.submit.transfer`): the
DEK is unwrapped by an owner's custodian and HPKE-sealed (RFC 9180) straight to
the recipient custodian's registered static key
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
    signed it; :mod:`orchestrator.policy.standing`) between that owner and the
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

Export control (rule 4) is described, and tags classified, in
:mod:`orchestrator.policy.export_control`.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime

from orchestrator.labels import ISO3166_ALPHA3
from orchestrator.policy.access import Reason
from orchestrator.policy.export_control import classify_export_control
from orchestrator.policy.transfer_facts import (
    ConsentFacts,
    ModelFacts,
    TransferDecision,
    TransferDenied,
    TransferFacts,
    combine_decisions,
)
from orchestrator.protocol.agreements import Agreement
from orchestrator.timeutil import rfc3339

__all__ = [
    "CONSENT_TYPE",
    "RULES",
    "SLUG",
    "ConsentFacts",
    "ModelFacts",
    "TransferDecision",
    "TransferDenied",
    "TransferFacts",
    "classify_export_control",
    "combine_decisions",
    "evaluate_transfer",
]

#: The statement type an owner's officer signs to consent to one transfer.
CONSENT_TYPE = "transfer-consent/v1"
#: The rules of :func:`evaluate_transfer`, in evaluation order.
RULES: tuple[str, ...] = ("request", "consent", "releasability", "export-control",
                          "end-use", "agreement", "re-transfer")

#: A lower-case slug (end uses, area names).
SLUG = re.compile(r"[a-z0-9]+(?:-[a-z0-9]+)*")


# -- the policy (pure) -------------------------------------------------------------
def _aware(value: object) -> bool:
    return isinstance(value, datetime) and value.utcoffset() is not None


def _codes(values: Iterable[str]) -> str:
    return ", ".join(sorted(values)) or "none"


def _request_reason(f: TransferFacts) -> Reason:
    m = f.model
    problems: list[str] = []
    if not m.owners:
        problems.append("the model has no owners")
    if not isinstance(m.model_id, str) or not m.model_id.strip():
        problems.append("model id is empty")
    if not isinstance(m.model_digest, str) or not m.model_digest.strip():
        problems.append("model digest is empty")
    if not isinstance(f.recipient, str) or f.recipient not in ISO3166_ALPHA3:
        problems.append(f"recipient {f.recipient!r} is not an ISO 3166-1 alpha-3 "
                        "code")
    elif f.recipient in m.owners:
        problems.append(f"recipient {f.recipient} already owns the model")
    if not isinstance(f.end_use, str) or not SLUG.fullmatch(f.end_use):
        problems.append(f"end use {f.end_use!r} is not a lower-case slug such as "
                        "'research'")
    if not _aware(f.at):
        problems.append(f"decision time {f.at!r} is not a timezone-aware instant")
    if f.sender is not None:
        if not isinstance(f.sender, str) or f.sender not in ISO3166_ALPHA3:
            problems.append(f"sender {f.sender!r} is not an ISO 3166-1 alpha-3 code")
        elif f.sender == f.recipient:
            problems.append(f"sender and recipient are both {f.sender}")
    problems.extend(str(p) for p in f.request_problems)
    if problems:
        return Reason("request", False, "; ".join(problems))
    by = f" by {f.sender}" if f.sender and f.sender not in m.owners else ""
    return Reason("request", True, f"transfer of {m.model_id} to {f.recipient} for "
                                   f"end use {f.end_use!r}{by}")


def _consent_flaws(c: ConsentFacts, f: TransferFacts) -> list[str]:
    flaws = []
    if c.model_id != f.model.model_id:
        flaws.append(f"is for model {c.model_id}")
    if c.model_digest != f.model.model_digest:
        flaws.append(f"is bound to digest {c.model_digest[:23]}..., not the sealed "
                     f"model's {f.model.model_digest[:23]}...")
    if c.recipient != f.recipient:
        flaws.append(f"names recipient {c.recipient}, not {f.recipient}")
    if c.end_use != f.end_use:
        flaws.append(f"is for end use {c.end_use!r}, not {f.end_use!r}")
    if c.expires_at is None or not _aware(c.expires_at):
        flaws.append("has no valid expiry")
    elif not _aware(f.at) or not f.at < c.expires_at:
        flaws.append(f"expired at {rfc3339(c.expires_at)}")
    used = f.used_consents.get(c.consent_id)
    if used is not None:
        flaws.append(f"was already used by transfer {used}")
    return flaws


def _counting_consents(f: TransferFacts
                       ) -> tuple[dict[str, ConsentFacts], dict[str, list[str]]]:
    """Owner -> the consent that counts; owner -> why the others do not.

    Of several valid consents by one owner, one naming every export-control tag
    of the model counts first (then the smallest id), so an earlier consent that
    does not name them never hides a later one that does.
    """
    counted: dict[str, ConsentFacts] = {}
    notes: dict[str, list[str]] = {}
    tags = frozenset(f.model.export_controls)
    for owner in sorted(f.model.owners):
        mine = sorted((c for c in f.consents if c.nation == owner),
                      key=lambda c: (not tags <= c.export_controls, c.consent_id))
        for consent in mine:
            flaws = _consent_flaws(consent, f)
            if not flaws and owner not in counted:
                counted[owner] = consent
            elif flaws:
                notes.setdefault(owner, []).append(
                    f"consent {consent.consent_id} {', '.join(flaws)}")
    return counted, notes


def _consent_reason(f: TransferFacts, counted: Mapping[str, ConsentFacts],
                    notes: Mapping[str, list[str]]) -> Reason:
    parts: list[str] = []
    missing = [o for o in sorted(f.model.owners) if o not in counted]
    for owner in missing:
        why = notes.get(owner)
        parts.append(f"no valid consent from {owner}"
                     + (f" ({'; '.join(why)})" if why else ""))
    strangers = sorted({c.nation for c in f.consents} - set(f.model.owners))
    tail = []
    if strangers:
        tail.append(f"consents by {_codes(strangers)} ignored: not owners")
    if f.consent_problems:
        tail.append("refused statements: " + "; ".join(f.consent_problems))
    if missing:
        return Reason("consent", False, "; ".join(parts + tail))
    given = "; ".join(
        f"{o} consented ({c.consent_id}, until "
        f"{rfc3339(c.expires_at) if c.expires_at else '?'})"
        for o, c in sorted(counted.items()))
    return Reason("consent", True, "; ".join([given, *tail]))


def _releasability_reason(f: TransferFacts) -> Reason:
    rel = f.model.releasable_to
    if f.recipient in rel:
        return Reason("releasability", True,
                      f"{f.recipient} is in releasable-to ({_codes(rel)})")
    return Reason("releasability", False,
                  f"{f.recipient} is not in releasable-to ({_codes(rel)})")


def _export_reason(f: TransferFacts, counted: Mapping[str, ConsentFacts]) -> Reason:
    tags = sorted(str(t) for t in f.model.export_controls)
    if not tags:
        return Reason("export-control", True, "no export-control tags")
    problems: list[str] = []
    notes: list[str] = []
    releasable = f.recipient in f.model.releasable_to
    for tag in tags:
        kind = classify_export_control(tag)
        if kind == "unknown":
            problems.append(f"unknown export-control tag {tag!r} (fail closed)")
            continue
        if not releasable:
            problems.append(f"{tag}: {f.recipient} is not in releasable-to")
        if kind == "ear99":
            notes.append(f"{tag}: releasable to {f.recipient}")
            continue
        regime = "ITAR (22 CFR 120-130)" if kind == "itar" else "EAR (15 CFR 730-774)"
        unnamed = [o for o in sorted(f.model.owners)
                   if o not in counted or tag not in counted[o].export_controls]
        if unnamed:
            problems.append(f"{tag}: {regime} export needs every owner's consent to "
                            f"name it; none from {_codes(unnamed)} does")
        else:
            notes.append(f"{tag}: named in every owner's consent")
    if problems:
        return Reason("export-control", False, "; ".join(problems))
    return Reason("export-control", True, "; ".join(notes))


def _end_use_reason(f: TransferFacts, relied: Sequence[Agreement]) -> Reason:
    use = f.end_use
    if not isinstance(use, str) or not SLUG.fullmatch(use):
        return Reason("end-use", False, f"end use {use!r} is not a lower-case slug")
    problems: list[str] = []
    prohibiting = sorted({a.id for a in relied if use in a.prohibited_end_uses})
    if prohibiting:
        problems.append(f"end use {use!r} is prohibited by agreement(s) "
                        f"{', '.join(prohibiting)}")
    for caveat in sorted(str(c) for c in f.model.caveats):
        if caveat == "NOFORN":
            problems.append("caveat NOFORN: not releasable to foreign nations")
        elif caveat.startswith("NO-") and len(caveat) > 3:
            if use == caveat[3:].lower():
                problems.append(f"caveat {caveat} forbids end use {use!r}")
        elif caveat.endswith("-ONLY") and len(caveat) > 5:
            if use != caveat[:-5].lower():
                problems.append(f"caveat {caveat} permits only end use "
                                f"{caveat[:-5].lower()!r}")
        else:
            problems.append(f"caveat {caveat} is not understood by the transfer "
                            "policy (fail closed)")
    if problems:
        return Reason("end-use", False, "; ".join(problems))
    checked = ", ".join(sorted({a.id for a in relied})) or "none"
    return Reason("end-use", True, f"end use {use!r} is not prohibited (agreements "
                                   f"checked: {checked}; caveats: "
                                   f"{_codes(f.model.caveats)})")


def _why_ended(agreement_id: str, why: str) -> str:
    text = str(why)
    return text if text.startswith("agreement ") else f"agreement {agreement_id} {text}"


def _permits_onward(ids: Iterable[str], f: TransferFacts, what: str
                    ) -> tuple[list[str], list[str]]:
    """(problems, permitting ids): every id must be in force and "with-consent"."""
    effective = {a.id for a in f.agreements}
    problems: list[str] = []
    ok: list[str] = []
    for aid in sorted(set(ids)):
        if aid in f.ended:
            problems.append(f"{_why_ended(aid, f.ended[aid])}: it no longer permits "
                            f"{what}")
            continue
        doc = f.documents.get(aid)
        if aid not in effective or doc is None:
            problems.append(f"agreement {aid} is not in force")
        elif doc.third_party_transfer != "with-consent":
            problems.append(f"agreement {aid} prohibits {what} "
                            f"(third_party_transfer = {doc.third_party_transfer!r})")
        else:
            ok.append(aid)
    return problems, ok


def _agreement_reason(f: TransferFacts
                      ) -> tuple[Reason, dict[str, Agreement], list[str], bool]:
    """The reason, owner -> chosen agreement, third-party permitting ids, and
    whether the recipient is a third party for some owner."""
    recipient = f.recipient
    if not _aware(f.at):
        return (Reason("agreement", False, "no valid decision time to check "
                       "agreements against"), {}, [], False)
    day = f.at.astimezone(UTC).date()
    chosen: dict[str, Agreement] = {}
    parts: list[str] = []
    failed = False
    third: list[str] = []
    for owner in sorted(f.deciding_owners or f.model.owners):
        covering = [a for a in f.agreements
                    if a.covers(owner, recipient) and a.id not in f.ended]
        valid = sorted((a for a in covering if a.is_valid_on(day)),
                       key=lambda a: (-a.valid_from.toordinal(), a.id))
        if valid:
            chosen[owner] = valid[0]
            parts.append(f"{owner}-{recipient}: agreement {valid[0].id} in force on "
                         f"{day.isoformat()}")
            continue
        third.append(owner)
        gone = [f"agreement {a.id} is not valid on {day.isoformat()} "
                f"({a.valid_from} to {a.valid_until})"
                for a in sorted(covering, key=lambda a: a.id)]
        for aid, why in sorted(f.ended.items()):
            doc = f.documents.get(aid)
            if doc is not None and doc.covers(owner, recipient):
                gone.append(_why_ended(aid, why))
        gone_tail = f" ({'; '.join(gone)})" if gone else ""
        if not f.derived_under:
            failed = True
            parts.append(f"{recipient} is a third party for {owner}: no agreement "
                         f"between them is in force{gone_tail}, and "
                         f"{f.model.model_id} was derived under no agreement that "
                         "could permit third-party transfer")
            continue
        problems, ok = _permits_onward(f.derived_under, f, "third-party transfer")
        if problems:
            failed = True
            parts.append(f"{recipient} is a third party for {owner}: no agreement "
                         f"between them is in force{gone_tail}; "
                         + "; ".join(problems))
        else:
            parts.append(f"{recipient} is a third party for {owner}{gone_tail}; "
                         f"permitted with every owner's consent under "
                         f"{', '.join(ok)}")
    permitting = sorted(set(f.derived_under)) if third else []
    return Reason("agreement", not failed, "; ".join(parts) or "no owners"), \
        chosen, permitting, bool(third)


def _re_transfer_reason(f: TransferFacts) -> tuple[Reason, list[str], bool]:
    sender = f.sender
    if sender is None or sender in f.model.owners:
        return Reason("re-transfer", True, "transfer by the owners, not a "
                      "re-transfer"), [], False
    if sender not in f.holders:
        return Reason("re-transfer", False,
                      f"{sender} neither owns {f.model.model_id} nor holds it by a "
                      "completed transfer"), [], True
    relied = sorted(set(f.derived_under) | set(f.holders[sender]))
    if not relied:
        return Reason("re-transfer", False,
                      f"re-transfer by {sender}: no agreement relied on permits "
                      "third-party re-transfer"), [], True
    problems, ok = _permits_onward(relied, f, "third-party re-transfer")
    if problems:
        return Reason("re-transfer", False,
                      f"re-transfer by {sender}: " + "; ".join(problems)), relied, True
    return Reason("re-transfer", True,
                  f"re-transfer by {sender} permitted with every owner's consent "
                  f"under {', '.join(ok)}"), relied, True


def evaluate_transfer(facts: TransferFacts) -> TransferDecision:
    """Decide a model transfer (pure; the rules are in the module docstring).

    Parameters
    ----------
    facts
        The request and everything known about it (see :class:`TransferFacts`);
        consents must already be signature-verified by the caller.

    Returns
    -------
    TransferDecision
        ``permit`` only if every rule of :data:`RULES` passed; ``reasons`` holds
        one entry per rule, in order. Never raises for bad input: it denies.
    """
    f = facts
    counted, notes = _counting_consents(f)
    agreement, chosen, third_ids, third_party = _agreement_reason(f)
    re_reason, re_ids, re_transfer = _re_transfer_reason(f)
    relied_ids = {a.id for a in chosen.values()} | set(third_ids) | set(re_ids)
    relied_docs = list(chosen.values()) + [
        f.documents[aid] for aid in sorted(set(f.derived_under) | set(re_ids))
        if aid in f.documents]
    reasons = (
        _request_reason(f),
        _consent_reason(f, counted, notes),
        _releasability_reason(f),
        _export_reason(f, counted),
        _end_use_reason(f, relied_docs),
        agreement,
        re_reason,
    )
    return TransferDecision(
        model_id=str(f.model.model_id), recipient=str(f.recipient),
        end_use=str(f.end_use), sender=f.sender,
        permit=all(r.passed for r in reasons), reasons=reasons,
        relied_agreement_ids=tuple(sorted(relied_ids)),
        consent_ids=tuple(counted[o].consent_id for o in sorted(counted)),
        third_party=third_party, re_transfer=re_transfer)
