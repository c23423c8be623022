"""in-toto Statement v1 / SLSA Provenance v1 in DSSE v1 envelopes."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest

from orchestrator.crypto import SigningKey, verify_signature
from orchestrator.errors import ConfigError, IntegrityError
from orchestrator.protocol.provenance import (
    BUILD_TYPE,
    PAYLOAD_TYPE,
    PREDICATE_TYPE,
    STATEMENT_TYPE,
    ProvenanceError,
    build_statement,
    dsse_sign,
    dsse_verify,
    pae,
    statement_digest,
    subject_digest,
)

DS_DIGEST = "a" * 64
MODEL_DIGEST = "b" * 64
CODE = "sha256:" + "c" * 64


def _statement(**over: Any) -> dict[str, Any]:
    args: dict[str, Any] = {
        "model_id": "model-1",
        "model_digest": "sha256:" + MODEL_DIGEST,
        "workflow": "sonar-classification",
        "task": "final",
        "priority_area": "undersea-autonomy",
        "site": "local",
        "datasets": [("ds-1", "sha256:" + DS_DIGEST)],
        "code_measurement": CODE,
        "job_id": "job-1",
        "attempt_id": "att-1",
        "started_on": "2026-01-01T00:00:00.000000Z",
        "finished_on": "2026-01-01T00:00:01.000000Z",
    }
    args.update(over)
    return build_statement(**args)


def test_pae_matches_the_dsse_spec_example() -> None:
    # DSSE protocol.md, "Test Vectors".
    assert pae("http://example.com/HelloWorld", b"hello world") == (
        b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert pae("", b"") == b"DSSEv1 0  0 "
    # Lengths are in bytes, not characters.
    assert pae("t\u00e9", b"\xff") == b"DSSEv1 3 t\xc3\xa9 1 \xff"


def test_statement_shape() -> None:
    st = _statement()
    assert st["_type"] == STATEMENT_TYPE
    assert st["predicateType"] == PREDICATE_TYPE
    assert st["subject"] == [{"name": "model-1", "digest": {"sha256": MODEL_DIGEST}}]
    bd = st["predicate"]["buildDefinition"]
    assert bd["buildType"] == BUILD_TYPE
    assert bd["externalParameters"] == {
        "workflow": "sonar-classification",
        "task": "final",
        "priority_area": "undersea-autonomy",
    }
    assert bd["internalParameters"] == {"site": "local", "tee_mode": "none"}
    assert bd["resolvedDependencies"] == [
        {"uri": "dataset:ds-1", "digest": {"sha256": DS_DIGEST}},
        {"uri": "workflow:sonar-classification", "digest": {"sha256": "c" * 64}},
    ]
    rd = st["predicate"]["runDetails"]
    assert rd["builder"] == {"id": "site:local"}
    assert rd["metadata"]["invocationId"] == "job-1/att-1"


def test_statement_rejects_non_sha256_digest() -> None:
    with pytest.raises(ConfigError):
        _statement(model_digest="md5:abc")


def test_round_trip_and_signature_is_over_pae() -> None:
    key = SigningKey.generate()
    st = _statement()
    env = dsse_sign(st, key)
    assert env["payloadType"] == PAYLOAD_TYPE
    assert env["signatures"][0]["keyid"] == key.key_id
    assert dsse_verify(env, {key.key_id: key.public_bytes()}) == st
    body = base64.b64decode(env["payload"])
    sig = base64.b64decode(env["signatures"][0]["sig"])
    verify_signature(key.public_bytes(), sig, pae(PAYLOAD_TYPE, body))
    assert subject_digest(st, "model-1") == MODEL_DIGEST
    assert statement_digest(env).startswith("sha256:")


def test_url_safe_base64_is_accepted() -> None:
    key = SigningKey.generate()
    env = dsse_sign(_statement(), key)
    env["payload"] = env["payload"].replace("+", "-").replace("/", "_")
    env["signatures"][0]["sig"] = (
        env["signatures"][0]["sig"].replace("+", "-").replace("/", "_")
    )
    assert dsse_verify(env, {key.key_id: key.public_bytes()})["_type"] == STATEMENT_TYPE


def _reason(env: Any, keys: dict[str, bytes]) -> str:
    with pytest.raises(ProvenanceError) as info:
        dsse_verify(env, keys)
    assert isinstance(info.value, IntegrityError)
    return info.value.reason


def test_tampered_payload_is_refused() -> None:
    key = SigningKey.generate()
    env = dsse_sign(_statement(), key)
    st = json.loads(base64.b64decode(env["payload"]))
    st["subject"][0]["digest"]["sha256"] = "d" * 64
    env["payload"] = base64.b64encode(json.dumps(st).encode()).decode()
    assert _reason(env, {key.key_id: key.public_bytes()}) == "bad-signature"


def test_wrong_key_is_refused() -> None:
    key, other = SigningKey.generate(), SigningKey.generate()
    env = dsse_sign(_statement(), key)
    assert _reason(env, {other.key_id: other.public_bytes()}) == "unknown-key"
    # Same keyid claimed but a different public key behind it.
    assert _reason(env, {key.key_id: other.public_bytes()}) == "bad-signature"
    assert _reason(env, {}) == "unknown-key"


def test_wrong_payload_type_is_refused() -> None:
    key = SigningKey.generate()
    keys = {key.key_id: key.public_bytes()}
    env = dsse_sign(_statement(), key, payload_type="application/json")
    assert _reason(env, keys) == "payload-type"
    # Relabelling the type without re-signing breaks the PAE signature.
    env = dsse_sign(_statement(), key)
    env["payloadType"] = "application/json"
    assert _reason(env, keys) == "bad-signature"


@pytest.mark.parametrize(
    "mutate",
    [
        lambda e: "not an envelope",
        lambda e: {**e, "payload": "%%%"},
        lambda e: {**e, "signatures": []},
        lambda e: {**e, "signatures": ["x"]},
        lambda e: {**e, "signatures": [{"keyid": e["signatures"][0]["keyid"]}]},
        lambda e: {**e, "payloadType": 7},
    ],
)
def test_malformed_envelopes(mutate: Any) -> None:
    key = SigningKey.generate()
    env = mutate(dsse_sign(_statement(), key))
    assert _reason(env, {key.key_id: key.public_bytes()}) == "malformed"


def test_signed_non_statement_is_refused() -> None:
    key = SigningKey.generate()
    env = dsse_sign({"_type": "https://example.com/other"}, key)
    assert _reason(env, {key.key_id: key.public_bytes()}) == "statement"
