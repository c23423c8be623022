"""Targeted tests of the PolicyContext rules of orchestrator.policy.access:
approvals (rule 6), quarterly thresholds and holds (rule 7), ended agreements
(rule 5), the joint interlock (rule 8), outcome precedence and the Decision API.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import pytest

from orchestrator.labels import Classification, Label
from orchestrator.policy.access import (
    AccessRequest,
    ApprovalFacts,
    Decision,
    Outcome,
    PolicyContext,
    Reason,
    SiteFacts,
    combined_outcome,
    evaluate,
    evaluate_all,
)
from orchestrator.protocol.agreements import Agreement

C = Classification
DAY = date(2026, 6, 1)
AT = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32
OTHER_DIGEST = "sha256:" + "cd" * 32
RULES = ("owner", "request", "releasability", "accreditation", "agreement", "tier",
         "threshold")
RULES8 = (*RULES, "joint")
CASE = "quantum-sensing"
PRE = "undersea-autonomy"


def agreement(parties: Sequence[str] = ("AUS", "USA"), *, aid: str = "AUS-USA-1",
              start: date = date(2026, 1, 1), end: date = date(2027, 12, 31),
              threshold: float = 500.0, quarterly: float | None = None,
              hold: bool = False) -> Agreement:
    doc: dict[str, Any] = {
        "id": aid, "title": "t", "parties": list(parties),
        "valid_from": start.isoformat(), "valid_until": end.isoformat(),
        "notification_threshold_gpu_hours": threshold, "oversight_body": "JSG",
        "priority_area": [{"name": PRE, "tier": "pre-approved"},
                          {"name": CASE, "tier": "case-by-case"}],
        "hold_until_acknowledged": hold,
    }
    if quarterly is not None:
        doc["quarterly_threshold_gpu_hours"] = quarterly
    return Agreement.from_json(doc)


def request(*, owners: str = "AUS", rel: str = "AUS,CAN,GBR,USA",
            operator: str = "USA", acc: C = C.SECRET, area: str = PRE,
            hours: float = 100.0, on: date = DAY) -> AccessRequest:
    label = Label.create(owners=owners, classification="SECRET", releasable_to=rel)
    return AccessRequest(dataset_id="sonar-1", label=label,
                         site=SiteFacts(name="site-x", operator_nation=operator,
                                        accreditation=acc),
                         priority_area=area, gpu_hours=hours, on=on)


def approval(*, decision: str = "approve", owner: str = "AUS",
             digest: str = DIGEST, expires: datetime = AT + timedelta(hours=1),
             aid: str = "ap-1") -> ApprovalFacts:
    return ApprovalFacts(approval_id=aid, decision=decision, owner=owner,
                         request_digest=digest, expires_at=expires)


def ctx(**kwargs: Any) -> PolicyContext:
    kwargs.setdefault("request_digest", DIGEST)
    kwargs.setdefault("at", AT)
    return PolicyContext(**kwargs)


def reason(decision: Decision, rule: str) -> Reason:
    (found,) = [r for r in decision.reasons if r.rule == rule]
    return found


# -- the API --------------------------------------------------------------------


def test_context_defaults_and_frozen() -> None:
    c = PolicyContext()
    assert (c.request_digest, c.at, c.approval, c.acknowledged) == ("", None, None,
                                                                   False)
    assert dict(c.quarter_usage_gpu_hours) == {} and dict(c.ended) == {}
    with pytest.raises(dataclasses.FrozenInstanceError):
        c.acknowledged = True  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        approval().decision = "deny"  # type: ignore[misc]


def test_no_context_keeps_seven_rules_and_context_adds_joint() -> None:
    legacy = evaluate("AUS", request(), [agreement()])
    assert tuple(r.rule for r in legacy.reasons) == RULES
    assert legacy.notices == () and legacy.joint_agreement_ids == ()
    with_ctx = evaluate("AUS", request(), [agreement()], context=PolicyContext())
    assert tuple(r.rule for r in with_ctx.reasons) == RULES8
    assert with_ctx.reasons[:7] == legacy.reasons
    assert reason(with_ctx, "joint") == Reason(
        "joint", True, "single owner: no joint agreement needed")
    assert with_ctx.outcome is legacy.outcome is Outcome.PERMIT


def test_to_json_has_notices_and_joint_ids() -> None:
    req = request(owners="AUS,GBR", hours=600.0)
    agreements = [agreement(quarterly=550.0),
                  agreement(("AUS", "GBR"), aid="AUS-GBR-J")]
    d = evaluate("AUS", req, agreements, context=ctx())
    doc = d.to_json()
    assert doc["notices"] == ["per-request", "quarterly"] and doc["notify"] is True
    assert doc["joint_agreement_ids"] == ["AUS-GBR-J"]
    assert [r["rule"] for r in doc["reasons"]] == list(RULES8)
    legacy = evaluate("AUS", request(), [agreement()]).to_json()
    assert legacy["notices"] == [] and legacy["joint_agreement_ids"] == []


# -- rule (6): approvals ----------------------------------------------------------


def test_valid_approval_permits_case_by_case() -> None:
    d = evaluate("AUS", request(area=CASE), [agreement()],
                 context=ctx(approval=approval()))
    assert d.outcome is Outcome.PERMIT
    assert reason(d, "tier") == Reason(
        "tier", True, "approved by AUS officer (approval ap-1, expires "
        "2026-06-01T13:00:00+00:00) for case-by-case area quantum-sensing under "
        "agreement AUS-USA-1")


def test_bound_denial_denies() -> None:
    d = evaluate("AUS", request(area=CASE), [agreement()],
                 context=ctx(approval=approval(decision="deny")))
    assert d.outcome is Outcome.DENY
    assert reason(d, "tier").detail == (
        "denied by AUS officer (approval ap-1) for case-by-case area quantum-sensing "
        "under agreement AUS-USA-1")
    # a refusal does not lapse: an expired denial still denies
    d = evaluate("AUS", request(area=CASE), [agreement()], context=ctx(
        approval=approval(decision="deny", expires=AT - timedelta(days=1))))
    assert d.outcome is Outcome.DENY
    assert reason(d, "tier").detail.startswith("denied by AUS officer (approval ap-1)")


@pytest.mark.parametrize(("context", "why"), [
    (ctx(approval=approval(expires=AT - timedelta(minutes=1))),
     "approval ap-1 expired at 2026-06-01T11:59:00+00:00"),
    (ctx(approval=approval(expires=AT)),  # at == expires_at: already expired
     "approval ap-1 expired at 2026-06-01T12:00:00+00:00"),
    (ctx(approval=approval(owner="GBR")), "approval ap-1 is signed for GBR, not AUS"),
    (ctx(approval=approval(digest=OTHER_DIGEST)),
     "approval ap-1 is bound to another request"),
    (ctx(approval=approval(), request_digest=""),
     "approval ap-1 cannot be bound: no request digest"),
    (ctx(approval=approval(digest=""), request_digest=""),
     "approval ap-1 cannot be bound: no request digest"),
    (ctx(approval=approval(), at=None), "approval ap-1 not checked: no decision time"),
    (ctx(approval=approval(), at=AT.replace(tzinfo=None)),
     "approval ap-1 not checked: decision time datetime.datetime(2026, 6, 1, 12, 0) "
     "is not timezone-aware"),
    (ctx(approval=approval(expires=AT.replace(tzinfo=None) + timedelta(hours=1))),
     "approval ap-1 expiry datetime.datetime(2026, 6, 1, 13, 0) is not a "
     "timezone-aware time"),
    (ctx(approval=approval(decision="maybe")),
     "approval ap-1 has unknown decision 'maybe'"),
    (ctx(approval=approval(decision="deny", owner="GBR")),
     "approval ap-1 is signed for GBR, not AUS"),
    (ctx(approval=approval(decision="deny", digest=OTHER_DIGEST)),
     "approval ap-1 is bound to another request"),
    (ctx(approval=approval(decision="deny"), at=None),
     "approval ap-1 not checked: no decision time"),
])
def test_approval_that_does_not_count(context: PolicyContext, why: str) -> None:
    d = evaluate("AUS", request(area=CASE), [agreement()], context=context)
    assert d.outcome is Outcome.NEEDS_APPROVAL
    assert reason(d, "tier") == Reason(
        "tier", False, "needs approval: case-by-case review of area quantum-sensing "
        f"under agreement AUS-USA-1 ({why})")


def test_approval_problems_are_all_listed() -> None:
    context = ctx(approval=approval(owner="GBR", digest=OTHER_DIGEST,
                                    expires=AT - timedelta(hours=1)))
    detail = reason(evaluate("AUS", request(area=CASE), [agreement()],
                             context=context), "tier").detail
    assert detail.endswith("(approval ap-1 is signed for GBR, not AUS; approval ap-1 "
                           "is bound to another request; approval ap-1 expired at "
                           "2026-06-01T11:00:00+00:00)")


def test_approval_valid_until_just_before_expiry() -> None:
    context = ctx(approval=approval(expires=AT + timedelta(microseconds=1)))
    assert evaluate("AUS", request(area=CASE), [agreement()], context=context).permit
    # any timezone: compared as instants
    plus10 = timezone(timedelta(hours=10))
    context = ctx(approval=approval(expires=datetime(2026, 6, 1, 22, 0, 1,
                                                     tzinfo=plus10)))
    assert evaluate("AUS", request(area=CASE), [agreement()], context=context).permit
    context = ctx(approval=approval(expires=datetime(2026, 6, 1, 22, 0,
                                                     tzinfo=plus10)))
    assert not evaluate("AUS", request(area=CASE), [agreement()],
                        context=context).permit


def test_approval_owner_is_normalised() -> None:
    d = evaluate("aus", request(area=CASE), [agreement()],
                 context=ctx(approval=approval(owner=" aus ")))
    assert d.permit


def test_pre_approved_domestic_and_unlisted_areas_ignore_approvals() -> None:
    deny = ctx(approval=approval(decision="deny"))
    d = evaluate("AUS", request(area=PRE), [agreement()], context=deny)
    assert d.permit and reason(d, "tier").detail == (
        "area undersea-autonomy is pre-approved under agreement AUS-USA-1")
    d = evaluate("AUS", request(operator="AUS", area=CASE), [], context=deny)
    assert d.permit
    d = evaluate("AUS", request(area="hypersonics"), [agreement()],
                 context=ctx(approval=approval()))
    assert d.outcome is Outcome.DENY
    assert reason(d, "tier").detail == ("area 'hypersonics' is not a priority area "
                                        "of agreement AUS-USA-1")


def test_approval_does_not_override_hard_failures() -> None:
    d = evaluate("AUS", request(area=CASE, acc=C.OFFICIAL), [agreement()],
                 context=ctx(approval=approval()))
    assert d.outcome is Outcome.DENY and reason(d, "tier").passed
    assert [r.rule for r in d.reasons if not r.passed] == ["accreditation"]


def test_evaluate_all_approval_counts_for_its_signer_only() -> None:
    req = request(owners="AUS,GBR", area=CASE)
    by_owner = {"AUS": [agreement(), agreement(("AUS", "GBR"), aid="AUS-GBR-J")],
                "GBR": [agreement(("GBR", "USA"), aid="GBR-USA-1"),
                        agreement(("AUS", "GBR"), aid="AUS-GBR-J")]}
    ds = evaluate_all(req, by_owner, context=ctx(approval=approval()))
    assert [d.outcome for d in ds] == [Outcome.PERMIT, Outcome.NEEDS_APPROVAL]
    assert "signed for AUS, not GBR" in reason(ds[1], "tier").detail
    assert combined_outcome(ds) is Outcome.NEEDS_APPROVAL
    assert [d.joint_agreement_ids for d in ds] == [("AUS-GBR-J",), ("AUS-GBR-J",)]


# -- rule (7): thresholds and holds ---------------------------------------------


def test_quarterly_threshold_notifies() -> None:
    a = agreement(quarterly=1000.0)
    d = evaluate("AUS", request(hours=100.0), [a],
                 context=ctx(quarter_usage_gpu_hours={"AUS-USA-1": 950.0}))
    assert d.permit and d.notify and d.notices == ("quarterly",)
    assert reason(d, "threshold") == Reason(
        "threshold", True, "100.0 GPU-hours within the notification threshold 500.0; "
        "950.0 GPU-hours used in 2026-Q2 plus 100.0 requested exceeds the quarterly "
        "threshold 1000.0 of agreement AUS-USA-1: notify JSG")


def test_quarterly_threshold_boundary_and_other_agreements() -> None:
    a = agreement(quarterly=1000.0)
    at = evaluate("AUS", request(hours=100.0), [a],
                  context=ctx(quarter_usage_gpu_hours={"AUS-USA-1": 900.0}))
    assert at.permit and at.notices == () and not at.notify
    assert reason(at, "threshold").detail.endswith(
        "900.0 GPU-hours used in 2026-Q2 plus 100.0 requested within the quarterly "
        "threshold 1000.0")
    # usage of another agreement does not count; a missing id means 0
    other = evaluate("AUS", request(hours=100.0), [a],
                     context=ctx(quarter_usage_gpu_hours={"AUS-GBR-J": 5000.0}))
    assert other.notices == ()
    assert "0.0 GPU-hours used in 2026-Q2" in reason(other, "threshold").detail
    # the request alone crosses the quarterly threshold
    alone = evaluate("AUS", request(hours=450.0), [agreement(quarterly=400.0)])
    assert alone.notices == ("quarterly",) and alone.permit


def test_quarter_named_from_the_request_day() -> None:
    a = agreement(quarterly=10.0, start=date(2026, 1, 1))
    for day, quarter in [(date(2026, 1, 1), "2026-Q1"), (date(2026, 3, 31), "2026-Q1"),
                         (date(2026, 4, 1), "2026-Q2"), (date(2026, 12, 31),
                                                         "2026-Q4")]:
        d = evaluate("AUS", request(hours=20.0, on=day), [a], context=ctx())
        assert f"used in {quarter} plus" in reason(d, "threshold").detail


def test_both_notices() -> None:
    d = evaluate("AUS", request(hours=600.0), [agreement(quarterly=1000.0)],
                 context=ctx(quarter_usage_gpu_hours={"AUS-USA-1": 401.0}))
    assert d.notices == ("per-request", "quarterly") and d.notify


@pytest.mark.parametrize("used", [-1.0, math.nan, math.inf, True, "3", None])
def test_invalid_usage_fails_closed(used: object) -> None:
    usage: Any = {"AUS-USA-1": used}
    d = evaluate("AUS", request(hours=600.0), [agreement(quarterly=1000.0)],
                 context=ctx(quarter_usage_gpu_hours=usage))
    assert d.outcome is Outcome.DENY and not d.notify and d.notices == ()
    assert [r.rule for r in d.reasons if not r.passed] == ["threshold"]
    assert reason(d, "threshold").detail == (
        f"GPU-hours used under agreement AUS-USA-1 in 2026-Q2 ({used!r}) is not a "
        "finite number >= 0")


def test_invalid_usage_ignored_without_quarterly_threshold() -> None:
    d = evaluate("AUS", request(), [agreement()],
                 context=ctx(quarter_usage_gpu_hours={"AUS-USA-1": math.nan}))
    assert d.permit


def test_usage_not_a_mapping_fails_closed() -> None:
    bad: Any = [("AUS-USA-1", 1.0)]
    d = evaluate("AUS", request(), [agreement(quarterly=1000.0)],
                 context=ctx(quarter_usage_gpu_hours=bad))
    assert d.outcome is Outcome.DENY


def test_hold_until_acknowledged() -> None:
    a = agreement(hold=True)
    held = evaluate("AUS", request(hours=600.0), [a], context=ctx())
    assert held.outcome is Outcome.HELD and not held.permit
    assert held.notify and held.notices == ("per-request",)
    assert reason(held, "threshold") == Reason(
        "threshold", False, "held: awaiting acknowledgement by JSG; 600.0 GPU-hours "
        "exceeds the notification threshold 500.0 of agreement AUS-USA-1: notify JSG")
    assert held.denial_reasons() == [f"threshold: {reason(held, 'threshold').detail}"]
    acked = evaluate("AUS", request(hours=600.0), [a], context=ctx(acknowledged=True))
    assert acked.permit and acked.notices == ("per-request",)
    assert reason(acked, "threshold").detail.endswith(
        ": notify JSG; acknowledged on behalf of JSG")
    # below both thresholds nothing is held
    assert evaluate("AUS", request(hours=500.0), [a], context=ctx()).permit
    # without a context the defaults apply: not acknowledged
    assert evaluate("AUS", request(hours=600.0), [a]).outcome is Outcome.HELD


def test_quarterly_hold() -> None:
    a = agreement(quarterly=1000.0, hold=True)
    d = evaluate("AUS", request(hours=100.0), [a],
                 context=ctx(quarter_usage_gpu_hours={"AUS-USA-1": 950.5}))
    assert d.outcome is Outcome.HELD and d.notices == ("quarterly",)
    assert reason(d, "threshold").detail.startswith(
        "held: awaiting acknowledgement by JSG; ")


def test_acknowledged_must_be_true() -> None:
    truthy: Any = "yes"
    d = evaluate("AUS", request(hours=600.0), [agreement(hold=True)],
                 context=ctx(acknowledged=truthy))
    assert d.outcome is Outcome.HELD


# -- precedence -------------------------------------------------------------------


def test_precedence_deny_needs_approval_held_permit() -> None:
    hold = agreement(hold=True)
    # NEEDS_APPROVAL beats HELD: approval first, then the oversight hold matters
    d = evaluate("AUS", request(area=CASE, hours=600.0), [hold], context=ctx())
    assert d.outcome is Outcome.NEEDS_APPROVAL and d.notices == ("per-request",)
    assert not reason(d, "tier").passed and not reason(d, "threshold").passed
    # once approved, the hold remains
    d = evaluate("AUS", request(area=CASE, hours=600.0), [hold],
                 context=ctx(approval=approval()))
    assert d.outcome is Outcome.HELD
    d = evaluate("AUS", request(area=CASE, hours=600.0), [hold],
                 context=ctx(approval=approval(), acknowledged=True))
    assert d.outcome is Outcome.PERMIT
    # DENY beats both, and a denied request notifies nobody
    for kwargs in ({"acc": C.OFFICIAL}, {"rel": "AUS,GBR"}):
        d = evaluate("AUS", request(area=CASE, hours=600.0, **kwargs), [hold],
                     context=ctx())
        assert d.outcome is Outcome.DENY and d.notices == () and not d.notify
    d = evaluate("AUS", request(area=CASE, hours=600.0), [hold],
                 context=ctx(approval=approval(decision="deny")))
    assert d.outcome is Outcome.DENY and not d.notify
    # a joint failure denies a request that would otherwise be held
    d = evaluate("AUS", request(owners="AUS,GBR", hours=600.0), [hold], context=ctx())
    assert d.outcome is Outcome.DENY and not reason(d, "joint").passed


def _decision(outcome: Outcome) -> Decision:
    return Decision(owner="AUS", outcome=outcome, reasons=(), agreement_id=None,
                    notify=False)


def test_combined_outcome_precedence() -> None:
    order = [Outcome.DENY, Outcome.NEEDS_APPROVAL, Outcome.HELD, Outcome.PERMIT]
    assert combined_outcome([]) is Outcome.DENY
    for n in range(1, 4):
        for combo in itertools.product(order, repeat=n):
            want = min(combo, key=order.index)
            assert combined_outcome(_decision(o) for o in combo) is want, combo


# -- rule (5): ended agreements -------------------------------------------------


ENDED = {"AUS-USA-X": "terminated by AUS officer on 2026-05-21: exercise over",
         "AUS-NZL-Y": "terminated by NZL officer on 2026-05-01: lapsed",
         "SONAR-2025": "superseded"}


def test_ended_agreement_is_cited() -> None:
    d = evaluate("AUS", request(), [], context=ctx(ended=ENDED))
    assert d.outcome is Outcome.DENY
    assert reason(d, "agreement").detail == (
        "no agreement between AUS and USA (agreement AUS-USA-X terminated by AUS "
        "officer on 2026-05-21: exercise over)")
    # with an expired one as well, both notes are given
    old = agreement(aid="AUS-USA-0", start=date(2024, 1, 1), end=date(2025, 12, 31))
    d = evaluate("AUS", request(), [old], context=ctx(ended=ENDED))
    assert reason(d, "agreement").detail == (
        "no agreement between AUS and USA valid on 2026-06-01 (agreement AUS-USA-0 "
        "expired on 2025-12-31; agreement AUS-USA-X terminated by AUS officer on "
        "2026-05-21: exercise over)")


def test_ended_detail_already_naming_the_agreement_is_not_repeated() -> None:
    ended = {"AUS-USA-X": "agreement AUS-USA-X revoked: breach"}
    d = evaluate("AUS", request(), [], context=ctx(ended=ended))
    assert reason(d, "agreement").detail == (
        "no agreement between AUS and USA (agreement AUS-USA-X revoked: breach)")


def test_ended_matched_by_known_parties() -> None:
    # the id names no nations, but the agreement is passed and covers the pair
    odd = agreement(aid="SONAR-2025", start=date(2024, 1, 1), end=date(2025, 1, 1))
    d = evaluate("AUS", request(), [odd], context=ctx(ended=ENDED))
    detail = reason(d, "agreement").detail
    assert "agreement SONAR-2025 superseded" in detail
    assert "AUS-NZL-Y" not in detail
    # a known agreement of another pair is not cited even if its id says so
    mislabelled = agreement(("AUS", "NZL"), aid="AUS-USA-X")
    d = evaluate("AUS", request(), [mislabelled], context=ctx(ended=ENDED))
    assert reason(d, "agreement").detail == "no agreement between AUS and USA"


def test_ended_never_changes_the_outcome_and_is_silent_when_chosen() -> None:
    d = evaluate("AUS", request(), [agreement()],
                 context=ctx(ended={"AUS-USA-1": "terminated", **ENDED}))
    assert d.permit and "terminated" not in reason(d, "agreement").detail
    assert reason(d, "agreement").detail == (
        "agreement AUS-USA-1 valid on 2026-06-01 (2026-01-01 to 2027-12-31)")


# -- rule (8): joint --------------------------------------------------------------


def test_joint_needs_an_agreement_with_each_co_owner() -> None:
    req = request(owners="AUS,CAN,GBR")
    aus_gbr = agreement(("AUS", "GBR"), aid="AUS-GBR-X")
    d = evaluate("AUS", req, [agreement(), aus_gbr], context=ctx())
    assert d.outcome is Outcome.DENY and d.joint_agreement_ids == ("AUS-GBR-X",)
    assert [r.rule for r in d.reasons if not r.passed] == ["joint"]
    assert reason(d, "joint").detail == (
        "with CAN: no agreement between AUS and CAN; with GBR: agreement AUS-GBR-X "
        "valid on 2026-06-01 (2026-01-01 to 2027-12-31)")
    aus_can = agreement(("AUS", "CAN"), aid="AUS-CAN-X")
    d = evaluate("AUS", req, [agreement(), aus_gbr, aus_can], context=ctx())
    assert d.permit and d.joint_agreement_ids == ("AUS-CAN-X", "AUS-GBR-X")
    assert reason(d, "joint").passed


def test_joint_chooses_like_rule_five_and_explains() -> None:
    req = request(owners="AUS,GBR")
    a = agreement(("AUS", "GBR"), aid="B", start=date(2025, 1, 1))
    b = agreement(("AUS", "GBR"), aid="Z", start=date(2026, 2, 1))
    c = agreement(("AUS", "GBR"), aid="A", start=date(2026, 2, 1))
    for order in itertools.permutations([agreement(), a, b, c]):
        d = evaluate("AUS", req, list(order), context=ctx())
        assert d.joint_agreement_ids == ("A",) and d.permit
    expired = agreement(("AUS", "GBR"), aid="AUS-GBR-OLD", start=date(2024, 1, 1),
                        end=date(2025, 12, 31))
    d = evaluate("AUS", req, [agreement(), expired],
                 context=ctx(ended={"AUS-GBR-Z": "terminated by GBR officer on "
                                    "2026-05-30: withdrawn"}))
    assert d.outcome is Outcome.DENY and d.joint_agreement_ids == ()
    assert reason(d, "joint").detail == (
        "with GBR: no agreement between AUS and GBR valid on 2026-06-01 (agreement "
        "AUS-GBR-OLD expired on 2025-12-31; agreement AUS-GBR-Z terminated by GBR "
        "officer on 2026-05-30: withdrawn)")


def test_joint_applies_to_domestic_use_and_non_owners() -> None:
    req = request(owners="AUS,GBR", operator="AUS")
    d = evaluate("AUS", req, [], context=ctx())
    assert d.outcome is Outcome.DENY
    assert [r.rule for r in d.reasons if not r.passed] == ["joint"]
    d = evaluate("AUS", req, [agreement(("AUS", "GBR"), aid="J")], context=ctx())
    assert d.permit and d.joint_agreement_ids == ("J",)
    d = evaluate("USA", req, [agreement()], context=ctx())
    assert reason(d, "joint") == Reason("joint", False,
                                        "not evaluated: USA is not an owner")


def test_joint_with_bad_day_fails_closed() -> None:
    bad: Any = datetime(2026, 6, 1, 12, 0)
    d = evaluate("AUS", request(owners="AUS,GBR", operator="AUS", on=bad),
                 [agreement(("AUS", "GBR"), aid="J")], context=ctx())
    assert d.outcome is Outcome.DENY
    assert reason(d, "joint").detail == (
        "with GBR: no valid day to check agreements against")


def test_no_context_skips_joint() -> None:
    req = request(owners="AUS,GBR")
    d = evaluate("AUS", req, [agreement()])
    assert d.permit and tuple(r.rule for r in d.reasons) == RULES
    assert evaluate("AUS", req, [agreement()], context=ctx()).outcome is Outcome.DENY


def test_approval_counts_only_under_the_agreement_it_was_given_under() -> None:
    """A successor agreement needs its own review; an empty id is not checked."""
    given = replace(approval(), agreement_id="AUS-USA-0")
    d = evaluate("AUS", request(area=CASE), [agreement()], context=ctx(approval=given))
    assert d.outcome is Outcome.NEEDS_APPROVAL
    assert reason(d, "tier").detail.endswith(
        "(approval ap-1 was given under agreement AUS-USA-0, not AUS-USA-1)")
    for aid in ("AUS-USA-1", ""):
        ok = evaluate("AUS", request(area=CASE), [agreement()],
                      context=ctx(approval=replace(approval(), agreement_id=aid)))
        assert ok.outcome is Outcome.PERMIT
