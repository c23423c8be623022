"""Consent verification on the custodian side
(:func:`orchestrator.nation.transfer_keys.verify_consents`): only statements that
verify against the registered officer key of the nation they claim count."""

from __future__ import annotations

from typing import Any

from orchestrator.crypto import SigningKey
from orchestrator.nation.transfer_keys import verify_consents
from orchestrator.protocol.statements import SignedStatement, sign_statement

AUS, GBR = SigningKey.generate(), SigningKey.generate()
KEYS = {"AUS": AUS.public_bytes(), "GBR": GBR.public_bytes()}


def statement(**kw: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "type": "transfer-consent/v1", "nation": "AUS",
        "issued_at": "2026-11-21T12:00:00.000000Z", "consent_id": "c1",
        "model_id": "model-1", "model_digest": "sha256:" + "ab" * 32,
        "recipient": "CAN", "end_use": "research",
        "expires_at": "2026-11-28T12:00:00.000000Z", "export_controls": []}
    base.update(kw)
    return base


def test_a_valid_consent_verifies_once() -> None:
    signed = sign_statement(statement(), AUS)
    verified, problems = verify_consents([signed, signed], KEYS)
    assert problems == []
    assert [(c.nation, c.consent_id, c.recipient) for c in verified] == [
        ("AUS", "c1", "CAN")]


def test_an_altered_consent_is_refused() -> None:
    signed = sign_statement(statement(), AUS)
    altered = SignedStatement({**signed.statement, "end_use": "surveillance"},
                              signed.signature, signed.key_id)
    verified, problems = verify_consents([altered], KEYS)
    assert verified == []
    assert len(problems) == 1
    assert problems[0].startswith("consent c1: AUS officer signature does not verify")


def test_a_foreign_officer_cannot_consent_for_an_owner() -> None:
    forged = sign_statement(statement(), GBR)  # claims AUS, signed by GBR's key
    verified, problems = verify_consents([forged], KEYS)
    assert verified == []
    assert "is not the registered AUS officer key" in problems[0]


def test_unknown_nation_wrong_type_and_malformed_fields_are_refused() -> None:
    unknown = sign_statement(statement(nation="NZL"), AUS)
    wrong_type = sign_statement(
        {"type": "agreement-termination/v1", "nation": "AUS", "issued_at": "x",
         "agreement_id": "A", "reason": "r", "consent_id": "c2"}, AUS)
    malformed = sign_statement(statement(consent_id="c3", recipient=7), AUS)
    verified, problems = verify_consents([unknown, wrong_type, malformed], KEYS)
    assert verified == []
    assert "claims unknown nation 'NZL'" in problems[0]
    assert "expected a transfer-consent/v1 statement" in problems[1]
    assert "consent field recipient must be text" in problems[2]


def test_each_nation_verifies_with_its_own_key() -> None:
    both = [sign_statement(statement(), AUS),
            sign_statement(statement(nation="GBR", consent_id="c2"), GBR)]
    verified, problems = verify_consents(both, KEYS)
    assert problems == [] and {c.nation for c in verified} == {"AUS", "GBR"}
