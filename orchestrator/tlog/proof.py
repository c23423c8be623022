"""C2SP tlog-proof: an offline-verifiable proof that one entry is in a log.

The text format (c2sp.org/tlog-proof, ``.tlog-proof`` files)::

    c2sp.org/tlog-proof@v1
    [extra <base64>]
    index <decimal>
    <base64 hash>            inclusion proof, leaf's sibling first (RFC 6962 2.1.1)
    ...
    <empty line>
    <checkpoint signed note, verbatim, with its cosignatures>

:func:`format_proof` writes it, :func:`parse_proof` reads it strictly and
:func:`verify_proof` checks it against a leaf, trusted note verifiers and the
origin: the checkpoint's log signature (and the required cosignatures), then the
RFC 9162 inclusion of ``SHA-256(0x00 || leaf)`` at ``index`` under its root. The
``extra`` data is not authenticated and never trusted.

References
----------
.. [1] C2SP tlog-proof, https://c2sp.org/tlog-proof
.. [2] RFC 9162, section 2.1.3 (inclusion proofs).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.errors import ConfigError
from orchestrator.tlog.checkpoint import Checkpoint, VerifiedNote, open_note
from orchestrator.tlog.merkle import HASH_SIZE, leaf_hash, verify_inclusion
from orchestrator.tlog.note import NoteVerifier

__all__ = ["HEADER", "TlogProof", "format_proof", "parse_proof", "verify_proof"]

#: First line of every proof.
HEADER = "c2sp.org/tlog-proof@v1"


@dataclass(frozen=True)
class TlogProof:
    """A parsed tlog-proof.

    Attributes
    ----------
    index
        0-based index of the entry in the log.
    proof
        The inclusion proof, 32-byte hashes, leaf's sibling first.
    note
        The checkpoint's signed note, as issued (cosignatures included).
    extra
        Unauthenticated application data (empty when absent).
    """

    index: int
    proof: tuple[bytes, ...]
    note: bytes
    extra: bytes = b""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def format_proof(index: int, proof: Sequence[bytes], note: bytes, *,
                 extra: bytes = b"") -> bytes:
    """The tlog-proof text for entry ``index`` with ``proof`` under ``note``.

    Raises
    ------
    ValueError
        If ``index`` is negative, a hash is not 32 bytes or ``note`` does not end
        in a newline.
    """
    if index < 0:
        raise ValueError(f"index must be >= 0, not {index}")
    if any(len(h) != HASH_SIZE for h in proof):
        raise ValueError("every proof hash must be 32 bytes")
    if not note.endswith(b"\n"):
        raise ValueError("a signed note ends in a newline")
    lines = [HEADER]
    if extra:
        lines.append(f"extra {_b64(extra)}")
    lines.append(f"index {index}")
    lines.extend(_b64(h) for h in proof)
    return ("\n".join(lines) + "\n\n").encode("ascii") + note


def parse_proof(text: bytes, *, source: str = "<tlog-proof>") -> TlogProof:
    """Parse a tlog-proof strictly.

    Raises
    ------
    ConfigError
        On a wrong header, a malformed ``extra``/``index`` line, a hash that is not
        canonical base64 of 32 bytes, or a missing checkpoint (``source`` named).
    """
    head, sep, note = text.partition(b"\n\n")
    if not sep or not note:
        raise ConfigError("no checkpoint after the proof lines", source=source)
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError as exc:
        raise ConfigError("proof lines are not ASCII", source=source) from exc
    if lines[0] != HEADER:
        raise ConfigError(f"first line is not {HEADER!r}", source=source)
    pos, extra = 1, b""
    if pos < len(lines) and lines[pos].startswith("extra "):
        extra = _strict_b64(lines[pos][len("extra "):], "extra", source)
        pos += 1
    if pos >= len(lines) or not lines[pos].startswith("index "):
        raise ConfigError("missing index line", source=source)
    digits = lines[pos][len("index "):]
    if not digits.isdigit() or (digits != "0" and digits.startswith("0")):
        raise ConfigError(f"index {digits!r} is not a decimal without leading "
                          "zeroes", source=source)
    hashes = tuple(_strict_b64(line, "proof hash", source) for line in lines[pos + 1:])
    if any(len(h) != HASH_SIZE for h in hashes):
        raise ConfigError("a proof hash is not 32 bytes", source=source)
    if len(hashes) > 63:
        raise ConfigError("more than 63 proof hashes", source=source)
    return TlogProof(int(digits), hashes, note, extra)


def _strict_b64(text: str, what: str, source: str) -> bytes:
    try:
        raw = base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError) as exc:
        raise ConfigError(f"{what} is not base64", source=source) from exc
    if _b64(raw) != text:
        raise ConfigError(f"{what} is not canonical base64", source=source)
    return raw


def verify_proof(proof: TlogProof, leaf: bytes, verifiers: Sequence[NoteVerifier], *,
                 origin: str, required: Sequence[str]) -> VerifiedNote:
    """Check that ``leaf`` is entry ``proof.index`` of the checkpointed tree.

    Parameters
    ----------
    leaf
        The entry's exact bytes (hashed ``SHA-256(0x00 || leaf)``).
    verifiers
        Trusted note verifiers: the log's key and the witnesses' keys.
    origin
        The log's origin line that the checkpoint must carry.
    required
        Key names whose valid signature must be present (the log's, then any
        witnesses a policy requires).

    Returns
    -------
    VerifiedNote
        The checkpoint and the names of every key that verified.

    Raises
    ------
    CheckpointError
        A bad or missing required signature, or another origin.
    ProofError
        The inclusion proof does not lead to the checkpoint's root.
    """
    verified = open_note(proof.note, list(verifiers), required=list(required),
                         origin=origin)
    checkpoint: Checkpoint = verified.checkpoint
    verify_inclusion(leaf_hash(leaf), proof.index, checkpoint.size, list(proof.proof),
                     checkpoint.root)
    return verified
