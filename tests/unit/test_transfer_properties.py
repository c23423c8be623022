"""Properties of the pure transfer policy over generated facts (hypothesis):
it never raises, always reports every rule, and never permits without what each
rule demands (fail closed)."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from test_transfer_policy import AT, DIGEST, agreement

from orchestrator.policy.transfer import (
    RULES,
    ConsentFacts,
    ModelFacts,
    TransferFacts,
    classify_export_control,
    evaluate_transfer,
)
from orchestrator.protocol.agreements import Agreement

NATIONS = ["AUS", "CAN", "GBR", "NZL", "USA"]
USES = ["research", "weapons-targeting", "surveillance"]
TAGS = ["ITAR:USML-XI", "EAR:5A002", "EAR99", "BOGUS:1"]
CAVEATS = ["NOFORN", "NO-SURVEILLANCE", "RESEARCH-ONLY", "ORCON"]


@st.composite
def agreements(draw: st.DrawFn) -> Agreement:
    a, b = draw(st.lists(st.sampled_from(NATIONS), min_size=2, max_size=2,
                         unique=True))
    start = draw(st.sampled_from(["2020-01-01", "2026-01-01", "2026-12-01"]))
    return agreement(
        f"{min(a, b)}-{max(a, b)}-{draw(st.integers(0, 2))}", a, b,
        third=draw(st.sampled_from(["prohibited", "with-consent"])),
        prohibited=tuple(draw(st.sets(st.sampled_from(USES[1:])))),
        valid_from=start,
        valid_until="2021-12-31" if start == "2020-01-01" else "2028-12-31")


@st.composite
def transfer_facts(draw: st.DrawFn) -> TransferFacts:
    owners = frozenset(draw(st.sets(st.sampled_from(["AUS", "GBR"]), min_size=1)))
    releasable = owners | frozenset(draw(st.sets(st.sampled_from(NATIONS))))
    model = ModelFacts("model-1", DIGEST, owners, releasable,
                       frozenset(draw(st.sets(st.sampled_from(TAGS), max_size=2))),
                       frozenset(draw(st.sets(st.sampled_from(CAVEATS), max_size=1))),
                       "job-1")
    recipient = draw(st.sampled_from([*NATIONS, "XXX"]))
    end_use = draw(st.sampled_from([*USES, "Bad Use"]))
    consents = tuple(draw(st.lists(st.builds(
        ConsentFacts,
        consent_id=st.sampled_from(["c1", "c2", "c3"]),
        nation=st.sampled_from(["AUS", "GBR", "USA"]),
        model_id=st.sampled_from(["model-1", "model-2"]),
        model_digest=st.sampled_from([DIGEST, "sha256:" + "00" * 32]),
        recipient=st.sampled_from(NATIONS),
        end_use=st.sampled_from(USES),
        expires_at=st.sampled_from([AT - timedelta(days=1), AT,
                                    AT + timedelta(days=1), None]),
        export_controls=st.frozensets(st.sampled_from(TAGS), max_size=2)),
        max_size=4)))
    pool = draw(st.lists(agreements(), max_size=4, unique_by=lambda a: a.id))
    ended_ids = draw(st.sets(st.sampled_from([a.id for a in pool] or ["none"])))
    effective = tuple(a for a in pool if a.id not in ended_ids)
    derived = tuple(draw(st.sets(st.sampled_from([a.id for a in pool] or ["x"]),
                                 max_size=2)))
    sender = draw(st.sampled_from([None, None, "CAN", "NZL", "AUS"]))
    holders = {n: tuple(draw(st.sets(st.sampled_from([a.id for a in pool] or ["x"]),
                                     max_size=2)))
               for n in draw(st.sets(st.sampled_from(["CAN", "NZL"])))}
    return TransferFacts(
        model=model, recipient=recipient, end_use=end_use,
        at=draw(st.sampled_from([AT, AT.astimezone(UTC), datetime(2026, 11, 21)])),
        consents=consents, agreements=effective,
        ended={i: f"terminated ({i})" for i in ended_ids},
        documents={a.id: a for a in pool}, derived_under=derived, sender=sender,
        holders=holders,
        used_consents=draw(st.sampled_from([{}, {"c1": "xfer-0"}])))


def _mutate(f: TransferFacts, what: str, draw: st.DrawFn) -> TransferFacts:
    """One way a request can go wrong (or, for some, stay right)."""
    replace = dataclasses.replace
    if what == "drop-consent" and f.consents:
        return replace(f, consents=f.consents[1:])
    if what == "bend-consent" and f.consents:
        field, value = draw(st.sampled_from([
            ("recipient", "GBR"), ("end_use", "surveillance"), ("model_id", "m-2"),
            ("model_digest", "sha256:" + "00" * 32), ("expires_at", AT),
            ("export_controls", frozenset())]))
        return replace(f, consents=(replace(f.consents[0], **{field: value}),
                                    *f.consents[1:]))
    if what == "unreleasable":
        return replace(f, model=replace(
            f.model, releasable_to=f.model.releasable_to - {f.recipient}))
    if what == "tag":
        tag = draw(st.sampled_from(["BOGUS:1", "ITAR:USML-IV", "EAR99"]))
        return replace(f, model=replace(
            f.model, export_controls=f.model.export_controls | {tag}))
    if what == "caveat":
        caveat = draw(st.sampled_from(["NOFORN", "ORCON", "NO-RESEARCH",
                                       "SURVEILLANCE-ONLY", "NO-SURVEILLANCE"]))
        return replace(f, model=replace(f.model, caveats=f.model.caveats | {caveat}))
    if what == "end-use":
        use = draw(st.sampled_from(["surveillance", "weapons-targeting"]))
        consents = tuple(replace(c, end_use=use) for c in f.consents)
        return replace(f, end_use=use, consents=draw(st.sampled_from(
            [consents, f.consents])))
    if what == "terminate" and f.documents:
        aid = draw(st.sampled_from(sorted(f.documents)))
        return replace(f, agreements=tuple(a for a in f.agreements if a.id != aid),
                       ended={**f.ended, aid: f"agreement {aid} terminated"})
    if what == "sender":
        return replace(f, sender=draw(st.sampled_from(["NZL", "JPN", "AUS"])),
                       holders=draw(st.sampled_from([{}, {"NZL": ("AUS-USA-T",)}])))
    if what == "used":
        return replace(f, used_consents={c.consent_id: "xfer-0"
                                         for c in f.consents[:1]})
    if what == "late":
        return replace(f, at=AT + timedelta(days=2))
    if what == "naive":
        return replace(f, at=datetime(2026, 11, 21, 12))
    return f


MUTATIONS = ["drop-consent", "bend-consent", "unreleasable", "tag", "caveat",
             "end-use", "terminate", "sender", "used", "late", "naive", "none"]


@st.composite
def near_permit(draw: st.DrawFn, mutate: bool = True) -> TransferFacts:
    """A request that is permitted, then (``mutate``) 0-2 random mutations."""
    owners = frozenset(draw(st.sets(st.sampled_from(["AUS", "GBR"]), min_size=1)))
    recipient = draw(st.sampled_from(["CAN", "NZL", "JPN"]))
    tags = frozenset(draw(st.sets(st.sampled_from(
        ["ITAR:USML-XI", "EAR:5A002", "EAR99"]), max_size=2)))
    model = ModelFacts("model-1", DIGEST, owners,
                       owners | {recipient} | frozenset(draw(st.sets(
                           st.sampled_from(NATIONS)))), tags,
                       frozenset(draw(st.sets(st.sampled_from(
                           ["NO-SURVEILLANCE", "RESEARCH-ONLY"]), max_size=1))),
                       "job-1")
    with_consent = draw(st.booleans())
    training = agreement("AUS-USA-T", "AUS", "USA",
                         third="with-consent" if with_consent else "prohibited",
                         prohibited=("weapons-targeting",))
    direct = [agreement(f"{o}-{recipient}", o, recipient,
                        prohibited=tuple(draw(st.sets(st.sampled_from(
                            ["surveillance", "weapons-targeting"])))))
              for o in sorted(owners) if not with_consent or draw(st.booleans())]
    pool = [training, *direct]
    f = TransferFacts(
        model=model, recipient=recipient, end_use="research", at=AT,
        consents=tuple(ConsentFacts(f"c-{o}", o, "model-1", DIGEST, recipient,
                                    "research", AT + timedelta(days=1), tags)
                       for o in sorted(owners)),
        agreements=tuple(pool), documents={a.id: a for a in pool},
        derived_under=("AUS-USA-T",))
    for what in draw(st.lists(st.sampled_from(MUTATIONS),
                              max_size=2 if mutate else 0)):
        f = _mutate(f, what, draw)
    return f


any_facts = st.one_of(transfer_facts(), near_permit())


def _counts(c: ConsentFacts, f: TransferFacts) -> bool:
    return (c.model_id == f.model.model_id and c.model_digest == f.model.model_digest
            and c.recipient == f.recipient and c.end_use == f.end_use
            and c.expires_at is not None and f.at < c.expires_at
            and c.consent_id not in f.used_consents)


@settings(max_examples=300, deadline=None)
@given(any_facts)
def test_never_raises_and_reports_every_rule(f: TransferFacts) -> None:
    decision = evaluate_transfer(f)
    assert tuple(r.rule for r in decision.reasons) == RULES
    assert decision.permit == all(r.passed for r in decision.reasons)
    assert len(decision.denial_reasons()) == sum(not r.passed
                                                 for r in decision.reasons)
    assert evaluate_transfer(f) == decision  # deterministic


@settings(max_examples=100, deadline=None)
@given(near_permit(mutate=False))
def test_unmutated_requests_are_permitted(f: TransferFacts) -> None:
    decision = evaluate_transfer(f)
    assert decision.permit, decision.denial_reasons()
    assert decision.third_party == any(
        not any(a.covers(o, f.recipient) for a in f.agreements)
        for o in f.model.owners)


@settings(max_examples=300, deadline=None)
@given(near_permit())
def test_permit_implies_every_requirement(f: TransferFacts) -> None:
    decision = evaluate_transfer(f)
    if not decision.permit:
        return
    assert f.at.utcoffset() is not None
    assert f.recipient in f.model.releasable_to
    assert f.recipient not in f.model.owners
    for owner in f.model.owners:
        counting = [c for c in f.consents if c.nation == owner and _counts(c, f)]
        assert counting, owner
        for tag in f.model.export_controls:
            assert classify_export_control(tag) != "unknown"
            if classify_export_control(tag) in ("itar", "ear-eccn"):
                assert any(tag in c.export_controls for c in counting)
        direct = [a for a in f.agreements if a.covers(owner, f.recipient)
                  and a.is_valid_on(f.at.date())]
        if not direct:  # a third party: every training agreement allows it
            assert f.derived_under
            for aid in f.derived_under:
                assert aid not in f.ended
                assert f.documents[aid].third_party_transfer == "with-consent"
    for aid in f.derived_under:
        doc = f.documents.get(aid)
        assert doc is None or f.end_use not in doc.prohibited_end_uses
    assert "NOFORN" not in f.model.caveats
    assert set(decision.consent_ids) <= {c.consent_id for c in f.consents}


@settings(max_examples=200, deadline=None)
@given(any_facts)
def test_removing_consents_or_agreements_never_permits(f: TransferFacts) -> None:
    assert not evaluate_transfer(dataclasses.replace(f, consents=())).permit
    later = f.at + timedelta(days=3) if f.at.utcoffset() is not None else f.at
    assert not evaluate_transfer(dataclasses.replace(f, at=later)).permit
    ended: dict[str, Any] = {a.id: "terminated" for a in f.documents.values()}
    ended.update(f.ended)
    assert not evaluate_transfer(
        dataclasses.replace(f, agreements=(), ended=ended)).permit


@settings(max_examples=200, deadline=None)
@given(any_facts, st.sampled_from(USES))
def test_prohibiting_the_end_use_never_turns_deny_into_permit(
        f: TransferFacts, use: str) -> None:
    before = evaluate_transfer(f)
    stricter = {
        aid: Agreement.from_json({**doc.to_json(), "prohibited_end_uses": sorted(
            {*doc.prohibited_end_uses, use})})
        for aid, doc in f.documents.items()}
    after = evaluate_transfer(dataclasses.replace(
        f, documents=stricter,
        agreements=tuple(stricter[a.id] for a in f.agreements)))
    assert not (after.permit and not before.permit)
    if f.end_use == use:  # every agreement relied on now prohibits it
        assert not after.permit
