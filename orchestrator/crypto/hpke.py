"""Hybrid Public Key Encryption (HPKE, RFC 9180) in base mode, single shot.

Two cipher suites, both with HKDF-SHA256 (RFC 5869) and AES-256-GCM
(NIST SP 800-38D):

* :attr:`HpkeSuite.X25519` - DHKEM(X25519, HKDF-SHA256) (RFC 9180 section 4.1).
  Public key: 32 bytes. Encapsulated key: 32 bytes.
* :attr:`HpkeSuite.MLKEM768_X25519` - the post-quantum/traditional hybrid KEM
  ML-KEM-768 (FIPS 203) + X25519 (draft-ietf-hpke-pq). Public key: 1216 bytes
  (ML-KEM-768 encapsulation key, 1184, then X25519 public key, 32).
  Encapsulated key: 1120 bytes.

A sealed message is ``enc || ciphertext || tag`` (tag 16 bytes). HPKE derives a
fresh key and nonce per message from the KEM shared secret, so the caller has no
nonce to manage. ``info`` binds the message to its context (for example the job and
object it is for); opening with a different ``info`` fails.
"""

from __future__ import annotations

from enum import StrEnum

from orchestrator.crypto._primitives import (
    HpkeKeyPair,
    hpke_from_private_bytes,
    hpke_generate,
    hpke_open_raw,
    hpke_public_from_bytes,
    hpke_seal_raw,
)

__all__ = ["HpkeSuite", "RecipientKey", "hpke_open", "hpke_seal"]


class HpkeSuite(StrEnum):
    """Supported HPKE suites (KEM / KDF / AEAD)."""

    X25519 = "DHKEM-X25519-HKDF-SHA256/HKDF-SHA256/AES-256-GCM"
    MLKEM768_X25519 = "MLKEM768-X25519/HKDF-SHA256/AES-256-GCM"

    @property
    def hybrid(self) -> bool:
        """Whether this suite uses the ML-KEM-768 + X25519 hybrid KEM."""
        return self is HpkeSuite.MLKEM768_X25519

    @property
    def public_key_size(self) -> int:
        """Serialised recipient public key size in bytes (32 or 1216)."""
        return 1216 if self.hybrid else 32


DEFAULT_SUITE = HpkeSuite.X25519


class RecipientKey:
    """An HPKE recipient private key.

    Usually ephemeral (one per request/job), kept only in memory; a static key
    (a custodian's) can be stored with :meth:`private_bytes` /
    :meth:`from_private_bytes` - write it with
    :func:`~orchestrator.crypto.atomic_write_bytes` at mode 0600. Share
    :meth:`public_bytes` with senders.
    """

    __slots__ = ("_pair", "suite")

    def __init__(self, suite: HpkeSuite, pair: HpkeKeyPair) -> None:
        self.suite = suite
        self._pair = pair

    @classmethod
    def generate(cls, suite: HpkeSuite = DEFAULT_SUITE) -> RecipientKey:
        """Generate a fresh key pair for ``suite`` from the OS CSPRNG."""
        suite = HpkeSuite(suite)
        return cls(suite, hpke_generate(suite.hybrid))

    @classmethod
    def from_private_bytes(cls, suite: HpkeSuite, data: bytes) -> RecipientKey:
        """Rebuild a key from :meth:`private_bytes`.

        Raises
        ------
        ConfigError
            If ``data`` is not 32 bytes (X25519) or 96 bytes (hybrid), or invalid.
        """
        suite = HpkeSuite(suite)
        return cls(suite, hpke_from_private_bytes(suite.hybrid, data))

    def private_bytes(self) -> bytes:
        """Return the raw private key: secret, keep at mode 0600.

        X25519: the 32-byte scalar (RFC 7748). Hybrid: the 64-byte ML-KEM-768 seed
        (FIPS 203) followed by the 32-byte X25519 scalar (96 bytes).
        """
        return self._pair.private_raw

    def public_bytes(self) -> bytes:
        """Return the serialised public key (32 bytes, or 1216 for the hybrid)."""
        return self._pair.public_bytes

    def __repr__(self) -> str:
        return f"RecipientKey(suite={self.suite.name})"


def hpke_seal(suite: HpkeSuite, recipient_public: bytes, plaintext: bytes,
              info: bytes) -> bytes:
    """Encrypt ``plaintext`` to ``recipient_public`` (RFC 9180 ``SealBase``).

    Parameters
    ----------
    suite
        The recipient key's suite.
    recipient_public
        :meth:`RecipientKey.public_bytes` (32 bytes, or 1216 for the hybrid).
    plaintext
        Message of any length.
    info
        Context bound into the key schedule; the recipient must pass the same.

    Returns
    -------
    bytes
        ``enc || ciphertext || tag``: ``len(plaintext) + 16`` bytes plus 32 (X25519)
        or 1120 (hybrid).

    Raises
    ------
    ConfigError
        If ``recipient_public`` has the wrong size for ``suite`` or is invalid.
    """
    suite = HpkeSuite(suite)
    public = hpke_public_from_bytes(suite.hybrid, recipient_public)
    return hpke_seal_raw(suite.hybrid, public, plaintext, info)


def hpke_open(key: RecipientKey, sealed: bytes, info: bytes) -> bytes:
    """Decrypt a message from :func:`hpke_seal` (RFC 9180 ``OpenBase``).

    Raises
    ------
    IntegrityError
        If ``sealed`` was made for another key or suite, with another ``info``,
        or was truncated or modified.
    """
    return hpke_open_raw(key._pair, sealed, info)
