"""The file keystore and the custodian-side KEK administration on a real world:
legacy files, audited (fail-closed) lifecycle changes, refusals at the custodian,
and rewrapping every stored key without a DEK ever reaching the log."""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path

import pytest
from testkit import World, ctx_of, custodian_of, register_job

from orchestrator.canonical import b64d
from orchestrator.crypto import RecipientKey, load_private_key, unwrap_dek, wrap_dek
from orchestrator.embedded import publish_checkpoint, verify_custody
from orchestrator.errors import ConfigError, IntegrityError, LedgerError, PolicyDenied
from orchestrator.log.store import CustodyLog
from orchestrator.nation.custodian import LocalCustodian
from orchestrator.nation.identity import NationKeys
from orchestrator.nation.kek_admin import nation_keystore, rewrap_all
from orchestrator.nation.keystore import FileKeystore
from orchestrator.nation.lifecycle import KekDisabled, KeyVersionRetired
from orchestrator.protocol.release import ReleaseRequest
from orchestrator.site.attestation import SoftwareAttester

MEASUREMENT = "sha256:" + "ab" * 32
KEK = bytes(range(32))


def _verify(world: World) -> None:
    publish_checkpoint(world.state)
    verify_custody(world.state)


def _legacy(path: Path) -> None:
    doc = {
        "kek_id": "kek:AUS:0011223344556677",
        "primary_version": 1,
        "versions": {"1": {"key": base64.b64encode(KEK).decode(), "created": "x"}},
    }
    path.write_text(json.dumps(doc))
    os.chmod(path, 0o600)


def test_legacy_kek_json_is_read_as_enabled_version_1(tmp_path: Path) -> None:
    _legacy(tmp_path / "kek.json")
    store = NationKeys(tmp_path, "AUS").keystore()  # no keystore.json: file
    assert isinstance(store, FileKeystore)
    version, blob = store.wrap(b"\x07" * 32)
    assert version == 1 and blob == wrap_dek(KEK, b"\x07" * 32)  # RFC 5649 format
    assert unwrap_dek(KEK, blob) == b"\x07" * 32
    assert store.unwrap("kek:AUS:0011223344556677", 1, blob) == b"\x07" * 32
    assert store.status()["state"] == "enabled"


def test_open_permissions_and_missing_versions(tmp_path: Path) -> None:
    _legacy(tmp_path / "kek.json")
    os.chmod(tmp_path / "kek.json", 0o644)
    with pytest.raises(ConfigError, match="too open"):
        FileKeystore(tmp_path / "kek.json").wrap(b"k" * 32)
    os.chmod(tmp_path / "kek.json", 0o600)
    store = FileKeystore(tmp_path / "kek.json")
    _, blob = store.wrap(b"k" * 32)
    with pytest.raises(IntegrityError, match="version 2 does not exist"):
        store.unwrap(store.kek_id, 2, blob)
    with pytest.raises(IntegrityError):
        store.unwrap(store.kek_id, 1, blob[:-1] + bytes([blob[-1] ^ 1]))


def test_lifecycle_changes_need_an_audit(tmp_path: Path) -> None:
    _legacy(tmp_path / "kek.json")
    with pytest.raises(ConfigError, match="need a custody log"):
        FileKeystore(tmp_path / "kek.json").rotate()


def test_lifecycle_events_are_custodian_signed(world: World) -> None:
    store = nation_keystore(ctx_of(world.state, "AUS"))
    store.rotate()
    store.set_min_decryption_version(2)
    store.disable()
    store.schedule_deletion(10)
    store.cancel_deletion()
    store.enable()
    entries = list(CustodyLog(world.state.custody_db).entries())
    kek = [e for e in entries if e.event.kind.startswith("kek.")]
    assert [e.event.kind for e in kek] == [
        "kek.rotated",
        "kek.min_decryption_version.set",
        "kek.disabled",
        "kek.deletion.scheduled",
        "kek.deletion.cancelled",
        "kek.enabled",
    ]
    assert {e.event.actor for e in kek} == {"custodian:AUS"}
    assert kek[3].event.body["waiting_days"] == 10
    assert kek[0].event.body["primary_version"] == 2
    _verify(world)  # signatures check against the pinned custodian key


def _break_log(world: World) -> None:
    db = world.state.custody_db
    shutil.move(db, db.with_suffix(".bak"))
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    db.mkdir()


