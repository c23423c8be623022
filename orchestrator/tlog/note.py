"""C2SP signed notes: key names, key hints, signers, verifiers, note splitting.

A signed note (c2sp.org/signed-note) is UTF-8 text ending in a newline, a blank
line, then one line per signature, ``"— <key name> <base64(key hint || sig)>"``
(U+2014 EM DASH, space). The 4-byte key hint is the first bytes of
``SHA-256(key name || 0x0A || signature type || public key)``.

Signature types used here:

* ``0x01`` (:data:`ALG_ED25519`): Ed25519 (RFC 8032) over the note text; the log
  signs checkpoints with it.
* ``0x04`` (:data:`ALG_COSIGNATURE_V1`): a witness cosignature per
  c2sp.org/tlog-cosignature (checked against the spec text): the witness signs
  ``"cosignature/v1\\ntime <unix seconds>\\n"`` followed by the whole note
  body of the checkpoint (extension lines included), and the signature value
  is ``key hint (4) || timestamp (8, big-endian, < 2**63) || Ed25519 sig (64)``.
  The key hint uses type 0x04, so one key yields different hints as a log key
  and as a witness key.

Verifier keys are written ``<name>+<hex hint>+<base64(type || public key)>``.
The checkpoint semantics live in :mod:`orchestrator.tlog.checkpoint`.

References
----------
.. [1] C2SP signed-note, https://c2sp.org/signed-note
.. [2] C2SP tlog-cosignature, https://c2sp.org/tlog-cosignature
.. [3] RFC 8032, "Edwards-Curve Digital Signature Algorithm (EdDSA)".
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from dataclasses import dataclass
from typing import NamedTuple

from orchestrator.crypto import SigningKey, verify_signature
from orchestrator.errors import ConfigError, IntegrityError

__all__ = [
    "ALG_COSIGNATURE_V1",
    "ALG_ED25519",
    "CONTROL_RE",
    "MAX_NOTE_SIZE",
    "MAX_SIGNATURES",
    "CheckpointError",
    "NoteSignature",
    "NoteSigner",
    "NoteVerifier",
    "b64decode_strict",
    "check_key_name",
    "key_hint",
    "malformed",
    "split_note",
]

ALG_ED25519 = 0x01
"""Signed-note signature type of plain Ed25519 signatures."""
ALG_COSIGNATURE_V1 = 0x04
"""Signed-note signature type of tlog-cosignature ``cosignature/v1``."""
MAX_NOTE_SIZE = 1 << 20
"""Largest note accepted (1 MiB)."""
MAX_SIGNATURES = 100
"""Most signature lines accepted in one note."""

_DASH = "\u2014 "
CONTROL_RE = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")
"""ASCII control characters other than newline (forbidden in notes)."""
_SIG_LEN = {ALG_ED25519: 64, ALG_COSIGNATURE_V1: 8 + 64}


class CheckpointError(IntegrityError):
    """A checkpoint note is malformed or its signatures do not satisfy the caller.

    ``reason`` is one of ``"oversize"``, ``"malformed"``, ``"unknown-key"``,
    ``"bad-signature"``, ``"missing-signer"``, ``"wrong-origin"``.
    """

    def __init__(self, message: str, *, reason: str, source: str | None = None):
        super().__init__(f"{reason}: {message}", source=source)
        self.reason = reason


def malformed(message: str) -> CheckpointError:
    """Return a ``CheckpointError`` with reason ``malformed``."""
    return CheckpointError(message, reason="malformed")


def b64decode_strict(text: str, what: str) -> bytes:
    """Decode canonical standard base64; else ``CheckpointError`` (malformed)."""
    try:
        data = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise malformed(f"{what} is not valid base64") from exc
    if base64.b64encode(data).decode("ascii") != text:
        raise malformed(f"{what} is not canonical base64")
    return data


def check_key_name(name: object) -> str:
    """Return ``name`` if it is a valid key name, else raise ``ConfigError``."""
    if (not isinstance(name, str) or not name or "+" in name
            or any(c.isspace() for c in name) or CONTROL_RE.search(name)):
        raise ConfigError(f"invalid signed-note key name {name!r}")
    return name


def key_hint(name: str, alg: int, public_key: bytes) -> bytes:
    """Return the 4-byte key hint ``SHA-256(name || 0x0A || alg || key)[:4]``."""
    data = name.encode("utf-8") + b"\n" + bytes([alg]) + public_key
    return hashlib.sha256(data).digest()[:4]


def _cosigned_message(text: bytes, timestamp: int) -> bytes:
    return b"cosignature/v1\ntime %d\n" % timestamp + text


def _check_timestamp(timestamp: object) -> int:
    if not isinstance(timestamp, int) or isinstance(timestamp, bool) \
            or not 0 <= timestamp < 1 << 63:
        raise ConfigError(f"cosignature timestamp {timestamp!r} is not in [0, 2**63)")
    return timestamp


@dataclass(frozen=True)
class NoteVerifier:
    """A public key that may sign notes: ``name``, raw Ed25519 key and type."""

    name: str
    public_key: bytes
    alg: int = ALG_ED25519

    def __post_init__(self) -> None:
        check_key_name(self.name)
        if self.alg not in _SIG_LEN:
            raise ConfigError(f"unsupported signature type 0x{self.alg:02x}")
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise ConfigError(f"key {self.name!r} must be 32 raw Ed25519 bytes")

    @property
    def hint(self) -> bytes:
        """The 4-byte key hint of this key."""
        return key_hint(self.name, self.alg, self.public_key)

    def vkey(self) -> str:
        """Return the verifier key text ``<name>+<hex hint>+<base64(alg||key)>``."""
        blob = base64.b64encode(bytes([self.alg]) + self.public_key).decode("ascii")
        return f"{self.name}+{self.hint.hex()}+{blob}"

    @classmethod
    def from_vkey(cls, text: str) -> NoteVerifier:
        """Parse verifier key text written by :meth:`vkey`.

        Raises
        ------
        ConfigError
            If the text is malformed, the type unsupported or the hint wrong.
        """
        parts = text.split("+", 2)  # the base64 may contain "+"
        if len(parts) != 3 or not re.fullmatch(r"[0-9a-f]{8}", parts[1]):
            raise ConfigError(f"malformed verifier key {text!r}")
        try:
            blob = b64decode_strict(parts[2], "verifier key")
        except CheckpointError as exc:
            raise ConfigError(f"malformed verifier key {text!r}") from exc
        if len(blob) != 33:
            raise ConfigError(f"verifier key {text!r} has the wrong length")
        verifier = cls(parts[0], blob[1:], blob[0])
        if verifier.hint.hex() != parts[1]:
            raise ConfigError(f"verifier key {text!r} has a wrong key hint")
        return verifier

    def verify(self, text: bytes, sig: bytes) -> int | None:
        """Check ``sig`` (without the hint) over note ``text``.

        Returns the cosignature timestamp for :data:`ALG_COSIGNATURE_V1`, else
        ``None``; raises :class:`CheckpointError` (``bad-signature``).
        """
        if len(sig) != _SIG_LEN[self.alg]:
            raise CheckpointError(f"signature by {self.name!r} has {len(sig)} bytes",
                                  reason="bad-signature")
        timestamp: int | None = None
        message = text
        if self.alg == ALG_COSIGNATURE_V1:
            timestamp = int.from_bytes(sig[:8], "big")
            message, sig = _cosigned_message(text, timestamp), sig[8:]
        try:
            verify_signature(self.public_key, sig, message)
        except IntegrityError as exc:
            raise CheckpointError(f"signature by {self.name!r} does not verify",
                                  reason="bad-signature") from exc
        return timestamp


class NoteSigner:
    """An Ed25519 key that signs notes under a key name (type 0x01 or 0x04)."""

    __slots__ = ("_key", "alg", "name")

    def __init__(self, name: str, key: SigningKey, alg: int = ALG_ED25519) -> None:
        self.name = check_key_name(name)
        self.alg = alg
        self._key = key
        self.verifier()  # validates alg

    def verifier(self) -> NoteVerifier:
        """Return the matching :class:`NoteVerifier`."""
        return NoteVerifier(self.name, self._key.public_bytes(), self.alg)

    @property
    def hint(self) -> bytes:
        """The 4-byte key hint of this key."""
        return key_hint(self.name, self.alg, self._key.public_bytes())

    def signature_line(self, text: bytes, *, timestamp: int | None = None) -> bytes:
        """Sign note ``text``; return the line ``"— name base64\\n"`` as UTF-8.

        ``timestamp`` (Unix seconds) is required for cosignatures and refused
        otherwise.
        """
        if self.alg == ALG_COSIGNATURE_V1:
            ts = _check_timestamp(timestamp)
            sig = ts.to_bytes(8, "big") + self._key.sign(_cosigned_message(text, ts))
        elif timestamp is not None:
            raise ConfigError("only cosignatures carry a timestamp")
        else:
            sig = self._key.sign(text)
        value = base64.b64encode(self.hint + sig).decode("ascii")
        return f"{_DASH}{self.name} {value}\n".encode()

    def __repr__(self) -> str:
        return f"NoteSigner({self.name!r}, alg=0x{self.alg:02x})"


class NoteSignature(NamedTuple):
    """One signature line: key ``name``, 4-byte ``hint`` and ``signature``."""

    name: str
    hint: bytes
    signature: bytes



def split_note(note: bytes) -> tuple[bytes, tuple[NoteSignature, ...]]:
    """Split a signed note into its text and signature lines (signed-note).

    Raises
    ------
    CheckpointError
        ``oversize`` above :data:`MAX_NOTE_SIZE`, else ``malformed``.
    """
    if len(note) > MAX_NOTE_SIZE:
        raise CheckpointError(f"note has {len(note)} bytes, limit {MAX_NOTE_SIZE}",
                              reason="oversize")
    try:
        decoded = note.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise malformed("note is not UTF-8") from exc
    if CONTROL_RE.search(decoded):
        raise malformed("note contains control characters")
    split = note.rfind(b"\n\n")
    if split < 0:
        raise malformed("note has no blank line before its signatures")
    text, block = note[: split + 1], note[split + 2:]
    if not block or not block.endswith(b"\n"):
        raise malformed("note has no signature lines or lacks a final newline")
    lines = block[:-1].decode("utf-8").split("\n")
    if len(lines) > MAX_SIGNATURES:
        raise malformed(f"note has {len(lines)} signatures, limit {MAX_SIGNATURES}")
    signatures: list[NoteSignature] = []
    for i, line in enumerate(lines):
        if not line.startswith(_DASH):
            raise malformed(f"signature line {i + 1} does not start with an em dash")
        name, _, value = line[len(_DASH):].partition(" ")
        try:
            check_key_name(name)
        except ConfigError as exc:
            raise malformed(f"signature line {i + 1}: {exc.message}") from exc
        raw = b64decode_strict(value, f"signature line {i + 1}")
        if len(raw) < 5:
            raise malformed(f"signature line {i + 1} is too short")
        sig = NoteSignature(name, raw[:4], raw[4:])
        if any(s.name == name and s.hint == sig.hint for s in signatures):
            raise malformed(f"duplicate signature by key {name!r}")
        signatures.append(sig)
    return text, tuple(signatures)


