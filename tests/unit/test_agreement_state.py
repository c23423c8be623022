"""Signed agreements: which version is in force, and what ends it.

Real party directories (each custodian's own store and journal, the log), real
officer keys and Ed25519 signatures, real custodians. Officers deliver their
signed events to every party's custodian, which refuses any not signed by the
officer key it pinned; tampering is done on a custodian's stored journal
leaves, as an attacker with write access to its database would. The pure
:func:`~orchestrator.policy.standing.standings` is also checked exhaustively
over small combinations of statements (and with hypothesis over larger ones).
"""

from __future__ import annotations

import itertools
from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from testkit import (
    MEASUREMENT,
    ROOT,
    World,
    attested_release,
    custodian_of,
    edit_journal_body,
    make_world,
    officer_event,
    officer_key,
    register_job,
)

from orchestrator.crypto import SigningKey
from orchestrator.embedded import (
    add_agreement,
    approval_requests,
    sign_agreement,
    terminate_agreement,
)
from orchestrator.errors import (
    AlreadyExists,
    ConfigError,
    DecisionPending,
    IntegrityError,
    PolicyDenied,
)
from orchestrator.log.store import CustodyLog
from orchestrator.policy.standing import (
    AgreementStatus,
    Standing,
    effective_in,
    standings,
)
from orchestrator.protocol.agreements import Agreement, load_agreement
from orchestrator.protocol.release import JobRequest
from orchestrator.protocol.statements import SignedStatement, sign_statement

AUS_USA = ROOT / "agreements" / "aus-usa.toml"
GBR_USA = ROOT / "agreements" / "gbr-usa.toml"
AID = "AUS-USA-SONAR-2026"
ISSUED = "2026-11-21T00:00:00.000000Z"


# -- helpers ---------------------------------------------------------------------------
def _variant(directory: Path, name: str, *, extra: str = "",
             quantum: str = "case-by-case") -> Path:
    """aus-usa.toml with ``extra`` [agreement] keys and the quantum-sensing tier."""
    text = AUS_USA.read_text()
    anchor = 'oversight_body = "AUKUS Joint Steering Group"\n'
    area = 'name = "quantum-sensing"\ntier = "case-by-case"'
    assert anchor in text and area in text
    text = text.replace(anchor, anchor + extra).replace(
        area, f'name = "quantum-sensing"\ntier = "{quantum}"')
    path = directory / name
    path.write_text(text)
    return path


def _bare_world(tmp_path: Path) -> World:
    """A world whose only agreement is GBR-USA: AUS-USA is added by each test."""
    return make_world(tmp_path, agreement=GBR_USA)


def load_standings(world: World, nation: str = "AUS") -> list[Standing]:
    """The standings as ``nation``'s custodian holds them."""
    return list(custodian_of(world.state, nation).ctx.standings())


def effective_agreements(world: World, nation: str = "AUS") -> Any:
    return effective_in(load_standings(world, nation))


def _standing(world: World, version: int = 1, nation: str = "AUS") -> Standing:
    return next(s for s in load_standings(world, nation)
                if s.agreement.id == AID and s.agreement.version == version)


def _kinds(world: World) -> list[str]:
    return [e.event.kind for e in CustodyLog(world.state.custody_db).entries()]


def _request(world: World, job_id: str, area: str = "undersea-autonomy"
             ) -> JobRequest:
    return JobRequest(job_id, world.dataset_id, world.site, area, 0.5, MEASUREMENT)


def _deliver_signature(world: World, statement: dict[str, Any],
                       key: SigningKey, nation: str, to: str = "AUS") -> None:
    """Deliver ``agreement.signed`` as ``nation``'s officer to ``to``'s custodian
    (as sign_agreement does), with any statement and key."""
    signed = sign_statement(statement, key)
    custodian_of(world.state, to).accept(officer_event(
        "agreement.signed", nation,
        {"agreement_id": statement["agreement_id"],
         "version": statement["version"], **signed.to_json()}, key))


