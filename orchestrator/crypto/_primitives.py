"""Thin wrappers over ``cryptography.hazmat``: the only project module importing it.

Each function does one primitive call and translates the library's low-level
exceptions (``InvalidTag``, ``InvalidUnwrap``, ``InvalidSignature``, ``ValueError``
from malformed inputs being verified) into :class:`~orchestrator.errors.IntegrityError`.
Parameter checks (key and nonce sizes) raise :class:`~orchestrator.errors.ConfigError`
and are done by the public modules (:mod:`.aead`, :mod:`.keywrap`, :mod:`.hpke`,
:mod:`.signing`) before they get here, except where noted.

Nothing here is a hand-rolled primitive: AES-GCM (NIST SP 800-38D), AES key wrap
with padding (RFC 5649), HKDF (RFC 5869), Ed25519 (RFC 8032) and HPKE (RFC 9180)
are all the ``cryptography`` package's (OpenSSL/Rust) implementations.
"""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature, InvalidTag, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mlkem, x25519
from cryptography.hazmat.primitives.asymmetric import utils as asym_utils
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.keywrap import (
    InvalidUnwrap,
    aes_key_unwrap_with_padding,
    aes_key_wrap_with_padding,
)

from orchestrator.errors import ConfigError, IntegrityError

__all__ = [
    "Ed25519Private",
    "GcmCipher",
    "HpkeKeyPair",
    "ecdsa_generate",
    "ecdsa_private_from_scalar",
    "ecdsa_public_xy",
    "ecdsa_sign_rs",
    "ecdsa_verify_rs",
    "ed25519_from_pem",
    "ed25519_generate",
    "ed25519_public_raw",
    "ed25519_sign",
    "ed25519_to_pem",
    "ed25519_verify",
    "hkdf_sha256_raw",
    "hpke_from_private_bytes",
    "hpke_generate",
    "hpke_open_raw",
    "hpke_public_from_bytes",
    "hpke_seal_raw",
    "kwp_unwrap",
    "kwp_wrap",
]

_AES_KEY_SIZES = (16, 24, 32)


# --------------------------------------------------------------------------- AES-GCM
class GcmCipher:
    """AES-GCM (NIST SP 800-38D) with a fixed key and a 16-byte tag.

    The key schedule is computed once, so a streaming caller reuses one instance for
    every segment. Nonce-length policy is the caller's (see :mod:`.aead`).

    Parameters
    ----------
    key
        16, 24 or 32 bytes.

    Raises
    ------
    ConfigError
        If ``key`` is not 16, 24 or 32 bytes long.
    """

    __slots__ = ("_aead",)

    def __init__(self, key: bytes) -> None:
        if len(key) not in _AES_KEY_SIZES:
            raise ConfigError(f"unsupported AES key length {len(key)} bytes")
        self._aead = AESGCM(key)

    def encrypt(self, nonce: bytes, plaintext: bytes, aad: bytes) -> bytes:
        """Return ``ciphertext || tag`` (``len(plaintext) + 16`` bytes)."""
        return self._aead.encrypt(nonce, plaintext, aad)

    def encrypt_into(self, nonce: bytes, plaintext: memoryview | bytes | bytearray,
                     aad: bytes, out: bytearray | memoryview) -> int:
        """Encrypt into ``out`` (exactly ``len(plaintext) + 16`` bytes); return size."""
        return self._aead.encrypt_into(nonce, plaintext, aad, out)

    def decrypt_into(self, nonce: bytes, ciphertext: memoryview | bytes | bytearray,
                     aad: bytes, out: bytearray | memoryview) -> int:
        """Verify and decrypt into ``out`` (exactly ``len(ciphertext) - 16`` bytes).

        On failure ``out`` may hold unverified bytes; the caller must discard it.

        Raises
        ------
        IntegrityError
            As :meth:`decrypt`.
        """
        try:
            return self._aead.decrypt_into(nonce, ciphertext, aad, out)
        except InvalidTag as exc:
            raise IntegrityError("AES-GCM authentication failed") from exc

    def decrypt(self, nonce: bytes, ciphertext: memoryview | bytes | bytearray,
                aad: bytes) -> bytes:
        """Verify and decrypt ``ciphertext || tag``.

        Raises
        ------
        IntegrityError
            If the tag does not verify (wrong key, nonce, AAD or modified bytes) or
            the input is shorter than the 16-byte tag.
        """
        try:
            return self._aead.decrypt(nonce, ciphertext, aad)
        except InvalidTag as exc:
            raise IntegrityError("AES-GCM authentication failed") from exc


