"""Tests of orchestrator.policy.access: examples per rule, properties, and an
exhaustive small-domain comparison with an independently written oracle."""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from orchestrator.labels import Classification, Label, derive_label
from orchestrator.policy.access import (
    AccessRequest,
    Decision,
    Outcome,
    Reason,
    SiteFacts,
    combined_outcome,
    evaluate,
    evaluate_all,
)
from orchestrator.protocol.agreements import Agreement

C = Classification
DAY = date(2026, 6, 1)
RULES = ("owner", "request", "releasability", "accreditation", "agreement", "tier",
         "threshold")
HARD = ("owner", "request", "releasability", "accreditation", "agreement")


def agreement(parties: Sequence[str] = ("AUS", "USA"), *, aid: str = "AUS-USA-1",
              start: date = date(2026, 1, 1), end: date = date(2027, 12, 31),
              areas: dict[str, str] | None = None,
              threshold: float = 500.0) -> Agreement:
    areas = {"undersea-autonomy": "pre-approved", "quantum-sensing": "case-by-case"} \
        if areas is None else areas
    return Agreement.from_json({
        "id": aid, "title": "t", "parties": list(parties),
        "valid_from": start.isoformat(), "valid_until": end.isoformat(),
        "notification_threshold_gpu_hours": threshold, "oversight_body": "JSG",
        "priority_area": [{"name": n, "tier": t} for n, t in areas.items()],
    })


def request(*, owners: str = "AUS", rel: str = "AUS,USA", cls: str = "SECRET",
            operator: str = "USA", acc: C = C.SECRET,
            area: str = "undersea-autonomy", hours: float = 100.0,
            on: date = DAY) -> AccessRequest:
    label = Label.create(owners=owners, classification=cls, releasable_to=rel)
    return AccessRequest(dataset_id="sonar-1", label=label,
                         site=SiteFacts(name="site-x", operator_nation=operator,
                                        accreditation=acc),
                         priority_area=area, gpu_hours=hours, on=on)


def reason(decision: Decision, rule: str) -> Reason:
    (found,) = [r for r in decision.reasons if r.rule == rule]
    return found


# -- examples, one per rule -----------------------------------------------------


def test_permit_example() -> None:
    d = evaluate("AUS", request(), [agreement()])
    assert d.outcome is Outcome.PERMIT and d.permit
    assert d.agreement_id == "AUS-USA-1"
    assert not d.notify
    assert tuple(r.rule for r in d.reasons) == RULES
    assert all(r.passed for r in d.reasons)
    assert d.denial_reasons() == []
    doc = d.to_json()
    assert doc["outcome"] == "permit" and doc["agreement_id"] == "AUS-USA-1"
    assert [r["rule"] for r in doc["reasons"]] == list(RULES)


def test_owner_rule() -> None:
    d = evaluate("GBR", request(), [agreement(("GBR", "USA"), aid="G")])
    assert d.outcome is Outcome.DENY
    assert not reason(d, "owner").passed
    assert "GBR is not an owner of dataset sonar-1" in reason(d, "owner").detail


def test_owner_normalised() -> None:
    assert evaluate(" aus", request(), [agreement()]).permit


@pytest.mark.parametrize(("kwargs", "fragment"), [
    ({"hours": -1.0}, "gpu_hours"), ({"hours": math.nan}, "gpu_hours"),
    ({"hours": math.inf}, "gpu_hours"), ({"area": " "}, "priority area is empty"),
])
def test_request_rule(kwargs: dict[str, Any], fragment: str) -> None:
    d = evaluate("AUS", request(**kwargs), [agreement()])
    assert d.outcome is Outcome.DENY
    assert fragment in reason(d, "request").detail
    assert not d.notify


def test_request_rule_rejects_datetime_and_bool() -> None:
    req = request(on=datetime(2026, 6, 1, 12, 0))
    d = evaluate("AUS", req, [agreement()])
    assert d.outcome is Outcome.DENY
    assert "calendar date" in reason(d, "request").detail
    d = evaluate("AUS", request(hours=True), [agreement()])
    assert d.outcome is Outcome.DENY