# -- signatures ------------------------------------------------------------------------
def test_not_effective_until_every_party_signs(tmp_path: Path) -> None:
    world = _bare_world(tmp_path)
    add_agreement(world.state, AUS_USA, sign_as=["AUS"])
    standing = _standing(world)
    assert standing.status is AgreementStatus.AWAITING_SIGNATURES
    assert standing.signed_by == ("AUS",) and standing.missing == ("USA",)
    effective, ended = effective_agreements(world)
    assert AID not in {a.id for a in effective}
    assert "awaits the signature of USA" in ended[AID]
    aus = custodian_of(world.state, "AUS")
    with pytest.raises(PolicyDenied) as denied:
        aus.decide(_request(world, "job-early"))
    assert not isinstance(denied.value, DecisionPending)
    assert any("awaits the signature of USA" in r for r in denied.value.reasons)
    assert not CustodyLog(world.state.custody_db).find("agreement.effective",
                                                       agreement_id=AID)

    after = sign_agreement(world.state, AID, "USA")
    assert after.status is AgreementStatus.EFFECTIVE
    assert after.signed_by == ("AUS", "USA")
    assert _kinds(world)[-3:] == ["agreement.signed", "agreement.effective",
                                  "agreement.effective"]
    effective_by = {e.event.actor for e in CustodyLog(world.state.custody_db).find(
        "agreement.effective", agreement_id=AID)}
    assert effective_by == {"custodian:AUS", "custodian:USA"}  # each party's own view
    assert _standing(world, nation="USA").status is AgreementStatus.EFFECTIVE
    assert aus.decide(_request(world, "job-late"))["outcome"] == "permit"
    with pytest.raises(AlreadyExists):
        sign_agreement(world.state, AID, "USA")
    with pytest.raises(ConfigError):
        sign_agreement(world.state, AID, "GBR")  # not a party


def test_signature_over_another_versions_digest_does_not_count(
        tmp_path: Path) -> None:
    world = _bare_world(tmp_path)
    v1 = add_agreement(world.state, AUS_USA, sign_as=["AUS", "USA"])
    v2 = add_agreement(world.state, _variant(tmp_path, "v2.toml", extra="version = 2\n",
                                             quantum="pre-approved"), sign_as=["AUS"])
    # The USA officer's signature claims version 2 but covers version 1's digest.
    _deliver_signature(world, {
        "type": "agreement-signature/v1", "nation": "USA", "issued_at": ISSUED,
        "agreement_id": AID, "version": 2, "digest": v1.digest()},
        officer_key(world, "USA"), "USA")
    assert _standing(world, 2).status is AgreementStatus.AWAITING_SIGNATURES
    assert _standing(world, 2).missing == ("USA",)
    assert _standing(world, 1).status is AgreementStatus.EFFECTIVE
    # v1 stays in force: quantum-sensing is still case-by-case.
    with pytest.raises(DecisionPending):
        custodian_of(world.state, "AUS").decide(
            _request(world, "job-q", "quantum-sensing"))
    # The same, in the pure function: v2's digest under version 1 counts for
    # neither.
    keys = {"AUS": officer_key(world, "AUS"), "USA": officer_key(world, "USA")}
    sigs = [sign_statement({"type": "agreement-signature/v1", "nation": n,
                            "issued_at": ISSUED, "agreement_id": AID, "version": 1,
                            "digest": v2.digest()}, k) for n, k in keys.items()]
    pure = standings([v1, v2], sigs, [], {n: k.public_bytes() for n, k in keys.items()})
    assert [s.status for s in pure] == [AgreementStatus.AWAITING_SIGNATURES] * 2
    assert all(s.problems == () for s in pure)  # valid signatures, wrong document


