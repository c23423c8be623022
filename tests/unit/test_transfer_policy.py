"""The pure model-transfer policy
(:func:`orchestrator.policy.transfer.evaluate_transfer`)
and its small helpers: one test per rule and per way each rule can fail."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.errors import ConfigError
from orchestrator.policy.transfer import (
    RULES,
    ConsentFacts,
    ModelFacts,
    TransferDecision,
    TransferFacts,
    classify_export_control,
    evaluate_transfer,
)
from orchestrator.protocol.agreements import Agreement
from orchestrator.protocol.statements import SignedStatement
from orchestrator.protocol.transfer import TransferRequest, transfer_hpke_info
from orchestrator.submit.transfer import parse_duration

AT = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
DIGEST = "sha256:" + "ab" * 32


def agreement(aid: str, a: str, b: str, *, third: str = "prohibited",
              prohibited: tuple[str, ...] = (), valid_from: str = "2026-01-01",
              valid_until: str = "2028-12-31") -> Agreement:
    return Agreement.from_json({
        "id": aid, "title": aid, "parties": [a, b], "valid_from": valid_from,
        "valid_until": valid_until, "notification_threshold_gpu_hours": 100.0,
        "oversight_body": "board", "third_party_transfer": third,
        "prohibited_end_uses": list(prohibited),
        "priority_area": [{"name": "sonar", "tier": "pre-approved"}]})


AUS_CAN = agreement("AUS-CAN", "AUS", "CAN", prohibited=("weapons-targeting",))
AUS_USA = agreement("AUS-USA", "AUS", "USA")
GBR_CAN = agreement("GBR-CAN", "GBR", "CAN")


def model(**kw: Any) -> ModelFacts:
    base: dict[str, Any] = {
        "model_id": "model-1", "model_digest": DIGEST, "owners": frozenset({"AUS"}),
        "releasable_to": frozenset({"AUS", "CAN", "GBR", "NZL", "USA"}),
        "job_id": "job-1"}
    base.update(kw)
    return ModelFacts(**base)


def consent(nation: str = "AUS", **kw: Any) -> ConsentFacts:
    base: dict[str, Any] = {
        "consent_id": f"consent-{nation.lower()}", "nation": nation,
        "model_id": "model-1", "model_digest": DIGEST, "recipient": "CAN",
        "end_use": "research", "expires_at": AT + timedelta(days=7)}
    base.update(kw)
    return ConsentFacts(**base)


def facts(**kw: Any) -> TransferFacts:
    agreements = kw.pop("agreements", (AUS_CAN, AUS_USA))
    documents = kw.pop("documents", None)
    base: dict[str, Any] = {
        "model": model(), "recipient": "CAN", "end_use": "research", "at": AT,
        "consents": (consent(),), "agreements": tuple(agreements),
        "documents": documents if documents is not None
        else {a.id: a for a in agreements},
        "derived_under": ("AUS-USA",)}
    base.update(kw)
    return TransferFacts(**base)


def reason(decision: TransferDecision, rule: str) -> tuple[bool, str]:
    (found,) = [r for r in decision.reasons if r.rule == rule]
    return found.passed, found.detail


def failed(decision: TransferDecision) -> set[str]:
    return {r.rule for r in decision.reasons if not r.passed}


# -- permit --------------------------------------------------------------------------
def test_permit_when_every_rule_passes() -> None:
    decision = evaluate_transfer(facts())
    assert decision.permit and decision.outcome == "permit"
    assert tuple(r.rule for r in decision.reasons) == RULES
    assert all(r.passed for r in decision.reasons)
    assert decision.relied_agreement_ids == ("AUS-CAN",)
    assert decision.consent_ids == ("consent-aus",)
    assert not decision.third_party and not decision.re_transfer
    assert decision.denial_reasons() == []
    assert "AUS-CAN: agreement AUS-CAN in force" in reason(decision, "agreement")[1]


def test_decision_json_round_trip() -> None:
    decision = evaluate_transfer(facts(consents=()))
    again = TransferDecision.from_json(decision.to_json())
    assert again == decision
    with pytest.raises(ConfigError):
        TransferDecision.from_json({"model_id": "m"})


# -- request -------------------------------------------------------------------------
@pytest.mark.parametrize(("change", "words"), [
    ({"recipient": "XXX"}, "not an ISO 3166-1 alpha-3"),
    ({"recipient": "AUS"}, "already owns"),
    ({"end_use": "Weapons Targeting"}, "not a lower-case slug"),
    ({"at": datetime(2026, 11, 21, 12, 0)}, "timezone-aware"),
    ({"sender": "CAN"}, "sender and recipient are both CAN"),
    ({"sender": "ZZZ"}, "sender 'ZZZ'"),
    ({"request_problems": ("CAN has no registered custodian",)}, "no registered"),
    ({"model": model(model_id="")}, "model id is empty"),
    ({"model": model(model_digest="")}, "model digest is empty"),
    ({"model": model(owners=frozenset())}, "no owners"),
])
def test_request_rule_fails_closed(change: dict[str, Any], words: str) -> None:
    decision = evaluate_transfer(facts(**change))
    assert not decision.permit
    passed, detail = reason(decision, "request")
    assert not passed and words in detail, detail


def test_naive_time_also_fails_consent_and_agreement() -> None:
    decision = evaluate_transfer(facts(at=datetime(2026, 11, 21)))
    assert {"request", "consent", "agreement"} <= failed(decision)


# -- consent -------------------------------------------------------------------------
def test_no_consent_denies() -> None:
    decision = evaluate_transfer(facts(consents=()))
    assert failed(decision) == {"consent"}
    assert reason(decision, "consent")[1] == "no valid consent from AUS"
    assert decision.denial_reasons() == ["consent: no valid consent from AUS"]


def test_every_owner_must_consent() -> None:
    joint = model(owners=frozenset({"AUS", "GBR"}))
    decision = evaluate_transfer(facts(model=joint,
                                       agreements=(AUS_CAN, GBR_CAN, AUS_USA)))
    assert failed(decision) == {"consent"}
    detail = reason(decision, "consent")[1]
    assert "no valid consent from GBR" in detail and "from AUS" not in detail
    both = evaluate_transfer(facts(model=joint, agreements=(AUS_CAN, GBR_CAN),
                                   consents=(consent(), consent("GBR"))))
    assert both.permit and both.consent_ids == ("consent-aus", "consent-gbr")
    assert both.relied_agreement_ids == ("AUS-CAN", "GBR-CAN")


@pytest.mark.parametrize(("change", "words"), [
    ({"recipient": "GBR"}, "names recipient GBR, not CAN"),
    ({"end_use": "surveillance"}, "is for end use 'surveillance', not 'research'"),
    ({"model_id": "model-2"}, "is for model model-2"),
    ({"model_digest": "sha256:" + "cd" * 32}, "is bound to digest"),
    ({"expires_at": AT}, "expired at 2026-11-21T12:00:00"),
    ({"expires_at": AT - timedelta(seconds=1)}, "expired at"),
    ({"expires_at": None}, "has no valid expiry"),
    ({"expires_at": datetime(2027, 1, 1)}, "has no valid expiry"),
])
def test_consent_bound_to_something_else_does_not_count(change: dict[str, Any],
                                                        words: str) -> None:
    decision = evaluate_transfer(facts(consents=(consent(**change),)))
    assert failed(decision) == {"consent"}
    detail = reason(decision, "consent")[1]
    assert detail.startswith("no valid consent from AUS (consent consent-aus ")
    assert words in detail, detail


def test_consent_counts_until_the_instant_it_expires() -> None:
    just = consent(expires_at=AT + timedelta(microseconds=1))
    assert evaluate_transfer(facts(consents=(just,))).permit


def test_a_consent_authorises_one_transfer() -> None:
    decision = evaluate_transfer(facts(used_consents={"consent-aus": "xfer-1"}))
    assert failed(decision) == {"consent"}
    assert "already used by transfer xfer-1" in reason(decision, "consent")[1]
    second = consent(consent_id="consent-aus-2")
    assert evaluate_transfer(facts(consents=(consent(), second),
                                   used_consents={"consent-aus": "xfer-1"})).permit


def test_consents_by_non_owners_and_refused_statements_are_cited() -> None:
    decision = evaluate_transfer(facts(
        consents=(consent("USA"),),
        consent_problems=("consent c-9: AUS officer signature does not verify",)))
    assert failed(decision) == {"consent"}
    detail = reason(decision, "consent")[1]
    assert "consents by USA ignored: not owners" in detail
    assert "refused statements: consent c-9: AUS officer signature" in detail
    ok = evaluate_transfer(facts(consents=(consent(), consent("USA"))))
    assert ok.permit and "USA ignored" in reason(ok, "consent")[1]


# -- releasability ---------------------------------------------------------------------
def test_recipient_must_be_releasable() -> None:
    decision = evaluate_transfer(facts(
        model=model(releasable_to=frozenset({"AUS", "USA"}))))
    assert failed(decision) == {"releasability"}
    assert reason(decision, "releasability")[1] == \
        "CAN is not in releasable-to (AUS, USA)"


# -- export control --------------------------------------------------------------------
@pytest.mark.parametrize(("tag", "kind"), [
    ("ITAR:USML-XI", "itar"), ("ITAR:USML-XXI", "itar"), ("ITAR:USML-I", "itar"),
    ("ITAR:USML-XXII", "unknown"), ("ITAR:USML-IIII", "unknown"),
    ("EAR:5A002", "ear-eccn"), ("EAR:5A002.a.1", "ear-eccn"), ("EAR99", "ear99"),
    ("EAR:5A002.A", "unknown"), ("ear99", "unknown"), ("ITAR", "unknown"),
    ("", "unknown"), ("NOFORN", "unknown"),
])
def test_classify_export_control(tag: str, kind: str) -> None:
    assert classify_export_control(tag) == kind


def test_itar_needs_every_owner_to_name_the_tag() -> None:
    itar = model(export_controls=frozenset({"ITAR:USML-XI"}))
    decision = evaluate_transfer(facts(model=itar))
    assert failed(decision) == {"export-control"}
    detail = reason(decision, "export-control")[1]
    assert "ITAR:USML-XI: ITAR (22 CFR 120-130) export needs every owner's consent" \
        in detail and "none from AUS does" in detail
    named = consent(export_controls=frozenset({"ITAR:USML-XI"}))
    ok = evaluate_transfer(facts(model=itar, consents=(named,)))
    assert ok.permit
    assert "named in every owner's consent" in reason(ok, "export-control")[1]


def test_a_consent_naming_the_tag_counts_before_one_that_does_not() -> None:
    """Two valid consents by one owner: the one naming the model's tags counts,
    whichever id sorts first (a regression: the first by id used to count)."""
    itar = model(export_controls=frozenset({"ITAR:USML-XI"}))
    plain = consent(consent_id="consent-0000")
    named = consent(consent_id="consent-ffff",
                    export_controls=frozenset({"ITAR:USML-XI"}))
    for order in ((plain, named), (named, plain)):
        decision = evaluate_transfer(facts(model=itar, consents=order))
        assert decision.permit and decision.consent_ids == ("consent-ffff",)


def test_itar_to_a_nation_outside_releasable_to_fails_twice() -> None:
    itar = model(export_controls=frozenset({"ITAR:USML-XI"}),
                 releasable_to=frozenset({"AUS", "USA"}))
    named = consent(export_controls=frozenset({"ITAR:USML-XI"}))
    decision = evaluate_transfer(facts(model=itar, consents=(named,)))
    assert failed(decision) == {"releasability", "export-control"}
    assert "ITAR:USML-XI: CAN is not in releasable-to" in \
        reason(decision, "export-control")[1]


def test_itar_with_joint_owners_needs_both_to_name_it() -> None:
    itar = model(owners=frozenset({"AUS", "GBR"}),
                 export_controls=frozenset({"ITAR:USML-XI"}))
    named = frozenset({"ITAR:USML-XI"})
    decision = evaluate_transfer(facts(
        model=itar, agreements=(AUS_CAN, GBR_CAN),
        consents=(consent(export_controls=named), consent("GBR"))))
    assert failed(decision) == {"export-control"}
    assert "none from GBR does" in reason(decision, "export-control")[1]


def test_ear_eccn_needs_naming_but_ear99_does_not() -> None:
    eccn = model(export_controls=frozenset({"EAR:5A002", "EAR99"}))
    decision = evaluate_transfer(facts(model=eccn))
    assert failed(decision) == {"export-control"}
    detail = reason(decision, "export-control")[1]
    assert "EAR:5A002: EAR (15 CFR 730-774)" in detail and "EAR99" not in detail
    ear99 = evaluate_transfer(facts(model=model(export_controls=frozenset({"EAR99"}))))
    assert ear99.permit
    assert reason(ear99, "export-control")[1] == "EAR99: releasable to CAN"


@pytest.mark.parametrize("tag", ["ITAR:USML-XXII", "WASSENAAR:ML1", "itar:usml-xi"])
def test_unknown_export_control_tag_fails_closed(tag: str) -> None:
    decision = evaluate_transfer(facts(
        model=model(export_controls=frozenset({tag})),
        consents=(consent(export_controls=frozenset({tag})),)))
    assert failed(decision) == {"export-control"}
    detail = reason(decision, "export-control")[1]
    assert f"unknown export-control tag {tag!r}" in detail


# -- end use ---------------------------------------------------------------------------
def test_end_use_prohibited_by_the_direct_agreement() -> None:
    decision = evaluate_transfer(facts(
        end_use="weapons-targeting",
        consents=(consent(end_use="weapons-targeting"),)))
    assert failed(decision) == {"end-use"}
    assert reason(decision, "end-use")[1] == \
        "end use 'weapons-targeting' is prohibited by agreement(s) AUS-CAN"


def test_prohibition_of_the_training_agreement_survives_its_termination() -> None:
    training = agreement("AUS-USA", "AUS", "USA", prohibited=("surveillance",))
    decision = evaluate_transfer(facts(
        end_use="surveillance", consents=(consent(end_use="surveillance"),),
        agreements=(AUS_CAN,), documents={"AUS-CAN": AUS_CAN, "AUS-USA": training},
        ended={"AUS-USA": "agreement AUS-USA terminated by AUS officer"}))
    assert failed(decision) == {"end-use"}
    assert "prohibited by agreement(s) AUS-USA" in reason(decision, "end-use")[1]


@pytest.mark.parametrize(("caveats", "use", "words"), [
    ({"NO-SURVEILLANCE"}, "surveillance", "caveat NO-SURVEILLANCE forbids end use"),
    ({"SONAR-RESEARCH-ONLY"}, "research",
     "caveat SONAR-RESEARCH-ONLY permits only end use 'sonar-research'"),
    ({"NOFORN"}, "research", "caveat NOFORN: not releasable to foreign nations"),
    ({"ORCON"}, "research", "caveat ORCON is not understood"),
])
def test_caveats_forbid_end_uses(caveats: set[str], use: str, words: str) -> None:
    decision = evaluate_transfer(facts(model=model(caveats=frozenset(caveats)),
                                       end_use=use, consents=(consent(end_use=use),)))
    assert failed(decision) == {"end-use"}
    assert words in reason(decision, "end-use")[1]


@pytest.mark.parametrize(("caveats", "use"), [
    ({"NO-SURVEILLANCE"}, "research"),
    ({"SONAR-RESEARCH-ONLY"}, "sonar-research"),
    ({"RESEARCH-ONLY", "NO-WEAPONS-TARGETING"}, "research"),
])
def test_caveats_that_allow_the_end_use(caveats: set[str], use: str) -> None:
    decision = evaluate_transfer(facts(model=model(caveats=frozenset(caveats)),
                                       end_use=use, consents=(consent(end_use=use),)))
    assert decision.permit, decision.denial_reasons()


# -- agreement / third party -----------------------------------------------------------
def test_third_party_refused_when_training_agreement_prohibits() -> None:
    decision = evaluate_transfer(facts(recipient="GBR",
                                       consents=(consent(recipient="GBR"),)))
    assert failed(decision) == {"agreement"}
    assert decision.third_party
    detail = reason(decision, "agreement")[1]
    assert detail.startswith("GBR is a third party for AUS: no agreement between them")
    assert "agreement AUS-USA prohibits third-party transfer" in detail


def test_third_party_permitted_when_every_training_agreement_allows_consent() -> None:
    usa = agreement("AUS-USA", "AUS", "USA", third="with-consent")
    nzl = agreement("AUS-NZL", "AUS", "NZL", third="prohibited")
    decision = evaluate_transfer(facts(
        recipient="GBR", consents=(consent(recipient="GBR"),),
        agreements=(usa, nzl), derived_under=("AUS-USA",)))
    assert decision.permit and decision.third_party
    assert decision.relied_agreement_ids == ("AUS-USA",)
    assert "permitted with every owner's consent under AUS-USA" in \
        reason(decision, "agreement")[1]
    both = evaluate_transfer(facts(
        recipient="GBR", consents=(consent(recipient="GBR"),),
        agreements=(usa, nzl), derived_under=("AUS-NZL", "AUS-USA")))
    assert failed(both) == {"agreement"}
    assert "agreement AUS-NZL prohibits" in reason(both, "agreement")[1]


def test_third_party_with_no_training_agreement_is_refused() -> None:
    decision = evaluate_transfer(facts(recipient="GBR", derived_under=(),
                                       consents=(consent(recipient="GBR"),)))
    assert failed(decision) == {"agreement"}
    assert "derived under no agreement" in reason(decision, "agreement")[1]


def test_terminated_direct_agreement_is_named_and_never_permits() -> None:
    why = "agreement AUS-CAN terminated by AUS officer on 2026-11-20: exercise over"
    decision = evaluate_transfer(facts(
        agreements=(AUS_USA,), documents={"AUS-CAN": AUS_CAN, "AUS-USA": AUS_USA},
        ended={"AUS-CAN": why}))
    assert failed(decision) == {"agreement"}
    detail = reason(decision, "agreement")[1]
    assert why in detail and "CAN is a third party for AUS" in detail


def test_terminated_training_agreement_never_permits_third_party() -> None:
    usa = agreement("AUS-USA", "AUS", "USA", third="with-consent")
    why = "agreement AUS-USA terminated by USA officer on 2026-11-20: done"
    decision = evaluate_transfer(facts(
        recipient="GBR", consents=(consent(recipient="GBR"),), agreements=(),
        documents={"AUS-USA": usa}, ended={"AUS-USA": why}))
    assert failed(decision) == {"agreement"}
    assert f"{why}: it no longer permits third-party transfer" in \
        reason(decision, "agreement")[1]
    unsigned = evaluate_transfer(facts(
        recipient="GBR", consents=(consent(recipient="GBR"),), agreements=(),
        documents={"AUS-USA": usa}))
    assert "agreement AUS-USA is not in force" in reason(unsigned, "agreement")[1]


def test_agreement_outside_its_validity_window_is_named() -> None:
    old = agreement("AUS-CAN-OLD", "AUS", "CAN", valid_from="2020-01-01",
                    valid_until="2021-12-31")
    decision = evaluate_transfer(facts(agreements=(old, AUS_USA)))
    assert failed(decision) == {"agreement"}
    assert "agreement AUS-CAN-OLD is not valid on 2026-11-21 (2020-01-01 to " \
        "2021-12-31)" in reason(decision, "agreement")[1]


def test_latest_valid_agreement_is_chosen() -> None:
    newer = agreement("AUS-CAN-2", "AUS", "CAN", valid_from="2026-06-01")
    decision = evaluate_transfer(facts(agreements=(AUS_CAN, newer, AUS_USA)))
    assert decision.permit and decision.relied_agreement_ids == ("AUS-CAN-2",)


def test_joint_owners_one_direct_one_third_party() -> None:
    joint = model(owners=frozenset({"AUS", "GBR"}))
    decision = evaluate_transfer(facts(model=joint, agreements=(AUS_CAN, AUS_USA),
                                       consents=(consent(), consent("GBR"))))
    assert failed(decision) == {"agreement"} and decision.third_party
    detail = reason(decision, "agreement")[1]
    assert "AUS-CAN: agreement AUS-CAN in force" in detail
    assert "CAN is a third party for GBR" in detail


# -- re-transfer -----------------------------------------------------------------------
def test_re_transfer_refused_unless_every_agreement_allows_it() -> None:
    decision = evaluate_transfer(facts(
        recipient="USA", sender="CAN", holders={"CAN": ("AUS-CAN",)},
        consents=(consent(recipient="USA"),)))
    assert failed(decision) == {"re-transfer"} and decision.re_transfer
    detail = reason(decision, "re-transfer")[1]
    assert detail.startswith("re-transfer by CAN: ")
    assert "agreement AUS-CAN prohibits third-party re-transfer" in detail
    assert "agreement AUS-USA prohibits third-party re-transfer" in detail
    assert decision.relied_agreement_ids == ("AUS-CAN", "AUS-USA")


def test_re_transfer_permitted_when_every_agreement_allows_it() -> None:
    can = agreement("AUS-CAN", "AUS", "CAN", third="with-consent")
    usa = agreement("AUS-USA", "AUS", "USA", third="with-consent")
    decision = evaluate_transfer(facts(
        recipient="USA", sender="CAN", holders={"CAN": ("AUS-CAN",)},
        agreements=(can, usa), consents=(consent(recipient="USA"),)))
    assert decision.permit and decision.re_transfer
    assert "re-transfer by CAN permitted" in reason(decision, "re-transfer")[1]


def test_re_transfer_by_a_nation_that_holds_no_copy() -> None:
    decision = evaluate_transfer(facts(recipient="USA", sender="NZL",
                                       consents=(consent(recipient="USA"),)))
    assert failed(decision) == {"re-transfer"}
    assert "NZL neither owns model-1 nor holds it" in reason(decision, "re-transfer")[1]


def test_re_transfer_under_a_terminated_agreement() -> None:
    can = agreement("AUS-CAN", "AUS", "CAN", third="with-consent")
    usa = agreement("AUS-USA", "AUS", "USA", third="with-consent")
    decision = evaluate_transfer(facts(
        recipient="USA", sender="CAN", holders={"CAN": ("AUS-CAN",)},
        agreements=(usa,), documents={"AUS-CAN": can, "AUS-USA": usa},
        ended={"AUS-CAN": "terminated by CAN officer on 2026-11-20: x"},
        consents=(consent(recipient="USA"),)))
    assert failed(decision) == {"re-transfer"}
    assert "agreement AUS-CAN terminated by CAN officer" in \
        reason(decision, "re-transfer")[1]


def test_sender_that_owns_the_model_is_no_re_transfer() -> None:
    decision = evaluate_transfer(facts(sender="AUS"))
    assert decision.permit and not decision.re_transfer


# -- every cause listed ----------------------------------------------------------------
def test_every_failing_rule_is_listed() -> None:
    itar = model(export_controls=frozenset({"ITAR:USML-XI"}),
                 releasable_to=frozenset({"AUS"}), caveats=frozenset({"NOFORN"}))
    decision = evaluate_transfer(facts(
        model=itar, recipient="GBR", end_use="weapons-targeting", consents=(),
        sender="NZL", derived_under=()))
    assert failed(decision) == set(RULES) - {"request"}
    assert len(decision.denial_reasons()) == len(RULES) - 1


# -- helpers ---------------------------------------------------------------------------
@pytest.mark.parametrize(("text", "seconds"), [
    ("7d", 7 * 86400), ("12h", 43200), ("30m", 1800), ("600s", 600), (" 1D ", 86400),
    ("365d", 365 * 86400),
])
def test_parse_duration(text: str, seconds: int) -> None:
    assert parse_duration(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "7", "d", "0d", "-1d", "1.5h", "1w", "366d",
                                  "7d12h"])
def test_parse_duration_refuses(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_duration(text)


def test_consent_facts_from_statement() -> None:
    statement: dict[str, Any] = {
        "type": "transfer-consent/v1", "nation": "AUS", "issued_at": "x",
        "consent_id": "c1", "model_id": "m", "model_digest": DIGEST,
        "recipient": "CAN", "end_use": "research",
        "expires_at": "2026-11-28T12:00:00.000000Z", "export_controls": ["EAR99"]}
    got = ConsentFacts.from_statement(statement)
    assert got.expires_at == AT + timedelta(days=7)
    assert got.export_controls == {"EAR99"}
    assert ConsentFacts.from_statement({**statement, "expires_at": "soon"}
                                       ).expires_at is None
    assert ConsentFacts.from_statement(
        {k: v for k, v in statement.items() if k != "export_controls"}
    ).export_controls == frozenset()
    for bad in ({"recipient": 3}, {"export_controls": "EAR99"},
                {"export_controls": [1]}):
        with pytest.raises(ConfigError):
            ConsentFacts.from_statement({**statement, **bad})


def test_transfer_request_round_trip_drops_malformed_consents() -> None:
    signed = SignedStatement({"type": "transfer-consent/v1", "nation": "AUS"},
                             b"\x01" * 64, "k1")
    request = TransferRequest("xfer-1", "m", DIGEST, "CAN", "research", None,
                              (signed,))
    doc = request.to_json()
    assert TransferRequest.from_json(doc) == request
    doc["consents"].append({"statement": "not an object"})
    assert TransferRequest.from_json(doc) == request
    assert request.digest().startswith("sha256:")
    for bad in ({}, {**request.to_json(), "recipient": 7},
                {**request.to_json(), "sender": 7}):
        with pytest.raises(ConfigError):
            TransferRequest.from_json(bad)


def test_hpke_info_binds_every_field() -> None:
    base = ("xfer-1", "model-1", "CAN", DIGEST)
    infos = {transfer_hpke_info(*base)}
    for i, other in enumerate(("xfer-2", "model-2", "GBR", "sha256:" + "00" * 32)):
        changed = list(base)
        changed[i] = other
        infos.add(transfer_hpke_info(*changed))
    assert len(infos) == 5
    assert all(i.startswith(b"sovereign-transfer/v1\n") for i in infos)


def test_facts_are_not_mutated() -> None:
    f = facts()
    before = dataclasses.asdict(f)
    evaluate_transfer(f)
    assert dataclasses.asdict(f) == before