def test_releasability_rule() -> None:
    d = evaluate("AUS", request(rel="AUS,GBR"), [agreement()])
    assert d.outcome is Outcome.DENY
    assert reason(d, "releasability").detail.startswith(
        "operator nation USA of site site-x is not in releasable-to (AUS, GBR)")


def test_releasability_of_incoherent_derived_label() -> None:
    aus = Label.create(owners="AUS", classification="S", releasable_to="AUS,USA")
    gbr = Label.create(owners="GBR", classification="S", releasable_to="GBR,USA")
    mixed = derive_label([aus, gbr])  # owners AUS+GBR, releasable to USA only
    req = AccessRequest(dataset_id="m", label=mixed,
                        site=SiteFacts("uk-site", "GBR", C.TOP_SECRET),
                        priority_area="undersea-autonomy", gpu_hours=1.0, on=DAY)
    d = evaluate("GBR", req, [])  # GBR may not read AUS-derived data at home
    assert d.outcome is Outcome.DENY
    assert [r.rule for r in d.reasons if not r.passed] == ["releasability"]
    d = evaluate("AUS", req, [agreement(("AUS", "GBR"), aid="AG")])
    assert d.outcome is Outcome.DENY


def test_accreditation_rule() -> None:
    d = evaluate("AUS", request(cls="TOP SECRET"), [agreement()])
    assert d.outcome is Outcome.DENY
    assert reason(d, "accreditation").detail == (
        "site site-x accredited to SECRET, data is TOP SECRET")


def test_domestic_use_needs_no_agreement() -> None:
    d = evaluate("AUS", request(operator="AUS", area="anything"), [])
    assert d.permit and d.agreement_id is None and not d.notify
    assert reason(d, "agreement").detail == "domestic use: no agreement needed"


def test_no_agreement() -> None:
    d = evaluate("AUS", request(), [agreement(("AUS", "GBR"), aid="AUS-GBR")])
    assert d.outcome is Outcome.DENY and d.agreement_id is None
    assert reason(d, "agreement").detail == "no agreement between AUS and USA"
    assert not reason(d, "tier").passed
    assert "agreement: no agreement between AUS and USA" in d.denial_reasons()


def test_expired_and_future_agreements_are_named() -> None:
    old = agreement(aid="AUS-USA-X", start=date(2024, 1, 1), end=date(2025, 12, 31))
    new = agreement(aid="AUS-USA-Y", start=date(2027, 1, 1), end=date(2028, 1, 1))
    d = evaluate("AUS", request(), [old, new])
    assert d.outcome is Outcome.DENY
    detail = reason(d, "agreement").detail
    assert "agreement AUS-USA-X expired on 2025-12-31" in detail
    assert "agreement AUS-USA-Y not valid until 2027-01-01" in detail


def test_window_is_inclusive() -> None:
    a = agreement(start=DAY, end=DAY + timedelta(days=1))
    assert evaluate("AUS", request(on=DAY), [a]).permit
    assert evaluate("AUS", request(on=DAY + timedelta(days=1)), [a]).permit
    assert not evaluate("AUS", request(on=DAY - timedelta(days=1)), [a]).permit
    assert not evaluate("AUS", request(on=DAY + timedelta(days=2)), [a]).permit


def test_several_valid_agreements_pick_latest_then_id() -> None:
    a = agreement(aid="B", start=date(2025, 1, 1))
    b = agreement(aid="Z", start=date(2026, 2, 1), areas={"x": "pre-approved"})
    c = agreement(aid="A", start=date(2026, 2, 1), areas={"y": "pre-approved"})
    for order in itertools.permutations([a, b, c]):
        d = evaluate("AUS", request(area="y"), list(order))
        assert d.agreement_id == "A" and d.permit