@pytest.mark.parametrize("field", ["digest", "issued_at", "version"])
def test_altered_signature_in_the_log_is_ignored_and_reported(
        tmp_path: Path, field: str) -> None:
    world = _bare_world(tmp_path)
    add_agreement(world.state, AUS_USA, sign_as=["AUS", "USA"])
    aus = custodian_of(world.state, "AUS")
    assert aus.decide(_request(world, "job-before"))["outcome"] == "permit"
    usa = next(e for e in aus.ctx.journal.find("agreement.signed", agreement_id=AID)
               if e.event.body["statement"]["nation"] == "USA")

    def alter(body: dict[str, Any]) -> None:
        statement = body["statement"]
        statement[field] = {"digest": "sha256:" + "00" * 32,
                            "issued_at": "2020-01-01T00:00:00.000000Z",
                            "version": 7}[field]

    edit_journal_body(world.state, "AUS", usa.seq, alter)
    standing = _standing(world)
    assert standing.status is AgreementStatus.AWAITING_SIGNATURES
    assert standing.missing == ("USA",)
    assert any("does not verify" in p for p in standing.problems), standing.problems
    with pytest.raises(PolicyDenied) as denied:
        aus.decide(_request(world, "job-after"))
    assert any("awaits the signature of USA" in r for r in denied.value.reasons)


def test_signature_by_a_foreign_officer_key_is_refused_at_delivery(
        tmp_path: Path) -> None:
    world = _bare_world(tmp_path)
    agreement = add_agreement(world.state, AUS_USA, sign_as=["AUS"])
    statement = {"type": "agreement-signature/v1", "nation": "USA",
                 "issued_at": ISSUED, "agreement_id": AID, "version": 1,
                 "digest": agreement.digest()}
    entries = len(list(CustodyLog(world.state.custody_db).entries()))
    for key in (officer_key(world, "GBR"), SigningKey.generate()):
        with pytest.raises(IntegrityError, match="pinned USA officer key"):
            _deliver_signature(world, statement, key, "USA")
    # A non-party's own valid signature never completes it either.
    with pytest.raises(IntegrityError, match="not a party"):
        _deliver_signature(world, {**statement, "nation": "GBR"},
                           officer_key(world, "GBR"), "GBR")
    assert len(list(CustodyLog(world.state.custody_db).entries())) == entries
    standing = _standing(world)
    assert standing.status is AgreementStatus.AWAITING_SIGNATURES
    assert standing.signed_by == ("AUS",) and standing.problems == ()
    with pytest.raises(PolicyDenied) as denied:
        custodian_of(world.state, "AUS").decide(_request(world, "job-1"))
    assert any("awaits the signature of USA" in r for r in denied.value.reasons)


def test_problems_are_reported_only_for_the_agreement_they_name(
        tmp_path: Path) -> None:
    world = _bare_world(tmp_path)
    add_agreement(world.state, AUS_USA, sign_as=["AUS", "USA"])
    other = load_agreement(GBR_USA)
    usa = custodian_of(world.state, "USA")
    # Tamper with the USA custodian's copy of the GBR officer's signature on
    # GBR-USA: only that agreement reports a problem.
    gbr = next(e for e in usa.ctx.journal.find("agreement.signed",
                                               agreement_id=other.id)
               if e.event.body["statement"]["nation"] == "GBR")

    def alter(body: dict[str, Any]) -> None:
        body["statement"]["issued_at"] = "2020-01-01T00:00:00.000000Z"

    edit_journal_body(world.state, "USA", gbr.seq, alter)
    by_id = {s.agreement.id: s for s in load_standings(world, "USA")}
    assert by_id[AID].problems == ()
    assert len(by_id[other.id].problems) == 1
    assert by_id[other.id].status is AgreementStatus.AWAITING_SIGNATURES


