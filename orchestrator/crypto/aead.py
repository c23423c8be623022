"""AES-256-GCM one-shot AEAD and HKDF-SHA256 key derivation.

AES-GCM follows NIST SP 800-38D with a 256-bit key, a 96-bit (12-byte) nonce and a
128-bit (16-byte) tag; HKDF follows RFC 5869 with SHA-256. Nonce rule: a nonce must
never repeat under one key. Callers either derive a fresh key per message (the
envelope format does, via HKDF over a random salt) or use random 12-byte nonces for
well under 2**32 messages per key (SP 800-38D section 8.3).
"""

from __future__ import annotations

from orchestrator.crypto._primitives import (
    GcmCipher,
    hkdf_sha256_raw,
    hmac_sha256_raw,
)
from orchestrator.errors import ConfigError

__all__ = [
    "AEAD_KEY_SIZE",
    "AEAD_NONCE_SIZE",
    "AEAD_TAG_SIZE",
    "COMMITMENT_INFO",
    "HKDF_SHA256_MAX_LENGTH",
    "aead_decrypt",
    "aead_encrypt",
    "commit_plaintext",
    "hkdf_sha256",
]

AEAD_KEY_SIZE = 32
"""AES-256 key size in bytes."""
AEAD_NONCE_SIZE = 12
"""The only accepted GCM nonce size in bytes (96 bits, SP 800-38D section 8.2.1)."""
AEAD_TAG_SIZE = 16
"""GCM authentication tag size in bytes (128 bits)."""
HKDF_SHA256_MAX_LENGTH = 255 * 32
"""Largest HKDF-SHA256 output in bytes (RFC 5869 section 2.3: ``255 * HashLen``)."""


def _check(key: bytes, nonce: bytes) -> None:
    if len(key) != AEAD_KEY_SIZE:
        raise ConfigError(
            f"unsupported key length {len(key)} bytes (AES-256-GCM needs 32)")
    if len(nonce) != AEAD_NONCE_SIZE:
        raise ConfigError(
            f"unsupported nonce length {len(nonce)} bytes (AES-256-GCM needs 12)")


def aead_encrypt(key: bytes, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
    """Encrypt and authenticate with AES-256-GCM (NIST SP 800-38D).

    Parameters
    ----------
    key
        32 bytes.
    nonce
        12 bytes; must be unique per ``key``.
    plaintext
        Any length up to the GCM limit (2**36 - 32 bytes).
    aad
        Associated data, authenticated but not encrypted (may be empty).

    Returns
    -------
    bytes
        ``ciphertext || tag``: ``len(plaintext) + 16`` bytes.

    Raises
    ------
    ConfigError
        If ``key`` is not 32 bytes ("unsupported key length") or ``nonce`` is not
        12 bytes ("unsupported nonce length").
    """
    _check(key, nonce)
    return GcmCipher(key).encrypt(nonce, plaintext, aad)


def aead_decrypt(key: bytes, nonce: bytes, ciphertext: bytes, aad: bytes) -> bytes:
    """Verify and decrypt AES-256-GCM ``ciphertext || tag`` (NIST SP 800-38D).

    Parameters
    ----------
    key
        32 bytes.
    nonce
        12 bytes, the one used to encrypt.
    ciphertext
        ``ciphertext || tag``, at least 16 bytes.
    aad
        The associated data used to encrypt.

    Returns
    -------
    bytes
        The plaintext, ``len(ciphertext) - 16`` bytes.

    Raises
    ------
    ConfigError
        If ``key`` is not 32 bytes or ``nonce`` is not 12 bytes.
    IntegrityError
        If authentication fails: wrong key, nonce or AAD, modified or truncated input.
    """
    _check(key, nonce)
    return GcmCipher(key).decrypt(nonce, ciphertext, aad)


def hkdf_sha256(ikm: bytes, *, salt: bytes | None, info: bytes, length: int) -> bytes:
    """Derive ``length`` bytes with HKDF-SHA256 (RFC 5869, extract then expand).

    Parameters
    ----------
    ikm
        Input keying material (any length).
    salt
        Extract salt; ``None`` or empty means ``HashLen`` (32) zero bytes, which
        RFC 5869 section 2.2 makes equivalent.
    info
        Context and application specific information (may be empty).
    length
        Output size in bytes, 1 to 8160 (``255 * 32``).

    Raises
    ------
    ConfigError
        If ``length`` is outside 1..8160.
    """
    if not 1 <= length <= HKDF_SHA256_MAX_LENGTH:
        raise ConfigError(
            f"HKDF-SHA256 output length {length} outside 1..{HKDF_SHA256_MAX_LENGTH}")
    return hkdf_sha256_raw(ikm, salt or None, info, length)


#: HKDF ``info`` of the key of a plaintext commitment.
COMMITMENT_INFO = b"sovereign-orchestrator plaintext commitment/v1"


def commit_plaintext(dek: bytes, data: bytes) -> str:
    """A keyed commitment to ``data``: ``"hmac-sha256:" + hex`` of HMAC-SHA256
    (RFC 2104) under a key derived from the object's DEK (HKDF-SHA256, RFC 5869,
    :data:`COMMITMENT_INFO`).

    Whoever holds the DEK (the owners, an enclave it was released to) can check
    that a plaintext is the one sealed; anyone else learns nothing of it, not
    even whether a guess is right, unlike a bare SHA-256 of the plaintext.

    Raises
    ------
    ConfigError
        If ``dek`` is not 32 bytes.
    """
    if len(dek) != 32:
        raise ConfigError(f"a DEK is 32 bytes, not {len(dek)}")
    key = hkdf_sha256(dek, salt=None, info=COMMITMENT_INFO, length=32)
    return "hmac-sha256:" + hmac_sha256_raw(key, data).hex()

