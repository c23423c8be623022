"""ECDSA over NIST P-256 and P-384 (FIPS 186-5), for verifying TEE evidence.

Hardware attestation formats sign with ECDSA rather than Ed25519:

* Intel TDX DCAP quote format v4: ECDSA P-256 with SHA-256 by the attestation key
  (raw ``r || s``, 32 bytes each; public key raw ``X || Y``, 64 bytes).
* AMD SEV-SNP ABI spec, attestation report: ECDSA P-384 with SHA-384 by the VCEK or
  VLEK (``r`` and ``s`` little-endian, zero-extended to 72 bytes each).
* NVIDIA NRAS EAT tokens: JWS ``ES384`` (RFC 7518 section 3.4: ``r || s``
  big-endian, 48 bytes each).

This module offers raw ``(r, s)`` signing (for building *synthetic test* evidence)
and verification against a raw ``X || Y`` public point. Verification failures raise
:class:`~orchestrator.errors.IntegrityError`.
"""

from __future__ import annotations

from enum import IntEnum

from orchestrator.crypto._primitives import (
    ecdsa_generate,
    ecdsa_private_from_scalar,
    ecdsa_public_xy,
    ecdsa_sign_rs,
    ecdsa_verify_rs,
)

__all__ = ["EcdsaCurve", "EcdsaKey", "ecdsa_verify", "ecdsa_verify_raw"]


class EcdsaCurve(IntEnum):
    """Supported curves, by field size in bits (hash: SHA-256 / SHA-384)."""

    P256 = 256
    P384 = 384

    @property
    def size(self) -> int:
        """Bytes per coordinate and per signature half (32 or 48)."""
        return (int(self) + 7) // 8


class EcdsaKey:
    """An ECDSA private key (in memory only)."""

    __slots__ = ("_key", "curve")

    def __init__(self, curve: EcdsaCurve, key: object) -> None:
        self.curve = curve
        self._key = key

    @classmethod
    def generate(cls, curve: EcdsaCurve) -> EcdsaKey:
        """Fresh key from the OS CSPRNG."""
        return cls(curve, ecdsa_generate(int(curve)))

    @classmethod
    def from_scalar(cls, curve: EcdsaCurve, scalar: int) -> EcdsaKey:
        """Deterministic key from a private scalar (test fixtures only)."""
        return cls(curve, ecdsa_private_from_scalar(int(curve), scalar))

    def public_xy(self) -> bytes:
        """Raw public point ``X || Y`` (64 or 96 bytes)."""
        return ecdsa_public_xy(self._key)  # type: ignore[arg-type]

    def sign(self, data: bytes) -> tuple[int, int]:
        """Return ``(r, s)`` over ``data``."""
        return ecdsa_sign_rs(self._key, data)  # type: ignore[arg-type]

    def sign_raw(self, data: bytes) -> bytes:
        """Return ``r || s`` big-endian, each ``curve.size`` bytes (JWS / DCAP)."""
        r, s = self.sign(data)
        n = self.curve.size
        return r.to_bytes(n, "big") + s.to_bytes(n, "big")

    def __repr__(self) -> str:
        return f"EcdsaKey(curve={self.curve.name})"


def ecdsa_verify(curve: EcdsaCurve, public_xy: bytes, r: int, s: int,
                 data: bytes) -> None:
    """Verify ``(r, s)`` over ``data``.

    Raises
    ------
    IntegrityError
        If the key is malformed or the signature does not verify.
    """
    ecdsa_verify_rs(int(curve), public_xy, r, s, data)


def ecdsa_verify_raw(curve: EcdsaCurve, public_xy: bytes, signature: bytes,
                     data: bytes) -> None:
    """Verify a big-endian ``r || s`` signature (DCAP, JWS ``ES256``/``ES384``).

    Raises
    ------
    IntegrityError
        If the signature has the wrong length or does not verify.
    """
    from orchestrator.errors import IntegrityError

    n = curve.size
    if len(signature) != 2 * n:
        raise IntegrityError(f"ECDSA P-{int(curve)} signature must be {2 * n} bytes")
    ecdsa_verify(curve, public_xy, int.from_bytes(signature[:n], "big"),
                 int.from_bytes(signature[n:], "big"), data)