def test_no_event_no_change(world: World) -> None:
    path = world.state.nation_dir("AUS") / "kek.json"
    before = path.read_bytes()
    store = nation_keystore(ctx_of(world.state, "AUS"))
    _break_log(world)
    for change in (store.rotate, store.disable, lambda: store.schedule_deletion(7)):
        with pytest.raises(LedgerError):
            change()
        assert path.read_bytes() == before
    assert FileKeystore(path).status()["primary_version"] == 1


def _release_request(world: World, aus: LocalCustodian) -> ReleaseRequest:
    register_job(world, "job-1", admit=("AUS",))
    key = RecipientKey.generate()
    site_key = load_private_key(world.state.site_dir(world.site) / "site.key")
    evidence = SoftwareAttester(world.site, site_key).attest(
        job_id="job-1",
        attempt_id="a1",
        code_measurement=MEASUREMENT,
        enclave_public_key=key.public_bytes(),
        hpke_suite=key.suite.value,
        nonce=aus.challenge(),
    )
    return ReleaseRequest(
        job_id="job-1",
        attempt_id="a1",
        task="fold-0",
        dataset_id=world.dataset_id,
        site=world.site,
        evidence=evidence,
        sealed_digest=world.dataset_digest,
    )


def test_disabled_kek_is_a_logged_denial_not_a_release(world: World) -> None:
    nation_keystore(ctx_of(world.state, "AUS")).disable()
    aus = custodian_of(world.state, "AUS")
    with pytest.raises(KekDisabled) as refused:
        aus.release_key(_release_request(world, aus))
    assert isinstance(refused.value, PolicyDenied)
    last = list(CustodyLog(world.state.custody_db).entries())[-1].event
    assert last.kind == "key.denied"
    assert "disabled" in last.body["reasons"][0]


def test_rewrap_all_moves_keys_to_the_primary_without_exposing_them(
    world: World,
) -> None:
    store = nation_keystore(ctx_of(world.state, "AUS"))
    entry = {"AUS": ctx_of(world.state, "AUS").store.dataset(world.dataset_id).wrapped}
    share = store.unwrap(
        entry["AUS"]["kek_id"], 1, b64d(entry["AUS"]["wrapped_dek"])
    )
    store.rotate()
    outcomes = rewrap_all(ctx_of(world.state, "AUS"))
    assert [(o.object_id, o.status, o.to_version) for o in outcomes] == [
        (world.dataset_id, "rewrapped", 2)
    ]
    after = {"AUS": ctx_of(world.state, "AUS").store.dataset(world.dataset_id).wrapped}
    assert after["AUS"]["kek_version"] == 2
    assert after["AUS"]["share"] == entry["AUS"]["share"]
    assert after["AUS"]["wrapped_dek"] != entry["AUS"]["wrapped_dek"]
    store.set_min_decryption_version(2)
    assert store.unwrap(store.kek_id, 2, b64d(after["AUS"]["wrapped_dek"])) == share
    with pytest.raises(KeyVersionRetired, match="minimum decryption version 2"):
        store.unwrap(store.kek_id, 1, b64d(entry["AUS"]["wrapped_dek"]))
    events = [
        e.event
        for e in CustodyLog(world.state.custody_db).entries()
        if e.event.kind == "key.rewrapped"
    ]
    assert len(events) == 1 and events[0].actor == "custodian:AUS"
    assert events[0].body["from_version"] == 1 and events[0].body["to_version"] == 2
    raw = world.state.custody_db.read_bytes()
    for form in (share, share.hex().encode(), base64.b64encode(share)):
        assert form not in raw
    assert [o.status for o in rewrap_all(ctx_of(world.state, "AUS"))] == ["current"]
    _verify(world)


def test_rewrap_is_refused_below_the_minimum_and_atomic_on_log_failure(
    world: World,
) -> None:
    store = nation_keystore(ctx_of(world.state, "AUS"))
    store.rotate()
    store.set_min_decryption_version(2)
    [outcome] = rewrap_all(ctx_of(world.state, "AUS"))
    assert outcome.status == "refused" and "below the minimum" in outcome.reason
    store.set_min_decryption_version(1)
    before = ctx_of(world.state, "AUS").store.dataset(world.dataset_id)
    _break_log(world)
    with pytest.raises(LedgerError):
        rewrap_all(ctx_of(world.state, "AUS"))
    after = ctx_of(world.state, "AUS").store.dataset(world.dataset_id)
    assert after.wrapped == before.wrapped
