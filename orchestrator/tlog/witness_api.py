"""The C2SP tlog-witness ``add-checkpoint`` request and its answers (pure).

Request body (``POST <prefix>/add-checkpoint``)::

    old <size>\\n
    <base64 consistency proof hash>\\n   (zero to 63 lines)
    \\n
    <checkpoint signed note>

Answers: 200 with one or more cosignature lines (``— <name> <base64>\\n``); 409
with ``text/x.tlog.size`` holding the witness's size when ``old`` is not it (or
the same size carries another root); 404 for an unknown origin; 403 when no log
signature verifies; 400 for a malformed request or ``old`` above the size; 422
when the consistency proof does not verify (c2sp.org/tlog-witness).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.tlog.merkle import HASH_SIZE

__all__ = ["SIZE_MEDIA_TYPE", "AddCheckpoint", "WitnessRefusal",
           "format_add_checkpoint", "parse_add_checkpoint"]

#: Content type of a 409 answer carrying the witness's latest size.
SIZE_MEDIA_TYPE = "text/x.tlog.size"
#: Most consistency proof lines a request may carry.
MAX_PROOF_LINES = 63


class WitnessRefusal(Exception):
    """A witness's refusal with its tlog-witness HTTP status.

    Attributes
    ----------
    status
        400, 403, 404, 409 or 422.
    message
        Why (logged; the body of a 409 for an old-size mismatch is the size).
    size
        The witness's latest cosigned size, for a 409 old-size mismatch.
    """

    def __init__(self, status: int, message: str, *, size: int | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.size = size


@dataclass(frozen=True)
class AddCheckpoint:
    """A parsed ``add-checkpoint`` request."""

    old_size: int
    proof: tuple[bytes, ...]
    note: bytes


def format_add_checkpoint(old_size: int, proof: Sequence[bytes], note: bytes) -> bytes:
    """The request body for ``add-checkpoint``.

    Raises
    ------
    ValueError
        On a negative size, a hash that is not 32 bytes, or too many hashes.
    """
    if old_size < 0 or len(proof) > MAX_PROOF_LINES or any(
            len(h) != HASH_SIZE for h in proof):
        raise ValueError("bad add-checkpoint request")
    lines = [f"old {old_size}", *(base64.b64encode(h).decode("ascii") for h in proof)]
    return ("\n".join(lines) + "\n\n").encode("ascii") + note


def parse_add_checkpoint(body: bytes) -> AddCheckpoint:
    """Parse an ``add-checkpoint`` request strictly.

    Raises
    ------
    WitnessRefusal
        400 for anything malformed.
    """
    head, sep, note = body.partition(b"\n\n")
    if not sep or not note:
        raise WitnessRefusal(400, "no checkpoint after the old size and proof")
    try:
        lines = head.decode("ascii").split("\n")
    except UnicodeDecodeError as exc:
        raise WitnessRefusal(400, "request lines are not ASCII") from exc
    first = lines[0]
    digits = first[len("old "):] if first.startswith("old ") else ""
    if not digits.isdigit() or (digits != "0" and digits.startswith("0")):
        raise WitnessRefusal(400, "first line must be 'old <size>' without leading "
                                  "zeroes")
    if len(lines) - 1 > MAX_PROOF_LINES:
        raise WitnessRefusal(400, f"more than {MAX_PROOF_LINES} proof lines")
    proof = []
    for line in lines[1:]:
        try:
            h = base64.b64decode(line.encode("ascii"), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise WitnessRefusal(400, "a proof line is not base64") from exc
        if len(h) != HASH_SIZE:
            raise WitnessRefusal(400, "a proof hash is not 32 bytes")
        proof.append(h)
    return AddCheckpoint(int(digits), tuple(proof), note)
