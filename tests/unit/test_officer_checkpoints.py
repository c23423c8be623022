"""Officers verifying from a trusted checkpoint: rollback, split view and forks are
refused with both signed checkpoints as evidence, and the trusted state is unchanged.

Attacks are played by the log operator, who holds the log key and edits its own
storage (then restarts): entries it rewrites must still be signed by the enrolled
actors, so a fork or rollback it publishes is caught against the officer's own
trusted checkpoint.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from testkit import World, tamper_log

from orchestrator.crypto import SigningKey
from orchestrator.embedded import (
    Deployment,
    publish_checkpoint,
    verify_custody,
    witness,
)
from orchestrator.tlog.checkpoint import Checkpoint, parse_note, sign
from orchestrator.tlog.note import CheckpointError, NoteSigner
from orchestrator.tlog.witness import ConsistencyError, RollbackError, SplitViewError
from orchestrator.tlog.witness_api import WitnessRefusal


def _append(world: World, n: int, tag: str) -> None:
    orchestrator = Deployment(world.state).orchestrator()
    for i in range(n):
        orchestrator.record("agreement.added", {"agreement_id": f"{tag}-{i}"})


def _truncate(world: World, keep: int) -> None:
    tamper_log(world.state, ("DELETE FROM entries WHERE seq >= ?", (keep,)),
               ("DELETE FROM checkpoints WHERE size > ?", (keep,)))


def _trusted(world: World) -> Path:
    return world.state.officer_dir("AUS") / "checkpoint.json"


def _content(path: Path) -> bytes | None:
    return path.read_bytes() if path.exists() else None


def _trust_now(world: World) -> tuple[int, bytes]:
    publish_checkpoint(world.state)
    result = verify_custody(world.state, officer="AUS")
    return result.checkpoint_size, _trusted(world).read_bytes()


def test_first_use_then_growth_is_consistent(world: World) -> None:
    size, _ = _trust_now(world)
    _append(world, 5, "grow")
    publish_checkpoint(world.state)
    result = verify_custody(world.state, officer="AUS")
    assert result.previous_size == size and result.checkpoint_size == size + 5


def test_rollback_is_refused_with_evidence(world: World) -> None:
    _append(world, 4, "a")
    size, trusted = _trust_now(world)
    _truncate(world, size - 2)
    note = publish_checkpoint(world.state)
    assert parse_note(note).checkpoint.size == size - 2
    with pytest.raises(RollbackError) as caught:
        verify_custody(world.state, officer="AUS")
    assert caught.value.previous is not None and caught.value.previous.size == size
    assert caught.value.presented_note == note and caught.value.previous_note
    assert _trusted(world).read_bytes() == trusted


def test_split_view_same_size_other_root(world: World) -> None:
    _append(world, 4, "a")
    size, trusted = _trust_now(world)
    _truncate(world, size - 3)
    _append(world, 3, "forked")  # same size, validly signed, different history
    note = publish_checkpoint(world.state)
    with pytest.raises(SplitViewError) as caught:
        verify_custody(world.state, officer="AUS")
    assert caught.value.presented.size == size
    assert caught.value.presented_note == note
    assert _trusted(world).read_bytes() == trusted


def test_inconsistent_history_is_refused(world: World) -> None:
    _append(world, 4, "a")
    size, trusted = _trust_now(world)
    _truncate(world, size - 2)
    _append(world, 6, "rewritten")  # larger, but not an extension
    publish_checkpoint(world.state)
    with pytest.raises(ConsistencyError):
        verify_custody(world.state, officer="AUS")
    assert _trusted(world).read_bytes() == trusted


def test_checkpoint_signed_with_foreign_key_is_refused(world: World) -> None:
    _, trusted = _trust_now(world)
    _append(world, 2, "b")
    cp = parse_note(publish_checkpoint(world.state)).checkpoint
    forged = sign(Checkpoint(cp.origin, cp.size, cp.root),
                  NoteSigner(cp.origin, SigningKey.generate()))
    tamper_log(world.state, ("UPDATE checkpoints SET note = ? WHERE size = ?",
                             (forged, cp.size)))
    with pytest.raises(CheckpointError) as caught:
        verify_custody(world.state, officer="AUS")
    assert caught.value.reason in {"unknown-key", "bad-signature"}
    assert _trusted(world).read_bytes() == trusted


def test_required_cosigners(world: World) -> None:
    publish_checkpoint(world.state)
    witness(world.state, "AUS")
    before = _content(_trusted(world))
    with pytest.raises(CheckpointError) as caught:
        verify_custody(world.state, officer="AUS", require_cosigners=("AUS", "GBR"))
    assert caught.value.reason == "missing-signer"
    assert _content(_trusted(world)) == before
    witness(world.state, "GBR")
    result = verify_custody(
        world.state, officer="AUS", require_cosigners=("AUS", "GBR")
    )
    assert result.cosigners == ("AUS", "GBR")


def test_witness_refuses_a_rolled_back_log(world: World) -> None:
    _append(world, 3, "a")
    cosigned = parse_note(publish_checkpoint(world.state)).checkpoint.size
    witness(world.state, "GBR")
    state_file = world.state.nation_dir("GBR") / "witness-state.json"
    before = state_file.read_bytes()
    _truncate(world, 2)
    publish_checkpoint(world.state)
    with pytest.raises(WitnessRefusal) as refused:  # C2SP tlog-witness: 409
        witness(world.state, "GBR")
    # The witness answers with the size it cosigned; the log cannot prove
    # consistency from there to a smaller tree, so nothing is cosigned.
    assert refused.value.status == 409 and refused.value.size == cosigned
    assert state_file.read_bytes() == before


def test_tampered_entry_below_the_checkpoint_names_its_index(world: World) -> None:
    _append(world, 6, "a")
    publish_checkpoint(world.state)
    before = _content(_trusted(world))
    db = sqlite3.connect(world.state.custody_db)
    seq, leaf = next((s, bytes(leaf)) for s, leaf in db.execute(
        "SELECT seq, leaf FROM entries ORDER BY seq") if b'"a-1"' in leaf)
    db.close()
    tamper_log(world.state, ("UPDATE entries SET leaf = ? WHERE seq = ?",
                             (leaf.replace(b"a-1", b"a-9"), seq)))
    from orchestrator.errors import LedgerVerificationError

    with pytest.raises(LedgerVerificationError) as caught:
        verify_custody(world.state, officer="AUS")
    assert caught.value.index == seq
    assert _content(_trusted(world)) == before