# ------------------------------------------------------------- AES-KWP (RFC 5649)
def kwp_wrap(kek: bytes, data: bytes) -> bytes:
    """Wrap ``data`` under ``kek`` with AES key wrap with padding (RFC 5649).

    Parameters
    ----------
    kek
        16, 24 or 32 bytes.
    data
        1 byte or more; the output is ``8 * ceil(len(data) / 8) + 8`` bytes
        (at least 16).

    Raises
    ------
    ConfigError
        If ``kek`` has an unsupported length or ``data`` is empty.
    """
    if len(kek) not in _AES_KEY_SIZES:
        raise ConfigError(f"unsupported AES key-wrap KEK length {len(kek)} bytes")
    if not data:
        raise ConfigError("cannot wrap an empty key")
    return aes_key_wrap_with_padding(kek, data)


def kwp_unwrap(kek: bytes, wrapped: bytes) -> bytes:
    """Unwrap an RFC 5649 blob; the inverse of :func:`kwp_wrap`.

    Raises
    ------
    ConfigError
        If ``kek`` has an unsupported length.
    IntegrityError
        If ``wrapped`` has a bad length, a bad integrity check value or bad padding
        (wrong KEK or modified bytes).
    """
    if len(kek) not in _AES_KEY_SIZES:
        raise ConfigError(f"unsupported AES key-wrap KEK length {len(kek)} bytes")
    try:
        return aes_key_unwrap_with_padding(kek, wrapped)
    except (InvalidUnwrap, ValueError) as exc:
        raise IntegrityError("AES key unwrap failed (wrong KEK or tampered)") from exc


# ------------------------------------------------------------------ HKDF (RFC 5869)
def hkdf_sha256_raw(ikm: bytes, salt: bytes | None, info: bytes, length: int) -> bytes:
    """HKDF-SHA256 extract-and-expand (RFC 5869); ``length`` checked by the caller."""
    return HKDF(algorithm=hashes.SHA256(), length=length, salt=salt,
                info=info).derive(ikm)


# ------------------------------------------------------------ HMAC-SHA256 (RFC 2104)
def hmac_sha256_raw(key: bytes, data: bytes) -> bytes:
    """HMAC-SHA256 of ``data`` under ``key`` (RFC 2104, FIPS 198-1)."""
    from cryptography.hazmat.primitives import hmac

    mac = hmac.HMAC(key, hashes.SHA256())
    mac.update(data)
    return mac.finalize()


# --------------------------------------------------------------- Ed25519 (RFC 8032)
Ed25519Private = ed25519.Ed25519PrivateKey


def ed25519_generate() -> ed25519.Ed25519PrivateKey:
    """Return a fresh Ed25519 private key."""
    return ed25519.Ed25519PrivateKey.generate()


def ed25519_from_pem(pem: bytes) -> ed25519.Ed25519PrivateKey:
    """Load an unencrypted PKCS#8 PEM Ed25519 private key.

    Raises
    ------
    ConfigError
        If ``pem`` is not PEM, is encrypted, or holds another key type.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ConfigError(f"not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise ConfigError("PEM private key is not an Ed25519 key")
    return key


def ed25519_to_pem(key: ed25519.Ed25519PrivateKey) -> bytes:
    """Serialise ``key`` as unencrypted PKCS#8 PEM."""
    return key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def ed25519_public_raw(key: ed25519.Ed25519PrivateKey) -> bytes:
    """Return the 32-byte raw public key of ``key`` (RFC 8032 section 5.1.5)."""
    return key.public_key().public_bytes_raw()


def ed25519_sign(key: ed25519.Ed25519PrivateKey, data: bytes) -> bytes:
    """Return the 64-byte pure-Ed25519 signature of ``data`` (RFC 8032 5.1.6)."""
    return key.sign(data)


