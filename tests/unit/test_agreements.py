"""Tests of orchestrator.protocol.agreements: the example files and every malformed
case."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.errors import ConfigError
from orchestrator.protocol.agreements import (
    AccessTier,
    Agreement,
    load_agreement,
    parse_agreement,
)

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "agreements").glob("*.toml"))

GOOD = """\
[agreement]
id = "AUS-USA-SONAR-2026"
title = "AUKUS Pillar II undersea capability: compute access"
parties = ["AUS", "USA"]
valid_from = 2026-01-01
valid_until = 2028-12-31
notification_threshold_gpu_hours = 500.0
oversight_body = "AUKUS Joint Steering Group"

[[agreement.priority_area]]
name = "undersea-autonomy"
tier = "pre-approved"

[[agreement.priority_area]]
name = "quantum-sensing"
tier = "case-by-case"
"""


def test_examples_exist() -> None:
    names = {p.name for p in EXAMPLES}
    assert {"aus-usa.toml", "gbr-usa.toml"} <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_files_load(path: Path) -> None:
    agreement = load_agreement(path)
    assert len(agreement.parties) == 2
    assert agreement.priority_areas
    assert Agreement.from_json(agreement.to_json()) == agreement


def test_aus_usa_contents() -> None:
    a = load_agreement(ROOT / "agreements" / "aus-usa.toml")
    assert a.id == "AUS-USA-SONAR-2026"
    assert a.parties == ("AUS", "USA")
    assert a.valid_from == date(2026, 1, 1)
    assert a.valid_until == date(2028, 12, 31)
    assert a.notification_threshold_gpu_hours == 500.0
    assert a.oversight_body == "AUKUS Joint Steering Group"
    area = a.area("undersea-autonomy")
    assert area is not None and area.tier is AccessTier.PRE_APPROVED
    area = a.area("quantum-sensing")
    assert area is not None and area.tier is AccessTier.CASE_BY_CASE
    assert a.area("hypersonics") is None


def test_covers_and_validity() -> None:
    a = parse_agreement(GOOD, source="x.toml")
    assert a.covers("AUS", "USA") and a.covers("USA", "AUS")
    assert not a.covers("AUS", "GBR")
    assert not a.covers("AUS", "AUS")
    assert a.is_valid_on(date(2026, 1, 1))
    assert a.is_valid_on(date(2028, 12, 31))
    assert not a.is_valid_on(date(2025, 12, 31))
    assert not a.is_valid_on(date(2029, 1, 1))


def test_parties_canonical_sorted() -> None:
    a = parse_agreement(GOOD.replace('["AUS", "USA"]', '["usa", " aus"]'),
                        source="x.toml")
    assert a.parties == ("AUS", "USA")


def test_json_and_digest_stable() -> None:
    a = parse_agreement(GOOD, source="x.toml")
    doc = a.to_json()
    assert doc["priority_area"][1] == {"name": "quantum-sensing",
                                       "tier": "case-by-case"}
    assert doc["valid_from"] == "2026-01-01"
    b = Agreement.from_json(doc)
    assert b == a
    assert a.digest() == b.digest()
    assert a.digest().startswith("sha256:") and len(a.digest()) == 71
    changed = parse_agreement(GOOD.replace("500.0", "501.0"), source="x.toml")
    assert changed.digest() != a.digest()


def test_frozen() -> None:
    a = parse_agreement(GOOD, source="x.toml")
    with pytest.raises(ValidationError, match="frozen"):
        a.id = "other"


def _expect(text: str, field: str, fragment: str) -> ConfigError:
    with pytest.raises(ConfigError) as info:
        parse_agreement(text, source="agreements/x.toml")
    err = info.value
    assert err.source == "agreements/x.toml"
    assert err.field == field
    assert fragment in err.message
    assert str(err).startswith(f"agreements/x.toml: {field}: ")
    return err


def test_malformed_toml() -> None:
    with pytest.raises(ConfigError) as info:
        parse_agreement(GOOD + "\nthis is = = not toml\n", source="agreements/x.toml")
    assert str(info.value).startswith("agreements/x.toml: invalid TOML")


def test_unknown_nation() -> None:
    err = _expect(GOOD.replace('"USA"]', '"XYZ"]'), "agreement.parties",
                  "unknown nation code 'XYZ'")
    assert str(err) == ("agreements/x.toml: agreement.parties: unknown nation code "
                        "'XYZ' (expected an ISO 3166-1 alpha-3 code)")


@pytest.mark.parametrize("parties", ['["AUS", "USA", "GBR"]', '["AUS"]',
                                     '["AUS", "aus"]', "[]"])
def test_not_two_parties(parties: str) -> None:
    _expect(GOOD.replace('["AUS", "USA"]', parties), "agreement.parties",
            "exactly two distinct parties")


@pytest.mark.parametrize("until", ["2025-12-31", "2026-01-01"])
def test_until_not_after_from(until: str) -> None:
    _expect(GOOD.replace("2028-12-31", until), "agreement.valid_until",
            "must be after valid_from")


@pytest.mark.parametrize("value", ["0", '"soon"', "2026-01-01T00:00:00", '"2026-1-1"'])
def test_bad_dates(value: str) -> None:
    _expect(GOOD.replace("2028-12-31", value), "agreement.valid_until",
            "calendar date")


def test_duplicate_area() -> None:
    _expect(GOOD.replace('"quantum-sensing"', '"undersea-autonomy"'),
            "agreement.priority_area", "duplicate priority area 'undersea-autonomy'")


def test_bad_tier() -> None:
    _expect(GOOD.replace('"case-by-case"', '"automatic"'),
            "agreement.priority_area[1].tier", "")


@pytest.mark.parametrize("name", ["Undersea", "under sea", "-x", "x_y", ""])
def test_bad_area_name(name: str) -> None:
    _expect(GOOD.replace('"quantum-sensing"', f'"{name}"'),
            "agreement.priority_area[1].name", "")


def test_no_areas() -> None:
    text = GOOD.split("[[agreement.priority_area]]")[0]
    _expect(text, "agreement.priority_area", "")


def test_extra_keys() -> None:
    _expect(GOOD.replace("[agreement]\n", "[agreement]\nrevoked = false\n"),
            "agreement.revoked", "Extra inputs")
    _expect(GOOD + "\n[other]\nx = 1\n", "other", "Extra inputs")
    _expect(GOOD.replace('tier = "pre-approved"', 'tier = "pre-approved"\nx = 1'),
            "agreement.priority_area[0].x", "Extra inputs")


@pytest.mark.parametrize(("old", "new", "field"), [
    ("500.0", "-1.0", "agreement.notification_threshold_gpu_hours"),
    ("500.0", "nan", "agreement.notification_threshold_gpu_hours"),
    ("500.0", "inf", "agreement.notification_threshold_gpu_hours"),
    ("500.0", "true", "agreement.notification_threshold_gpu_hours"),
    ("500.0", '"500"', "agreement.notification_threshold_gpu_hours"),
    ('"AUS-USA-SONAR-2026"', '""', "agreement.id"),
    ('"AUS-USA-SONAR-2026"', "7", "agreement.id"),
    ('"AUKUS Joint Steering Group"', '""', "agreement.oversight_body"),
])
def test_bad_values(old: str, new: str, field: str) -> None:
    _expect(GOOD.replace(old, new, 1), field, "")


def test_missing_agreement_table_and_field() -> None:
    _expect("", "agreement", "")
    _expect(GOOD.replace('title = "AUKUS Pillar II undersea capability: compute '
                         'access"\n', ""), "agreement.title", "")


def test_several_errors_reported_together() -> None:
    err = _expect(GOOD.replace('"USA"]', '"XYZ"]').replace("500.0", "-5.0"),
                  "agreement.parties", "unknown nation code")
    assert "also agreement.notification_threshold_gpu_hours" in err.message


def test_load_names_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(GOOD.replace('"USA"]', '"XYZ"]'))
    with pytest.raises(ConfigError) as info:
        load_agreement(bad)
    assert str(info.value).startswith(f"{bad}: agreement.parties: unknown nation")
    missing = tmp_path / "missing.toml"
    with pytest.raises(ConfigError) as info:
        load_agreement(missing)
    assert info.value.source == str(missing)
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_agreement(binary)


def test_from_json_errors() -> None:
    doc = parse_agreement(GOOD, source="x").to_json()
    doc["parties"] = ["AUS"]
    with pytest.raises(ConfigError) as info:
        Agreement.from_json(doc, source="registry:agreements")
    assert info.value.field == "parties"
    assert info.value.source == "registry:agreements"
