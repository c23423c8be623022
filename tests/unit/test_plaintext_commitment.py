"""The log proves custody of a dataset without confirming its content: no
plaintext hash is recorded anywhere, only a commitment keyed by the DEK."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from testkit import SONAR, make_world

from orchestrator.canonical import b64d
from orchestrator.crypto import commit_plaintext, new_dek
from orchestrator.errors import ConfigError


def test_the_commitment_binds_key_and_data() -> None:
    dek, other = new_dek(), new_dek()
    data = SONAR.read_bytes()
    tag = commit_plaintext(dek, data)
    assert tag.startswith("hmac-sha256:") and len(tag) == len("hmac-sha256:") + 64
    assert commit_plaintext(dek, data) == tag
    assert commit_plaintext(other, data) != tag
    assert commit_plaintext(dek, data + b"\n") != tag
    with pytest.raises(ConfigError):
        commit_plaintext(b"short", data)


def test_no_plaintext_hash_in_the_log_or_the_registry(tmp_path: Path) -> None:
    world = make_world(tmp_path)
    plain = hashlib.sha256(SONAR.read_bytes()).hexdigest()
    log = world.deployment.log()
    leaves = b"".join(e.leaf_bytes() for e in log.entries())
    assert plain.encode() not in leaves
    assert plain.encode() not in world.state.registry_db.read_bytes()
    sealed = [e.event.body for e in log.find("dataset.sealed")]
    assert sealed and "plaintext_sha256" not in sealed[0]
    # the owner (who holds the DEK) can check the commitment
    aus = world.custodian("AUS").ctx
    wrapped = aus.store.dataset(world.dataset_id).wrapped
    dek = aus.keys.keystore().unwrap(wrapped["kek_id"], int(wrapped["kek_version"]),
                                     b64d(wrapped["wrapped_dek"]))
    assert sealed[0]["plaintext_commitment"] == commit_plaintext(
        dek, SONAR.read_bytes())