def ed25519_verify(public_key: bytes, signature: bytes, data: bytes) -> None:
    """Verify an Ed25519 signature; ``public_key`` must already be 32 bytes.

    Raises
    ------
    IntegrityError
        If the signature does not verify, is not 64 bytes, or the public key is not
        a valid encoding.
    """
    try:
        pub = ed25519.Ed25519PublicKey.from_public_bytes(public_key)
        pub.verify(signature, data)
    except (InvalidSignature, ValueError) as exc:
        raise IntegrityError("Ed25519 signature verification failed") from exc


# ----------------------------------------------------------------- HPKE (RFC 9180)
HpkePrivate = x25519.X25519PrivateKey | hpke.MLKEM768X25519PrivateKey
HpkePublic = x25519.X25519PublicKey | hpke.MLKEM768X25519PublicKey

X25519_PUBLIC_SIZE = 32
MLKEM768_PUBLIC_SIZE = 1184


class HpkeKeyPair:
    """A private key and its serialised public key, for one HPKE KEM."""

    __slots__ = ("hybrid", "private", "private_raw", "public_bytes")

    def __init__(self, private: HpkePrivate, public_bytes: bytes, hybrid: bool,
                 private_raw: bytes) -> None:
        self.private = private
        self.public_bytes = public_bytes
        self.hybrid = hybrid
        self.private_raw = private_raw


