"""Checkpoints (signed tree heads) of the custody log as C2SP signed notes.

A checkpoint commits to the log's size and RFC 9162 root hash
(c2sp.org/tlog-checkpoint)::

    sovereign-orchestrator.example/custody/<log id>
    <tree size in decimal>
    <base64 root hash>
    [extension lines]

The log signs it as a signed note with an Ed25519 key (type 0x01) and witnesses
add tlog-cosignature ``cosignature/v1`` lines (type 0x04); see
:mod:`orchestrator.tlog.note` for the note format and the cosignature
message. Verification follows the signed-note rules: lines from unknown keys
(name and hint) are ignored, a line from a known key that fails is fatal, and
a note is accepted only with the signatures the caller requires.

References
----------
.. [1] C2SP tlog-checkpoint, https://c2sp.org/tlog-checkpoint
.. [2] C2SP signed-note, https://c2sp.org/signed-note
.. [3] C2SP tlog-cosignature, https://c2sp.org/tlog-cosignature
.. [4] RFC 9162, section 2.1 (the tree whose root a checkpoint carries).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from orchestrator.errors import ConfigError
from orchestrator.tlog.merkle import HASH_SIZE
from orchestrator.tlog.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    CONTROL_RE,
    MAX_NOTE_SIZE,
    MAX_SIGNATURES,
    CheckpointError,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    b64decode_strict,
    key_hint,
    malformed,
    split_note,
)

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "Checkpoint",
    "CheckpointError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "SignedNote",
    "VerifiedNote",
    "add_signature",
    "cosign",
    "key_hint",
    "open_note",
    "parse_note",
    "sign",
    "verify_cosigned",
    "verify_note",
]

_SIZE_RE = re.compile(r"(0|[1-9][0-9]{0,19})")


@dataclass(frozen=True)
class Checkpoint:
    """A tlog-checkpoint: log ``origin``, tree ``size`` and 32-byte ``root``."""

    origin: str
    size: int
    root: bytes
    extensions: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if (not isinstance(self.origin, str) or not self.origin.strip()
                or self.origin != self.origin.strip() or "\n" in self.origin
                or CONTROL_RE.search(self.origin)):
            raise ConfigError(f"invalid checkpoint origin {self.origin!r}")
        if not isinstance(self.size, int) or isinstance(self.size, bool) \
                or not 0 <= self.size < 1 << 64:
            raise ConfigError(f"invalid checkpoint size {self.size!r}")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise ConfigError(f"checkpoint root must be {HASH_SIZE} bytes")
        for ext in self.extensions:
            if not isinstance(ext, str) or not ext or "\n" in ext \
                    or CONTROL_RE.search(ext):
                raise ConfigError(f"invalid checkpoint extension line {ext!r}")

    def body(self) -> bytes:
        """Return the checkpoint text (each line ending in ``\\n``)."""
        root = base64.b64encode(self.root).decode("ascii")
        lines = [self.origin, str(self.size), root, *self.extensions]
        return "".join(line + "\n" for line in lines).encode("utf-8")

    @classmethod
    def from_body(cls, text: bytes) -> Checkpoint:
        """Parse checkpoint text; raises :class:`CheckpointError` (malformed)."""
        try:
            decoded = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise malformed("checkpoint is not UTF-8") from exc
        if not decoded.endswith("\n"):
            raise malformed("checkpoint does not end with a newline")
        lines = decoded[:-1].split("\n")
        if len(lines) < 3:
            raise malformed(f"checkpoint has {len(lines)} lines, not at least 3")
        origin, size, root, *extensions = lines
        if not _SIZE_RE.fullmatch(size):
            raise malformed(f"tree size {size!r} is not a canonical decimal")
        root_bytes = b64decode_strict(root, "root hash")
        if len(root_bytes) != HASH_SIZE:
            raise malformed(f"root hash has {len(root_bytes)} bytes, not 32")
        try:
            return cls(origin, int(size), root_bytes, tuple(extensions))
        except ConfigError as exc:
            raise malformed(exc.message) from exc


@dataclass(frozen=True)
class SignedNote:
    """A parsed (not yet verified) checkpoint note."""

    checkpoint: Checkpoint
    text: bytes
    signatures: tuple[NoteSignature, ...]


@dataclass(frozen=True)
class VerifiedNote:
    """A verified note: its checkpoint and the key names whose signatures were
    checked, each with its cosignature timestamp (``None`` for plain Ed25519)."""

    checkpoint: Checkpoint
    verified: dict[str, int | None] = field(default_factory=dict)


def parse_note(note: bytes) -> SignedNote:
    """Split and parse a signed checkpoint note (signatures not yet verified).

    Raises
    ------
    CheckpointError
        ``oversize`` above :data:`MAX_NOTE_SIZE`, else ``malformed``.
    """
    text, signatures = split_note(note)
    return SignedNote(Checkpoint.from_body(text), text, signatures)


def open_note(
    note: bytes,
    verifiers: Sequence[NoteVerifier],
    *,
    required: int | Iterable[str] = 1,
    origin: str | None = None,
) -> VerifiedNote:
    """Verify a signed checkpoint note and return what was verified.

    Parameters
    ----------
    note
        The note bytes.
    verifiers
        Known keys; a line is matched to a key by name and key hint, lines of
        unknown keys are ignored.
    required
        Either the least number of distinct key names with a valid signature, or
        the key names that must all have signed.
    origin
        Expected checkpoint origin, if any.

    Raises
    ------
    CheckpointError
        With ``reason`` ``oversize``, ``malformed``, ``wrong-origin``,
        ``bad-signature`` (a known key's signature fails), ``unknown-key`` (no
        line is from a known key, or a required name signed with an unknown
        key) or ``missing-signer`` (a required name did not sign).
    """
    parsed = parse_note(note)
    cp = parsed.checkpoint
    if origin is not None and cp.origin != origin:
        raise CheckpointError(f"origin is {cp.origin!r}, expected {origin!r}",
                              reason="wrong-origin")
    keys = {(v.name, v.hint): v for v in verifiers}
    verified: dict[str, int | None] = {}
    for sig in parsed.signatures:
        verifier = keys.get((sig.name, sig.hint))
        if verifier is not None:
            verified[sig.name] = verifier.verify(parsed.text, sig.signature)
    if isinstance(required, int):
        if required < 1:
            raise ConfigError("at least one signature must be required")
        if not verified:
            raise CheckpointError("no signature is from a known key",
                                  reason="unknown-key")
        if len(verified) < required:
            raise CheckpointError(f"{len(verified)} known signers, {required} required",
                                  reason="missing-signer")
    else:
        names = sorted(set(required))
        if not names:
            raise ConfigError("at least one signer must be required")
        missing = [n for n in names if n not in verified]
        unknown = [n for n in missing if any(s.name == n for s in parsed.signatures)]
        if unknown:
            raise CheckpointError(f"signature by {', '.join(unknown)} is from an "
                                  "unknown key", reason="unknown-key")
        if missing:
            raise CheckpointError(f"no valid signature by {', '.join(missing)}",
                                  reason="missing-signer")
    return VerifiedNote(cp, verified)


def verify_note(
    note: bytes,
    verifiers: Sequence[NoteVerifier],
    *,
    required: int | Iterable[str] = 1,
    origin: str | None = None,
) -> Checkpoint:
    """Verify a signed checkpoint note and return its checkpoint.

    See :func:`open_note` for the parameters and errors.
    """
    return open_note(note, verifiers, required=required, origin=origin).checkpoint


def verify_cosigned(
    note: bytes,
    log_verifier: NoteVerifier,
    witnesses: Sequence[NoteVerifier],
    *,
    required_witnesses: Iterable[str],
    origin: str | None = None,
) -> VerifiedNote:
    """Verify the log's signature and cosignatures of all ``required_witnesses``.

    ``witnesses`` are :data:`ALG_COSIGNATURE_V1` keys (say, one per nation);
    ``verified`` maps each signer to its cosignature timestamp.
    """
    if any(w.alg != ALG_COSIGNATURE_V1 for w in witnesses):
        raise ConfigError("witness keys must be cosignature/v1 (type 0x04) keys")
    required = [log_verifier.name, *required_witnesses]
    return open_note(note, [log_verifier, *witnesses], required=required,
                     origin=origin)


def sign(checkpoint: Checkpoint, signer: NoteSigner) -> bytes:
    """Return the note of ``checkpoint`` signed by ``signer`` (type 0x01)."""
    if signer.alg != ALG_ED25519:
        raise ConfigError("the log signs with a type 0x01 (Ed25519) key")
    text = checkpoint.body()
    return text + b"\n" + signer.signature_line(text)


def add_signature(
    note: bytes, signer: NoteSigner, *, timestamp: int | None = None
) -> bytes:
    """Append ``signer``'s signature line to an existing (parsable) note."""
    parsed = parse_note(note)
    if any(s.name == signer.name and s.hint == signer.hint
           for s in parsed.signatures):
        raise ConfigError(f"note is already signed by {signer.name!r}")
    return note + signer.signature_line(parsed.text, timestamp=timestamp)


def cosign(checkpoint: Checkpoint, witness_signer: NoteSigner, timestamp: int) -> bytes:
    """Return a tlog-cosignature ``cosignature/v1`` line for ``checkpoint``."""
    if witness_signer.alg != ALG_COSIGNATURE_V1:
        raise ConfigError("witnesses cosign with a type 0x04 (cosignature/v1) key")
    return witness_signer.signature_line(checkpoint.body(), timestamp=timestamp)
