"""orchestrator.policy.access with a PolicyContext against an independently written
oracle: exhaustive small-domain grids (approvals, quarterly usage, holds, ended
agreements, one to three owners) and hypothesis properties."""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import event, given, settings
from hypothesis import strategies as st

from orchestrator.labels import Classification, Label
from orchestrator.policy.access import (
    AccessRequest,
    ApprovalFacts,
    Decision,
    Outcome,
    PolicyContext,
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
RULES = ("owner", "request", "releasability", "accreditation", "agreement", "tier",
         "threshold")
RULES8 = (*RULES, "joint")
AREAS = {"pre": "undersea-autonomy", "case": "quantum-sensing",
         "missing": "hypersonics"}


def agreement(parties: Sequence[str], aid: str, *, start: date = date(2026, 1, 1),
              end: date = date(2027, 12, 31), threshold: float = 500.0,
              quarterly: float | None = None, hold: bool = False,
              areas: Mapping[str, str] | None = None) -> Agreement:
    areas = {AREAS["pre"]: "pre-approved", AREAS["case"]: "case-by-case"} \
        if areas is None else areas
    doc: dict[str, Any] = {
        "id": aid, "title": "t", "parties": list(parties),
        "valid_from": start.isoformat(), "valid_until": end.isoformat(),
        "notification_threshold_gpu_hours": threshold, "oversight_body": "JSG",
        "priority_area": [{"name": n, "tier": t} for n, t in areas.items()],
        "hold_until_acknowledged": hold,
    }
    if quarterly is not None:
        doc["quarterly_threshold_gpu_hours"] = quarterly
    return Agreement.from_json(doc)


def request(owners: str, operator: str, *, rel: str = "AUS,CAN,GBR,USA",
            acc: C = C.SECRET, area: str = AREAS["pre"], hours: float = 10.0,
            on: date = DAY) -> AccessRequest:
    label = Label.create(owners=owners, classification="SECRET", releasable_to=rel)
    return AccessRequest(dataset_id="d", label=label,
                         site=SiteFacts("s", operator, acc),
                         priority_area=area, gpu_hours=hours, on=on)


# -- the oracle -------------------------------------------------------------------


@dataclass(frozen=True)
class Want:
    outcome: Outcome
    notices: tuple[str, ...]
    agreement_id: str | None
    joint_ids: tuple[str, ...]
    failed: frozenset[str]


def _finite_nonneg(x: object) -> bool:
    return (isinstance(x, int | float) and type(x) is not bool and math.isfinite(x)
            and x >= 0)


def _pick(a: str, b: str, day: date, agreements: Sequence[Agreement]
          ) -> Agreement | None:
    live = [g for g in agreements if a != b and set(g.parties) == {a, b}
            and g.valid_from <= day <= g.valid_until]
    if not live:
        return None
    latest = max(g.valid_from for g in live)
    return min((g for g in live if g.valid_from == latest), key=lambda g: g.id)


def oracle(owner: str, req: AccessRequest, agreements: Sequence[Agreement],
           ctx: PolicyContext | None) -> Want:
    """Written from the module docstring alone."""
    label, site, hours, day = req.label, req.site, req.gpu_hours, req.on
    failed: set[str] = set()
    if owner not in label.owners:
        failed.add("owner")
    if not (_finite_nonneg(hours) and req.priority_area.strip()
            and req.dataset_id.strip()):
        failed.add("request")
    if site.operator_nation not in label.releasable_to:
        failed.add("releasability")
    if int(site.accreditation) < int(label.classification):
        failed.add("accreditation")
    chosen = None
    needs = held = False
    notices: list[str] = []
    c = ctx if ctx is not None else PolicyContext()
    if site.operator_nation != owner:
        chosen = _pick(owner, site.operator_nation, day, agreements)
        if chosen is None:
            failed |= {"agreement", "tier"}
        else:
            tier = {p.name: p.tier.value for p in chosen.priority_areas}.get(
                req.priority_area)
            if tier is None:
                failed.add("tier")
            elif tier == "case-by-case":
                ap = c.approval
                bound = (ap is not None and c.at is not None
                         and c.at.tzinfo is not None
                         and ap.expires_at.tzinfo is not None
                         and ap.owner == owner and c.request_digest != ""
                         and ap.request_digest == c.request_digest)
                if bound and ap is not None and ap.decision == "deny":
                    failed.add("tier")
                elif not (bound and ap is not None and ap.decision == "approve"
                          and c.at is not None and c.at < ap.expires_at):
                    failed.add("tier")
                    needs = True
            if _finite_nonneg(hours):
                if hours > chosen.notification_threshold_gpu_hours:
                    notices.append("per-request")
                quarterly = chosen.quarterly_threshold_gpu_hours
                used = c.quarter_usage_gpu_hours.get(chosen.id, 0)
                if quarterly is not None and not _finite_nonneg(used):
                    failed.add("threshold")
                elif quarterly is not None and used + hours > quarterly:
                    notices.append("quarterly")
                if (notices and "threshold" not in failed
                        and chosen.hold_until_acknowledged and not c.acknowledged):
                    failed.add("threshold")
                    held = True
    joint_ids: list[str] = []
    if ctx is not None:
        if owner not in label.owners:
            failed.add("joint")
        for other in sorted(label.owners - {owner}):
            if owner not in label.owners:
                break
            pick = _pick(owner, other, day, agreements)
            if pick is None:
                failed.add("joint")
            else:
                joint_ids.append(pick.id)
    soft = ({"tier"} if needs else set()) | ({"threshold"} if held else set())
    if failed - soft:
        outcome = Outcome.DENY
        notices = []
    elif needs:
        outcome = Outcome.NEEDS_APPROVAL
    elif held:
        outcome = Outcome.HELD
    else:
        outcome = Outcome.PERMIT
    return Want(outcome, tuple(notices), chosen.id if chosen else None,
                tuple(joint_ids), frozenset(failed))


def check(owner: str, req: AccessRequest, agreements: Sequence[Agreement],
          ctx: PolicyContext | None) -> Decision:
    d = evaluate(owner, req, agreements, context=ctx)
    got = Want(d.outcome, d.notices, d.agreement_id, d.joint_agreement_ids,
               frozenset(r.rule for r in d.reasons if not r.passed))
    want = oracle(owner, req, agreements, ctx)
    assert got == want, (owner, req, agreements, ctx, d)
    assert tuple(r.rule for r in d.reasons) == (RULES if ctx is None else RULES8)
    assert d.notify == bool(d.notices)
    assert d.notify is False or d.outcome is not Outcome.DENY
    by_rule = {r.rule: r for r in d.reasons}
    if d.outcome is Outcome.HELD:
        assert by_rule["threshold"].detail.startswith(
            "held: awaiting acknowledgement by JSG")
    if d.outcome is Outcome.NEEDS_APPROVAL:
        assert by_rule["tier"].detail.startswith("needs approval: ")
    return d


# -- grid A: approvals x tiers x holds x hard failures ----------------------------

APPROVALS: dict[str, Any] = {
    "none": lambda: {},
    "approve": lambda: {"approval": _ap()},
    "deny": lambda: {"approval": _ap(decision="deny")},
    "approve-expired": lambda: {"approval": _ap(expires=AT - timedelta(seconds=1))},
    "approve-boundary": lambda: {"approval": _ap(expires=AT)},
    "deny-expired": lambda: {"approval": _ap(decision="deny",
                                             expires=AT - timedelta(days=1))},
    "foreign": lambda: {"approval": _ap(owner="GBR")},
    "other-digest": lambda: {"approval": _ap(digest="sha256:" + "00" * 32)},
    "no-digest": lambda: {"approval": _ap(), "request_digest": ""},
    "no-at": lambda: {"approval": _ap(), "at": None},
    "naive-at": lambda: {"approval": _ap(), "at": AT.replace(tzinfo=None)},
    "unknown": lambda: {"approval": _ap(decision="abstain")},
}
WHY = {"approve-expired": "approval ap expired at 2026-06-01T11:59:59+00:00",
       "approve-boundary": "approval ap expired at 2026-06-01T12:00:00+00:00",
       "foreign": "approval ap is signed for GBR, not AUS",
       "other-digest": "approval ap is bound to another request",
       "no-digest": "approval ap cannot be bound: no request digest",
       "no-at": "approval ap not checked: no decision time",
       "naive-at": "is not timezone-aware",
       "unknown": "approval ap has unknown decision 'abstain'"}


def _ap(*, decision: str = "approve", owner: str = "AUS", digest: str = DIGEST,
        expires: datetime = AT + timedelta(hours=1)) -> ApprovalFacts:
    return ApprovalFacts("ap", decision, owner, digest, expires)


def _context(approval: str, **extra: Any) -> PolicyContext | None:
    if approval == "no-context":
        return None
    kwargs: dict[str, Any] = {"request_digest": DIGEST, "at": AT}
    kwargs.update(APPROVALS[approval]())
    kwargs.update(extra)
    return PolicyContext(**kwargs)


USA_VARIANTS: dict[str, list[Agreement]] = {
    "plain": [agreement(("AUS", "USA"), "AUS-USA-1")],
    "quarterly": [agreement(("AUS", "USA"), "AUS-USA-1", quarterly=300.0)],
    "hold": [agreement(("AUS", "USA"), "AUS-USA-1", hold=True)],
    "quarterly-hold": [agreement(("AUS", "USA"), "AUS-USA-1", quarterly=300.0,
                                 hold=True)],
    "expired": [agreement(("AUS", "USA"), "AUS-USA-1", end=DAY - timedelta(days=1))],
    "missing": [agreement(("AUS", "GBR"), "AUS-GBR-D")],
}


def test_grid_approvals_tiers_holds() -> None:
    count = 0
    outcomes: set[Outcome] = set()
    for operator, variant, area, approval, hours, ack, hard in itertools.product(
            ["AUS", "USA"], USA_VARIANTS, AREAS, ["no-context", *APPROVALS],
            [10.0, 500.0, 600.0], [False, True], [False, True]):
        req = request("AUS", operator, area=AREAS[area], hours=hours,
                      acc=C.CONFIDENTIAL if hard else C.SECRET)
        ctx = _context(approval, acknowledged=ack)
        d = check("AUS", req, USA_VARIANTS[variant], ctx)
        outcomes.add(d.outcome)
        tier = next(r for r in d.reasons if r.rule == "tier")
        if d.agreement_id is not None and area == "case":
            if approval == "approve":
                assert tier.detail.startswith(
                    "approved by AUS officer (approval ap, expires "
                    "2026-06-01T13:00:00+00:00)")
            elif approval.startswith("deny"):
                assert tier.detail.startswith("denied by AUS officer (approval ap)")
            elif approval in WHY:
                assert WHY[approval] in tier.detail
            else:
                assert tier.detail.endswith("under agreement AUS-USA-1")
        count += 1
    assert count == 2 * len(USA_VARIANTS) * 3 * (len(APPROVALS) + 1) * 3 * 2 * 2
    assert outcomes == set(Outcome)


# -- grid B: quarterly usage below / at / above / invalid ---------------------------


def _usage(kind: str, hours: float) -> dict[str, Any]:
    threshold = 300.0
    kinds: dict[str, dict[str, Any]] = {
            "missing": {}, "other-id": {"AUS-USA-9": 10_000.0},
            "zero": {"AUS-USA-1": 0}, "below": {"AUS-USA-1": threshold - hours - 1.0},
            "at": {"AUS-USA-1": threshold - hours},
            "above": {"AUS-USA-1": threshold - hours + 0.25},
            "negative": {"AUS-USA-1": -1.0}, "nan": {"AUS-USA-1": math.nan},
            "inf": {"AUS-USA-1": math.inf}, "bool": {"AUS-USA-1": True}}
    return kinds[kind]


def test_grid_quarterly_usage() -> None:
    count = 0
    seen: set[tuple[str, ...]] = set()
    for variant, area, approval, kind, hours, ack, hard in itertools.product(
            ["plain", "quarterly", "hold", "quarterly-hold"], ["pre", "case"],
            ["none", "approve"],
            ["missing", "other-id", "zero", "below", "at", "above", "negative",
             "nan", "inf", "bool"],
            [10.0, 250.0, 600.0], [False, True], [False, True]):
        req = request("AUS", "USA", area=AREAS[area], hours=hours,
                      rel="AUS,GBR" if hard else "AUS,USA")
        ctx = _context(approval, acknowledged=ack,
                       quarter_usage_gpu_hours=_usage(kind, hours))
        d = check("AUS", req, USA_VARIANTS[variant], ctx)
        seen.add(d.notices)
        if not hard and "quarterly" in variant and kind == "at" and hours <= 500:
            assert d.notices == ()  # exactly at the threshold: no notice
        count += 1
    assert count == 4 * 2 * 2 * 10 * 3 * 2 * 2
    assert seen == {(), ("per-request",), ("quarterly",), ("per-request", "quarterly")}


# -- grid C: one to three owners, co-owner agreements, ended agreements -------------

JOINT_VARIANTS: dict[str, list[Agreement]] = {
    "all": [agreement(("AUS", "GBR"), "AUS-GBR-J"),
            agreement(("AUS", "CAN"), "AUS-CAN-J"),
            agreement(("CAN", "GBR"), "CAN-GBR-J")],
    "gbr-only": [agreement(("AUS", "GBR"), "AUS-GBR-J")],
    "gbr-expired": [agreement(("AUS", "GBR"), "AUS-GBR-J", end=DAY - timedelta(1)),
                    agreement(("AUS", "CAN"), "AUS-CAN-J")],
    "two-gbr": [agreement(("AUS", "GBR"), "AUS-GBR-B", start=date(2025, 1, 1)),
                agreement(("AUS", "GBR"), "AUS-GBR-A", start=date(2026, 3, 1)),
                agreement(("AUS", "CAN"), "AUS-CAN-J", start=DAY + timedelta(1))],
    "none": [],
}
USA_AGREEMENTS = [agreement(("AUS", "USA"), "AUS-USA-1"),
                  agreement(("GBR", "USA"), "GBR-USA-1"),
                  agreement(("CAN", "USA"), "CAN-USA-1")]
ENDED = {"AUS-GBR-OLD": "terminated by GBR officer on 2026-05-30: withdrawn",
         "AUS-CAN-OLD": "superseded by version 2",
         "AUS-USA-OLD": "terminated by AUS officer on 2026-05-21: exercise over",
         "NZL-USA-OLD": "terminated by NZL officer on 2026-01-01: lapsed"}


def test_grid_joint_owners_and_ended() -> None:
    count = 0
    outcomes: set[Outcome] = set()
    for owners, variant, operator, usa, area, approval, ended, decider in \
            itertools.product(["AUS", "AUS,GBR", "AUS,CAN,GBR"], JOINT_VARIANTS,
                              ["AUS", "GBR", "USA"], [True, False], ["pre", "case"],
                              ["none", "approve", "deny"], [False, True],
                              ["AUS", "GBR", "NZL"]):
        agreements = JOINT_VARIANTS[variant] + (USA_AGREEMENTS if usa else [])
        req = request(owners, operator, area=AREAS[area])
        ctx = _context(approval, ended=ENDED if ended else {})
        d = check(decider, req, agreements, ctx)
        outcomes.add(d.outcome)
        detail = {r.rule: r for r in d.reasons}
        joint = detail["joint"].detail
        if decider in req.label.owners:
            for other in sorted(req.label.owners - {decider}):
                assert f"with {other}: " in joint
            if len(req.label.owners) == 1:
                assert joint == "single owner: no joint agreement needed"
        # ended agreements are cited exactly for their blocked pair
        pairs = [(operator, detail["agreement"])] + [
            (other, None) for other in sorted(req.label.owners - {decider})]
        for partner, r in pairs:
            key = f"{'-'.join(sorted((decider, partner)))}-OLD"
            blocked = (r is not None and not r.passed and partner != decider) or (
                r is None and f"with {partner}: no " in joint)
            text = r.detail if r is not None else joint
            if ended and blocked and key in ENDED:
                assert f"agreement {key} {ENDED[key]}" in text
            elif key in ENDED:
                assert f"agreement {key} " not in text or not ended
        assert "NZL-USA-OLD" not in str(d.to_json()) or decider == "NZL"
        count += 1
    assert count == 3 * len(JOINT_VARIANTS) * 3 * 2 * 2 * 3 * 2 * 3
    assert {Outcome.DENY, Outcome.PERMIT, Outcome.NEEDS_APPROVAL} <= outcomes


# -- hypothesis properties --------------------------------------------------------

POOL = ["AUS", "GBR", "USA", "CAN", "NZL"]
DATES = st.dates(min_value=date(2025, 1, 1), max_value=date(2027, 12, 31))
INSTANTS = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 1, 1),
                        timezones=st.just(UTC))