def test_tier_case_by_case_needs_approval() -> None:
    d = evaluate("AUS", request(area="quantum-sensing", hours=900.0), [agreement()])
    assert d.outcome is Outcome.NEEDS_APPROVAL and not d.permit
    assert reason(d, "tier").detail == ("needs approval: case-by-case review of area "
                                        "quantum-sensing under agreement AUS-USA-1")
    assert d.notify  # the approver is told the request is above the threshold
    assert d.denial_reasons() == [f"tier: {reason(d, 'tier').detail}"]


def test_tier_area_not_listed() -> None:
    d = evaluate("AUS", request(area="hypersonics"), [agreement()])
    assert d.outcome is Outcome.DENY
    assert reason(d, "tier").detail == ("area 'hypersonics' is not a priority area "
                                        "of agreement AUS-USA-1")


def test_case_by_case_plus_hard_failure_denies() -> None:
    d = evaluate("AUS", request(area="quantum-sensing", acc=C.OFFICIAL), [agreement()])
    assert d.outcome is Outcome.DENY


def test_threshold_notifies_but_permits() -> None:
    d = evaluate("AUS", request(hours=500.5), [agreement()])
    assert d.permit and d.notify
    r = reason(d, "threshold")
    assert r.passed and "notify JSG" in r.detail
    assert not evaluate("AUS", request(hours=500.0), [agreement()]).notify


def test_deny_never_notifies() -> None:
    d = evaluate("AUS", request(hours=900.0, rel="AUS"), [agreement()])
    assert d.outcome is Outcome.DENY and not d.notify


def test_all_failures_listed() -> None:
    d = evaluate("GBR", request(rel="AUS", cls="TS", area="", hours=-1), [])
    assert {r.rule for r in d.reasons if not r.passed} == {
        "owner", "request", "releasability", "accreditation", "agreement", "tier"}


def test_evaluate_all_and_combined() -> None:
    req = request(owners="AUS,GBR", rel="AUS,GBR,USA")
    ds = evaluate_all(req, {"AUS": [agreement()]})
    assert [d.owner for d in ds] == ["AUS", "GBR"]
    assert [d.outcome for d in ds] == [Outcome.PERMIT, Outcome.DENY]
    assert combined_outcome(ds) is Outcome.DENY
    ds = evaluate_all(req, {"AUS": [agreement()],
                            "GBR": [agreement(("GBR", "USA"), aid="G")]})
    assert combined_outcome(ds) is Outcome.PERMIT
    ds = evaluate_all(request(owners="AUS,GBR", rel="AUS,GBR,USA",
                              area="quantum-sensing"),
                      {"AUS": [agreement()],
                       "GBR": [agreement(("GBR", "USA"), aid="G")]})
    assert combined_outcome(ds) is Outcome.NEEDS_APPROVAL
    assert combined_outcome([]) is Outcome.DENY


# -- an independent oracle ------------------------------------------------------


def oracle(owner: str, req: AccessRequest, agreements: Sequence[Agreement]
           ) -> tuple[Outcome, bool, str | None]:
    """Outcome, notify and chosen agreement id, written from the rules alone."""
    label, site, hours = req.label, req.site, req.gpu_hours
    fine = owner in label.owners
    fine &= math.isfinite(hours) and hours >= 0 and bool(req.priority_area.strip())
    fine &= site.operator_nation in label.releasable_to
    fine &= int(site.accreditation) >= int(label.classification)
    approval = notify = False
    chosen = None
    if site.operator_nation != owner:
        live = [a for a in agreements
                if sorted(a.parties) == sorted({owner, site.operator_nation})
                and len({owner, site.operator_nation}) == 2
                and a.valid_from <= req.on <= a.valid_until]
        if not live:
            fine = False
        else:
            newest = max(a.valid_from for a in live)
            chosen = min(a.id for a in live if a.valid_from == newest)
            pick = next(a for a in live if a.id == chosen)
            tiers = {p.name: p.tier.value for p in pick.priority_areas}
            tier = tiers.get(req.priority_area)
            if tier is None:
                fine = False
            elif tier == "case-by-case":
                approval = True
            limit = pick.notification_threshold_gpu_hours
            notify = math.isfinite(hours) and hours > limit
    if not fine:
        return Outcome.DENY, False, chosen
    return (Outcome.NEEDS_APPROVAL if approval else Outcome.PERMIT), notify, chosen


