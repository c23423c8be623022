"""The owner's release policy: may this job, at this site, use this dataset?

The custodian of each owning nation runs :func:`evaluate` before releasing a data
key; the orchestrator may run the same code to pre-check and explain a refusal,
but only the owner's decision releases anything.

The policy is a pure function of its inputs: no I/O and no clock reads (the day
is ``AccessRequest.on``; the instant, for approvals, is ``PolicyContext.at``).
Facts that need I/O or cryptography (a verified approval, the quarter's usage,
an acknowledgement, ended agreements) come in a :class:`PolicyContext` that the
caller has already checked (the facts and the decision are in
:mod:`orchestrator.policy.access_facts`, re-exported here). Every rule is
evaluated and recorded as a :class:`Reason`, in this order, so that a refusal
lists *all* its causes:

(1) ``owner``: the deciding nation owns the data (it decides only for its own).
(2) ``request``: a non-empty dataset id and priority area, a calendar date, and a
    finite, non-negative number of GPU-hours.
(3) ``releasability``: the site's operator nation is in the label's releasable-to.
(4) ``accreditation``: the site's accreditation is at least the classification.
(5) ``agreement``: domestic use (operator = owner) needs none; otherwise an
    agreement whose parties are exactly {owner, operator} must be valid on the day
    (inclusive window). Among several, the one with the latest ``valid_from`` wins,
    then the smallest ``id``. When none is chosen, the entries of
    ``PolicyContext.ended`` for the pair are cited (explanation only: the caller
    passes only effective agreements).
(6) ``tier``: the agreement lists the priority area; ``pre-approved`` passes
    (approvals are ignored); an unlisted area denies; ``case-by-case`` passes with
    a counting ``approve`` approval, denies with a counting ``deny`` one, and
    otherwise needs an explicit approval (the reason is recorded as not passed,
    with a detail starting ``needs approval:`` that says why a presented approval
    does not count). An approval counts when ``PolicyContext.at`` is a
    timezone-aware instant, it is signed for the deciding owner, bound to the
    non-empty ``PolicyContext.request_digest``, given under the agreement chosen
    now (when ``ApprovalFacts.agreement_id`` is set), and (for ``approve``)
    ``at < expires_at``; a bound ``deny`` counts even after its expiry.
(7) ``threshold``: more GPU-hours than the agreement's per-request notification
    threshold gives the notice ``"per-request"``; the quarter's usage under the
    agreement (``PolicyContext.quarter_usage_gpu_hours``) plus the request above
    its ``quarterly_threshold_gpu_hours`` (when set) gives ``"quarterly"``
    (strictly above, in both cases). A notice never denies, but under an agreement
    with ``hold_until_acknowledged`` it *holds* the request (the reason is recorded
    as not passed, with a detail starting ``held: awaiting acknowledgement by``)
    until ``PolicyContext.acknowledged``. An invalid usage figure (negative,
    non-finite, not a number) denies.
(8) ``joint``: evaluated only when a :class:`PolicyContext` is given (calls
    without one return the seven reasons above, as before). For a label with
    several owners, the deciding owner needs, with *each* co-owner, an agreement
    whose parties are exactly {owner, co-owner} valid on the day (chosen as in
    (5)); a single-owner label passes.

Outcome, by precedence: DENY if any rule failed other than a case-by-case tier
that needs approval or a threshold hold; else NEEDS_APPROVAL if the tier needs
approval; else HELD if the threshold holds; else PERMIT. Any doubt (bad types,
non-finite numbers, naive datetimes) fails closed.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TypeGuard

from orchestrator.labels import ISO3166_ALPHA3, Classification, Label
from orchestrator.policy.access_facts import (
    AccessRequest,
    ApprovalFacts,
    Decision,
    Outcome,
    PolicyContext,
    Reason,
    SiteFacts,
)
from orchestrator.protocol.agreements import AccessTier, Agreement, quarter_of

__all__ = ["AccessRequest", "ApprovalFacts", "Decision", "Outcome", "PolicyContext",
           "Reason", "SiteFacts", "combined_outcome", "evaluate", "evaluate_all"]

_NEEDS_APPROVAL = "needs approval: "
_HELD = "held: awaiting acknowledgement by "


def _valid_hours(value: object) -> TypeGuard[int | float]:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


def _aware(value: object) -> TypeGuard[datetime]:
    return isinstance(value, datetime) and value.utcoffset() is not None


def _text(value: object) -> str:
    return value if isinstance(value, str) else repr(value)


def _request_reason(request: AccessRequest) -> Reason:
    problems = []
    if not isinstance(request.dataset_id, str) or not request.dataset_id.strip():
        problems.append("dataset id is empty")
    if not isinstance(request.priority_area, str) or not request.priority_area.strip():
        problems.append("priority area is empty")
    if not _valid_hours(request.gpu_hours):
        problems.append(f"gpu_hours {request.gpu_hours!r} is not a finite number >= 0")
    if not isinstance(request.on, date) or isinstance(request.on, datetime):
        problems.append(f"day {request.on!r} is not a calendar date")
    if problems:
        return Reason("request", False, "; ".join(problems))
    return Reason("request", True,
                  f"{request.gpu_hours} GPU-hours in area {request.priority_area!r} "
                  f"on {request.on.isoformat()}")


def _ended_notes(nation_a: str, nation_b: str, agreements: Sequence[Agreement],
                 ended: Mapping[str, str]) -> list[str]:
    """``"agreement <id> <why>"`` for the ended agreements of the pair."""
    if not isinstance(ended, Mapping):
        return []
    known = {a.id: a for a in agreements}
    notes = []
    for aid, why in sorted((k, v) for k, v in ended.items() if isinstance(k, str)):
        agreement = known.get(aid)
        if agreement is not None:
            relevant = agreement.covers(nation_a, nation_b)
        else:
            codes = set(re.split(r"[^A-Z0-9]+", aid.upper())) & ISO3166_ALPHA3
            relevant = nation_a != nation_b and {nation_a, nation_b} <= codes
        if relevant:
            text = _text(why)
            notes.append(text if text.startswith(f"agreement {aid} ")
                         else f"agreement {aid} {text}")
    return notes


def _choose(owner: str, operator: str, day: date | None,
            agreements: Sequence[Agreement], ended: Mapping[str, str] | None = None
            ) -> tuple[Agreement | None, Reason]:
    covering = sorted((a for a in agreements if a.covers(owner, operator)),
                      key=lambda a: (-a.valid_from.toordinal(), a.id))
    gone = _ended_notes(owner, operator, agreements, ended) if ended else []
    gone_tail = f" ({'; '.join(gone)})" if gone else ""
    if not covering:
        return None, Reason("agreement", False,
                            f"no agreement between {owner} and {operator}{gone_tail}")
    if day is None:
        return None, Reason("agreement", False,
                            f"no valid day to check agreements against{gone_tail}")
    valid = [a for a in covering if a.is_valid_on(day)]
    notes = []
    for a in covering:
        if day > a.valid_until:
            notes.append(f"agreement {a.id} expired on {a.valid_until.isoformat()}")
        elif day < a.valid_from:
            notes.append(f"agreement {a.id} not valid until "
                         f"{a.valid_from.isoformat()}")
    if not valid:
        tail = f" ({'; '.join(notes + gone)})" if notes or gone else ""
        return None, Reason("agreement", False,
                            f"no agreement between {owner} and {operator} valid on "
                            f"{day.isoformat()}{tail}")
    tail = f" ({'; '.join(notes)})" if notes else ""
    chosen = valid[0]
    return chosen, Reason("agreement", True,
                          f"agreement {chosen.id} valid on {day.isoformat()} "
                          f"({chosen.valid_from.isoformat()} to "
                          f"{chosen.valid_until.isoformat()}){tail}")


def _approval(owner: str, context: PolicyContext,
              agreement: Agreement | None = None) -> tuple[str | None, str]:
    """The counting decision (``"approve"``/``"deny"``) of the presented approval,
    or ``None`` and why it does not count (empty when there is none)."""
    approval = context.approval
    if approval is None:
        return None, ""
    if not isinstance(approval, ApprovalFacts):
        return None, f"approval {approval!r} is not an ApprovalFacts"
    aid = _text(approval.approval_id)
    at = context.at
    problems = []
    if at is None:
        problems.append(f"approval {aid} not checked: no decision time")
    elif not _aware(at):
        problems.append(f"approval {aid} not checked: decision time {at!r} is not "
                        "timezone-aware")
    signer = (approval.owner.strip().upper() if isinstance(approval.owner, str)
              else repr(approval.owner))
    if signer != owner:
        problems.append(f"approval {aid} is signed for {signer}, not {owner}")
    digest = context.request_digest
    if not isinstance(digest, str) or not digest:
        problems.append(f"approval {aid} cannot be bound: no request digest")
    elif approval.request_digest != digest:
        problems.append(f"approval {aid} is bound to another request")
    given_under = getattr(approval, "agreement_id", "")
    if (agreement is not None and given_under
            and given_under != agreement.id):
        problems.append(f"approval {aid} was given under agreement {given_under}, "
                        f"not {agreement.id}")
    decision = approval.decision
    if decision not in ("approve", "deny"):
        problems.append(f"approval {aid} has unknown decision {decision!r}")
    expires = approval.expires_at
    if not _aware(expires):
        problems.append(f"approval {aid} expiry {expires!r} is not a "
                        "timezone-aware time")
    elif decision == "approve" and _aware(at) and at >= expires:
        problems.append(f"approval {aid} expired at {expires.isoformat()}")
    if problems:
        return None, "; ".join(problems)
    return decision, ""


def _tier_reason(owner: str, agreement: Agreement, area_name: str,
                 context: PolicyContext) -> tuple[Reason, bool]:
    """The tier verdict, and whether it is a case-by-case ``needs approval``."""
    area = agreement.area(area_name) if isinstance(area_name, str) else None
    if area is None:
        return Reason("tier", False, f"area {area_name!r} is not a priority area of "
                                     f"agreement {agreement.id}"), False
    if area.tier is AccessTier.PRE_APPROVED:
        return Reason("tier", True, f"area {area.name} is pre-approved under "
                                    f"agreement {agreement.id}"), False
    scope = f"case-by-case area {area.name} under agreement {agreement.id}"
    verdict, why = _approval(owner, context, agreement)
    approval = context.approval
    if verdict == "approve" and approval is not None:
        return Reason("tier", True, f"approved by {owner} officer (approval "
                      f"{approval.approval_id}, expires "
                      f"{approval.expires_at.isoformat()}) for {scope}"), False
    if verdict == "deny" and approval is not None:
        return Reason("tier", False, f"denied by {owner} officer (approval "
                      f"{approval.approval_id}) for {scope}"), False
    tail = f" ({why})" if why else ""
    return Reason("tier", False, f"{_NEEDS_APPROVAL}case-by-case review of area "
                                 f"{area.name} under agreement {agreement.id}{tail}"
                  ), True


def _threshold_reason(agreement: Agreement, request: AccessRequest,
                      context: PolicyContext
                      ) -> tuple[Reason, tuple[str, ...], bool]:
    """The threshold verdict, the notices triggered, and whether it holds."""
    hours = request.gpu_hours
    if not _valid_hours(hours):
        return Reason("threshold", True, "not evaluated: invalid gpu_hours"), (), False
    limit = agreement.notification_threshold_gpu_hours
    notices: list[str] = []
    if hours > limit:
        notices.append("per-request")
        parts = [f"{hours} GPU-hours exceeds the notification threshold {limit} of "
                 f"agreement {agreement.id}"]
    else:
        parts = [f"{hours} GPU-hours within the notification threshold {limit}"]
    quarterly = agreement.quarterly_threshold_gpu_hours
    if quarterly is not None:
        quarter = quarter_of(request.on)
        usage = context.quarter_usage_gpu_hours
        used: object = (usage.get(agreement.id, 0.0) if isinstance(usage, Mapping)
                        else usage)
        if not _valid_hours(used):
            return Reason("threshold", False, f"GPU-hours used under agreement "
                          f"{agreement.id} in {quarter} ({used!r}) is not a finite "
                          "number >= 0"), (), False
        if used + hours > quarterly:
            notices.append("quarterly")
            parts.append(f"{used} GPU-hours used in {quarter} plus {hours} "
                         f"requested exceeds the quarterly threshold {quarterly} of "
                         f"agreement {agreement.id}")
        else:
            parts.append(f"{used} GPU-hours used in {quarter} plus {hours} "
                         f"requested within the quarterly threshold {quarterly}")
    text = "; ".join(parts)
    if not notices:
        return Reason("threshold", True, text), (), False
    body = agreement.oversight_body
    text += f": notify {body}"
    if not agreement.hold_until_acknowledged:
        return Reason("threshold", True, text), tuple(notices), False
    if context.acknowledged is True:
        return (Reason("threshold", True, f"{text}; acknowledged on behalf of {body}"),
                tuple(notices), False)
    return Reason("threshold", False, f"{_HELD}{body}; {text}"), tuple(notices), True


def _joint_reason(owner: str, label: Label, day: date | None,
                  agreements: Sequence[Agreement], context: PolicyContext
                  ) -> tuple[Reason, tuple[str, ...]]:
    """Rule (8): the verdict and the agreement chosen with each co-owner."""
    owners = label.owners
    if owner not in owners:
        return Reason("joint", False, f"not evaluated: {owner} is not an owner"), ()
    co_owners = sorted(owners - {owner})
    if not co_owners:
        return Reason("joint", True, "single owner: no joint agreement needed"), ()
    parts, ids, ok = [], [], True
    for other in co_owners:
        chosen, reason = _choose(owner, other, day, agreements, context.ended)
        parts.append(f"with {other}: {reason.detail}")
        if chosen is None:
            ok = False
        else:
            ids.append(chosen.id)
    return Reason("joint", ok, "; ".join(parts)), tuple(ids)


def evaluate(owner: str, request: AccessRequest, agreements: Sequence[Agreement],
             *, context: PolicyContext | None = None) -> Decision:
    """Evaluate every rule of the module docstring for ``owner``.

    Parameters
    ----------
    owner
        The deciding nation (ISO 3166-1 alpha-3); case and spaces are normalised.
    request
        The request to decide.
    agreements
        The owner's effective agreements (ended ones left out by the caller);
        those not between exactly ``owner`` and the site's operator (or, for rule
        (8), a co-owner) are ignored.
    context
        Verified facts for rules (5)-(8). ``None``: rules (1)-(7) only, with the
        :class:`PolicyContext` defaults (no approval, no usage, not acknowledged),
        exactly as before rule (8) existed; any context adds rule (8).

    Returns
    -------
    Decision
        Never raises for bad request or context contents: they fail closed.
    """
    joint = context is not None
    ctx = context if context is not None else PolicyContext()
    owner = owner.strip().upper() if isinstance(owner, str) else repr(owner)
    label = request.label
    site = request.site
    operator = site.operator_nation
    reasons: list[Reason] = []
    # (1) owner
    owns = owner in label.owners
    owners = ", ".join(sorted(label.owners))
    reasons.append(Reason("owner", owns, f"{owner} owns dataset {request.dataset_id}"
                          if owns else f"{owner} is not an owner of dataset "
                          f"{request.dataset_id} (owners: {owners})"))
    # (2) request
    req = _request_reason(request)
    reasons.append(req)
    day = (request.on if isinstance(request.on, date)
           and not isinstance(request.on, datetime) else None)
    # (3) releasability
    rel = operator in label.releasable_to
    reasons.append(Reason("releasability", rel, f"operator nation {operator} of site "
                          f"{site.name} is {'' if rel else 'not '}in releasable-to "
                          f"({', '.join(sorted(label.releasable_to)) or 'none'})"))
    # (4) accreditation
    acc = (isinstance(site.accreditation, Classification)
           and site.accreditation >= label.classification)
    acc_text = (site.accreditation.marking
                if isinstance(site.accreditation, Classification)
                else repr(site.accreditation))
    reasons.append(Reason("accreditation", acc, f"site {site.name} accredited to "
                          f"{acc_text}, data is {label.classification.marking}"))
    # (5)-(7) agreement, tier, threshold
    chosen: Agreement | None = None
    notices: tuple[str, ...] = ()
    needs_approval = held = False
    if operator == owner:
        domestic = "domestic use: no "
        reasons += [Reason("agreement", True, f"{domestic}agreement needed"),
                    Reason("tier", True, f"{domestic}priority-area restriction"),
                    Reason("threshold", True, f"{domestic}notification threshold")]
    else:
        chosen, agreement_reason = _choose(owner, operator, day, agreements,
                                           ctx.ended)
        reasons.append(agreement_reason)
        if chosen is None:
            reasons += [Reason("tier", False, "no valid agreement to grant area "
                               f"{request.priority_area!r}"),
                        Reason("threshold", True, "not applicable: no valid agreement")]
        else:
            tier, needs_approval = _tier_reason(owner, chosen, request.priority_area,
                                                ctx)
            threshold, notices, held = _threshold_reason(chosen, request, ctx)
            reasons += [tier, threshold]
    # (8) joint
    joint_ids: tuple[str, ...] = ()
    if joint:
        joint_reason, joint_ids = _joint_reason(owner, label, day, agreements, ctx)
        reasons.append(joint_reason)
    hard_fail = any(not r.passed for r in reasons
                    if not (needs_approval and r.rule == "tier")
                    and not (held and r.rule == "threshold"))
    outcome = (Outcome.DENY if hard_fail else
               Outcome.NEEDS_APPROVAL if needs_approval else
               Outcome.HELD if held else Outcome.PERMIT)
    if outcome is Outcome.DENY:
        notices = ()
    return Decision(owner=owner, outcome=outcome, reasons=tuple(reasons),
                    agreement_id=chosen.id if chosen is not None else None,
                    notify=bool(notices), notices=notices,
                    joint_agreement_ids=joint_ids)


def evaluate_all(request: AccessRequest,
                 agreements_by_owner: Mapping[str, Sequence[Agreement]],
                 *, context: PolicyContext | None = None) -> tuple[Decision, ...]:
    """One :func:`evaluate` per owner of the label, in sorted owner order.

    An owner missing from ``agreements_by_owner`` is evaluated with no agreements.
    The same ``context`` goes to every owner (an approval counts only for the owner
    whose officer signed it). Combine with :func:`combined_outcome`: the request
    proceeds only if every owner permits. Never raises for bad contents.
    """
    return tuple(evaluate(owner, request, agreements_by_owner.get(owner, ()),
                          context=context)
                 for owner in sorted(request.label.owners))


def combined_outcome(decisions: Iterable[Decision]) -> Outcome:
    """DENY if any decision denies (or there are none), else NEEDS_APPROVAL if any
    needs approval, else HELD if any is held, else PERMIT."""
    outcomes = [d.outcome for d in decisions]
    if not outcomes or Outcome.DENY in outcomes:
        return Outcome.DENY
    for outcome in (Outcome.NEEDS_APPROVAL, Outcome.HELD):
        if outcome in outcomes:
            return outcome
    return Outcome.PERMIT
