"""Ed25519 signing keys, PEM storage and atomic writes."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from orchestrator.crypto import (
    SigningKey,
    atomic_write_bytes,
    key_id_of,
    load_private_key,
    save_private_key,
    verify_signature,
)
from orchestrator.errors import ConfigError, IntegrityError


def test_sign_verify_round_trip() -> None:
    key = SigningKey.generate()
    sig = key.sign(b"custody event")
    assert len(sig) == 64 and len(key.public_bytes()) == 32
    verify_signature(key.public_bytes(), sig, b"custody event")
    assert key.sign(b"custody event") == sig  # deterministic (RFC 8032)


def test_key_id() -> None:
    key = SigningKey.generate()
    expect = "ed25519:" + hashlib.sha256(key.public_bytes()).hexdigest()[:16]
    assert key.key_id == expect == key_id_of(key.public_bytes())
    assert key.key_id in repr(key)
    with pytest.raises(ConfigError):
        key_id_of(b"short")


@pytest.mark.parametrize("case", ["wrong-data", "wrong-key", "flipped-sig",
                                  "short-sig", "long-sig", "empty-sig"])
def test_verify_failures(case: str) -> None:
    key = SigningKey.generate()
    sig = key.sign(b"data")
    pub, data = key.public_bytes(), b"data"
    if case == "wrong-data":
        data = b"datA"
    elif case == "wrong-key":
        pub = SigningKey.generate().public_bytes()
    elif case == "flipped-sig":
        sig = bytes([sig[0] ^ 1]) + sig[1:]
    elif case == "short-sig":
        sig = sig[:63]
    elif case == "long-sig":
        sig = sig + b"\x00"
    else:
        sig = b""
    with pytest.raises(IntegrityError):
        verify_signature(pub, sig, data)


def test_verify_bad_public_key_size() -> None:
    with pytest.raises(ConfigError, match="32 bytes"):
        verify_signature(bytes(31), bytes(64), b"")


def test_pem_round_trip() -> None:
    key = SigningKey.generate()
    pem = key.to_pem()
    assert pem.startswith(b"-----BEGIN PRIVATE KEY-----")
    again = SigningKey.from_pem(pem)
    assert again.public_bytes() == key.public_bytes()
    with pytest.raises(ConfigError):
        SigningKey.from_pem(
            b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")


def test_save_load(tmp_path: Path) -> None:
    key = SigningKey.generate()
    path = tmp_path / "nation.key"
    save_private_key(path, key)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_private_key(path).public_bytes() == key.public_bytes()
    # Overwrite keeps 0600 and leaves no temp files behind.
    save_private_key(path, SigningKey.generate())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nation.key"]


def test_mode_from_creation_despite_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        save_private_key(tmp_path / "k", SigningKey.generate())
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "k").stat().st_mode) == 0o600


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_refuses_open_permissions(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "k.pem"
    save_private_key(path, SigningKey.generate())
    path.chmod(mode)
    with pytest.raises(ConfigError, match="permissions too open") as info:
        load_private_key(path)
    assert str(path) in str(info.value)


def test_load_missing_or_garbage(tmp_path: Path) -> None:
    missing = tmp_path / "nope.pem"
    with pytest.raises(ConfigError) as info:
        load_private_key(missing)
    assert str(missing) in str(info.value)
    garbage = tmp_path / "garbage.pem"
    atomic_write_bytes(garbage, b"not a key")
    with pytest.raises(ConfigError) as info:
        load_private_key(garbage)
    assert str(garbage) in str(info.value)
    with pytest.raises(ConfigError, match="not a regular file"):
        load_private_key(tmp_path)


def test_atomic_write_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"one")
    atomic_write_bytes(path, b"two", mode=0o644)
    assert path.read_bytes() == b"two"
    assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    with pytest.raises(OSError):
        atomic_write_bytes(tmp_path / "missing-dir" / "x", b"")
