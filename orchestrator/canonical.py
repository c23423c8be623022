"""Canonical JSON bytes for hashing and signing.

Objects that are signed or hashed (custody events, release requests, evidence,
labels, manifests) are serialised as JSON with sorted keys, no insignificant
white space, UTF-8, and no floating-point NaN/Infinity: the subset of RFC 8785
(JSON Canonicalization Scheme) that our documents need. Binary values are carried
as standard base64 strings (RFC 4648 section 4) by the callers.
"""

from __future__ import annotations

import base64
import hashlib
import json
from typing import Any


def canonical_bytes(obj: Any) -> bytes:
    """Return the canonical UTF-8 JSON encoding of ``obj``.

    Raises
    ------
    ValueError
        If ``obj`` holds NaN or infinite floats, or a type JSON cannot encode.
    """
    try:
        return json.dumps(
            obj,
            sort_keys=True,
            separators=(",", ":"),
            ensure_ascii=False,
            allow_nan=False,
        ).encode("utf-8")
    except TypeError as exc:
        raise ValueError(f"not JSON-serialisable: {exc}") from exc


def sha256_hex(data: bytes) -> str:
    """Return the lowercase hex SHA-256 (FIPS 180-4) digest of ``data`` (64 chars)."""
    return hashlib.sha256(data).hexdigest()


def digest_of(obj: Any) -> str:
    """Return ``"sha256:" + hex`` of the canonical bytes of ``obj``."""
    return "sha256:" + sha256_hex(canonical_bytes(obj))


def b64e(data: bytes) -> str:
    """Encode bytes as standard base64 (RFC 4648 section 4) text."""
    return base64.b64encode(data).decode("ascii")


def b64d(text: str, *, what: str = "value") -> bytes:
    """Decode standard base64 text strictly.

    Raises
    ------
    ValueError
        If ``text`` is not valid base64; the message names ``what``.
    """
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (ValueError, UnicodeEncodeError) as exc:
        raise ValueError(f"{what} is not valid base64") from exc