@st.composite
def agreements_st(draw: st.DrawFn, owner: str) -> list[Agreement]:
    out = []
    for i in range(draw(st.integers(0, 5))):
        other = draw(st.sampled_from([n for n in POOL if n != owner]))
        first = owner if draw(st.integers(0, 5)) else draw(
            st.sampled_from([n for n in POOL if n != other]))
        start = draw(DATES)
        out.append(agreement(
            (first, other), f"A{i}-{draw(st.integers(0, 2))}", start=start,
            end=start + timedelta(days=draw(st.integers(1, 700))),
            threshold=draw(st.sampled_from([0.0, 50.0, 500.0])),
            quarterly=draw(st.none() | st.sampled_from([0.0, 100.0, 1000.0])),
            hold=draw(st.booleans()),
            areas=draw(st.dictionaries(
                st.sampled_from(list(AREAS.values())),
                st.sampled_from(["pre-approved", "case-by-case"]), min_size=1))))
    return out


@st.composite
def contexts(draw: st.DrawFn, agreements: Sequence[Agreement]
             ) -> PolicyContext | None:
    if not draw(st.integers(0, 5)):
        return None
    at = draw(st.none() | INSTANTS | INSTANTS.map(lambda t: t.replace(tzinfo=None))
              if not draw(st.integers(0, 5)) else INSTANTS)
    digest = draw(st.sampled_from([DIGEST, DIGEST, ""]))
    approval = None
    if draw(st.booleans()):
        base = at if isinstance(at, datetime) and at.tzinfo else AT
        approval = ApprovalFacts(
            "ap", draw(st.sampled_from(["approve", "approve", "deny", "x"])),
            draw(st.sampled_from(["AUS", "GBR", "USA"])),
            draw(st.sampled_from([DIGEST, DIGEST, "sha256:" + "00" * 32])),
            base + timedelta(seconds=draw(st.integers(-3600, 3600))))
    ids = sorted({a.id for a in agreements}) or ["A0-0"]
    usage = draw(st.dictionaries(
        st.sampled_from(ids),
        st.floats(0, 1500) | st.sampled_from([-1.0, math.nan, 0, 100]), max_size=3))
    ended = draw(st.dictionaries(st.sampled_from(ids), st.just("terminated"),
                                 max_size=2))
    return PolicyContext(request_digest=digest, at=at, approval=approval,
                         quarter_usage_gpu_hours=usage,
                         acknowledged=draw(st.booleans()), ended=ended)


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, AccessRequest, list[Agreement],
                                    PolicyContext | None]:
    owners = draw(st.frozensets(st.sampled_from(POOL), min_size=1, max_size=3))
    rel = owners | draw(st.frozensets(st.sampled_from(POOL)))
    decider = draw(st.sampled_from(sorted(owners)) if draw(st.integers(0, 5))
                   else st.sampled_from(POOL))
    operator = draw(st.sampled_from(sorted(rel)) if draw(st.integers(0, 4))
                    else st.sampled_from(POOL))
    agreements = draw(agreements_st(decider))
    day = draw(DATES)
    covering = [a for a in agreements if a.covers(decider, operator)]
    if covering and draw(st.integers(0, 3)) > 0:
        aim = draw(st.sampled_from(covering))
        day = aim.valid_from + timedelta(
            days=draw(st.integers(0, (aim.valid_until - aim.valid_from).days)))
    hours = draw(st.sampled_from([0.0, 10.0, 50.0, 60.0, 120.0, 500.0, 600.0, 1200.0])
                 | st.floats(0, 2000) | st.sampled_from([-1.0, math.nan]))
    req = AccessRequest(
        dataset_id="d",
        label=Label.create(owners=owners, classification="SECRET", releasable_to=rel),
        site=SiteFacts("s", operator, draw(st.sampled_from(
            [C.SECRET, C.SECRET, C.TOP_SECRET, C.CONFIDENTIAL]))),
        priority_area=draw(st.sampled_from([*AREAS.values(), ""])),
        gpu_hours=hours, on=day)
    ctx = draw(contexts(agreements))
    if ctx is not None and ctx.approval is not None and draw(st.booleans()):
        # aim the approval at the decider, to reach the counting cases often
        ctx = PolicyContext(
            request_digest=DIGEST, at=AT, approval=ApprovalFacts(
                "ap", ctx.approval.decision, decider, DIGEST,
                AT + timedelta(seconds=draw(st.integers(-5, 5)))),
            quarter_usage_gpu_hours=ctx.quarter_usage_gpu_hours,
            acknowledged=ctx.acknowledged, ended=ctx.ended)
    return decider, req, agreements, ctx


