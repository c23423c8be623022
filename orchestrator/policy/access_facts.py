"""Access facts and decisions: what an owner's custodian decides a data-key
release on (:class:`SiteFacts`, :class:`AccessRequest`, :class:`PolicyContext`
with any :class:`ApprovalFacts`) and what it decides (:class:`Decision`, one
:class:`Reason` per rule, an :class:`Outcome`). The rules themselves are
:func:`orchestrator.policy.access.evaluate`. Pure: no I/O, no clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from typing import Any

from orchestrator.labels import Classification, Label

__all__ = ["AccessRequest", "ApprovalFacts", "Decision", "Outcome", "PolicyContext",
           "Reason", "SiteFacts"]


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


@dataclass(frozen=True)
class ApprovalFacts:
    """A case-by-case approval the caller has already verified cryptographically
    (signature by this owner's officer). The policy checks its content.

    Attributes
    ----------
    approval_id
        The approval's identifier (cited in reasons).
    decision
        ``"approve"`` or ``"deny"``; any other value never counts.
    owner
        ISO 3166-1 alpha-3 code of the nation whose officer signed it.
    request_digest
        The request it is bound to (``"sha256:<hex>"``); compared exactly with
        :attr:`PolicyContext.request_digest`.
    expires_at
        Timezone-aware instant (UTC) from which an ``approve`` no longer counts
        (valid only while ``PolicyContext.at < expires_at``). A naive datetime
        never counts.
    agreement_id
        The agreement under which the officer reviewed the request. When given,
        the approval counts only under that agreement: a successor agreement
        needs its own review. Empty: not checked.
    """

    approval_id: str
    decision: str
    owner: str
    request_digest: str
    expires_at: datetime
    agreement_id: str = ""


@dataclass(frozen=True)
class PolicyContext:
    """Facts for rules (5)-(8) that the caller gathered (and verified) beforehand.

    Every field defaults to "nothing known", under which rules (5)-(7) decide as
    they do without a context.

    Attributes
    ----------
    request_digest
        Digest of the request being decided (``"sha256:<hex>"``); an approval must
        be bound to it. Empty: no approval can count.
    at
        The decision instant, timezone-aware (UTC). ``None`` (or naive): approvals
        cannot be checked and are treated as absent.
    approval
        The approval presented for this request, if any (see :class:`ApprovalFacts`).
    quarter_usage_gpu_hours
        Agreement id -> GPU-hours already used under it in the calendar quarter of
        ``AccessRequest.on`` (finite, >= 0; a missing id means 0). Consulted only
        for agreements with a ``quarterly_threshold_gpu_hours``.
    acknowledged
        True when the oversight notification for this request was acknowledged
        (releases a ``hold_until_acknowledged`` hold).
    ended
        Agreement id -> why it no longer applies (e.g. ``"terminated by AUS officer
        on 2026-11-21: exercise over"``), cited as ``"agreement <id> <why>"`` (or as
        ``<why>`` if it already starts so) when no agreement is chosen for a pair.
        For explanation only: it never changes an outcome. An entry is cited for a
        pair when the agreement of that id in ``agreements`` covers the pair or, if
        it is not there, when the id names both nations (``"AUS-USA-X"``).
    """

    request_digest: str = ""
    at: datetime | None = None
    approval: ApprovalFacts | None = None
    quarter_usage_gpu_hours: Mapping[str, float] = field(default_factory=dict)
    acknowledged: bool = False
    ended: Mapping[str, str] = field(default_factory=dict)


class Outcome(StrEnum):
    """The result of evaluating a request."""

    PERMIT = "permit"
    DENY = "deny"
    NEEDS_APPROVAL = "needs-approval"
    HELD = "held"
    """Every rule passed but a notification must be acknowledged first."""


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
        PERMIT, DENY, NEEDS_APPROVAL or HELD.
    reasons
        One :class:`Reason` per rule, in rule order.
    agreement_id
        The agreement the decision relied on; ``None`` for domestic use or none.
    notify
        True when the oversight body must be notified (a threshold crossed on a
        request that is not denied); equals ``bool(notices)``.
    notices
        The notifications triggered, in order: ``"per-request"`` and/or
        ``"quarterly"``; empty when denied.
    joint_agreement_ids
        Rule (8): the agreement chosen with each co-owner, in co-owner order.
    """

    owner: str
    outcome: Outcome
    reasons: tuple[Reason, ...]
    agreement_id: str | None
    notify: bool
    notices: tuple[str, ...] = ()
    joint_agreement_ids: tuple[str, ...] = ()

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
            "notices": list(self.notices),
            "joint_agreement_ids": list(self.joint_agreement_ids),
            "reasons": [{"rule": r.rule, "passed": r.passed, "detail": r.detail}
                        for r in self.reasons],
        }
