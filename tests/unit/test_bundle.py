"""Offline custody bundles built from a real small state (one Parsl job)."""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from testkit import ROOT, World, make_world

from orchestrator.bundle import MEDIA_TYPE, BundleError, prove, verify_bundle
from orchestrator.crypto import SigningKey, load_private_key
from orchestrator.officer import open_tlog, witness
from orchestrator.protocol.provenance import dsse_sign
from orchestrator.submit.registry import Registry
from orchestrator.tlog.checkpoint import Checkpoint, parse_note, sign
from orchestrator.tlog.note import NoteSigner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[World, str, dict[str, Any]]:
    from orchestrator.submit.pipeline import submit

    world = make_world(tmp_path_factory.mktemp("bundle-world"))
    result = submit(world.state, ROOT / "workflows" / "sonar_classification.toml",
                    "local")
    witness(world.state, "AUS")
    witness(world.state, "GBR")
    model_id = result.model_ids[0]
    return world, model_id, prove(world.state, model_id)


@pytest.fixture
def bundle(built: tuple[World, str, dict[str, Any]]) -> dict[str, Any]:
    return copy.deepcopy(built[2])


def _refused(bundle: dict[str, Any], part: str, words: str, **kw: Any) -> None:
    with pytest.raises(BundleError) as info:
        verify_bundle(bundle, **kw)
    assert info.value.part.startswith(part), info.value.diagnostics()
    assert words in info.value.diagnostics(), info.value.diagnostics()


def _index_of(bundle: dict[str, Any], kind: str) -> int:
    for n, item in enumerate(bundle["entries"]):
        if json.loads(base64.b64decode(item["leaf"]))["event"]["kind"] == kind:
            return n
    raise AssertionError(kind)


def _statement(bundle: dict[str, Any]) -> dict[str, Any]:
    payload = bundle["provenance"]["envelope"]["payload"]
    return dict(json.loads(base64.b64decode(payload)))


def _resign(world: World, bundle: dict[str, Any],
            edit: Callable[[dict[str, Any]], None]) -> None:
    st = _statement(bundle)
    edit(st)
    site_key = load_private_key(world.state.site_dir("local") / "site.key")
    bundle["provenance"]["envelope"] = dsse_sign(st, site_key)


def test_bundle_verifies_with_pinned_key_and_cosigners(
    built: tuple[World, str, dict[str, Any]], bundle: dict[str, Any]
) -> None:
    world, model_id, _ = built
    assert bundle["mediaType"] == MEDIA_TYPE
    vkey = open_tlog(world.state).verifier().vkey()
    report = verify_bundle(bundle, trusted_log_vkey=vkey,
                           required_cosigners=["AUS", "GBR"])
    assert report.model_id == model_id
    assert report.log_key_pinned and report.cosigners == ("AUS", "GBR")
    assert report.kinds["key.released"] == 14 and report.kinds["model.sealed"] == 1
    record = Registry(world.state.registry_db).model(model_id)
    assert report.sealed_digest == record.sealed_digest
    assert record.lineage and record.lineage["provenance"] == bundle["provenance"][
        "envelope"]
    tofu = verify_bundle(bundle)
    assert not tofu.log_key_pinned and "trust on first use" in tofu.notes[0]


def test_flipped_byte_in_a_leaf(bundle: dict[str, Any]) -> None:
    n = _index_of(bundle, "key.released")
    leaf = bytearray(base64.b64decode(bundle["entries"][n]["leaf"]))
    at = leaf.index(b'"fold-')
    leaf[at + 1] ^= 0x01  # "fold-" -> "gold-": still valid JSON
    bundle["entries"][n]["leaf"] = base64.b64encode(bytes(leaf)).decode()
    _refused(bundle, "entry", "root hash mismatch")


def test_removed_event(bundle: dict[str, Any]) -> None:
    del bundle["entries"][_index_of(bundle, "key.released")]
    _refused(bundle, "entries", "key.released")


def test_removed_task_event(bundle: dict[str, Any]) -> None:
    del bundle["entries"][_index_of(bundle, "task.started")]
    _refused(bundle, "entries", "no task.started event")


def test_swapped_proof_hash(bundle: dict[str, Any]) -> None:
    proof = bundle["entries"][3]["proof"]
    proof[0], proof[1] = proof[1], proof[0]
    _refused(bundle, "entry", "inclusion proof")


