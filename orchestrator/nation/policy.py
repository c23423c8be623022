"""The owner's release policy: may this job, at this site, use this dataset?

The custodian of each owning nation runs :func:`evaluate` before releasing a data
key; the orchestrator may run the same code to pre-check and explain a refusal,
but only the owner's decision releases anything.

The policy is a pure function of its inputs: no I/O and no clock reads (the day
is ``AccessRequest.on``). Every rule is evaluated and recorded as a
:class:`Reason`, in this order, so that a refusal lists *all* its causes:

(1) ``owner``: the deciding nation owns the data (it decides only for its own).
(2) ``request``: a non-empty dataset id and priority area, a calendar date, and a
    finite, non-negative number of GPU-hours.
(3) ``releasability``: the site's operator nation is in the label's releasable-to.
(4) ``accreditation``: the site's accreditation is at least the classification.
(5) ``agreement``: domestic use (operator = owner) needs none; otherwise an
    agreement whose parties are exactly {owner, operator} must be valid on the day
    (inclusive window). Among several, the one with the latest ``valid_from`` wins,
    then the smallest ``id``.
(6) ``tier``: the agreement lists the priority area; ``pre-approved`` passes,
    ``case-by-case`` needs an explicit approval (the reason is recorded as not
    passed, with a detail starting ``needs approval:``); an unlisted area denies.
(7) ``threshold``: more GPU-hours than the agreement's notification threshold sets
    ``notify`` (never denies).

Outcome: DENY if any rule other than a case-by-case tier failed; else
NEEDS_APPROVAL if the tier needs approval; else PERMIT. Any doubt (bad types,
non-finite numbers) fails closed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from orchestrator.agreements import AccessTier, Agreement
from orchestrator.labels import Classification, Label

__all__ = ["AccessRequest", "Decision", "Outcome", "Reason", "SiteFacts",
           "combined_outcome", "evaluate", "evaluate_all"]

_NEEDS_APPROVAL = "needs approval: "


@dataclass(frozen=True)
class SiteFacts:
    """What the policy knows of a site.

    Attributes
    ----------
    name
        The registered site name.
    operator_nation
        ISO 3166-1 alpha-3 code of the nation operating the site (canonical form).
    accreditation
        The highest classification the site is accredited to process.
    """

    name: str
    operator_nation: str
    accreditation: Classification


@dataclass(frozen=True)
class AccessRequest:
    """One job's request to use one dataset at one site.

    Attributes
    ----------
    dataset_id
        The dataset's registry id.
    label
        The dataset's security label.
    site
        Facts about the site that would run the job.
    priority_area
        The agreement priority area the job claims (a slug).
    gpu_hours
        Requested compute, in GPU-hours (finite, >= 0).
    on
        The calendar day the decision is for (agreements are checked on it).
    """

    dataset_id: str
    label: Label
    site: SiteFacts
    priority_area: str
    gpu_hours: float
    on: date


class Outcome(StrEnum):
    """The result of evaluating a request."""

    PERMIT = "permit"
    DENY = "deny"
    NEEDS_APPROVAL = "needs-approval"


@dataclass(frozen=True)
class Reason:
    """One rule's verdict: ``rule`` code, whether it ``passed``, and why."""

    rule: str
    passed: bool
    detail: str


@dataclass(frozen=True)
class Decision:
    """One owner's decision on a request.

    Attributes
    ----------
    owner
        The deciding nation.
    outcome
        PERMIT, DENY or NEEDS_APPROVAL.
    reasons
        One :class:`Reason` per rule, in rule order.
    agreement_id
        The agreement the decision relied on; ``None`` for domestic use or none.
    notify
        True when the oversight body must be notified (GPU-hours above the
        agreement's threshold on a request that is not denied).
    """

    owner: str
    outcome: Outcome
    reasons: tuple[Reason, ...]
    agreement_id: str | None
    notify: bool

    @property
    def permit(self) -> bool:
        """True only for :attr:`Outcome.PERMIT`."""
        return self.outcome is Outcome.PERMIT

    def denial_reasons(self) -> list[str]:
        """``"rule: detail"`` for every rule that did not pass."""
        return [f"{r.rule}: {r.detail}" for r in self.reasons if not r.passed]

    def to_json(self) -> dict[str, Any]:
        """Return a JSON-ready dict (for custody events and CLI output)."""
        return {
            "owner": self.owner,
            "outcome": self.outcome.value,
            "agreement_id": self.agreement_id,
            "notify": self.notify,
            "reasons": [{"rule": r.rule, "passed": r.passed, "detail": r.detail}
                        for r in self.reasons],
        }


def _valid_hours(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value) and value >= 0)


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


