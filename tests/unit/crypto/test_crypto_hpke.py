"""HPKE (RFC 9180) recipes, both suites."""

from __future__ import annotations

import pytest

from orchestrator.crypto import HpkeSuite, RecipientKey, hpke_open, hpke_seal
from orchestrator.errors import ConfigError, IntegrityError

SUITES = list(HpkeSuite)
INFO = b"sovereign/job-42/release"


@pytest.fixture(scope="module", params=SUITES, ids=[s.name for s in SUITES])
def key(request: pytest.FixtureRequest) -> RecipientKey:
    suite: HpkeSuite = request.param
    return RecipientKey.generate(suite)


def test_suite_values() -> None:
    assert HpkeSuite.X25519.value == "DHKEM-X25519-HKDF-SHA256/HKDF-SHA256/AES-256-GCM"
    assert HpkeSuite("MLKEM768-X25519/HKDF-SHA256/AES-256-GCM") is \
        HpkeSuite.MLKEM768_X25519
    assert RecipientKey.generate().suite is HpkeSuite.X25519


@pytest.mark.parametrize("plaintext", [b"", b"k" * 32, bytes(100_000)],
                         ids=["empty", "dek", "100k"])
def test_round_trip_via_public_bytes(key: RecipientKey, plaintext: bytes) -> None:
    public = key.public_bytes()
    assert len(public) == key.suite.public_key_size
    assert isinstance(public, bytes)
    sealed = hpke_seal(key.suite, bytes(public), plaintext, INFO)
    enc = 1120 if key.suite is HpkeSuite.MLKEM768_X25519 else 32
    assert len(sealed) == enc + len(plaintext) + 16
    assert hpke_open(key, sealed, INFO) == plaintext


def test_sealing_is_randomised(key: RecipientKey) -> None:
    a = hpke_seal(key.suite, key.public_bytes(), b"m", INFO)
    b = hpke_seal(key.suite, key.public_bytes(), b"m", INFO)
    assert a != b


def test_wrong_info(key: RecipientKey) -> None:
    sealed = hpke_seal(key.suite, key.public_bytes(), b"secret", INFO)
    with pytest.raises(IntegrityError):
        hpke_open(key, sealed, INFO + b"x")


def test_wrong_key(key: RecipientKey) -> None:
    sealed = hpke_seal(key.suite, key.public_bytes(), b"secret", INFO)
    with pytest.raises(IntegrityError):
        hpke_open(RecipientKey.generate(key.suite), sealed, INFO)


def test_wrong_suite_key() -> None:
    x = RecipientKey.generate(HpkeSuite.X25519)
    hybrid = RecipientKey.generate(HpkeSuite.MLKEM768_X25519)
    sealed = hpke_seal(HpkeSuite.X25519, x.public_bytes(), b"secret", INFO)
    with pytest.raises(IntegrityError):
        hpke_open(hybrid, sealed, INFO)


@pytest.mark.parametrize("where", ["enc-first", "enc-last", "ciphertext", "tag"])
def test_flipped_byte(key: RecipientKey, where: str) -> None:
    sealed = bytearray(hpke_seal(key.suite, key.public_bytes(), b"secret!", INFO))
    enc = 1120 if key.suite is HpkeSuite.MLKEM768_X25519 else 32
    pos = {"enc-first": 0, "enc-last": enc - 1, "ciphertext": enc + 1,
           "tag": len(sealed) - 1}[where]
    sealed[pos] ^= 0x01
    with pytest.raises(IntegrityError):
        hpke_open(key, bytes(sealed), INFO)


@pytest.mark.parametrize("cut", [1, 17, 100])
def test_truncated(key: RecipientKey, cut: int) -> None:
    sealed = hpke_seal(key.suite, key.public_bytes(), b"secret", INFO)
    with pytest.raises(IntegrityError):
        hpke_open(key, sealed[:-cut] if cut < len(sealed) else b"", INFO)


@pytest.mark.parametrize("suite", SUITES, ids=[s.name for s in SUITES])
def test_bad_public_key_size(suite: HpkeSuite) -> None:
    with pytest.raises(ConfigError, match="public key must be"):
        hpke_seal(suite, bytes(31), b"m", INFO)
    other = RecipientKey.generate(
        HpkeSuite.X25519 if suite is HpkeSuite.MLKEM768_X25519
        else HpkeSuite.MLKEM768_X25519)
    with pytest.raises(ConfigError):
        hpke_seal(suite, other.public_bytes(), b"m", INFO)


def test_private_bytes_round_trip(key: RecipientKey) -> None:
    raw = key.private_bytes()
    assert len(raw) == (96 if key.suite is HpkeSuite.MLKEM768_X25519 else 32)
    again = RecipientKey.from_private_bytes(key.suite, raw)
    assert again.public_bytes() == key.public_bytes()
    sealed = hpke_seal(key.suite, key.public_bytes(), b"static", INFO)
    assert hpke_open(again, sealed, INFO) == b"static"
    with pytest.raises(ConfigError, match="private key must be"):
        RecipientKey.from_private_bytes(key.suite, raw[:-1])
