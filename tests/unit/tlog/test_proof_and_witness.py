"""C2SP tlog-proof, and a nation custodian as C2SP tlog-witness: fork, rollback,
restart and malformed requests, each refused with the status the spec names."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from orchestrator.crypto import SigningKey
from orchestrator.errors import ConfigError
from orchestrator.nation.witness import NationWitness
from orchestrator.tlog.checkpoint import Checkpoint, CheckpointError, open_note, sign
from orchestrator.tlog.merkle import MerkleTree, ProofError, leaf_hash
from orchestrator.tlog.names import origin_for, witness_key_name
from orchestrator.tlog.note import NoteSigner
from orchestrator.tlog.proof import format_proof, parse_proof, verify_proof
from orchestrator.tlog.witness_api import (
    WitnessRefusal,
    format_add_checkpoint,
    parse_add_checkpoint,
)

LOG_KEY = SigningKey.generate()
ORIGIN = origin_for(LOG_KEY)
LOG = NoteSigner(ORIGIN, LOG_KEY)


def _tree(n: int, tag: bytes = b"") -> tuple[list[bytes], MerkleTree]:
    leaves = [b"entry-%d" % i + tag for i in range(n)]
    return leaves, MerkleTree([leaf_hash(x) for x in leaves])


def _note(tree: MerkleTree, size: int | None = None,
          signer: NoteSigner = LOG) -> bytes:
    n = tree.size if size is None else size
    return sign(Checkpoint(ORIGIN, n, tree.root(n)), signer)


# -- tlog-proof --------------------------------------------------------------------

def test_tlog_proof_round_trip_and_verify() -> None:
    leaves, tree = _tree(37)
    note = _note(tree)
    text = format_proof(5, tree.inclusion_proof(5), note, extra=b"model-1")
    assert text.startswith(b"c2sp.org/tlog-proof@v1\nextra ")
    proof = parse_proof(text)
    assert proof.index == 5 and proof.extra == b"model-1" and proof.note == note
    verified = verify_proof(proof, leaves[5], [LOG.verifier()], origin=ORIGIN,
                            required=[ORIGIN])
    assert verified.checkpoint.size == 37


def test_tlog_proof_refuses_another_leaf_index_or_key() -> None:
    leaves, tree = _tree(37)
    proof = parse_proof(format_proof(5, tree.inclusion_proof(5), _note(tree)))
    with pytest.raises(ProofError):
        verify_proof(proof, leaves[6], [LOG.verifier()], origin=ORIGIN,
                     required=[ORIGIN])
    other = NoteSigner(ORIGIN, SigningKey.generate())
    with pytest.raises(CheckpointError):
        verify_proof(proof, leaves[5], [other.verifier()], origin=ORIGIN,
                     required=[ORIGIN])


@pytest.mark.parametrize("text", [
    b"c2sp.org/tlog-proof@v2\nindex 1\n\nx\n",
    b"c2sp.org/tlog-proof@v1\nindex 01\n\nx\n",
    b"c2sp.org/tlog-proof@v1\n\nx\n", b"c2sp.org/tlog-proof@v1\nindex 1\nAAAA\n\nx\n",
    b"c2sp.org/tlog-proof@v1\nindex 1\n",
])
def test_malformed_tlog_proofs_are_refused(text: bytes) -> None:
    with pytest.raises(ConfigError):
        parse_proof(text)


# -- tlog-witness ------------------------------------------------------------------

@pytest.fixture
def witness(tmp_path: Path) -> NationWitness:
    return NationWitness(tmp_path, "AUS", SigningKey.generate(), [LOG.verifier()],
                         clock=lambda: 1_800_000_000)


def _add(witness: NationWitness, old: int, proof: list[bytes], note: bytes) -> bytes:
    return witness.add_checkpoint(format_add_checkpoint(old, proof, note))


def test_first_checkpoint_then_extensions_are_cosigned(witness: NationWitness) -> None:
    _, tree = _tree(100)
    line = _add(witness, 0, [], _note(tree, 10))
    assert line.startswith(f"\u2014 {witness_key_name('AUS')} ".encode())
    opened = open_note(_note(tree, 10) + line, [LOG.verifier(), witness.verifier()],
                       required=[ORIGIN, witness_key_name("AUS")])
    assert opened.verified[witness_key_name("AUS")] == 1_800_000_000
    _add(witness, 10, tree.consistency_proof(10, 100), _note(tree, 100))
    state = witness.state(ORIGIN)
    assert state is not None and state.size == 100


def test_old_size_mismatch_is_409_with_the_size(witness: NationWitness) -> None:
    _, tree = _tree(50)
    _add(witness, 0, [], _note(tree, 20))
    with pytest.raises(WitnessRefusal) as caught:
        _add(witness, 0, [], _note(tree, 50))
    assert caught.value.status == 409 and caught.value.size == 20


def test_fork_is_refused_and_kept_as_evidence(witness: NationWitness,
                                              tmp_path: Path) -> None:
    _, tree = _tree(30)
    _add(witness, 0, [], _note(tree, 30))
    _, forked = _tree(30, b"-fork")
    with pytest.raises(WitnessRefusal) as caught:
        _add(witness, 30, [], _note(forked))
    assert caught.value.status == 409 and "two roots" in caught.value.message
    assert list((tmp_path / "witness-evidence").glob("*.json"))
    _, longer_fork = _tree(40, b"-fork")
    with pytest.raises(WitnessRefusal) as caught:
        _add(witness, 30, longer_fork.consistency_proof(30, 40), _note(longer_fork))
    assert caught.value.status == 422 and "not an extension" in caught.value.message
    assert witness.state(ORIGIN).size == 30  # type: ignore[union-attr]


def test_rollback_is_refused(witness: NationWitness) -> None:
    _, tree = _tree(30)
    _add(witness, 0, [], _note(tree, 30))
    with pytest.raises(WitnessRefusal) as caught:
        _add(witness, 30, [], _note(tree, 20))
    assert caught.value.status == 400  # old size above the checkpoint size


def test_state_survives_a_restart(tmp_path: Path) -> None:
    key = SigningKey.generate()
    first = NationWitness(tmp_path, "AUS", key, [LOG.verifier()])
    _, tree = _tree(30)
    _add(first, 0, [], _note(tree, 30))
    again = NationWitness(tmp_path, "AUS", key, [LOG.verifier()])
    _, forked = _tree(30, b"-fork")
    with pytest.raises(WitnessRefusal):
        _add(again, 30, [], _note(forked))
    with pytest.raises(WitnessRefusal) as caught:
        _add(again, 0, [], _note(tree, 10))  # a log rolled back to 10
    assert caught.value.status == 409 and caught.value.size == 30


def test_unknown_log_and_bad_signature(witness: NationWitness) -> None:
    _, tree = _tree(5)
    stranger = NoteSigner("example.org/other", SigningKey.generate())
    with pytest.raises(WitnessRefusal) as caught:
        _add(witness, 0, [], sign(Checkpoint("example.org/other", 5, tree.root()),
                                  stranger))
    assert caught.value.status == 404
    impostor = NoteSigner(ORIGIN, SigningKey.generate())
    with pytest.raises(WitnessRefusal) as caught:
        _add(witness, 0, [], _note(tree, signer=impostor))
    assert caught.value.status == 403


@pytest.mark.parametrize("body", [
    b"", b"old 1\n", b"old -1\n\nx", b"old 01\n\nx", b"new 1\n\nx",
    b"old 1\nnot-base64!\n\nx", b"old 1\nAAAA\n\nx",
    ("old 1\n" + "\n".join(["A" * 43 + "="] * 64) + "\n\nx").encode(),
])
def test_malformed_requests_are_400(witness: NationWitness, body: bytes) -> None:
    with pytest.raises(WitnessRefusal) as caught:
        witness.add_checkpoint(body)
    assert caught.value.status == 400


def test_request_format_round_trips() -> None:
    proof = [hashlib.sha256(b"a").digest(), hashlib.sha256(b"b").digest()]
    parsed = parse_add_checkpoint(format_add_checkpoint(7, proof, b"note\n"))
    assert parsed.old_size == 7 and list(parsed.proof) == proof
    assert parsed.note == b"note\n"
