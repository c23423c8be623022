"""Tests of orchestrator.labels: nation codes, levels, labels and the label algebra."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import ConfigError
from orchestrator.labels import (
    ISO3166_ALPHA3,
    Classification,
    Label,
    derive_label,
    parse_export_control,
    parse_nation,
    parse_nations,
)

# -- nation codes -------------------------------------------------------------


def test_iso_list_has_249_assigned_codes() -> None:
    assert len(ISO3166_ALPHA3) == 249
    assert all(len(c) == 3 and c.isalpha() and c.isupper() for c in ISO3166_ALPHA3)
    for code in ("AUS", "GBR", "USA", "CAN", "NZL", "FRA", "ALA", "BES", "SSD",
                 "SXM", "CUW", "BLM", "MAF", "UMI", "ATA", "PSE", "TWN",
                 "KOR"):
        assert code in ISO3166_ALPHA3
    for code in ("UK", "XKX", "EUE", "ANT", "YUG", "SCG", "ZAR", "TMP", "EUR"):
        assert code not in ISO3166_ALPHA3  # user-assigned or withdrawn


def test_parse_nation_normalises() -> None:
    assert parse_nation(" aus ") == "AUS"


@pytest.mark.parametrize("bad", ["XYZ", "UK", "", "USAA", "U S"])
def test_parse_nation_rejects_unknown(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        parse_nation(bad, source="site.toml", field="site.operator")
    assert "(expected an ISO 3166-1 alpha-3 code)" in str(info.value)
    assert str(info.value).startswith("site.toml: site.operator: unknown nation code")


def test_parse_nation_message_exact() -> None:
    with pytest.raises(ConfigError) as info:
        parse_nation("xyz")
    assert info.value.message == ("unknown nation code 'xyz' "
                                  "(expected an ISO 3166-1 alpha-3 code)")


def test_parse_nation_rejects_non_text() -> None:
    with pytest.raises(ConfigError):
        parse_nation(3)  # type: ignore[arg-type]


def test_parse_nations_text_and_list() -> None:
    assert parse_nations("AUS,gbr, USA") == {"AUS", "GBR", "USA"}
    assert parse_nations(["usa", "AUS"]) == {"AUS", "USA"}
    assert parse_nations("  ") == frozenset()
    with pytest.raises(ConfigError):
        parse_nations("AUS,,GBR")
    with pytest.raises(ConfigError):
        parse_nations(["AUS", "ZZZ"])


# -- classification -----------------------------------------------------------


def test_order() -> None:
    c = Classification
    assert c.UNCLASSIFIED < c.OFFICIAL < c.CONFIDENTIAL < c.SECRET < c.TOP_SECRET
    assert [int(x) for x in c] == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(("text", "level"), [
    ("unclassified", "UNCLASSIFIED"), ("U", "UNCLASSIFIED"), ("unclas", "UNCLASSIFIED"),
    ("UNOFFICIAL", "UNCLASSIFIED"), ("NATO UNCLASSIFIED", "UNCLASSIFIED"),
    ("official", "OFFICIAL"), ("RESTRICTED", "OFFICIAL"),
    ("NATO RESTRICTED", "OFFICIAL"), ("OFFICIAL-SENSITIVE", "OFFICIAL"),
    ("OFFICIAL:SENSITIVE", "OFFICIAL"), ("official: sensitive", "OFFICIAL"),
    ("C", "CONFIDENTIAL"), ("confidential", "CONFIDENTIAL"),
    ("NATO CONFIDENTIAL", "CONFIDENTIAL"), ("PROTECTED", "CONFIDENTIAL"),
    ("S", "SECRET"), ("secret", "SECRET"), ("NATO SECRET", "SECRET"),
    ("nato_secret", "SECRET"), ("TS", "TOP_SECRET"), ("TOP SECRET", "TOP_SECRET"),
    ("top_secret", "TOP_SECRET"), ("Top-Secret", "TOP_SECRET"),
    ("  top   secret ", "TOP_SECRET"), ("COSMIC TOP SECRET", "TOP_SECRET"),
])
def test_parse_aliases(text: str, level: str) -> None:
    assert Classification.parse(text) is Classification[level]


@pytest.mark.parametrize("bad", ["", "SECRETISH", "TOPSECRET", "NOFORN", "5", "T S"])
def test_parse_unknown_fails_closed(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        Classification.parse(bad, source="ds.toml", field="label.classification")
    assert "unknown classification" in str(info.value)
    assert str(info.value).startswith("ds.toml: label.classification: ")


def test_parse_passthrough_and_non_text() -> None:
    assert Classification.parse(Classification.SECRET) is Classification.SECRET
    with pytest.raises(ConfigError):
        Classification.parse(3)  # type: ignore[arg-type]


def test_marking_text() -> None:
    assert Classification.TOP_SECRET.marking == "TOP SECRET"
    assert Classification.SECRET.marking == "SECRET"


# -- export controls and caveats ----------------------------------------------


@pytest.mark.parametrize(("tag", "canon"), [
    ("ITAR:USML-XI", "ITAR:USML-XI"), ("itar:usml-xxi", "ITAR:USML-XXI"),
    ("ITAR:USML-I", "ITAR:USML-I"), ("EAR:6A991", "EAR:6A991"),
    ("ear:5a002", "EAR:5A002"), ("EAR:5A002.a.1", "EAR:5A002.a.1"),
    ("EAR99", "EAR99"), ("ear99", "EAR99"), ("EAR:EAR99", "EAR99"),
])
def test_export_control_ok(tag: str, canon: str) -> None:
    assert parse_export_control(tag) == canon


@pytest.mark.parametrize("bad", ["ITAR:USML-XXII", "ITAR:USML-IIII", "ITAR:XI",
                                 "EAR:6F991", "EAR:56A99", "EAR:5A02", "ITAR", "",
                                 "USML-XI", "EAR:5A002..a"])
def test_export_control_bad(bad: str) -> None:
    with pytest.raises(ConfigError) as info:
        Label.create(owners="USA", classification="S", releasable_to="USA",
                     export_controls=[bad], source="ds.toml")
    assert info.value.field == "export_controls"
    assert info.value.source == "ds.toml"


def test_caveats_upper_cased_and_validated() -> None:
    label = Label.create(owners="AUS", classification="S", releasable_to="AUS",
                         caveats=[" sonar-research-only "])
    assert label.caveats == {"SONAR-RESEARCH-ONLY"}
    for bad in ["", "  ", "two words", "A//B", "A,B"]:
        with pytest.raises(ConfigError) as info:
            Label.create(owners="AUS", classification="S", releasable_to="AUS",
                         caveats=[bad])
        assert info.value.field == "caveats"


def test_tag_lists_must_not_be_one_string() -> None:
    with pytest.raises(ConfigError):
        Label.create(owners="AUS", classification="S", releasable_to="AUS",
                     caveats="NOFORN")


# -- Label ---------------------------------------------------------------------


def _secret_aus() -> Label:
    return Label.create(owners=["AUS"], classification="SECRET",
                        releasable_to="AUS,GBR,USA",
                        export_controls=["ITAR:USML-XI"], caveats=["sonar-only"])


def test_create_and_marking() -> None:
    label = Label.create(owners="AUS", classification="secret",
                         releasable_to="USA,GBR,AUS")
    assert label.marking() == "SECRET//REL TO AUS, GBR, USA"
    assert _secret_aus().marking() == (
        "SECRET//REL TO AUS, GBR, USA//ITAR:USML-XI//SONAR-ONLY")
    assert label.is_coherent


def test_create_requires_owner() -> None:
    with pytest.raises(ConfigError) as info:
        Label.create(owners=[], classification="S", releasable_to="AUS")
    assert info.value.field == "owners"


def test_owner_must_be_releasable() -> None:
    with pytest.raises(ConfigError) as info:
        Label.create(owners="AUS,GBR", classification="S", releasable_to="AUS,USA",
                     source="ds.toml")
    assert str(info.value) == ("ds.toml: releasable_to: "
                               "owner GBR must be in releasable-to")


def test_direct_constructor_validates() -> None:
    with pytest.raises(ConfigError, match="must be in releasable-to"):
        Label(owners=frozenset({"AUS"}), classification=Classification.SECRET,
              releasable_to=frozenset({"USA"}))
    with pytest.raises(ConfigError):
        Label(owners=frozenset({"XYZ"}), classification=Classification.SECRET,
              releasable_to=frozenset({"XYZ"}))
    with pytest.raises(ConfigError):
        Label(owners=frozenset({"AUS"}), classification=3,  # type: ignore[arg-type]
              releasable_to=frozenset({"AUS"}))
    with pytest.raises(ConfigError):
        Label(owners={"AUS"},  # type: ignore[arg-type]
              classification=Classification.SECRET, releasable_to=frozenset({"AUS"}))
    with pytest.raises(ConfigError):
        Label(owners=frozenset({"AUS"}), classification=Classification.SECRET,
              releasable_to=frozenset({"AUS"}), caveats=frozenset({"lower"}))


def test_json_round_trip_and_shape() -> None:
    label = _secret_aus()
    doc = label.to_json()
    assert doc == {"classification": "SECRET", "ownerProducer": ["AUS"],
                   "releasableTo": ["AUS", "GBR", "USA"],
                   "exportControls": ["ITAR:USML-XI"],
                   "endUseCaveats": ["SONAR-ONLY"]}
    assert Label.from_json(doc) == label
    ts = Label.create(owners="USA", classification="TS", releasable_to="USA")
    assert ts.to_json()["classification"] == "TOP_SECRET"
    assert Label.from_json(ts.to_json()) == ts


@pytest.mark.parametrize(("mutate", "field"), [
    (lambda d: d.update(extra=1), "extra"),
    (lambda d: d.pop("releasableTo"), "releasableTo"),
    (lambda d: d.update(classification="S"), "classification"),
    (lambda d: d.update(classification=3), "classification"),
    (lambda d: d.update(ownerProducer="AUS"), "ownerProducer"),
    (lambda d: d.update(ownerProducer=["XYZ"]), "ownerProducer"),
    (lambda d: d.update(ownerProducer=["aus"]), "ownerProducer"),
    (lambda d: d.update(ownerProducer=[]), "ownerProducer"),
    (lambda d: d.update(ownerProducer=["AUS", "AUS"]), "ownerProducer"),
    (lambda d: d.update(ownerProducer=["CAN"]), "releasableTo"),
    (lambda d: d.update(exportControls=["ITAR:USML-L"]), "exportControls"),
    (lambda d: d.update(endUseCaveats=["a b"]), "endUseCaveats"),
])
def test_from_json_strict(mutate: object, field: str) -> None:
    doc = _secret_aus().to_json()
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(ConfigError) as info:
        Label.from_json(doc, source="obj.hdr")
    assert info.value.field == field
    assert info.value.source == "obj.hdr"


def test_from_json_not_an_object() -> None:
    with pytest.raises(ConfigError):
        Label.from_json(["SECRET"], source="x")  # type: ignore[arg-type]


# -- derive_label ---------------------------------------------------------------


def test_derive_example_incoherent() -> None:
    aus = Label.create(owners="AUS", classification="S", releasable_to="AUS,USA")
    gbr = Label.create(owners="GBR", classification="C", releasable_to="GBR,USA",
                       caveats=["X"])
    out = derive_label([aus, gbr])
    assert out.owners == {"AUS", "GBR"}
    assert out.classification is Classification.SECRET
    assert out.releasable_to == {"USA"}
    assert out.caveats == {"X"}
    assert not out.is_coherent
    assert out.marking() == "SECRET//REL TO USA//X"
    doc = out.to_json()
    with pytest.raises(ConfigError, match="must be in releasable-to"):
        Label.from_json(doc)
    assert Label.from_json(doc, derived=True) == out


def test_derive_empty() -> None:
    with pytest.raises(ValueError, match="at least one"):
        derive_label([])


def test_derive_to_nobody_marking() -> None:
    a = Label.create(owners="AUS", classification="U", releasable_to="AUS")
    b = Label.create(owners="FRA", classification="U", releasable_to="FRA")
    assert derive_label([a, b]).marking() == "UNCLASSIFIED//REL TO NONE"


POOL = ["AUS", "GBR", "USA", "CAN", "NZL", "FRA"]
TAGS = ["ITAR:USML-XI", "EAR:6A991", "EAR99", "EAR:5A002"]


@st.composite
def labels(draw: st.DrawFn) -> Label:
    owners = draw(st.frozensets(st.sampled_from(POOL), min_size=1, max_size=3))
    extra = draw(st.frozensets(st.sampled_from(POOL)))
    return Label.create(
        owners=owners, classification=draw(st.sampled_from(list(Classification))),
        releasable_to=owners | extra,
        export_controls=draw(st.frozensets(st.sampled_from(TAGS), max_size=2)),
        caveats=draw(st.frozensets(st.sampled_from(["A", "B", "NOFORN"]), max_size=2)))


@given(labels(), labels())
def test_derive_commutative(a: Label, b: Label) -> None:
    assert derive_label([a, b]) == derive_label([b, a])


@given(labels(), labels(), labels())
def test_derive_associative(a: Label, b: Label, c: Label) -> None:
    left = derive_label([derive_label([a, b]), c])
    right = derive_label([a, derive_label([b, c])])
    assert left == right == derive_label([a, b, c])


@given(labels())
def test_derive_idempotent(a: Label) -> None:
    assert derive_label([a]) == a
    assert derive_label([a, a]) == a


@settings(max_examples=200)
@given(st.lists(labels(), min_size=1, max_size=5))
def test_derive_algebra(items: list[Label]) -> None:
    out = derive_label(items)
    assert out.owners == frozenset().union(*(x.owners for x in items))
    assert out.releasable_to == frozenset.intersection(
        *(x.releasable_to for x in items))
    assert out.export_controls == frozenset().union(
        *(x.export_controls for x in items))
    assert out.caveats == frozenset().union(*(x.caveats for x in items))
    # classification is monotone: never below any input, equal to the highest
    assert all(out.classification >= x.classification for x in items)
    assert out.classification in {x.classification for x in items}
    # never releasable more widely than any input
    assert all(out.releasable_to <= x.releasable_to for x in items)
    assert out.is_coherent == (out.owners <= out.releasable_to)
    assert Label.from_json(out.to_json(), derived=True) == out


@given(labels())
def test_json_round_trip_property(a: Label) -> None:
    assert Label.from_json(a.to_json()) == a
    assert a.is_coherent
