"""Data-encryption-key (DEK) generation and wrapping under a key-encryption key (KEK).

Wrapping is AES key wrap with padding (RFC 5649, also NIST SP 800-38F "KWP") with
a 256-bit KEK. It is deterministic and needs no nonce: its integrity check detects a
wrong KEK or any modification of the wrapped blob.

The one-shot AEAD and HKDF helpers live in :mod:`orchestrator.crypto.aead` and are
re-exported here for convenience.
"""

from __future__ import annotations

import os

from orchestrator.crypto._primitives import kwp_unwrap, kwp_wrap
from orchestrator.crypto.aead import aead_decrypt, aead_encrypt, hkdf_sha256
from orchestrator.errors import ConfigError

__all__ = [
    "DEK_SIZE",
    "KEK_SIZE",
    "aead_decrypt",
    "aead_encrypt",
    "combine_dek_shares",
    "hkdf_sha256",
    "new_dek",
    "split_dek",
    "unwrap_dek",
    "wrap_dek",
]

DEK_SIZE = 32
"""Size of a data-encryption key in bytes (AES-256)."""
KEK_SIZE = 32
"""Size of a key-encryption key in bytes (AES-256)."""


def new_dek() -> bytes:
    """Return a fresh random 32-byte DEK from the OS CSPRNG (``os.urandom``)."""
    return os.urandom(DEK_SIZE)


def _check_kek(kek: bytes) -> None:
    if len(kek) != KEK_SIZE:
        raise ConfigError(f"KEK must be {KEK_SIZE} bytes, not {len(kek)}")


def wrap_dek(kek: bytes, dek: bytes) -> bytes:
    """Wrap ``dek`` under ``kek`` with AES-256 key wrap with padding (RFC 5649).

    Parameters
    ----------
    kek
        32 bytes.
    dek
        The key to wrap: 1 byte or more (normally :data:`DEK_SIZE` = 32 bytes, which
        wraps to 40 bytes). Output is ``8 * ceil(len(dek) / 8) + 8`` bytes.

    Raises
    ------
    ConfigError
        If ``kek`` is not 32 bytes or ``dek`` is empty.
    """
    _check_kek(kek)
    return kwp_wrap(kek, dek)


def unwrap_dek(kek: bytes, wrapped: bytes) -> bytes:
    """Unwrap a blob made by :func:`wrap_dek` (RFC 5649).

    Parameters
    ----------
    kek
        32 bytes, the KEK used to wrap.
    wrapped
        The wrapped key: a multiple of 8 bytes, at least 16.

    Returns
    -------
    bytes
        The unwrapped key (32 bytes for a DEK made by :func:`new_dek`).

    Raises
    ------
    ConfigError
        If ``kek`` is not 32 bytes.
    IntegrityError
        If ``wrapped`` has a bad length, or its integrity check value or padding does
        not verify (wrong KEK or modified bytes).
    """
    _check_kek(kek)
    return kwp_unwrap(kek, wrapped)


def split_dek(dek: bytes, n: int) -> list[bytes]:
    """Split a DEK into ``n`` shares, all of which are needed to rebuild it.

    n-of-n XOR secret sharing: ``n - 1`` shares are fresh random 32-byte strings and
    the last is ``dek`` XOR all of them, so any ``n - 1`` shares are uniformly random
    and reveal nothing about ``dek`` (the trivial case of Shamir, "How to share a
    secret", CACM 22(11), 1979). Used so that every owner of a jointly owned object
    must release its share before the object can be opened.

    Raises
    ------
    ConfigError
        If ``dek`` is not 32 bytes or ``n < 1``.
    """
    if len(dek) != DEK_SIZE or n < 1:
        raise ConfigError(f"cannot split a {len(dek)}-byte DEK into {n} shares")
    shares = [new_dek() for _ in range(n - 1)]
    last = int.from_bytes(dek, "big")
    for share in shares:
        last ^= int.from_bytes(share, "big")
    return [*shares, last.to_bytes(DEK_SIZE, "big")]


def combine_dek_shares(shares: list[bytes]) -> bytes:
    """Rebuild a DEK from all the shares made by :func:`split_dek` (any order).

    Raises
    ------
    ConfigError
        If there are no shares or one is not 32 bytes.
    """
    if not shares or any(len(s) != DEK_SIZE for s in shares):
        raise ConfigError("DEK shares must be one or more 32-byte strings")
    value = 0
    for share in shares:
        value ^= int.from_bytes(share, "big")
    return value.to_bytes(DEK_SIZE, "big")