def _suite(hybrid: bool) -> hpke.Suite:
    kem = hpke.KEM.MLKEM768_X25519 if hybrid else hpke.KEM.X25519
    return hpke.Suite(kem, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def hpke_generate(hybrid: bool) -> HpkeKeyPair:
    """Generate an X25519 or ML-KEM-768+X25519 HPKE key pair.

    The hybrid public key is serialised as the ML-KEM-768 encapsulation key
    (1184 bytes, FIPS 203) followed by the X25519 public key (32 bytes).
    """
    xk = x25519.X25519PrivateKey.generate()
    mk = mlkem.MLKEM768PrivateKey.generate() if hybrid else None
    return _pair(xk, mk)


def _pair(xk: x25519.X25519PrivateKey,
          mk: mlkem.MLKEM768PrivateKey | None) -> HpkeKeyPair:
    xpub = xk.public_key().public_bytes_raw()
    xraw = xk.private_bytes_raw()
    if mk is None:
        return HpkeKeyPair(xk, xpub, False, xraw)
    mpub = mk.public_key().public_bytes_raw()
    return HpkeKeyPair(hpke.MLKEM768X25519PrivateKey(mk, xk), mpub + xpub, True,
                       mk.private_bytes_raw() + xraw)


MLKEM768_SEED_SIZE = 64


def hpke_from_private_bytes(hybrid: bool, data: bytes) -> HpkeKeyPair:
    """Rebuild a key pair from :attr:`HpkeKeyPair.private_raw`.

    The raw private key is the X25519 scalar (32 bytes) or, for the hybrid, the
    ML-KEM-768 seed (64 bytes, FIPS 203 ``d || z``) followed by the X25519 scalar:
    96 bytes.

    Raises
    ------
    ConfigError
        If ``data`` has the wrong length for the KEM.
    """
    want = MLKEM768_SEED_SIZE + 32 if hybrid else 32
    if len(data) != want:
        raise ConfigError(f"HPKE private key must be {want} bytes, not {len(data)}")
    try:
        xk = x25519.X25519PrivateKey.from_private_bytes(data[-32:])
        mk = (mlkem.MLKEM768PrivateKey.from_seed_bytes(data[:MLKEM768_SEED_SIZE])
              if hybrid else None)
    except ValueError as exc:
        raise ConfigError(f"invalid HPKE private key: {exc}") from exc
    return _pair(xk, mk)


def hpke_public_from_bytes(hybrid: bool, data: bytes) -> HpkePublic:
    """Parse a public key serialised by :func:`hpke_generate`.

    Raises
    ------
    ConfigError
        If ``data`` has the wrong length (32 or 1216 bytes) or is not a valid key.
    """
    try:
        if not hybrid:
            if len(data) != X25519_PUBLIC_SIZE:
                raise ConfigError(
                    f"X25519 public key must be 32 bytes, not {len(data)}")
            return x25519.X25519PublicKey.from_public_bytes(data)
        want = MLKEM768_PUBLIC_SIZE + X25519_PUBLIC_SIZE
        if len(data) != want:
            raise ConfigError(
                f"ML-KEM-768+X25519 public key must be {want} bytes, not {len(data)}")
        mpub = mlkem.MLKEM768PublicKey.from_public_bytes(data[:MLKEM768_PUBLIC_SIZE])
        xpub = x25519.X25519PublicKey.from_public_bytes(data[MLKEM768_PUBLIC_SIZE:])
        return hpke.MLKEM768X25519PublicKey(mpub, xpub)
    except ValueError as exc:
        raise ConfigError(f"invalid HPKE public key: {exc}") from exc


def hpke_seal_raw(hybrid: bool, public: HpkePublic, plaintext: bytes,
                  info: bytes) -> bytes:
    """HPKE base-mode single-shot seal; returns ``enc || ciphertext || tag``."""
    return _suite(hybrid).encrypt(plaintext, public, info)


def hpke_open_raw(pair: HpkeKeyPair, sealed: bytes, info: bytes) -> bytes:
    """HPKE base-mode single-shot open.

    Raises
    ------
    IntegrityError
        On a wrong key, wrong ``info``, truncated or modified ``sealed``.
    """
    try:
        return _suite(pair.hybrid).decrypt(sealed, pair.private, info)
    except (InvalidTag, ValueError) as exc:
        raise IntegrityError("HPKE open failed (wrong key, info, or tampered)") from exc


# ------------------------------------------- ECDSA P-256 / P-384 (FIPS 186-5), raw
def _ec_curve(bits: int) -> ec.EllipticCurve:
    if bits == 256:
        return ec.SECP256R1()
    if bits == 384:
        return ec.SECP384R1()
    raise ConfigError(f"unsupported ECDSA curve size {bits}")


def _ec_hash(bits: int) -> hashes.HashAlgorithm:
    return hashes.SHA256() if bits == 256 else hashes.SHA384()


def ecdsa_private_from_scalar(bits: int, scalar: int) -> ec.EllipticCurvePrivateKey:
    """Return the P-256 (``bits=256``) or P-384 private key of ``scalar``."""
    try:
        return ec.derive_private_key(scalar, _ec_curve(bits))
    except ValueError as exc:
        raise ConfigError(f"invalid ECDSA private scalar: {exc}") from exc


def ecdsa_generate(bits: int) -> ec.EllipticCurvePrivateKey:
    """Return a fresh P-256 or P-384 private key."""
    return ec.generate_private_key(_ec_curve(bits))


def ecdsa_public_xy(key: ec.EllipticCurvePrivateKey) -> bytes:
    """Return the raw public point ``X || Y`` (big-endian, 2 x field size)."""
    numbers = key.public_key().public_numbers()
    size = (key.curve.key_size + 7) // 8
    return numbers.x.to_bytes(size, "big") + numbers.y.to_bytes(size, "big")


def ecdsa_sign_rs(key: ec.EllipticCurvePrivateKey, data: bytes) -> tuple[int, int]:
    """Sign ``data`` (SHA-256 for P-256, SHA-384 for P-384); return ``(r, s)``."""
    der = key.sign(data, ec.ECDSA(_ec_hash(key.curve.key_size)))
    return asym_utils.decode_dss_signature(der)


def ecdsa_verify_rs(bits: int, public_xy: bytes, r: int, s: int, data: bytes) -> None:
    """Verify ``(r, s)`` over ``data`` with the raw public point ``public_xy``.

    Raises
    ------
    IntegrityError
        If the point is not on the curve, has the wrong size, or the signature
        does not verify.
    """
    size = (bits + 7) // 8
    if len(public_xy) != 2 * size:
        raise IntegrityError(f"ECDSA P-{bits} public key must be {2 * size} bytes")
    try:
        pub = ec.EllipticCurvePublicNumbers(
            int.from_bytes(public_xy[:size], "big"),
            int.from_bytes(public_xy[size:], "big"),
            _ec_curve(bits),
        ).public_key()
        pub.verify(asym_utils.encode_dss_signature(r, s), data,
                   ec.ECDSA(_ec_hash(bits)))
    except (InvalidSignature, ValueError) as exc:
        raise IntegrityError(f"ECDSA P-{bits} signature verification failed") from exc
