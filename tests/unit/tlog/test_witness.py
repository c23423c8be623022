"""The pure witness state machine (C2SP tlog-witness semantics)."""

from __future__ import annotations

import dataclasses

import pytest

from orchestrator.crypto import SigningKey
from orchestrator.errors import ConfigError, IntegrityError
from orchestrator.tlog.checkpoint import (
    ALG_COSIGNATURE_V1,
    Checkpoint,
    CheckpointError,
    NoteSigner,
    sign,
    verify_cosigned,
)
from orchestrator.tlog.merkle import EMPTY_ROOT, MerkleTree, leaf_hash
from orchestrator.tlog.witness import (
    ConsistencyError,
    RollbackError,
    SplitViewError,
    Witness,
    WitnessError,
    WitnessState,
)

ORIGIN = "sovereign-orchestrator.example/custody/log-1"
NOW = 1_750_000_000


@pytest.fixture(scope="module")
def log_signer() -> NoteSigner:
    return NoteSigner(ORIGIN, SigningKey.generate())


@pytest.fixture(scope="module")
def witness_signer() -> NoteSigner:
    return NoteSigner("witness.aus.example", SigningKey.generate(), ALG_COSIGNATURE_V1)


@pytest.fixture(scope="module")
def tree() -> MerkleTree:
    return MerkleTree(leaf_hash(b"entry %d" % i) for i in range(20))


def _note(tree: MerkleTree, size: int, signer: NoteSigner) -> bytes:
    return sign(Checkpoint(ORIGIN, size, tree.root(size)), signer)


def test_first_cosign_then_growth(
    log_signer: NoteSigner, witness_signer: NoteSigner, tree: MerkleTree
) -> None:
    lv = log_signer.verifier()
    note5 = _note(tree, 5, log_signer)
    state, line = Witness.check_and_cosign(None, note5, [], lv, witness_signer, NOW)
    assert state == WitnessState(ORIGIN, 5, tree.root(5), note5)
    got = verify_cosigned(note5 + line, lv, [witness_signer.verifier()],
                          required_witnesses=[witness_signer.name])
    assert got.verified[witness_signer.name] == NOW
    for size in (5, 8, 13, 20):  # equal size re-cosigns; larger sizes need proofs
        note = _note(tree, size, log_signer)
        proof = tree.consistency_proof(state.size, size)
        state, line = Witness.check_and_cosign(state, note, proof, lv,
                                               witness_signer, NOW + size)
        assert (state.size, state.root, state.note) == (size, tree.root(size), note)
        assert verify_cosigned(note + line, lv, [witness_signer.verifier()],
                               required_witnesses=[witness_signer.name]
                               ).verified[witness_signer.name] == NOW + size


def test_from_empty_tree(
    log_signer: NoteSigner, witness_signer: NoteSigner, tree: MerkleTree
) -> None:
    empty = WitnessState(ORIGIN, 0, EMPTY_ROOT)
    state, _ = Witness.check_and_cosign(empty, _note(tree, 3, log_signer), [],
                                        log_signer.verifier(), witness_signer, NOW)
    assert state.size == 3
    bogus = WitnessState(ORIGIN, 0, b"\x01" * 32)
    with pytest.raises(SplitViewError):
        Witness.check_and_cosign(bogus, _note(tree, 3, log_signer), [],
                                 log_signer.verifier(), witness_signer, NOW)
    with pytest.raises(ConsistencyError):
        Witness.check_and_cosign(empty, _note(tree, 3, log_signer), [EMPTY_ROOT],
                                 log_signer.verifier(), witness_signer, NOW)


def _state(tree: MerkleTree, size: int, signer: NoteSigner) -> WitnessState:
    return WitnessState(ORIGIN, size, tree.root(size), _note(tree, size, signer))