SCENARIOS: dict[str, list[dict[str, Any]]] = {
    "none": [],
    "expired": [{"end": date(2026, 5, 31)}],
    "future": [{"start": date(2026, 6, 2)}],
    "pre-approved": [{}],
    "case-by-case": [{"areas": {"undersea-autonomy": "case-by-case"}}],
    "area-missing": [{"areas": {"other": "pre-approved"}}],
}


def _scenario(name: str, operator: str) -> list[Agreement]:
    if operator == "AUS":
        return [agreement(("AUS", "GBR"), aid="AUS-GBR-D")]  # irrelevant to domestic
    out = [agreement(("AUS", operator), aid=f"AUS-{operator}-{i}", **spec)
           for i, spec in enumerate(SCENARIOS[name])]
    # a distractor: valid and pre-approved, but with the wrong partner
    return [*out, agreement(("AUS", "FRA"), aid="AUS-FRA-D")]


def test_exhaustive_small_domain() -> None:
    rels = ["AUS", "AUS,GBR", "AUS,USA", "AUS,GBR,USA"]
    count = 0
    for operator, rel, cls, acc, scen, hours, decider in itertools.product(
            ["AUS", "GBR", "USA"], rels, list(C), list(C), SCENARIOS,
            [10.0, 600.0], ["AUS", "GBR"]):
        req = request(rel=rel, cls=cls.name, operator=operator, acc=acc, hours=hours)
        agreements = _scenario(scen, operator)
        d = evaluate(decider, req, agreements)
        want = oracle(decider, req, agreements)
        assert (d.outcome, d.notify, d.agreement_id) == want, (
            operator, rel, cls, acc, scen, hours, decider, d)
        assert tuple(r.rule for r in d.reasons) == RULES
        count += 1
    assert count == 3 * 4 * 5 * 5 * len(SCENARIOS) * 2 * 2


# -- properties -----------------------------------------------------------------

POOL = ["AUS", "GBR", "USA", "CAN", "NZL", "FRA"]
AREAS = ["undersea-autonomy", "quantum-sensing", "hypersonics"]
DATES = st.dates(min_value=date(2024, 1, 1), max_value=date(2029, 12, 31))


@st.composite
def agreements_st(draw: st.DrawFn, owner: str, partner: str | None = None
                  ) -> list[Agreement]:
    others = [n for n in POOL if n != owner]
    out = []
    for i in range(draw(st.integers(0, 3))):
        if partner is not None and partner != owner and draw(st.booleans()):
            other = partner
        else:
            other = draw(st.sampled_from(others))
        first = draw(st.sampled_from([owner, owner, draw(st.sampled_from(POOL))]))
        parties = (first, other) if first != other else (owner, other)
        start = draw(DATES)
        end = start + timedelta(days=draw(st.integers(1, 900)))
        areas = draw(st.dictionaries(st.sampled_from(AREAS),
                                     st.sampled_from(["pre-approved", "case-by-case"]),
                                     min_size=1))
        out.append(agreement(parties, aid=f"A{i}-{draw(st.integers(0, 3))}",
                             start=start, end=end, areas=areas,
                             threshold=draw(st.floats(0, 1000))))
    return out


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, AccessRequest, list[Agreement]]:
    owners = draw(st.frozensets(st.sampled_from(POOL), min_size=1, max_size=2))
    rel = owners | draw(st.frozensets(st.sampled_from(POOL)))
    cls = draw(st.sampled_from(list(C)))
    label = Label.create(owners=owners, classification=cls, releasable_to=rel)
    if not draw(st.integers(0, 4)):  # sometimes an incoherent derived label
        other = draw(st.sampled_from(POOL))
        label = derive_label([label, Label.create(
            owners=other, classification="U",
            releasable_to=draw(st.frozensets(st.sampled_from(POOL))) | {other})])
        owners, rel = label.owners, label.releasable_to
    decider = draw(st.sampled_from(sorted(owners)) if draw(st.integers(0, 4))
                   else st.sampled_from(POOL))
    foreign = sorted(rel - {decider}) or POOL
    operator = draw(st.sampled_from(foreign) if draw(st.integers(0, 3))
                    else st.sampled_from(POOL))
    acc = draw(st.sampled_from([c for c in C if c >= cls]) if draw(st.integers(0, 3))
               else st.sampled_from(list(C)))
    agreements = draw(agreements_st(decider, operator))
    day = draw(DATES)
    area = draw(st.sampled_from([*AREAS, ""]))
    aim = draw(st.integers(0, 3)) > 0  # mostly aim inside an agreement
    if agreements and aim:
        covering = [a for a in agreements if a.covers(decider, operator)]
        a = draw(st.sampled_from(covering or agreements))
        day = a.valid_from + timedelta(
            days=draw(st.integers(0, (a.valid_until - a.valid_from).days)))
        area = draw(st.sampled_from([p.name for p in a.priority_areas]))
    hours = draw(st.floats(0, 2000) if draw(st.integers(0, 9))
                 else st.sampled_from([-1.0, math.nan, math.inf]))
    req = AccessRequest(
        dataset_id="d", label=label, site=SiteFacts("s", operator, acc),
        priority_area=area, gpu_hours=hours, on=day)
    return decider, req, agreements