def test_checkpoint_resigned_with_foreign_key(
    built: tuple[World, str, dict[str, Any]], bundle: dict[str, Any]
) -> None:
    cp = parse_note(bundle["checkpoint"]["note"].encode()).checkpoint
    foreign = NoteSigner(cp.origin, SigningKey.generate())
    forged = sign(Checkpoint(cp.origin, cp.size, cp.root), foreign)
    bundle["checkpoint"]["note"] = forged.decode()
    _refused(copy.deepcopy(bundle), "checkpoint", "unknown key")
    # Replacing the bundle's own log key too only passes trust on first use.
    bundle["checkpoint"]["log_key"] = foreign.verifier().vkey()
    vkey = open_tlog(built[0].state).verifier().vkey()
    _refused(bundle, "checkpoint", "unknown-key", trusted_log_vkey=vkey)


def test_missing_required_cosignature(bundle: dict[str, Any]) -> None:
    note = bundle["checkpoint"]["note"]
    bundle["checkpoint"]["note"] = "".join(
        line for line in note.splitlines(keepends=True)
        if not line.startswith("\u2014 witness-GBR ")
    )
    verify_bundle(bundle, required_cosigners=["AUS"])
    _refused(bundle, "checkpoint", "witness-GBR", required_cosigners=["AUS", "GBR"])


def test_provenance_subject_digest_change(
    built: tuple[World, str, dict[str, Any]], bundle: dict[str, Any]
) -> None:
    unsigned = copy.deepcopy(bundle)
    st = _statement(unsigned)
    st["subject"][0]["digest"]["sha256"] = "0" * 64
    unsigned["provenance"]["envelope"]["payload"] = base64.b64encode(
        json.dumps(st).encode()).decode()
    _refused(unsigned, "provenance", "bad-signature")

    def edit(s: dict[str, Any]) -> None:
        s["subject"][0]["digest"]["sha256"] = "0" * 64

    _resign(built[0], bundle, edit)  # even the site itself cannot lie about it
    _refused(bundle, "provenance", "is not the sealed digest")


def test_provenance_signed_by_foreign_key(bundle: dict[str, Any]) -> None:
    foreign = SigningKey.generate()
    bundle["provenance"]["envelope"] = dsse_sign(_statement(bundle), foreign)
    _refused(copy.deepcopy(bundle), "provenance", "unknown-key")
    bundle["provenance"]["key_id"] = foreign.key_id
    bundle["provenance"]["public_key"] = base64.b64encode(
        foreign.public_bytes()).decode()
    _refused(bundle, "provenance", "not the key that signed site:local")


def test_provenance_dataset_digest_mismatch(
    built: tuple[World, str, dict[str, Any]], bundle: dict[str, Any]
) -> None:
    def edit(s: dict[str, Any]) -> None:
        dep = s["predicate"]["buildDefinition"]["resolvedDependencies"][0]
        dep["digest"]["sha256"] = "f" * 64

    _resign(built[0], bundle, edit)
    _refused(bundle, "provenance", "input dataset")


def test_provenance_not_committed_by_the_log(
    built: tuple[World, str, dict[str, Any]], bundle: dict[str, Any]
) -> None:
    def edit(s: dict[str, Any]) -> None:
        s["predicate"]["runDetails"]["metadata"]["finishedOn"] = "2099-01-01T00:00:00Z"

    _resign(built[0], bundle, edit)
    _refused(bundle, "provenance", "provenance_digest")


def test_key_not_allowed_for_actor(bundle: dict[str, Any]) -> None:
    for item in bundle["keys"].values():
        item["actors"] = ["someone-else"]
    _refused(bundle, "entry", "is not in the bundle's keys")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(mediaType="application/json"),
        lambda b: b.update(entries="nope"),
        lambda b: b["entries"][0].update(index="zero"),
        lambda b: b["entries"][0].update(leaf="!!"),
        lambda b: b["entries"][0].update(proof=[1, 2]),
        lambda b: b.update(keys={"ed25519:00": {"public_key": "AAAA"}}),
        lambda b: b["checkpoint"].update(note="garbage"),
        lambda b: b["checkpoint"].update(log_key="nope"),
        lambda b: b["checkpoint"].update(witness_keys=[]),
        lambda b: b.update(provenance=None),
        lambda b: b["provenance"].update(envelope={"payload": 3}),
        lambda b: b.pop("model_id"),
        lambda b: b.update(model_id="model-other"),
    ],
)
def test_malformed_bundles_give_a_bundle_error(
    bundle: dict[str, Any], mutate: Callable[[dict[str, Any]], Any]
) -> None:
    mutate(bundle)
    with pytest.raises(BundleError):
        verify_bundle(bundle)


def test_bad_pinned_key_is_named(bundle: dict[str, Any]) -> None:
    _refused(bundle, "--log-key", "malformed verifier key", trusted_log_vkey="x+y+z")


def test_prove_is_deterministic_about_content(
    built: tuple[World, str, dict[str, Any]], tmp_path: Path
) -> None:
    world, model_id, first = built
    again = prove(world.state, model_id)
    assert [e["index"] for e in again["entries"]] == [
        e["index"] for e in first["entries"]]
