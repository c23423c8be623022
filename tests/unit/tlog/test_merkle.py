"""Property tests of the RFC 9162 Merkle tree against its recursive definition."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.errors import IntegrityError
from orchestrator.tlog import events
from orchestrator.tlog.merkle import (
    EMPTY_ROOT,
    MerkleTree,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_hash,
    verify_consistency,
    verify_inclusion,
)


def _leaves(n: int, salt: int = 0) -> list[bytes]:
    return [leaf_hash(f"{salt}:{i}".encode()) for i in range(n)]


def _k(n: int) -> int:
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def naive_mth(d: list[bytes]) -> bytes:
    """MTH(D[n]) exactly as RFC 9162 section 2.1.1 writes it (over leaf hashes)."""
    if not d:
        return hashlib.sha256(b"").digest()
    if len(d) == 1:
        return d[0]
    k = _k(len(d))
    return node_hash(naive_mth(d[:k]), naive_mth(d[k:]))


def naive_path(m: int, d: list[bytes]) -> list[bytes]:
    """PATH(m, D[n]), RFC 9162 section 2.1.3.1."""
    if len(d) == 1:
        return []
    k = _k(len(d))
    if m < k:
        return [*naive_path(m, d[:k]), naive_mth(d[k:])]
    return [*naive_path(m - k, d[k:]), naive_mth(d[:k])]


def naive_subproof(m: int, d: list[bytes], b: bool) -> list[bytes]:
    """SUBPROOF(m, D[n], b), RFC 9162 section 2.1.4.1."""
    if m == len(d):
        return [] if b else [naive_mth(d)]
    k = _k(len(d))
    if m <= k:
        return [*naive_subproof(m, d[:k], b), naive_mth(d[k:])]
    return [*naive_subproof(m - k, d[k:], False), naive_mth(d[:k])]


def _flip(proof: list[bytes], i: int, bit: int) -> list[bytes]:
    out = list(proof)
    h = bytearray(out[i])
    h[bit // 8 % 32] ^= 1 << (bit % 8)
    out[i] = bytes(h)
    return out


def test_hash_primitives() -> None:
    assert leaf_hash(b"x") == hashlib.sha256(b"\x00x").digest()
    assert node_hash(b"a" * 32, b"b" * 32) == hashlib.sha256(
        b"\x01" + b"a" * 32 + b"b" * 32).digest()
    assert root_hash([]) == EMPTY_ROOT == MerkleTree().root()
    assert root_hash(_leaves(1)) == _leaves(1)[0]
    # RFC 9162 leaf hash agrees with the custody entries' entry_hash() definition.
    assert leaf_hash(b"entry").hex() == events.leaf_hash(b"entry")


@pytest.mark.parametrize("n", [*range(0, 40), 63, 64, 65, 127, 128, 129, 255, 257])
def test_against_naive_definition(n: int) -> None:
    d = _leaves(n)
    tree = MerkleTree(d)
    assert root_hash(d) == naive_mth(d) == tree.root()
    for m in range(n):
        assert inclusion_proof(d, m) == naive_path(m, d) == tree.inclusion_proof(m)
    for m in range(1, n):
        assert tree.consistency_proof(m) == naive_subproof(m, d, True)
        assert consistency_proof(d, m) == naive_subproof(m, d, True)


@settings(max_examples=25, deadline=None)
@given(n=st.integers(min_value=1, max_value=300), salt=st.integers(0, 2**16),
       bit=st.integers(0, 255))
def test_inclusion_proofs_verify_and_tampering_fails(
    n: int, salt: int, bit: int
) -> None:
    d = _leaves(n + 1, salt)
    tree = MerkleTree(d)
    root, root_up, root_down = tree.root(n), tree.root(n + 1), tree.root(n - 1)
    for m in range(n):
        proof = tree.inclusion_proof(m, n)
        verify_inclusion(d[m], m, n, proof, root)
        wrong = (m + 1) % n
        if wrong != m:
            with pytest.raises(ProofError):
                verify_inclusion(d[m], wrong, n, proof, root)
            with pytest.raises(ProofError):
                verify_inclusion(d[wrong], m, n, proof, root)
        with pytest.raises(ProofError):
            verify_inclusion(d[m], m, n + 1, proof, root_up)
        if m < n - 1:
            with pytest.raises(ProofError):
                verify_inclusion(d[m], m, n - 1, proof, root_down)
        if proof:
            with pytest.raises(ProofError):
                verify_inclusion(d[m], m, n, _flip(proof, m % len(proof), bit), root)
            with pytest.raises(ProofError):
                verify_inclusion(d[m], m, n, proof[:-1], root)
        with pytest.raises(ProofError):
            verify_inclusion(d[m], m, n, [*proof, root], root)
        with pytest.raises(ProofError):
            verify_inclusion(d[m], m, n, proof, _flip([root], 0, bit)[0])


@settings(max_examples=25, deadline=None)
@given(n=st.integers(min_value=2, max_value=300), salt=st.integers(0, 2**16),
       bit=st.integers(0, 255))
def test_consistency_proofs_verify_and_tampering_fails(
    n: int, salt: int, bit: int
) -> None:
    d = _leaves(n + 1, salt)
    tree = MerkleTree(d)
    roots = [tree.root(s) for s in range(n + 2)]
    for m in range(1, n + 1):
        proof = tree.consistency_proof(m, n)
        verify_consistency(m, n, proof, roots[m], roots[n])
        with pytest.raises(ProofError):
            verify_consistency(m, n + 1, proof, roots[m], roots[n + 1])
        if m < n:
            with pytest.raises(ProofError):
                verify_consistency(m + 1, n, proof, roots[m + 1], roots[n])
            with pytest.raises(ProofError):
                verify_consistency(m, n, _flip(proof, m % len(proof), bit),
                                   roots[m], roots[n])
            with pytest.raises(ProofError):
                verify_consistency(m, n, proof, _flip([roots[m]], 0, bit)[0],
                                   roots[n])
            with pytest.raises(ProofError):
                verify_consistency(m, n, proof[:-1], roots[m], roots[n])
            with pytest.raises(ProofError):
                verify_consistency(m, n, [*proof, roots[n]], roots[m], roots[n])
        if m > 1:
            with pytest.raises(ProofError):
                verify_consistency(m - 1, n, proof, roots[m - 1], roots[n])


@settings(max_examples=20, deadline=None)
@given(n=st.integers(min_value=0, max_value=300), salt=st.integers(0, 2**16))
def test_incremental_roots_equal_prefix_roots(n: int, salt: int) -> None:
    d = _leaves(n, salt)
    tree = MerkleTree()
    for i, h in enumerate(d):
        assert tree.append(h) == i
        assert tree.root() == root_hash(d[: i + 1])
    assert tree.size == len(tree) == n
    batch = MerkleTree(d)
    for s in range(n + 1):
        assert tree.root(s) == batch.root(s) == root_hash(d[:s])


def test_input_checks() -> None:
    tree = MerkleTree(_leaves(5))
    with pytest.raises(ValueError):
        tree.append(b"short")
    with pytest.raises(ValueError):
        MerkleTree([b"x" * 31])
    with pytest.raises(ValueError):
        tree.root(6)
    with pytest.raises(ValueError):
        tree.inclusion_proof(5)
    with pytest.raises(ValueError):
        tree.inclusion_proof(-1)
    with pytest.raises(ValueError):
        tree.consistency_proof(6)
    assert tree.consistency_proof(0) == tree.consistency_proof(5) == []
    assert tree.leaf(2) == _leaves(5)[2]


def test_verifier_messages() -> None:
    d = _leaves(7)
    tree = MerkleTree(d)
    proof = tree.inclusion_proof(3)
    with pytest.raises(ProofError, match="root hash mismatch: expected"):
        verify_inclusion(d[3], 3, 7, proof, d[0])
    with pytest.raises(ProofError, match="not in"):
        verify_inclusion(d[3], 7, 7, proof, tree.root())
    with pytest.raises(ProofError, match="must be 32 bytes"):
        verify_inclusion(b"", 3, 7, proof, tree.root())
    with pytest.raises(ProofError, match="greater than"):
        verify_consistency(7, 3, [], tree.root(), tree.root(3))
    with pytest.raises(ProofError, match="empty tree"):
        verify_consistency(0, 0, [], EMPTY_ROOT, EMPTY_ROOT)
    with pytest.raises(ProofError, match="empty consistency proof"):
        verify_consistency(3, 7, [], tree.root(3), tree.root())
    verify_consistency(7, 7, [], tree.root(), tree.root())
    assert issubclass(ProofError, IntegrityError)
