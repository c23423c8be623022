"""Merkle tree hashes and proofs for the custody transparency log (RFC 9162).

The tree is the one of RFC 9162 section 2.1 (identical to RFC 6962 section 2.1):
leaves are hashed ``SHA-256(0x00 || data)`` and interior nodes
``SHA-256(0x01 || left || right)``; a tree of ``n`` leaves splits at ``k``, the
largest power of two smaller than ``n``. The empty tree hashes to ``SHA-256("")``.

Everything here is pure (no I/O). :class:`MerkleTree` keeps the hashes of every
complete subtree so that appends are amortised O(1) hashes and roots, inclusion
proofs and consistency proofs for any earlier size cost O(log n) hashes.

The verifiers follow RFC 9162 sections 2.1.3.2 and 2.1.4.2 step by step and are
checked against the transparency-dev/merkle test vectors. They return ``None`` or
raise :class:`ProofError` with what was expected and what was computed.

References
----------
.. [1] RFC 9162, "Certificate Transparency Version 2.0", section 2.1,
   https://www.rfc-editor.org/rfc/rfc9162#section-2.1
.. [2] RFC 6962, "Certificate Transparency", section 2.1.
.. [3] transparency-dev/merkle, ``proof/verify.go`` and ``testdata/``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from orchestrator.errors import IntegrityError

__all__ = [
    "EMPTY_ROOT",
    "HASH_SIZE",
    "MerkleTree",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_hash",
    "verify_consistency",
    "verify_inclusion",
]

HASH_SIZE = 32
"""Size of every tree hash in bytes (SHA-256)."""
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""MTH({}) = SHA-256 of the empty string (RFC 9162 section 2.1.1)."""

_sha256 = hashlib.sha256


class ProofError(IntegrityError):
    """An inclusion or consistency proof (or its inputs) failed verification."""


def leaf_hash(data: bytes) -> bytes:
    """Return the leaf hash ``SHA-256(0x00 || data)`` (RFC 9162 section 2.1.1)."""
    return _sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """Return the interior node hash ``SHA-256(0x01 || left || right)``."""
    return _sha256(b"\x01" + left + right).digest()


def _next_level(level: Sequence[bytes]) -> list[bytes]:
    """Hash adjacent pairs of one level; a lone last node is not carried here."""
    sha = _sha256
    return [sha(b"\x01" + a + b).digest() for a, b in zip(
        level[0::2], level[1::2], strict=False)]


def _build_levels(leaf_hashes: Iterable[bytes]) -> list[list[bytes]]:
    """Return ``levels`` where ``levels[h][i]`` is the root of the complete subtree
    of ``2**h`` leaves starting at leaf ``i * 2**h``."""
    levels = [list(leaf_hashes)]
    while len(levels[-1]) > 1:
        levels.append(_next_level(levels[-1]))
    return levels