@settings(max_examples=400, deadline=None)
@given(cases())
def test_policy_properties(case: tuple[str, AccessRequest, list[Agreement]]) -> None:
    owner, req, agreements = case
    d = evaluate(owner, req, agreements)
    event(f"outcome={d.outcome.value} notify={d.notify} "
          f"domestic={req.site.operator_nation == owner}")
    by_rule = {r.rule: r for r in d.reasons}
    assert tuple(by_rule) == RULES
    assert (d.outcome, d.notify, d.agreement_id) == oracle(owner, req, agreements)
    if d.permit:
        assert all(r.passed for r in d.reasons)
    if d.outcome is not Outcome.DENY:
        assert all(by_rule[r].passed for r in HARD)
    if req.site.operator_nation not in req.label.releasable_to:
        assert d.outcome is Outcome.DENY
    if req.site.accreditation < req.label.classification:
        assert d.outcome is Outcome.DENY
    if owner not in req.label.owners:
        assert d.outcome is Outcome.DENY
    domestic = req.site.operator_nation == owner
    covering = [a for a in agreements if a.covers(owner, req.site.operator_nation)
                and a.is_valid_on(req.on)]
    if not domestic and not covering:
        assert d.outcome is Outcome.DENY and d.agreement_id is None
    if d.agreement_id is not None:
        chosen = next(a for a in agreements if a.id == d.agreement_id
                      and a in covering)
        area = chosen.area(req.priority_area)
        if area is not None and area.tier.value == "case-by-case":
            assert d.outcome is not Outcome.PERMIT
        if d.permit and req.gpu_hours > chosen.notification_threshold_gpu_hours:
            assert d.notify
    if domestic:
        assert d.agreement_id is None
    if d.outcome is Outcome.DENY:
        assert not d.notify and d.denial_reasons()
    # determinism, and independence from the order of agreements
    assert evaluate(owner, req, agreements) == d
    assert evaluate(owner, req, list(reversed(agreements))) == d


@settings(max_examples=200, deadline=None)
@given(cases(), st.data())
def test_evaluate_all_properties(case: tuple[str, AccessRequest, list[Agreement]],
                                 data: st.DataObject) -> None:
    _, req, _ = case
    by_owner = {o: data.draw(agreements_st(o)) for o in sorted(req.label.owners)}
    ds = evaluate_all(req, by_owner)
    assert [d.owner for d in ds] == sorted(req.label.owners)
    for d in ds:
        assert d == evaluate(d.owner, req, by_owner[d.owner])
    combined = combined_outcome(ds)
    assert (combined is Outcome.PERMIT) == all(d.permit for d in ds)
    if any(d.outcome is Outcome.DENY for d in ds):
        assert combined is Outcome.DENY
