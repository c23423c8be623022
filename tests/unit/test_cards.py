"""Hand-over cards: each party initialises alone and exports a signed card; an
importing party refuses a bad signature, the wrong kind of party and a key that
differs from one it imported before, naming the file and the field, and writes
nothing then."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from testkit import ROOT

from orchestrator.canonical import b64e
from orchestrator.crypto import SigningKey
from orchestrator.embedded import handover, standalone
from orchestrator.embedded.layout import StateDir
from orchestrator.errors import AlreadyExists, ConfigError, IntegrityError, NotFound
from orchestrator.protocol.cards import PartyCard, read_card, read_nation_card

SITE = ROOT / "site_configs" / "local-site-started.toml"


@pytest.fixture
def cards(tmp_path: Path) -> dict[str, Any]:
    """Every party initialised alone in its own state directory."""
    h = tmp_path / "handover"
    h.mkdir()

    def state(name: str) -> StateDir:
        return StateDir(tmp_path / name)

    out: dict[str, Any] = {"h": h, "state": state}
    out["officer"] = standalone.init_officer_alone(state("officer"), "AUS",
                                                   h / "officer-AUS.card.json")
    out["nation"] = standalone.init_nation_alone(
        state("AUS"), "AUS", h / "officer-AUS.card.json", h / "nation-AUS.card.json")
    out["site"] = standalone.init_site_alone(state("site"), SITE,
                                             h / "site-local.card.json")
    out["orchestrator"] = standalone.init_orchestrator_alone(
        state("orch"), h / "orchestrator.card.json")
    return out


def test_each_card_verifies_and_names_its_party(cards: dict[str, Any]) -> None:
    h = cards["h"]
    site = read_card(h / "site-local.card.json", expect="site")
    assert site.actor == "site:local" and site.nation == "USA"
    assert site.description.site == "local"
    assert site.enrollment is not None
    assert read_card(h / "officer-AUS.card.json").actor == "officer:AUS"
    orch = read_card(h / "orchestrator.card.json", expect="orchestrator")
    assert len(str(orch.extra["channel_public"])) == 40
    nation, enrolled = read_nation_card(h / "nation-AUS.card.json", expect="AUS")
    assert nation.officer_public == cards["officer"].public_key
    assert enrolled is not None and enrolled.event.actor == "custodian:AUS"


def test_no_private_key_is_in_a_card(cards: dict[str, Any]) -> None:
    text = "".join(p.read_text() for p in cards["h"].iterdir())
    assert "PRIVATE KEY" not in text and "secret-key" not in text


def _edit(path: Path, edit: Any) -> Path:
    doc = json.loads(path.read_text())
    edit(doc)
    bad = path.with_name("bad-" + path.name)
    bad.write_text(json.dumps(doc))
    return bad


def test_an_edited_card_is_refused_with_file_and_field(cards: dict[str, Any]) -> None:
    path = cards["h"] / "site-local.card.json"
    bad = _edit(path, lambda d: d["statement"].update(nation="AUS"))
    with pytest.raises(IntegrityError) as err:
        read_card(bad)
    assert err.value.source == str(bad) and "signature" in err.value.message
    other = SigningKey.generate()
    swapped = _edit(path, lambda d: d["statement"].update(
        public_key=b64e(other.public_bytes())))
    with pytest.raises(IntegrityError):
        read_card(swapped)
    no_enrollment = _edit(path, lambda d: d.pop("enrollment"))
    with pytest.raises(IntegrityError, match="field enrollment"):
        read_card(no_enrollment)


def test_a_card_of_another_party_kind_is_refused(cards: dict[str, Any]) -> None:
    h = cards["h"]
    with pytest.raises(IntegrityError, match="field party: a officer card, not a "
                                             "site card"):
        read_card(h / "officer-AUS.card.json", expect="site")
    with pytest.raises(IntegrityError, match="not a nation card"):
        read_nation_card(h / "site-local.card.json")
    with pytest.raises(IntegrityError, match="field type"):
        read_card(h / "nation-AUS.card.json")


def test_a_nation_refuses_another_nations_officer(tmp_path: Path,
                                                  cards: dict[str, Any]) -> None:
    with pytest.raises(IntegrityError, match="field nation"):
        standalone.init_nation_alone(StateDir(tmp_path / "GBR"), "GBR",
                                     cards["h"] / "officer-AUS.card.json",
                                     tmp_path / "gbr.card.json")
    assert not (tmp_path / "GBR" / "nations" / "GBR").exists()
    assert not (tmp_path / "gbr.card.json").exists()


def test_a_second_init_is_refused(cards: dict[str, Any]) -> None:
    h, state = cards["h"], cards["state"]
    with pytest.raises(AlreadyExists):
        standalone.init_orchestrator_alone(state("orch"), h / "again.json")
    with pytest.raises(AlreadyExists):
        standalone.init_site_alone(state("site"), SITE, h / "again.json")
    assert not (h / "again.json").exists()


def test_a_key_that_differs_from_an_earlier_import_is_refused(
        tmp_path: Path, cards: dict[str, Any]) -> None:
    h, state = cards["h"], cards["state"]
    out = h / "orch-AUS.pem"
    handover.nation_issue(state("AUS"), "AUS", h / "orchestrator.card.json", out)
    assert b"BEGIN CERTIFICATE" in out.read_bytes()
    # another orchestrator, with a valid card of its own, in the same name
    impostor = standalone.init_orchestrator_alone(StateDir(tmp_path / "rogue"),
                                                  tmp_path / "rogue.card.json")
    assert impostor.actor == "orchestrator"
    with pytest.raises(IntegrityError) as err:
        handover.nation_issue(state("AUS"), "AUS", tmp_path / "rogue.card.json",
                              tmp_path / "rogue.pem")
    assert err.value.source == str(tmp_path / "rogue.card.json")
    assert "field public_key" in err.value.message
    assert not (tmp_path / "rogue.pem").exists()


def test_a_site_is_accredited_not_issued(cards: dict[str, Any]) -> None:
    h, state = cards["h"], cards["state"]
    with pytest.raises(IntegrityError, match="accredited"):
        handover.nation_issue(state("AUS"), "AUS", h / "site-local.card.json",
                              h / "x.pem")
    with pytest.raises(IntegrityError, match="not pinned by a nation"):
        handover.nation_import(state("AUS"), "AUS", h / "site-local.card.json")


def test_a_site_refuses_an_accreditation_of_another_nation_or_key(
        tmp_path: Path, cards: dict[str, Any]) -> None:
    from orchestrator.site.identity import SiteState

    h, state = cards["h"], cards["state"]
    site = SiteState(standalone.site_root(state("site"), SITE))
    missing = tmp_path / "nothing.json"
    with pytest.raises(NotFound):
        handover.site_install(site, missing)
    (tmp_path / "junk.json").write_text("[1]")
    with pytest.raises(ConfigError):
        handover.site_install(site, tmp_path / "junk.json")
    # a well-formed file whose accreditation is signed by a key other than the
    # card's custodian key
    nation_card = json.loads((h / "nation-AUS.card.json").read_text())
    fake = {"nation_card": nation_card, "certificate_pem": "x",
            "accreditation": nation_card}
    (tmp_path / "fake.json").write_text(json.dumps(fake))
    with pytest.raises(IntegrityError):
        handover.site_install(site, tmp_path / "fake.json")
    assert not (site.root / "accreditations").exists()


def test_the_site_takes_only_the_orchestrators_public_channel_key(
        cards: dict[str, Any]) -> None:
    from orchestrator.site.identity import SiteState

    h, state = cards["h"], cards["state"]
    site = SiteState(standalone.site_root(state("site"), SITE))
    handover.site_trust_orchestrator(site, h / "orchestrator.card.json")
    server = (site.channel_dir / "server.key").read_text()
    assert str(cards["orchestrator"].extra["channel_public"]) in server
    orch_secret = (state("orch").orchestrator_dir / "parsl" / "channel" /
                   "server.key_secret").read_text()
    assert orch_secret.split("secret-key")[1] not in (
        site.channel_dir / "server.key_secret").read_text()
    with pytest.raises(IntegrityError, match="not a orchestrator card"):
        handover.site_trust_orchestrator(site, h / "officer-AUS.card.json")


def test_a_party_card_is_made_only_for_known_parties() -> None:
    with pytest.raises(ConfigError, match="unknown party"):
        PartyCard.create("custodian", "custodian:AUS", SigningKey.generate(), b"")


@pytest.mark.parametrize("text", ['{"statement": ', "[1, 2]", "\xff"])
def test_a_card_file_that_is_not_a_json_object_names_the_file(
        tmp_path: Path, cards: dict[str, Any], text: str) -> None:
    from orchestrator.cli._common import ca_of

    bad = tmp_path / "bad.card.json"
    bad.write_bytes(text.encode("latin-1"))
    for read in (ca_of, lambda p: handover.nation_import(
            cards["state"]("AUS"), "AUS", p)):
        with pytest.raises(ConfigError) as err:
            read(bad)
        assert err.value.source == str(bad)
