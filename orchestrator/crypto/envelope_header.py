"""The envelope header: encoding, strict parsing and reading from a stream.

See :mod:`orchestrator.crypto.envelope` for the format. The header is public (it
needs no key to read) but it is authenticated: its exact bytes are the AAD of every
segment, so a header that parses here but was altered still fails when opened.
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field
from typing import Any, NoReturn, Protocol

from orchestrator.canonical import b64d, b64e, canonical_bytes
from orchestrator.errors import ConfigError, IntegrityError, SovereignError

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "HEADER_MAX",
    "MAGIC",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_SIZE",
    "MIN_SEGMENT_SIZE",
    "NONCE_PREFIX_SIZE",
    "SALT_SIZE",
    "EnvelopeHeader",
    "ReadableStream",
    "WritableStream",
    "read_header",
]

MAGIC = b"SOVSEAL1"
"""8-byte file signature."""
HEADER_MAX = 64 * 1024
"""Largest header JSON in bytes (65536)."""
MIN_SEGMENT_SIZE = 4 * 1024
"""Smallest plaintext segment size in bytes (4096)."""
MAX_SEGMENT_SIZE = 64 * 1024 * 1024
"""Largest plaintext segment size in bytes (67108864)."""
DEFAULT_SEGMENT_SIZE = 1 << 20
"""Default plaintext segment size in bytes (1048576)."""
NONCE_PREFIX_SIZE = 7
"""Random per-object nonce prefix size in bytes."""
SALT_SIZE = 32
"""Random per-object HKDF salt size in bytes."""
MAX_SEGMENTS = 1 << 32
"""The segment counter is 4 bytes: at most 2**32 segments per object."""



class ReadableStream(Protocol):
    """What the envelope reads from: any binary file-like (``BinaryIO``, raw or
    buffered ``io`` objects). ``readinto`` is used when present."""

    def read(self, size: int = -1, /) -> bytes | None:
        """Read up to ``size`` bytes; ``b""`` at EOF."""
        ...


class WritableStream(Protocol):
    """What the envelope writes to: any binary file-like with ``write``."""

    def write(self, data: memoryview, /) -> object:
        """Write all of ``data``."""
        ...


_FIXED = {"v": 1, "aead": "AES-256-GCM", "kdf": "HKDF-SHA256"}
_KEYS = frozenset(_FIXED) | {"object_id", "label", "manifest_digest",
                             "segment_size", "nonce_prefix", "salt"}
_PREFIX_LEN = len(MAGIC) + 4


def _fail(err: type[SovereignError], message: str, fld: str | None = None) -> NoReturn:
    raise err(f"envelope header: {message}", field=fld)


def _check_fields(err: type[SovereignError], object_id: Any, label: Any,
                  manifest_digest: Any, segment_size: Any, nonce_prefix: Any,
                  salt: Any) -> None:
    if not isinstance(object_id, str) or not object_id:
        _fail(err, "object_id must be a non-empty string", "object_id")
    if not isinstance(label, dict):
        _fail(err, "label must be a JSON object", "label")
    if not isinstance(manifest_digest, str):
        _fail(err, "manifest_digest must be a string", "manifest_digest")
    if (isinstance(segment_size, bool) or not isinstance(segment_size, int)
            or not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE):
        _fail(err, f"segment_size must be an integer in {MIN_SEGMENT_SIZE}.."
              f"{MAX_SEGMENT_SIZE}, not {segment_size!r}", "segment_size")
    if not isinstance(nonce_prefix, bytes) or len(nonce_prefix) != NONCE_PREFIX_SIZE:
        _fail(err, f"nonce_prefix must be {NONCE_PREFIX_SIZE} bytes", "nonce_prefix")
    if not isinstance(salt, bytes) or len(salt) != SALT_SIZE:
        _fail(err, f"salt must be {SALT_SIZE} bytes", "salt")


@dataclass(frozen=True)
class EnvelopeHeader:
    """A parsed envelope header.

    Attributes
    ----------
    object_id
        Identifier of the sealed object (non-empty).
    label
        Security label (JSON object) bound to the ciphertext.
    manifest_digest
        Digest of the manifest describing the plaintext (e.g. ``"sha256:..."``).
    segment_size
        Plaintext bytes per segment, 4096..67108864.
    nonce_prefix
        7 random bytes.
    salt
        32 random bytes (HKDF salt for the segment key).
    raw
        The exact header bytes (magic, 4-byte length, JSON): the AAD of every
        segment. Build instances with :meth:`create` or :meth:`parse`.
    """

    object_id: str
    label: dict[str, Any]
    manifest_digest: str
    segment_size: int
    nonce_prefix: bytes
    salt: bytes
    raw: bytes = field(repr=False)

    @classmethod
    def create(cls, *, object_id: str, label: dict[str, Any], manifest_digest: str,
               segment_size: int, nonce_prefix: bytes,
               salt: bytes) -> EnvelopeHeader:
        """Validate the fields and encode the header bytes.

        Raises
        ------
        ConfigError
            If a field has the wrong type or size, ``label`` is not
            JSON-serialisable, or the JSON exceeds 65536 bytes.
        """
        _check_fields(ConfigError, object_id, label, manifest_digest, segment_size,
                      nonce_prefix, salt)
        doc = dict(_FIXED, object_id=object_id, label=label,
                   manifest_digest=manifest_digest, segment_size=segment_size,
                   nonce_prefix=b64e(nonce_prefix), salt=b64e(salt))
        try:
            body = canonical_bytes(doc)
        except ValueError as exc:
            raise ConfigError(f"envelope header: label {exc}", field="label") from exc
        if len(body) > HEADER_MAX:
            raise ConfigError(
                f"envelope header: {len(body)} bytes exceeds {HEADER_MAX}")
        raw = MAGIC + len(body).to_bytes(4, "big") + body
        return cls(object_id, copy.deepcopy(label), manifest_digest, segment_size,
                   nonce_prefix, salt, raw)

    def to_bytes(self) -> bytes:
        """Return the exact header bytes (magic, length, canonical JSON)."""
        return self.raw

    @classmethod
    def parse(cls, raw: bytes) -> EnvelopeHeader:
        """Strictly parse complete header bytes (magic, length and JSON, nothing else).

        The JSON must be an object with exactly the documented keys and be in
        canonical form (so :meth:`to_bytes` reproduces ``raw``).

        Raises
        ------
        IntegrityError
            For a bad magic, a length outside 1..65536 or not matching ``raw``,
            invalid UTF-8/JSON, a non-canonical encoding, missing/extra keys, an
            unsupported version or algorithm, or a field of the wrong type or size.
        """
        raw = bytes(raw)
        if raw[:len(MAGIC)] != MAGIC:
            _fail(IntegrityError, "bad magic (not a sealed object)", "magic")
        if len(raw) < _PREFIX_LEN:
            _fail(IntegrityError, "truncated header length", "length")
        length = int.from_bytes(raw[len(MAGIC):_PREFIX_LEN], "big")
        if not 1 <= length <= HEADER_MAX:
            _fail(IntegrityError, f"header length {length} outside 1..{HEADER_MAX}",
                  "length")
        if len(raw) != _PREFIX_LEN + length:
            _fail(IntegrityError, f"header length {length} does not match "
                  f"{len(raw) - _PREFIX_LEN} bytes present", "length")
        body = raw[_PREFIX_LEN:]
        try:
            doc = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            _fail(IntegrityError, "header is not valid UTF-8 JSON", "json")
        if not isinstance(doc, dict):
            _fail(IntegrityError, "header JSON is not an object", "json")
        if set(doc) != _KEYS:
            _fail(IntegrityError, "header keys differ from the v1 format: "
                  f"{sorted(set(doc) ^ _KEYS)}", "json")
        for key, want in _FIXED.items():
            if doc[key] != want or type(doc[key]) is not type(want):
                _fail(IntegrityError, f"unsupported {key} {doc[key]!r}", key)
        try:
            nonce_prefix = b64d(doc["nonce_prefix"], what="nonce_prefix")
            salt = b64d(doc["salt"], what="salt")
        except (ValueError, TypeError, AttributeError) as exc:
            raise IntegrityError(f"envelope header: {exc}") from exc
        _check_fields(IntegrityError, doc["object_id"], doc["label"],
                      doc["manifest_digest"], doc["segment_size"], nonce_prefix, salt)
        try:
            canonical = canonical_bytes(doc) == body
        except ValueError:
            canonical = False
        if not canonical:
            _fail(IntegrityError, "header JSON is not canonical", "json")
        return cls(doc["object_id"], doc["label"], doc["manifest_digest"],
                   doc["segment_size"], nonce_prefix, salt, raw)


def read_header(src: ReadableStream) -> EnvelopeHeader:
    """Read and parse the header from ``src``, leaving it at the first segment.

    No key is needed; the result is not authenticated until a segment verifies.

    Raises
    ------
    IntegrityError
        If the stream ends inside the header, or :meth:`EnvelopeHeader.parse`
        rejects it (bad magic, length, JSON or fields).
    """
    prefix = _read_exact(src, _PREFIX_LEN)
    if prefix[:len(MAGIC)] != MAGIC:
        _fail(IntegrityError, "bad magic (not a sealed object)", "magic")
    if len(prefix) < _PREFIX_LEN:
        _fail(IntegrityError, "truncated before the header length", "length")
    length = int.from_bytes(prefix[len(MAGIC):], "big")
    if not 1 <= length <= HEADER_MAX:
        _fail(IntegrityError, f"header length {length} outside 1..{HEADER_MAX}",
              "length")
    body = _read_exact(src, length)
    if len(body) != length:
        _fail(IntegrityError, f"truncated header ({len(body)} of {length} bytes)",
              "length")
    return EnvelopeHeader.parse(prefix + body)


def _read_exact(src: ReadableStream, n: int) -> bytes:
    parts: list[bytes] = []
    got = 0
    while got < n:
        chunk = src.read(n - got)
        if chunk is None:
            raise ConfigError("non-blocking streams are not supported")
        if not chunk:
            break
        parts.append(chunk)
        got += len(chunk)
    return b"".join(parts)