def test_rollback(
    log_signer: NoteSigner, witness_signer: NoteSigner, tree: MerkleTree
) -> None:
    state = _state(tree, 10, log_signer)
    before = dataclasses.replace(state)
    note = _note(tree, 7, log_signer)
    with pytest.raises(RollbackError, match="smaller") as exc:
        Witness.check_and_cosign(state, note, [], log_signer.verifier(),
                                 witness_signer, NOW)
    assert exc.value.previous == state.checkpoint
    assert exc.value.presented == Checkpoint(ORIGIN, 7, tree.root(7))
    assert exc.value.previous_note == state.note
    assert exc.value.presented_note == note
    assert state == before
    assert isinstance(exc.value, IntegrityError)


def test_split_view(
    log_signer: NoteSigner, witness_signer: NoteSigner, tree: MerkleTree
) -> None:
    state = _state(tree, 10, log_signer)
    fork = MerkleTree([*(tree.leaf(i) for i in range(9)), leaf_hash(b"forged")])
    note = _note(fork, 10, log_signer)
    with pytest.raises(SplitViewError, match="two roots") as exc:
        Witness.check_and_cosign(state, note, [], log_signer.verifier(),
                                 witness_signer, NOW)
    # Both checkpoints are signed by the log: transferable proof of a fork.
    assert exc.value.previous is not None
    assert exc.value.previous.size == exc.value.presented.size == 10
    assert exc.value.previous.root != exc.value.presented.root
    assert exc.value.previous_note == state.note
    assert exc.value.presented_note == note
    with pytest.raises(ConsistencyError, match="equal sizes"):
        Witness.check_and_cosign(state, _note(tree, 10, log_signer), [b"x" * 32],
                                 log_signer.verifier(), witness_signer, NOW)


def test_inconsistent_proof(
    log_signer: NoteSigner, witness_signer: NoteSigner, tree: MerkleTree
) -> None:
    state = _state(tree, 6, log_signer)
    # A log that rewrote entry 2 then grew to 15: its proof cannot reach state.
    rewritten = MerkleTree(tree.leaf(i) if i != 2 else leaf_hash(b"rewritten")
                           for i in range(15))
    note = _note(rewritten, 15, log_signer)
    for proof in (rewritten.consistency_proof(6, 15), tree.consistency_proof(6, 15),
                  [], tree.consistency_proof(6, 15)[:-1]):
        with pytest.raises(ConsistencyError, match="not an extension") as exc:
            Witness.check_and_cosign(state, note, proof, log_signer.verifier(),
                                     witness_signer, NOW)
        assert exc.value.previous == state.checkpoint
        assert exc.value.presented.size == 15
    good = _note(tree, 15, log_signer)
    with pytest.raises(ConsistencyError):
        Witness.check_and_cosign(None, good, tree.consistency_proof(6, 15),
                                 log_signer.verifier(), witness_signer, NOW)
    assert isinstance(ConsistencyError("m", previous=None,
                                       presented=state.checkpoint), WitnessError)


def test_foreign_log_key_and_origin(
    log_signer: NoteSigner, witness_signer: NoteSigner, tree: MerkleTree
) -> None:
    impostor = NoteSigner(ORIGIN, SigningKey.generate())
    state = _state(tree, 4, log_signer)
    note = _note(tree, 8, impostor)
    for st in (None, state):
        with pytest.raises(CheckpointError, match="unknown-key"):
            Witness.check_and_cosign(st, note, tree.consistency_proof(4, 8),
                                     log_signer.verifier(), witness_signer, NOW)
    other = NoteSigner("other.example/log", SigningKey.generate())
    foreign = sign(Checkpoint("other.example/log", 8, tree.root(8)), other)
    with pytest.raises(CheckpointError, match="wrong-origin"):
        Witness.check_and_cosign(state, foreign, tree.consistency_proof(4, 8),
                                 other.verifier(), witness_signer, NOW)
    with pytest.raises(ConfigError):
        Witness.check_and_cosign(state, _note(tree, 8, log_signer), [],
                                 log_signer.verifier(), log_signer, NOW)
