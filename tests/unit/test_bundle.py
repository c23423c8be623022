"""Offline custody bundles built from a real small state (one Parsl job).

The bundle is built from the log's public read API; it is verified with keys
only from the officer's own pinned trust (``officers/AUS/trust.json``): the
log's key and the nations' witness keys.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from testkit import ROOT, World, make_world

from orchestrator.crypto import SigningKey, load_private_key
from orchestrator.embedded import Deployment, prove, submit, witness
from orchestrator.officer.bundle import MEDIA_TYPE, BundleError, verify_bundle
from orchestrator.officer.bundle_checks import check_lineage, check_provenance
from orchestrator.officer.trust import TrustConfig
from orchestrator.protocol.provenance import dsse_sign
from orchestrator.submit.registry import Registry
from orchestrator.tlog.checkpoint import Checkpoint, parse_note, sign
from orchestrator.tlog.events import SignedEntry
from orchestrator.tlog.note import NoteSigner

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def built(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[World, str, dict[str, Any]]:
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


def _trust(world: World) -> TrustConfig:
    """What the AUS officer pinned when the parties were introduced."""
    return TrustConfig.load(world.state.officer_dir("AUS") / "trust.json")


def _pinned(world: World, **kw: Any) -> dict[str, Any]:
    trust = _trust(world)
    return {"trusted_log_vkey": trust.log_vkey, "witness_vkeys": trust.witnesses,
            **kw}


def _refused(bundle: dict[str, Any], part: str, words: str, **kw: Any) -> None:
    with pytest.raises(BundleError) as info:
        verify_bundle(bundle, **kw)
    assert info.value.part.startswith(part), info.value.diagnostics()
    assert words in info.value.diagnostics(), info.value.diagnostics()


def _entries(bundle: dict[str, Any]) -> dict[int, SignedEntry]:
    return {item["index"]: SignedEntry.from_leaf(base64.b64decode(item["leaf"]))
            for item in bundle["entries"]}


def _index_of(bundle: dict[str, Any], kind: str) -> int:
    for n, item in enumerate(bundle["entries"]):
        if json.loads(base64.b64decode(item["leaf"]))["event"]["kind"] == kind:
            return n
    raise AssertionError(kind)


def _sealed(entries: dict[int, SignedEntry]) -> SignedEntry:
    return next(e for e in entries.values() if e.event.kind == "model.sealed")


def _statement(entries: dict[int, SignedEntry]) -> dict[str, Any]:
    payload = _sealed(entries).event.body["provenance"]["payload"]
    return dict(json.loads(base64.b64decode(payload)))


def _provenance_refused(world: World, bundle: dict[str, Any], model_id: str,
                        envelope: dict[str, Any], words: str) -> None:
    """Put ``envelope`` in the model.sealed event and run the lineage and
    provenance checks (the log would have to have committed to it: a changed
    leaf fails its inclusion proof first, see test_flipped_byte_in_a_leaf)."""
    entries = _entries(bundle)
    sealed = _sealed(entries)
    event = sealed.event
    body = {**event.body, "provenance": envelope}
    entries[sealed.seq] = SignedEntry(
        seq=sealed.seq, prev_hash=sealed.prev_hash, signer=sealed.signer,
        signature=sealed.signature,
        event=type(event)(event_id=event.event_id, kind=event.kind,
                          actor=event.actor, time=event.time, body=body))
    site_key = load_private_key(world.state.site_dir("local") / "site.key")
    keys = {"site:local": site_key.public_bytes()}
    facts = check_lineage(model_id, entries, keys)
    with pytest.raises(BundleError) as info:
        check_provenance(facts, keys)
    assert words in info.value.diagnostics(), info.value.diagnostics()


def _resigned(world: World, bundle: dict[str, Any],
              edit: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    st = _statement(_entries(bundle))
    edit(st)
    site_key = load_private_key(world.state.site_dir("local") / "site.key")
    return dsse_sign(st, site_key)


def test_bundle_verifies_with_pinned_key_and_cosigners(
    built: tuple[World, str, dict[str, Any]], bundle: dict[str, Any]
) -> None:
    world, model_id, _ = built
    assert bundle["mediaType"] == MEDIA_TYPE
    assert _trust(world).log_vkey == Deployment(world.state).log().vkey
    report = verify_bundle(bundle, **_pinned(world,
                                             required_cosigners=["AUS", "GBR"]))
    assert report.model_id == model_id
    assert report.log_key_pinned and report.cosigners == ("AUS", "GBR")
    assert report.kinds["key.released"] == 14 and report.kinds["model.sealed"] == 1
    record = Registry(world.state.registry_db).model(model_id)
    assert report.sealed_digest == record.sealed_digest
    with pytest.raises(BundleError, match="no pinned log key"):
        verify_bundle(bundle)  # nothing pinned and no explicit trust on first use
    tofu = verify_bundle(bundle, trust_log_on_first_use=bundle["checkpoint"]["log_key"],
                         witness_vkeys=_trust(world).witnesses)
    assert not tofu.log_key_pinned and "on first use" in tofu.notes[0]


@pytest.fixture
def pinned(built: tuple[World, str, dict[str, Any]]) -> dict[str, Any]:
    """verify_bundle's keyword arguments with the AUS officer's pinned keys."""
    return _pinned(built[0])


def test_flipped_byte_in_a_leaf(bundle: dict[str, Any], pinned: dict[str, Any]
                                ) -> None:
    n = _index_of(bundle, "key.released")
    leaf = bytearray(base64.b64decode(bundle["entries"][n]["leaf"]))
    at = leaf.index(b'"fold-')
    leaf[at + 1] ^= 0x01  # "fold-" -> "gold-": still valid JSON
    bundle["entries"][n]["leaf"] = base64.b64encode(bytes(leaf)).decode()
    _refused(bundle, "entry", "root hash mismatch", **pinned)


def test_changed_provenance_fails_inclusion(bundle: dict[str, Any],
                                            pinned: dict[str, Any]) -> None:
    """The provenance is inside the committed model.sealed leaf."""
    n = _index_of(bundle, "model.sealed")
    doc = json.loads(base64.b64decode(bundle["entries"][n]["leaf"]))
    doc["event"]["body"]["provenance"]["payload"] = base64.b64encode(b"{}").decode()
    bundle["entries"][n]["leaf"] = base64.b64encode(
        json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()).decode()
    _refused(bundle, "entry", "inclusion proof", **pinned)


def test_removed_event(bundle: dict[str, Any], pinned: dict[str, Any]) -> None:
    del bundle["entries"][_index_of(bundle, "key.released")]
    _refused(bundle, "entries", "key.released", **pinned)


def test_removed_task_event(bundle: dict[str, Any], pinned: dict[str, Any]) -> None:
    del bundle["entries"][_index_of(bundle, "task.started")]
    _refused(bundle, "entries", "no task.started event", **pinned)


def test_removed_enrollment(bundle: dict[str, Any], pinned: dict[str, Any]) -> None:
    for n, item in enumerate(bundle["entries"]):
        event = json.loads(base64.b64decode(item["leaf"]))["event"]
        if event["kind"] == "actor.enrolled" and event["actor"] == "site:local":
            del bundle["entries"][n]
            break
    _refused(bundle, "entry", "site:local has no enrollment in the bundle", **pinned)


def test_swapped_proof_hash(bundle: dict[str, Any], pinned: dict[str, Any]) -> None:
    proof = bundle["entries"][3]["proof"]
    proof[0], proof[1] = proof[1], proof[0]
    _refused(bundle, "entry", "inclusion proof", **pinned)


def test_checkpoint_resigned_with_foreign_key(
    bundle: dict[str, Any], pinned: dict[str, Any]
) -> None:
    cp = parse_note(bundle["checkpoint"]["note"].encode()).checkpoint
    foreign = NoteSigner(cp.origin, SigningKey.generate())
    forged = sign(Checkpoint(cp.origin, cp.size, cp.root), foreign)
    bundle["checkpoint"]["note"] = forged.decode()
    _refused(copy.deepcopy(bundle), "checkpoint", "unknown", **pinned)
    # Replacing the bundle's own log key too passes neither the pinned key nor,
    # since a log's origin is derived from its key, trust on first use.
    bundle["checkpoint"]["log_key"] = foreign.verifier().vkey()
    _refused(bundle, "checkpoint", "unknown", **pinned)
    _refused(bundle, "checkpoint", "origin",
             trust_log_on_first_use=bundle["checkpoint"]["log_key"])


def test_missing_required_cosignature(bundle: dict[str, Any],
                                      pinned: dict[str, Any]) -> None:
    note = bundle["checkpoint"]["note"]
    bundle["checkpoint"]["note"] = "".join(
        line for line in note.splitlines(keepends=True)
        if not line.startswith("\u2014 witness-GBR ")
    )
    verify_bundle(bundle, **pinned, required_cosigners=["AUS"])
    _refused(bundle, "checkpoint", "witness-GBR", **pinned,
             required_cosigners=["AUS", "GBR"])


def test_custodian_key_must_be_the_pinned_witness_key(
        bundle: dict[str, Any], pinned: dict[str, Any]) -> None:
    other = NoteSigner("witness-AUS", SigningKey.generate())
    witnesses = {**pinned["witness_vkeys"], "AUS": other.verifier().vkey()}
    with pytest.raises(BundleError):
        verify_bundle(bundle, trusted_log_vkey=pinned["trusted_log_vkey"],
                      witness_vkeys=witnesses)


def test_provenance_subject_digest_change(
    built: tuple[World, str, dict[str, Any]], bundle: dict[str, Any]
) -> None:
    world, model_id, _ = built
    envelope = copy.deepcopy(_sealed(_entries(bundle)).event.body["provenance"])
    st = json.loads(base64.b64decode(envelope["payload"]))
    st["subject"][0]["digest"]["sha256"] = "0" * 64
    envelope["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    _provenance_refused(world, bundle, model_id, envelope, "bad-signature")

    def edit(s: dict[str, Any]) -> None:
        s["subject"][0]["digest"]["sha256"] = "0" * 64

    # Even the site itself cannot lie about it.
    _provenance_refused(world, bundle, model_id, _resigned(world, bundle, edit),
                        "is not the sealed digest")


def test_provenance_signed_by_foreign_key(
        built: tuple[World, str, dict[str, Any]], bundle: dict[str, Any]) -> None:
    world, model_id, _ = built
    foreign = SigningKey.generate()
    _provenance_refused(world, bundle, model_id,
                        dsse_sign(_statement(_entries(bundle)), foreign),
                        "unknown-key")


def test_provenance_dataset_digest_mismatch(
    built: tuple[World, str, dict[str, Any]], bundle: dict[str, Any]
) -> None:
    def edit(s: dict[str, Any]) -> None:
        dep = s["predicate"]["buildDefinition"]["resolvedDependencies"][0]
        dep["digest"]["sha256"] = "f" * 64

    world, model_id, _ = built
    _provenance_refused(world, bundle, model_id, _resigned(world, bundle, edit),
                        "input dataset")


def test_provenance_not_committed_by_the_log(
    built: tuple[World, str, dict[str, Any]], bundle: dict[str, Any]
) -> None:
    def edit(s: dict[str, Any]) -> None:
        s["predicate"]["runDetails"]["metadata"]["finishedOn"] = "2099-01-01T00:00:00Z"

    world, model_id, _ = built
    _provenance_refused(world, bundle, model_id, _resigned(world, bundle, edit),
                        "provenance_digest")


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.update(mediaType="application/json"),
        lambda b: b.update(entries="nope"),
        lambda b: b["entries"][0].update(index="zero"),
        lambda b: b["entries"][0].update(leaf="!!"),
        lambda b: b["entries"][0].update(proof=[1, 2]),
        lambda b: b["checkpoint"].update(note="garbage"),
        lambda b: b.update(checkpoint=None),
        lambda b: b.pop("model_id"),
        lambda b: b.update(model_id="model-other"),
    ],
)
def test_malformed_bundles_give_a_bundle_error(
    bundle: dict[str, Any], pinned: dict[str, Any],
    mutate: Callable[[dict[str, Any]], Any]
) -> None:
    mutate(bundle)
    with pytest.raises(BundleError):
        verify_bundle(bundle, **pinned)


def test_bad_pinned_key_is_named(bundle: dict[str, Any]) -> None:
    _refused(bundle, "--log-key", "malformed verifier key", trusted_log_vkey="x+y+z")


def test_prove_is_deterministic_about_content(
    built: tuple[World, str, dict[str, Any]], tmp_path: Path
) -> None:
    world, model_id, first = built
    again = prove(world.state, model_id)
    assert [e["index"] for e in again["entries"]] == [
        e["index"] for e in first["entries"]]
