"""DEKs, key wrapping and one-shot AEAD beyond the Wycheproof vectors."""

from __future__ import annotations

import os

import pytest

from orchestrator.crypto import (
    DEK_SIZE,
    aead_decrypt,
    aead_encrypt,
    hkdf_sha256,
    new_dek,
    unwrap_dek,
    wrap_dek,
)
from orchestrator.errors import ConfigError, IntegrityError


def test_dek_wrap_round_trip() -> None:
    kek, dek = new_dek(), new_dek()
    assert len(dek) == DEK_SIZE == 32 and dek != new_dek()
    wrapped = wrap_dek(kek, dek)
    assert len(wrapped) == 40
    assert unwrap_dek(kek, wrapped) == dek


@pytest.mark.parametrize("case", ["wrong-kek", "flip", "truncate", "extend", "empty"])
def test_unwrap_failures(case: str) -> None:
    kek, dek = new_dek(), new_dek()
    wrapped = wrap_dek(kek, dek)
    bad = {"wrong-kek": wrapped, "flip": bytes([wrapped[0] ^ 1]) + wrapped[1:],
           "truncate": wrapped[:-8], "extend": wrapped + bytes(8), "empty": b""}[case]
    with pytest.raises(IntegrityError):
        unwrap_dek(new_dek() if case == "wrong-kek" else kek, bad)


@pytest.mark.parametrize("size", [0, 16, 24, 31, 33])
def test_kek_size_refused(size: int) -> None:
    with pytest.raises(ConfigError, match="KEK must be 32 bytes"):
        wrap_dek(os.urandom(size), new_dek())
    with pytest.raises(ConfigError, match="KEK must be 32 bytes"):
        unwrap_dek(os.urandom(size), bytes(40))


def test_wrap_empty_refused() -> None:
    with pytest.raises(ConfigError):
        wrap_dek(new_dek(), b"")


def test_aead_round_trip_and_failures() -> None:
    key, nonce = new_dek(), os.urandom(12)
    ct = aead_encrypt(key, nonce, b"hello", b"aad")
    assert len(ct) == 5 + 16
    assert aead_decrypt(key, nonce, ct, b"aad") == b"hello"
    for args in [(new_dek(), nonce, ct, b"aad"), (key, os.urandom(12), ct, b"aad"),
                 (key, nonce, ct, b"aaD"), (key, nonce, ct[:-1], b"aad"),
                 (key, nonce, b"", b"aad")]:
        with pytest.raises(IntegrityError):
            aead_decrypt(*args)


@pytest.mark.parametrize("nonce_len", [0, 8, 11, 13, 16])
def test_aead_nonce_length(nonce_len: int) -> None:
    with pytest.raises(ConfigError, match="unsupported nonce length"):
        aead_encrypt(new_dek(), bytes(nonce_len), b"", b"")


@pytest.mark.parametrize("length", [0, -1, 8161])
def test_hkdf_length_bounds(length: int) -> None:
    with pytest.raises(ConfigError):
        hkdf_sha256(b"ikm", salt=None, info=b"", length=length)


def test_hkdf_empty_salt_equals_none() -> None:
    assert hkdf_sha256(b"ikm", salt=b"", info=b"i", length=32) == \
        hkdf_sha256(b"ikm", salt=None, info=b"i", length=32)
    assert len(hkdf_sha256(b"ikm", salt=None, info=b"", length=8160)) == 8160