# -- versions --------------------------------------------------------------------------
def test_version_2_supersedes_version_1_once_fully_signed(tmp_path: Path) -> None:
    world = _bare_world(tmp_path)
    add_agreement(world.state, AUS_USA, sign_as=["AUS", "USA"])
    aus = custodian_of(world.state, "AUS")
    with pytest.raises(DecisionPending):
        aus.decide(_request(world, "job-v1", "quantum-sensing"))
    v2_file = _variant(tmp_path, "v2.toml", extra="version = 2\n",
                       quantum="pre-approved")
    add_agreement(world.state, v2_file, sign_as=["AUS"])
    assert _standing(world, 1).status is AgreementStatus.EFFECTIVE
    assert _standing(world, 2).status is AgreementStatus.AWAITING_SIGNATURES
    with pytest.raises(DecisionPending):  # v1's terms until v2 is fully signed
        aus.decide(_request(world, "job-half", "quantum-sensing"))
    assert "agreement.superseded" not in _kinds(world)

    now = sign_agreement(world.state, AID, "USA", version=2)
    assert now.status is AgreementStatus.EFFECTIVE
    assert _standing(world, 1).status is AgreementStatus.SUPERSEDED
    assert "superseded by v2" in _standing(world, 1).detail
    superseded = CustodyLog(world.state.custody_db).find("agreement.superseded",
                                                         nation="AUS")
    assert [(e.event.body["version"], e.event.body["superseded_by"])
            for e in superseded] == [(1, 2)]
    last = _kinds(world)[-5:]  # the signature, then what AUS and USA each saw
    assert last[0] == "agreement.signed"
    assert sorted(last[1:]) == (["agreement.effective"] * 2
                                + ["agreement.superseded"] * 2)
    decision = aus.decide(_request(world, "job-v2", "quantum-sensing"))
    assert decision["outcome"] == "permit"
    assert any("pre-approved" in r["detail"] for r in decision["reasons"])
    effective, _ = effective_agreements(world)
    assert [(a.id, a.version) for a in effective if a.id == AID] == [(AID, 2)]


def test_adding_a_lower_or_same_version_is_refused(tmp_path: Path) -> None:
    world = _bare_world(tmp_path)
    add_agreement(world.state, _variant(tmp_path, "v3.toml", extra="version = 3\n"))
    with pytest.raises(ConfigError) as lower:
        add_agreement(world.state, _variant(tmp_path, "v2.toml", extra="version = 2\n"))
    assert lower.value.field == "agreement.version"
    assert "below the recorded version 3" in lower.value.message
    with pytest.raises(ConfigError):
        add_agreement(world.state, AUS_USA)  # version 1
    with pytest.raises(AlreadyExists):
        add_agreement(world.state, _variant(tmp_path, "v3b.toml",
                                            extra="version = 3\n"))
    assert [s.agreement.version for s in load_standings(world)
            if s.agreement.id == AID] == [3]


# -- termination -----------------------------------------------------------------------
def test_any_party_termination_ends_it_at_once(tmp_path: Path) -> None:
    world = make_world(tmp_path)  # AUS-USA signed by both (any-party)
    register_job(world, "job-run")
    aus = custodian_of(world.state, "AUS")
    assert aus.decide(_request(world, "job-run"))["outcome"] == "permit"
    with pytest.raises(DecisionPending):
        aus.decide(_request(world, "job-review", "quantum-sensing"))
    assert [r.status for r in approval_requests(world.state)] == ["pending"]

    standing = terminate_agreement(world.state, AID, "USA", reason="exercise over")
    assert standing.status is AgreementStatus.TERMINATED
    assert "terminated by USA officer on " in standing.detail
    assert "exercise over" in standing.detail
    cancelled = CustodyLog(world.state.custody_db).find("approval.cancelled")
    assert [e.event.body["request_id"] for e in cancelled] == [
        f"apr-job-review-AUS-{world.site}"]
    assert [r.status for r in approval_requests(world.state)] == ["cancelled"]

    with pytest.raises(PolicyDenied) as denied:
        aus.decide(_request(world, "job-next"))
    assert not isinstance(denied.value, DecisionPending)
    assert any("terminated by USA officer" in r and "exercise over" in r
               for r in denied.value.reasons), denied.value.reasons
    with pytest.raises(PolicyDenied) as refused:
        attested_release(world, aus, "job-run")  # a job admitted before: no more keys
    assert any("terminated by USA officer" in r for r in refused.value.reasons)
    assert _kinds(world)[-1] == "key.denied"
    with pytest.raises(AlreadyExists):
        terminate_agreement(world.state, AID, "USA", reason="again")
    with pytest.raises(ConfigError):
        terminate_agreement(world.state, AID, "AUS", reason="  ")
    with pytest.raises(ConfigError):
        terminate_agreement(world.state, AID, "GBR", reason="not a party")