def _choose(owner: str, operator: str, day: date | None,
            agreements: Iterable[Agreement]) -> tuple[Agreement | None, Reason]:
    covering = sorted((a for a in agreements if a.covers(owner, operator)),
                      key=lambda a: (-a.valid_from.toordinal(), a.id))
    if not covering:
        return None, Reason("agreement", False,
                            f"no agreement between {owner} and {operator}")
    if day is None:
        return None, Reason("agreement", False,
                            "no valid day to check agreements against")
    valid = [a for a in covering if a.is_valid_on(day)]
    notes = []
    for a in covering:
        if day > a.valid_until:
            notes.append(f"agreement {a.id} expired on {a.valid_until.isoformat()}")
        elif day < a.valid_from:
            notes.append(f"agreement {a.id} not valid until "
                         f"{a.valid_from.isoformat()}")
    tail = f" ({'; '.join(notes)})" if notes else ""
    if not valid:
        return None, Reason("agreement", False,
                            f"no agreement between {owner} and {operator} valid on "
                            f"{day.isoformat()}{tail}")
    chosen = valid[0]
    return chosen, Reason("agreement", True,
                          f"agreement {chosen.id} valid on {day.isoformat()} "
                          f"({chosen.valid_from.isoformat()} to "
                          f"{chosen.valid_until.isoformat()}){tail}")


def _tier_reason(agreement: Agreement, area_name: str) -> tuple[Reason, bool]:
    """The tier verdict, and whether it is a case-by-case ``needs approval``."""
    area = agreement.area(area_name) if isinstance(area_name, str) else None
    if area is None:
        return Reason("tier", False, f"area {area_name!r} is not a priority area of "
                                     f"agreement {agreement.id}"), False
    if area.tier is AccessTier.PRE_APPROVED:
        return Reason("tier", True, f"area {area.name} is pre-approved under "
                                    f"agreement {agreement.id}"), False
    return Reason("tier", False, f"{_NEEDS_APPROVAL}case-by-case review of area "
                                 f"{area.name} under agreement {agreement.id}"), True


def evaluate(owner: str, request: AccessRequest,
             agreements: Sequence[Agreement]) -> Decision:
    """Evaluate every rule of the module docstring for ``owner``.

    Parameters
    ----------
    owner
        The deciding nation (ISO 3166-1 alpha-3); case and spaces are normalised.
    request
        The request to decide.
    agreements
        The owner's agreements; those not between exactly ``owner`` and the site's
        operator are ignored.

    Returns
    -------
    Decision
        Never raises for bad request contents: they are denied.
    """
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
    notify = needs_approval = False
    if operator == owner:
        domestic = "domestic use: no "
        reasons += [Reason("agreement", True, f"{domestic}agreement needed"),
                    Reason("tier", True, f"{domestic}priority-area restriction"),
                    Reason("threshold", True, f"{domestic}notification threshold")]
    else:
        chosen, agreement_reason = _choose(owner, operator, day, agreements)
        reasons.append(agreement_reason)
        if chosen is None:
            reasons += [Reason("tier", False, "no valid agreement to grant area "
                               f"{request.priority_area!r}"),
                        Reason("threshold", True, "not applicable: no valid agreement")]
        else:
            tier, needs_approval = _tier_reason(chosen, request.priority_area)
            reasons.append(tier)
            limit = chosen.notification_threshold_gpu_hours
            if not _valid_hours(request.gpu_hours):
                reasons.append(Reason("threshold", True,
                                      "not evaluated: invalid gpu_hours"))
            elif request.gpu_hours > limit:
                notify = True
                reasons.append(Reason("threshold", True, f"{request.gpu_hours} "
                               f"GPU-hours exceeds the notification threshold {limit} "
                               f"of agreement {chosen.id}: notify "
                               f"{chosen.oversight_body}"))
            else:
                reasons.append(Reason("threshold", True, f"{request.gpu_hours} "
                               f"GPU-hours within the notification threshold {limit}"))
    hard_fail = any(not r.passed for r in reasons
                    if not (needs_approval and r.rule == "tier"))
    outcome = (Outcome.DENY if hard_fail else
               Outcome.NEEDS_APPROVAL if needs_approval else Outcome.PERMIT)
    return Decision(owner=owner, outcome=outcome, reasons=tuple(reasons),
                    agreement_id=chosen.id if chosen is not None else None,
                    notify=notify and outcome is not Outcome.DENY)


def evaluate_all(request: AccessRequest,
                 agreements_by_owner: Mapping[str, Sequence[Agreement]]
                 ) -> tuple[Decision, ...]:
    """One :func:`evaluate` per owner of the label, in sorted owner order.

    An owner missing from ``agreements_by_owner`` is evaluated with no agreements.
    Combine with :func:`combined_outcome`: the request proceeds only if every
    owner permits.
    """
    return tuple(evaluate(owner, request, agreements_by_owner.get(owner, ()))
                 for owner in sorted(request.label.owners))


def combined_outcome(decisions: Iterable[Decision]) -> Outcome:
    """DENY if any decision denies (or there are none), else NEEDS_APPROVAL if any
    needs approval, else PERMIT."""
    outcomes = [d.outcome for d in decisions]
    if not outcomes or Outcome.DENY in outcomes:
        return Outcome.DENY
    if Outcome.NEEDS_APPROVAL in outcomes:
        return Outcome.NEEDS_APPROVAL
    return Outcome.PERMIT