def _largest_power_of_two_below(n: int) -> int:
    """Return ``k``, the largest power of two with ``k < n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


class MerkleTree:
    """An append-only RFC 9162 Merkle tree held in memory.

    Keeps the root of every complete (power-of-two, aligned) subtree, like a
    compact range extended to the whole tree, so that roots and proofs for any
    size up to the current one are O(log n) hash operations.

    Parameters
    ----------
    leaf_hashes
        Initial leaf hashes (32 bytes each), built level by level.

    Examples
    --------
    >>> tree = MerkleTree()
    >>> tree.append(leaf_hash(b"a"))
    0
    >>> tree.root() == leaf_hash(b"a")
    True
    """

    __slots__ = ("_levels",)

    def __init__(self, leaf_hashes: Iterable[bytes] = ()) -> None:
        hashes = list(leaf_hashes)
        for i, h in enumerate(hashes):
            _check_leaf(h, i)
        self._levels = _build_levels(hashes)

    @property
    def size(self) -> int:
        """Number of leaves."""
        return len(self._levels[0])

    def __len__(self) -> int:
        return self.size

    def leaf(self, index: int) -> bytes:
        """Return the leaf hash at ``index``."""
        return self._levels[0][index]

    def append(self, leaf_hash: bytes) -> int:
        """Append one leaf hash and return its index (amortised O(1) hashes)."""
        index = self.size
        _check_leaf(leaf_hash, index)
        levels = self._levels
        levels[0].append(leaf_hash)
        height = 0
        while len(levels[height]) % 2 == 0:
            level = levels[height]
            parent = node_hash(level[-2], level[-1])
            if height + 1 == len(levels):
                levels.append([])
            levels[height + 1].append(parent)
            height += 1
        return index

    def extend(self, leaf_hashes: Iterable[bytes]) -> None:
        """Append every leaf hash of ``leaf_hashes`` in order."""
        for h in leaf_hashes:
            self.append(h)

    def subtree_root(self, height: int, index: int) -> bytes:
        """Return MTH of the complete subtree of ``2**height`` leaves starting at
        leaf ``index * 2**height`` (a hash of a C2SP tlog-tiles tile).

        Raises
        ------
        ValueError
            If that subtree is not complete in this tree.
        """
        levels = self._levels
        if height < 0 or index < 0 or (index + 1) << height > self.size:
            raise ValueError(
                f"subtree {index} of height {height} is not complete in a tree of "
                f"{self.size} leaves")
        return levels[height][index]

    def _range_root(self, lo: int, hi: int) -> bytes:
        """MTH of leaves ``[lo, hi)`` where ``lo`` is a multiple of a power of two
        ``>= hi - lo`` (true of every subtree in RFC 9162 sections 2.1.1-2.1.4)."""
        if lo == hi:
            return EMPTY_ROOT
        parts: list[bytes] = []
        pos = lo
        for height in range((hi - lo).bit_length() - 1, -1, -1):
            if (hi - lo) >> height & 1:
                parts.append(self._levels[height][pos >> height])
                pos += 1 << height
        root = parts[-1]
        for part in reversed(parts[:-1]):
            root = node_hash(part, root)
        return root

    def _check_size(self, size: int | None) -> int:
        if size is None:
            return self.size
        if not 0 <= size <= self.size:
            raise ValueError(f"tree size {size} is not in [0, {self.size}]")
        return size

    def root(self, size: int | None = None) -> bytes:
        """Return MTH of the first ``size`` leaves (default: all of them)."""
        return self._range_root(0, self._check_size(size))

    def inclusion_proof(self, index: int, size: int | None = None) -> list[bytes]:
        """Return PATH(index, D[0:size]) (RFC 9162 section 2.1.3.1), leaf first.

        Raises
        ------
        ValueError
            If ``index`` is not in ``[0, size)`` or ``size`` exceeds the tree.
        """
        n = self._check_size(size)
        if not 0 <= index < n:
            raise ValueError(f"leaf index {index} is not in [0, {n})")
        proof: list[bytes] = []
        lo, hi = 0, n
        while hi - lo > 1:
            k = _largest_power_of_two_below(hi - lo)
            if index < lo + k:
                proof.append(self._range_root(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range_root(lo, lo + k))
                lo += k
        proof.reverse()
        return proof

    def consistency_proof(self, old_size: int, size: int | None = None) -> list[bytes]:
        """Return PROOF(old_size, D[0:size]) (RFC 9162 section 2.1.4.1).

        ``old_size == size`` and ``old_size == 0`` give the empty proof (there is
        nothing to prove; :func:`verify_consistency` rejects ``old_size == 0``).

        Raises
        ------
        ValueError
            If ``old_size`` is not in ``[0, size]`` or ``size`` exceeds the tree.
        """
        n = self._check_size(size)
        if not 0 <= old_size <= n:
            raise ValueError(f"old size {old_size} is not in [0, {n}]")
        if old_size in (0, n):
            return []
        proof: list[bytes] = []
        lo, hi, m, complete = 0, n, old_size, True
        # SUBPROOF(m, D[lo:hi], complete), unrolled; the outermost hash comes last.
        while m != hi - lo:
            k = _largest_power_of_two_below(hi - lo)
            if m <= k:
                proof.append(self._range_root(lo + k, hi))
                hi = lo + k
            else:
                proof.append(self._range_root(lo, lo + k))
                lo, m, complete = lo + k, m - k, False
        if not complete:
            proof.append(self._range_root(lo, hi))
        proof.reverse()
        return proof


def _check_leaf(h: object, index: int) -> None:
    if not isinstance(h, bytes) or len(h) != HASH_SIZE:
        raise ValueError(f"leaf hash {index} must be {HASH_SIZE} bytes")


def root_hash(leaf_hashes: Sequence[bytes]) -> bytes:
    """Return MTH(D[n]) of the given leaf hashes (RFC 9162 section 2.1.1).

    Iterative, level by level: about ``n`` SHA-256 calls and ``n`` extra hashes
    of memory at most.
    """
    level = list(leaf_hashes)
    if not level:
        return EMPTY_ROOT
    while len(level) > 1:
        parents = _next_level(level)
        if len(level) % 2:
            parents.append(level[-1])
        level = parents
    return level[0]


def inclusion_proof(leaf_hashes: Sequence[bytes], index: int) -> list[bytes]:
    """Return the inclusion proof PATH(index, D[n]) (RFC 9162 section 2.1.3.1).

    Builds the tree first (O(n)); keep a :class:`MerkleTree` for many proofs.
    """
    return MerkleTree(leaf_hashes).inclusion_proof(index)


def consistency_proof(leaf_hashes: Sequence[bytes], old_size: int) -> list[bytes]:
    """Return the consistency proof PROOF(old_size, D[n]) (RFC 9162 2.1.4.1).

    Builds the tree first (O(n)); keep a :class:`MerkleTree` for many proofs.
    """
    return MerkleTree(leaf_hashes).consistency_proof(old_size)


def _check_hash(value: object, what: str) -> bytes:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        got = len(value) if isinstance(value, bytes) else type(value).__name__
        raise ProofError(f"{what} must be {HASH_SIZE} bytes, got {got}")
    return value


def _mismatch(what: str, expected: bytes, got: bytes) -> ProofError:
    return ProofError(
        f"{what} mismatch: expected {expected.hex()}, calculated {got.hex()}")


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Verify an inclusion proof (RFC 9162 section 2.1.3.2).

    Parameters
    ----------
    leaf_hash
        The 32-byte leaf hash claimed at ``index``.
    index, tree_size
        Leaf index and size of the tree the proof is for.
    proof
        Sibling hashes from the leaf upwards.
    root
        The trusted 32-byte root hash of the tree of ``tree_size`` leaves.

    Raises
    ------
    ProofError
        If an input is malformed or the proof does not lead to ``root``.
    """
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root hash")
    if not 0 <= index < tree_size:
        raise ProofError(f"leaf index {index} is not in [0, tree size {tree_size})")
    fn, sn, r = index, tree_size - 1, leaf_hash
    for i, p in enumerate(proof):
        _check_hash(p, f"proof[{i}]")
        if sn == 0:
            raise ProofError(
                f"proof has {len(proof)} hashes, more than the tree needs ({i})")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"proof has {len(proof)} hashes, too few for the tree")
    if r != root:
        raise _mismatch("root hash", root, r)