@settings(max_examples=250, deadline=None)
@given(cases())
def test_context_properties(case: tuple[str, AccessRequest, list[Agreement],
                                        PolicyContext | None]) -> None:
    owner, req, agreements, ctx = case
    d = check(owner, req, agreements, ctx)
    event(f"outcome={d.outcome.value} notices={','.join(d.notices) or '-'} "
          f"owners={len(req.label.owners)} context={ctx is not None}")
    # determinism and independence from the order of agreements
    assert evaluate(owner, req, agreements, context=ctx) == d
    assert evaluate(owner, req, list(reversed(agreements)), context=ctx) == d
    # without a context: the first seven rules of the default context
    if ctx is None:
        with_default = evaluate(owner, req, agreements, context=PolicyContext())
        assert with_default.reasons[:7] == d.reasons
        if with_default.reasons[7].passed:
            assert with_default.outcome is d.outcome
    # ended agreements explain; they never change the outcome
    if ctx is not None and ctx.ended:
        bare = PolicyContext(request_digest=ctx.request_digest, at=ctx.at,
                             approval=ctx.approval,
                             quarter_usage_gpu_hours=ctx.quarter_usage_gpu_hours,
                             acknowledged=ctx.acknowledged)
        other = evaluate(owner, req, agreements, context=bare)
        assert (other.outcome, other.notices, other.joint_agreement_ids) == (
            d.outcome, d.notices, d.joint_agreement_ids)


@settings(max_examples=120, deadline=None)
@given(cases(), st.data())
def test_evaluate_all_with_context(case: tuple[str, AccessRequest, list[Agreement],
                                               PolicyContext | None],
                                   data: st.DataObject) -> None:
    _, req, _, ctx = case
    by_owner = {o: data.draw(agreements_st(o)) for o in sorted(req.label.owners)}
    ds = evaluate_all(req, by_owner, context=ctx)
    assert [d.owner for d in ds] == sorted(req.label.owners)
    for d in ds:
        assert d == check(d.owner, req, by_owner[d.owner], ctx)
    combined = combined_outcome(ds)
    order = [Outcome.DENY, Outcome.NEEDS_APPROVAL, Outcome.HELD, Outcome.PERMIT]
    assert combined is min((d.outcome for d in ds), key=order.index)
