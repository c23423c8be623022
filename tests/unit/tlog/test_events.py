"""Custody events and signed entries: validation, canonical bytes, leaf hashes."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re

import pytest

from orchestrator.tlog.events import (
    EVENT_KINDS,
    ZERO_HASH,
    CustodyEvent,
    SignedEntry,
    leaf_hash,
    new_event_id,
    utc_now,
)

from .helpers import KeySigner

FIXED = CustodyEvent(event_id="e1", kind="dataset.sealed", actor="custodian:AUS",
                     time="2026-01-02T03:04:05.000006Z",
                     body={"dataset_id": "ds-1", "rows": 3})
SIG = bytes(range(64))


def fixed_entry() -> SignedEntry:
    return SignedEntry(seq=0, event=FIXED, prev_hash=ZERO_HASH, signer="ed25519:k",
                       signature=SIG)


def test_event_kinds_are_the_documented_set() -> None:
    core = {"nation.initialized", "site.registered", "dataset.sealed",
            "agreement.added", "request.submitted", "policy.decided", "key.released",
            "key.denied", "notification.recorded", "task.started", "task.completed",
            "task.failed", "model.sealed", "model.opened", "model.open.denied",
            "job.completed", "job.failed"}
    assert core <= EVENT_KINDS
    assert all(re.fullmatch(r"[a-z_]+(\.[a-z_]+)+", kind) for kind in EVENT_KINDS)


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown custody event kind"):
        CustodyEvent.create("key.stolen", "custodian:AUS", {})


@pytest.mark.parametrize("time", [
    "2026-01-02T03:04:05Z", "2026-01-02T03:04:05.000006+00:00",
    "2026-13-02T03:04:05.000006Z", "2026-01-02 03:04:05.000006Z", ""])
def test_bad_time_is_rejected(time: str) -> None:
    with pytest.raises(ValueError):
        CustodyEvent.create("dataset.sealed", "custodian:AUS", {}, time=time)


@pytest.mark.parametrize(("field", "value"), [("event_id", ""), ("actor", ""),
                                              ("event_id", 3)])
def test_empty_or_mistyped_fields_are_rejected(field: str, value: object) -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(FIXED, **{field: value})  # type: ignore[arg-type]


def test_helpers_formats() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", new_event_id())
    assert new_event_id() != new_event_id()
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", utc_now())
    event = CustodyEvent.create("job.completed", "orchestrator", {})
    assert re.fullmatch(r"[0-9a-f]{32}", event.event_id)


def test_body_is_normalised_and_must_be_json() -> None:
    event = CustodyEvent.create("task.started", "site:local", {"ids": ("a", "b")})
    assert event.body == {"ids": ["a", "b"]}
    with pytest.raises(ValueError):
        CustodyEvent.create("task.started", "site:local", {"x": object()})
    with pytest.raises(ValueError):
        CustodyEvent.create("task.started", "site:local", {"x": float("nan")})
    with pytest.raises(ValueError):
        CustodyEvent.create("task.started", "site:local", {1: "int key"})  # type: ignore[dict-item]
    with pytest.raises(ValueError):
        CustodyEvent.create("task.started", "site:local", ["not", "a", "mapping"])  # type: ignore[arg-type]


def test_body_is_copied_not_aliased() -> None:
    body = {"a": [1]}
    event = CustodyEvent.create("task.started", "site:local", body)
    body["a"].append(2)
    assert event.body == {"a": [1]}


def test_event_json_round_trip_and_strictness() -> None:
    assert CustodyEvent.from_json(FIXED.to_json()) == FIXED
    assert hash(CustodyEvent.from_json(FIXED.to_json())) == hash(FIXED)
    extra = {**FIXED.to_json(), "extra": 1}
    with pytest.raises(ValueError, match="unknown keys"):
        CustodyEvent.from_json(extra)
    missing = FIXED.to_json()
    del missing["actor"]
    with pytest.raises(ValueError, match="missing keys"):
        CustodyEvent.from_json(missing)
    with pytest.raises(ValueError):
        CustodyEvent.from_json({**FIXED.to_json(), "body": []})
    with pytest.raises(ValueError):
        CustodyEvent.from_json("not an object")


def test_signed_and_leaf_bytes_are_stable() -> None:
    entry = fixed_entry()
    event_json = ('{"actor":"custodian:AUS","body":{"dataset_id":"ds-1","rows":3},'
                  '"event_id":"e1","kind":"dataset.sealed",'
                  '"time":"2026-01-02T03:04:05.000006Z"}')
    # The actor signs its event alone, domain-separated; the log places it.
    assert entry.signed_bytes() == (
        b"sovereign-custody-event/v1\n" + event_json.encode())
    sig_b64 = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIjJCUmJygpKissLS4vMDEy" \
              "MzQ1Njc4OTo7PD0+Pw=="
    assert entry.leaf_bytes() == (
        '{"event":' + event_json + ',"prev":"' + "0" * 64 + '","seq":0,"sig":"'
        + sig_b64 + '","signer":"ed25519:k"}').encode()


def test_entry_hash_is_rfc9162_leaf_hash() -> None:
    entry = fixed_entry()
    expected = hashlib.sha256(b"\x00" + entry.leaf_bytes()).hexdigest()
    assert entry.entry_hash() == expected == leaf_hash(entry.leaf_bytes())
    assert entry.entry_hash() != hashlib.sha256(entry.leaf_bytes()).hexdigest()


def test_entry_round_trips_through_json_and_leaf() -> None:
    entry = fixed_entry()
    assert SignedEntry.from_json(entry.to_json()) == entry
    assert SignedEntry.from_leaf(entry.leaf_bytes()) == entry
    assert hash(SignedEntry.from_leaf(entry.leaf_bytes())) == hash(entry)


def test_create_signs_signed_bytes() -> None:
    signer = KeySigner()
    entry = SignedEntry.create(0, ZERO_HASH, FIXED, signer)
    assert entry.signer == signer.key_id
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
    Ed25519PublicKey.from_public_bytes(signer.public_key).verify(
        entry.signature, entry.signed_bytes())


@pytest.mark.parametrize("leaf", [
    b"\xff\xfe", b"not json", b"[]",
    # Valid JSON of a valid entry, but not canonical (white space added).
    json.dumps(fixed_entry().to_json(), sort_keys=True).encode(),
])
def test_from_leaf_rejects_bad_or_non_canonical_bytes(leaf: bytes) -> None:
    with pytest.raises(ValueError):
        SignedEntry.from_leaf(leaf)


@pytest.mark.parametrize(("key", "value"), [
    ("seq", -1), ("seq", True), ("seq", "0"), ("prev", "0" * 63),
    ("prev", "A" * 64), ("signer", ""), ("sig", "!!notbase64"), ("sig", 5),
])
def test_from_json_rejects_bad_fields(key: str, value: object) -> None:
    with pytest.raises(ValueError):
        SignedEntry.from_json({**fixed_entry().to_json(), key: value})


def test_from_json_rejects_unknown_and_missing_keys() -> None:
    obj = fixed_entry().to_json()
    with pytest.raises(ValueError):
        SignedEntry.from_json({**obj, "extra": 1})
    del obj["sig"]
    with pytest.raises(ValueError):
        SignedEntry.from_json(obj)


def test_entry_rejects_empty_signature() -> None:
    with pytest.raises(ValueError):
        dataclasses.replace(fixed_entry(), signature=b"")