def verify_consistency(
    size1: int, size2: int, proof: Sequence[bytes], root1: bytes, root2: bytes
) -> None:
    """Verify a consistency proof between two tree sizes (RFC 9162 2.1.4.2).

    Equal sizes are consistent exactly when the roots are equal and the proof is
    empty. A size of 0 is rejected (as in the transparency-dev vectors): a
    consistency check from the empty tree proves nothing, so callers treat that
    case themselves.

    Raises
    ------
    ProofError
        If the sizes are out of order, an input is malformed, or the proof does
        not lead from ``root1`` to ``root2``.
    """
    if size1 < 0 or size2 < 0:
        raise ProofError(f"tree sizes must not be negative ({size1}, {size2})")
    if size1 > size2:
        raise ProofError(f"size1 ({size1}) is greater than size2 ({size2})")
    if size1 == 0:
        raise ProofError("consistency with the empty tree (size1 = 0) proves nothing")
    if size1 == size2:
        if proof:
            raise ProofError(
                f"sizes are equal but the proof has {len(proof)} hashes, not 0")
        if root1 != root2:
            raise _mismatch("root hash", root1, root2)
        return
    _check_hash(root1, "root1")
    _check_hash(root2, "root2")
    if not proof:
        raise ProofError("empty consistency proof for different tree sizes")
    path = [_check_hash(p, f"proof[{i}]") for i, p in enumerate(proof)]
    if size1 & (size1 - 1) == 0:  # step 2: size1 is a power of two
        path.insert(0, root1)
    fn, sn = size1 - 1, size2 - 1
    while fn & 1:  # step 4
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(
                f"proof has {len(proof)} hashes, more than the trees need")
        if fn & 1 or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while fn and not fn & 1:
                    fn >>= 1
                    sn >>= 1
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(f"proof has {len(proof)} hashes, too few for the trees")
    if fr != root1:
        raise _mismatch("root1", root1, fr)
    if sr != root2:
        raise _mismatch("root2", root2, sr)