def test_all_parties_termination_needs_every_party(tmp_path: Path) -> None:
    world = _bare_world(tmp_path)
    add_agreement(world.state, _variant(tmp_path, "all.toml",
                                        extra='termination = "all-parties"\n'),
                  sign_as=["AUS", "USA"])
    aus = custodian_of(world.state, "AUS")
    with pytest.raises(DecisionPending):
        aus.decide(_request(world, "job-review", "quantum-sensing"))

    one = terminate_agreement(world.state, AID, "USA", reason="wind down")
    assert one.status is AgreementStatus.EFFECTIVE
    assert "termination signed by USA, awaiting AUS" in one.detail
    assert aus.decide(_request(world, "job-still"))["outcome"] == "permit"
    assert [r.status for r in approval_requests(world.state)] == ["pending"]
    assert "approval.cancelled" not in _kinds(world)

    both = terminate_agreement(world.state, AID, "AUS", reason="agreed")
    assert both.status is AgreementStatus.TERMINATED
    assert [r.status for r in approval_requests(world.state)] == ["cancelled"]
    with pytest.raises(PolicyDenied) as denied:
        aus.decide(_request(world, "job-over"))
    assert any("terminated by" in r for r in denied.value.reasons)


def test_forged_termination_is_refused(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    forged = sign_statement({"type": "agreement-termination/v1", "nation": "USA",
                             "issued_at": ISSUED, "agreement_id": AID,
                             "reason": "forged"}, officer_key(world, "GBR"))
    for to in ("AUS", "USA"):
        with pytest.raises(IntegrityError, match="pinned USA officer key"):
            custodian_of(world.state, to).accept(officer_event(
                "agreement.terminated", "USA",
                {"agreement_id": AID, **forged.to_json()}, officer_key(world, "GBR")))
    standing = _standing(world)
    assert standing.status is AgreementStatus.EFFECTIVE and standing.problems == ()
    assert custodian_of(world.state, "AUS").decide(
        _request(world, "job-1"))["outcome"] == "permit"


# -- the pure function -----------------------------------------------------------------
PARTIES = ("AUS", "USA")
VERSIONS = (1, 2, 3)
#: What one party's signature over one version is, in a generated example.
SIG_KINDS = ("none", "valid", "other-digest", "altered", "foreign")
TERM_KINDS = ("none", "valid", "forged")


@cache
def _keys() -> dict[str, SigningKey]:
    return {n: SigningKey.generate() for n in ("AUS", "USA", "GBR")}


@cache
def _documents(termination: str) -> tuple[Agreement, ...]:
    base = load_agreement(AUS_USA).to_json()
    return tuple(Agreement.from_json({**base, "version": v, "termination": termination})
                 for v in VERSIONS)


@cache
def _signature(termination: str, version: int, party: str, kind: str
               ) -> SignedStatement:
    docs = {d.version: d for d in _documents(termination)}
    other = docs[version % len(VERSIONS) + 1]
    statement = {"type": "agreement-signature/v1", "nation": party,
                 "issued_at": ISSUED, "agreement_id": AID, "version": version,
                 "digest": (other if kind == "other-digest" else docs[version]
                            ).digest()}
    signer = _keys()["GBR" if kind == "foreign" else party]
    signed = sign_statement(statement, signer)
    if kind == "altered":  # signed, then issued_at changed
        return replace(signed, statement={**statement, "issued_at": ISSUED[:-2] + "1Z"})
    return signed


@cache
def _termination(party: str, kind: str) -> SignedStatement:
    statement = {"type": "agreement-termination/v1", "nation": party,
                 "issued_at": ISSUED, "agreement_id": AID, "reason": "over"}
    return sign_statement(statement, _keys()["GBR" if kind == "forged" else party])


def _check_standings(termination: str, versions: tuple[int, ...],
                     sigs: dict[tuple[int, str], str], terms: dict[str, str],
                     revoked: bool) -> None:
    docs = [d for d in _documents(termination) if d.version in versions]
    signatures = [_signature(termination, v, p, k) for (v, p), k in sigs.items()
                  if k != "none" and v in versions]
    ends = [_termination(p, k) for p, k in terms.items() if k != "none"]
    keys = {n: k.public_bytes() for n, k in _keys().items()}
    result = standings(docs, signatures, ends, keys,
                       {AID: "by the orchestrator"} if revoked else None)

    # Model.
    signed = {v: {p for p in PARTIES if sigs.get((v, p)) == "valid"} for v in versions}
    complete = [v for v in versions if signed[v] == set(PARTIES)]
    enders = {p for p, k in terms.items() if k == "valid"}
    terminated = (enders == set(PARTIES) if termination == "all-parties"
                  else bool(enders))
    bad = sum(1 for (v, _), k in sigs.items()
              if v in versions and k in ("altered", "foreign"))
    bad += sum(1 for k in terms.values() if k == "forged")

    assert [s.agreement.version for s in result] == sorted(versions)
    for s in result:
        v = s.agreement.version
        assert set(s.signed_by) == signed[v]
        assert set(s.missing) == set(PARTIES) - signed[v]
        assert len(s.problems) == bad, (s.problems, sigs, terms)
        if revoked:
            want = AgreementStatus.REVOKED
        elif terminated:
            want = AgreementStatus.TERMINATED
        elif v not in complete:
            want = AgreementStatus.AWAITING_SIGNATURES
        elif v < max(complete):
            want = AgreementStatus.SUPERSEDED
        else:
            want = AgreementStatus.EFFECTIVE
        assert s.status is want, (s, sigs, terms)
    # Invariants.
    effective = [s for s in result if s.status is AgreementStatus.EFFECTIVE]
    assert len(effective) <= 1
    if effective:
        assert effective[0].agreement.version == max(complete)
    if terminated or revoked:
        assert not effective
    elif complete:
        assert effective
    for s in result:
        if s.status is AgreementStatus.SUPERSEDED:
            assert not s.missing and effective
            assert s.agreement.version < effective[0].agreement.version


def test_standings_exhaustively_over_two_versions() -> None:
    kinds = ("none", "valid", "altered")
    slots = [(v, p) for v in (1, 2) for p in PARTIES]
    count = 0
    for termination in ("any-party", "all-parties"):
        for combo in itertools.product(kinds, repeat=len(slots)):
            for aus_end, usa_end in itertools.product(("none", "valid"), repeat=2):
                sigs = dict(zip(slots, combo, strict=True))
                _check_standings(termination, (1, 2), sigs,
                                 {"AUS": aus_end, "USA": usa_end}, revoked=False)
                count += 1
    assert count == 2 * 3**4 * 4


@settings(max_examples=300, deadline=None)
@given(
    termination=st.sampled_from(("any-party", "all-parties")),
    versions=st.sets(st.sampled_from(VERSIONS), min_size=1).map(
        lambda s: tuple(sorted(s))),
    sigs=st.fixed_dictionaries({(v, p): st.sampled_from(SIG_KINDS)
                                for v in VERSIONS for p in PARTIES}),
    terms=st.fixed_dictionaries({p: st.sampled_from(TERM_KINDS) for p in PARTIES}),
    revoked=st.booleans(),
)
def test_standings_properties(termination: str, versions: tuple[int, ...],
                              sigs: dict[tuple[int, str], str],
                              terms: dict[str, str], revoked: bool) -> None:
    _check_standings(termination, versions, sigs, terms, revoked)


def test_standings_never_raises_on_unknown_nations_or_keys() -> None:
    docs = list(_documents("any-party"))[:1]
    stranger = SigningKey.generate()
    odd = sign_statement({"type": "agreement-signature/v1", "nation": "FRA",
                          "issued_at": ISSUED, "agreement_id": AID, "version": 1,
                          "digest": docs[0].digest()}, stranger)
    (result,) = standings(docs, [odd], [], {})
    assert result.status is AgreementStatus.AWAITING_SIGNATURES
    assert result.problems and "unknown nation 'FRA'" in result.problems[0]
