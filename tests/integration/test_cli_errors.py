"""Bad input through the real CLI: one clear line naming file and field, a non-zero
exit, and nothing half-written."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from testkit import ROOT, SONAR, Sovereign, make_world

from orchestrator.log.store import CustodyLog
from orchestrator.submit.registry import Registry


def _snapshot(state: Path) -> dict[str, object]:
    """What a failed command must not change: the set of files (SQLite's -wal/-shm
    aside), the registered datasets and the custody log's length. (File sizes are
    not compared: SQLite may fold its write-ahead log into the database at any
    time.)"""
    return {
        "files": sorted(
            str(p.relative_to(state))
            for p in state.rglob("*")
            if p.is_file() and not p.name.endswith(("-wal", "-shm"))
        ),
        "datasets": [d.id for d in Registry(
            state / "orchestrator" / "registry.db").datasets()],
        "custody": CustodyLog(state / "log" / "custody.db").size(),
    }


def test_unknown_nation_code(sovereign: Sovereign) -> None:
    result = sovereign("nation", "init", "XYZ", ok=False)
    assert result.code == 2
    assert "CODE: unknown nation code 'XYZ'" in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("[site\nname = 1", "malformed TOML"),
        (
            '[site]\nname="x"\noperator_nation="USA"\naccreditation="SECRET"\n'
            '[provider]\ntype="kubernetes"\n[executor]\ntype="htex"\n',
            "provider.type",
        ),
        (
            '[site]\nname="x"\noperator_nation="ZZZ"\naccreditation="SECRET"\n'
            '[provider]\ntype="local"\n[executor]\ntype="htex"\n',
            "site.operator_nation",
        ),
        (
            '[site]\nname="x"\noperator_nation="USA"\naccreditation="ULTRA"\n'
            '[provider]\ntype="local"\n[executor]\ntype="htex"\n',
            "site.accreditation",
        ),
    ],
)
def test_malformed_site_config(
    sovereign: Sovereign, tmp_path: Path, text: str, field: str
) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    result = sovereign("site", "register", str(bad), ok=False)
    assert result.code == 2
    assert str(bad) in result.err and field in result.err
    assert "Traceback" not in result.err


@pytest.mark.parametrize(
    ("mutate", "expect"),
    [
        (
            lambda rows: rows.__setitem__(3, rows[3].replace("0.0", "abc", 1)),
            "row 4, column",
        ),
        (lambda rows: rows.__setitem__(9, rows[9].rsplit(",", 2)[0]), "row 10"),
    ],
)
def test_bad_csv_names_row_and_column_and_writes_nothing(
    tmp_path: Path, mutate: object, expect: str
) -> None:
    world = make_world(tmp_path)
    cli = Sovereign(world.state.root)
    rows = SONAR.read_text().splitlines()
    mutate(rows)  # type: ignore[operator]
    bad = tmp_path / "bad.csv"
    bad.write_text("\n".join(rows) + "\n")
    before = _snapshot(world.state.root)
    result = cli(
        "dataset",
        "seal",
        str(bad),
        "--name",
        "bad",
        "--owner",
        "AUS",
        "--classification",
        "SECRET",
        "--rel-to",
        "AUS,USA",
        ok=False,
    )
    assert result.code == 2
    assert str(bad) in result.err and expect in result.err
    assert _snapshot(world.state.root) == before


def test_site_not_cleared_is_refused_and_logged(tmp_path: Path) -> None:
    world = make_world(tmp_path, accreditation="CONFIDENTIAL")
    cli = Sovereign(world.state.root)
    result = cli(
        "submit", "workflows/sonar_classification.toml", "--site", "local", ok=False
    )
    assert result.code == 4
    assert "accreditation" in result.err
    kinds = [e.event.kind for e in CustodyLog(world.state.custody_db).entries()]
    assert kinds[-2:] == ["policy.decided", "job.failed"]
    assert "key.released" not in kinds


def test_expired_agreement_is_refused(tmp_path: Path) -> None:
    expired = tmp_path / "expired.toml"
    expired.write_text(
        (ROOT / "agreements" / "aus-usa.toml")
        .read_text()
        .replace("2026-01-01", "2024-01-01")
        .replace("2028-12-31", "2025-06-30")
    )
    world = make_world(tmp_path, agreement=expired)
    result = Sovereign(world.state.root)(
        "submit", "workflows/sonar_classification.toml", "--site", "local", ok=False
    )
    assert result.code == 4
    assert "expired on 2025-06-30" in result.err


def test_wrong_kek_cannot_open_a_model_key(tmp_path: Path) -> None:
    """Swap AUS's KEK for GBR's: every unwrap of an AUS-wrapped key must fail."""
    world = make_world(tmp_path)
    aus = world.state.nation_dir("AUS") / "kek.json"
    doc = json.loads((world.state.nation_dir("GBR") / "kek.json").read_text())
    doc["kek_id"] = json.loads(aus.read_text())["kek_id"]  # same id, wrong key
    aus.write_text(json.dumps(doc))
    os.chmod(aus, 0o600)
    from testkit import ctx_of

    from orchestrator.canonical import b64d
    from orchestrator.errors import IntegrityError
    from orchestrator.nation.identity import NationKeys

    wrapped = ctx_of(world.state, "AUS").store.dataset(world.dataset_id).wrapped
    with pytest.raises(IntegrityError):
        NationKeys(aus.parent, "AUS").keystore().unwrap(
            wrapped["kek_id"], wrapped["kek_version"], b64d(wrapped["wrapped_dek"])
        )


@pytest.mark.slow
@pytest.mark.parametrize("damage", ["bit-flip", "truncated"])
def test_tampered_sealed_dataset_fails_the_job(tmp_path: Path, damage: str) -> None:
    world = make_world(tmp_path)
    path = Path(Registry(world.state.registry_db).dataset("uci-sonar").object_path)
    blob = bytearray(path.read_bytes())
    if damage == "bit-flip":
        blob[-40] ^= 0x01
    else:
        blob = blob[: len(blob) - 100]
    path.write_bytes(bytes(blob))
    result = Sovereign(world.state.root)(
        "submit", "workflows/sonar_classification.toml", "--site", "local", ok=False
    )
    assert result.code == 3, result.err
    # the site checks the staged copy against the registered SHA-256 first
    assert "not the registered sha256:" in result.err, result.err
    assert Registry(world.state.registry_db).models() == []
    kinds = [e.event.kind for e in CustodyLog(world.state.custody_db).entries()]
    assert "task.failed" in kinds and kinds[-1] == "job.failed"
    assert "key.released" not in kinds  # no key for a damaged ciphertext
