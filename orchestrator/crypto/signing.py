"""Ed25519 signing keys and signature verification (RFC 8032, pure Ed25519).

Public keys are 32 raw bytes (RFC 8032 section 5.1.5), signatures 64 bytes. Private
keys are stored as unencrypted PKCS#8 PEM (RFC 8410) in files readable only by their
owner (mode 0600).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from orchestrator.crypto._primitives import (
    Ed25519Private,
    ed25519_from_pem,
    ed25519_generate,
    ed25519_public_raw,
    ed25519_sign,
    ed25519_to_pem,
    ed25519_verify,
)
from orchestrator.crypto.fsutil import atomic_write_bytes
from orchestrator.errors import ConfigError

__all__ = [
    "PUBLIC_KEY_SIZE",
    "SIGNATURE_SIZE",
    "SigningKey",
    "key_id_of",
    "load_private_key",
    "save_private_key",
    "verify_signature",
]

PUBLIC_KEY_SIZE = 32
"""Raw Ed25519 public key size in bytes."""
SIGNATURE_SIZE = 64
"""Ed25519 signature size in bytes."""


def key_id_of(public_key: bytes) -> str:
    """Return ``"ed25519:"`` + the first 16 hex chars of SHA-256(raw public key).

    Raises
    ------
    ConfigError
        If ``public_key`` is not 32 bytes.
    """
    _check_public(public_key)
    return "ed25519:" + hashlib.sha256(public_key).hexdigest()[:16]


def _check_public(public_key: bytes) -> None:
    if len(public_key) != PUBLIC_KEY_SIZE:
        raise ConfigError(
            f"Ed25519 public key must be {PUBLIC_KEY_SIZE} bytes, "
            f"not {len(public_key)}")


class SigningKey:
    """An Ed25519 private key (RFC 8032)."""

    __slots__ = ("_key", "_public")

    def __init__(self, key: Ed25519Private) -> None:
        self._key = key
        self._public = ed25519_public_raw(key)

    @classmethod
    def generate(cls) -> SigningKey:
        """Generate a fresh key from the OS CSPRNG."""
        return cls(ed25519_generate())

    @classmethod
    def from_pem(cls, pem: bytes) -> SigningKey:
        """Load an unencrypted PKCS#8 PEM Ed25519 private key.

        Raises
        ------
        ConfigError
            If ``pem`` is not such a key.
        """
        return cls(ed25519_from_pem(pem))

    def to_pem(self) -> bytes:
        """Return the key as unencrypted PKCS#8 PEM (keep it secret)."""
        return ed25519_to_pem(self._key)

    def public_bytes(self) -> bytes:
        """Return the 32-byte raw public key."""
        return self._public

    @property
    def key_id(self) -> str:
        """``"ed25519:"`` + first 16 hex chars of SHA-256 of the raw public key."""
        return key_id_of(self._public)

    def sign(self, data: bytes) -> bytes:
        """Return the 64-byte Ed25519 signature of ``data`` (deterministic)."""
        return ed25519_sign(self._key, data)

    def __repr__(self) -> str:
        return f"SigningKey({self.key_id})"


def verify_signature(public_key: bytes, signature: bytes, data: bytes) -> None:
    """Verify an Ed25519 signature (RFC 8032 section 5.1.7, as OpenSSL implements it).

    Parameters
    ----------
    public_key
        32 raw bytes.
    signature
        64 bytes.
    data
        The signed message.

    Raises
    ------
    ConfigError
        If ``public_key`` is not 32 bytes.
    IntegrityError
        If the signature is not 64 bytes, is non-canonical or does not verify.
    """
    _check_public(public_key)
    ed25519_verify(public_key, signature, data)


def save_private_key(path: Path, key: SigningKey) -> None:
    """Write ``key`` as PEM to ``path`` atomically, mode 0600 from creation.

    Raises
    ------
    OSError
        If the file cannot be written; ``path`` is then unchanged.
    """
    atomic_write_bytes(Path(path), key.to_pem(), mode=0o600)


def load_private_key(path: Path) -> SigningKey:
    """Load a PEM Ed25519 private key written by :func:`save_private_key`.

    Raises
    ------
    ConfigError
        If ``path`` is missing or unreadable, is not a regular file, is accessible
        by group or others ("permissions too open"), or does not hold an unencrypted
        PKCS#8 Ed25519 key. The message names ``path``.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
    except OSError as exc:
        raise ConfigError(f"cannot open private key: {exc.strerror}",
                          source=str(path)) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError("private key is not a regular file", source=str(path))
        if os.name == "posix" and st.st_mode & 0o077:
            raise ConfigError(
                f"private key permissions too open ({stat.S_IMODE(st.st_mode):04o}; "
                "expected 0600)", source=str(path))
        with os.fdopen(fd, "rb", closefd=False) as fh:
            pem = fh.read()
    except OSError as exc:
        raise ConfigError(f"cannot read private key: {exc.strerror}",
                          source=str(path)) from exc
    finally:
        os.close(fd)
    try:
        return SigningKey.from_pem(pem)
    except ConfigError as exc:
        raise ConfigError(exc.message, source=str(path)) from exc
