"""Drive the project's crypto wrappers with Google's Wycheproof test vectors.

Each vector is one test id naming the file's tcId, key/IV size and expected result;
``test_*_counts`` carry the number of vectors run and refused in their ids.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.crypto import (
    aead_decrypt,
    aead_encrypt,
    hkdf_sha256,
    unwrap_dek,
    verify_signature,
    wrap_dek,
)
from orchestrator.crypto._primitives import kwp_unwrap, kwp_wrap
from orchestrator.errors import ConfigError, IntegrityError

Pair = tuple[dict[str, Any], dict[str, Any]]
h = bytes.fromhex
VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "wycheproof"


def load_vectors(name: str) -> tuple[dict[str, Any], list[Pair]]:
    """Return the Wycheproof file and a flat list of ``(group, test)`` pairs."""
    doc = json.loads((VECTORS / name).read_text())
    pairs = [(g, t) for g in doc["testGroups"] for t in g["tests"]]
    assert len(pairs) == doc["numberOfTests"]
    return doc, pairs

# ------------------------------------------------------------------ AES-GCM
GCM_DOC, GCM = load_vectors("aes_gcm_test.json")


def _gcm_supported(g: dict[str, Any]) -> bool:
    return bool(g["keySize"] == 256 and g["ivSize"] == 96 and g["tagSize"] == 128)


GCM_RUN = [p for p in GCM if _gcm_supported(p[0])]
GCM_REFUSED = [p for p in GCM if not _gcm_supported(p[0])]


def _gcm_id(p: Pair) -> str:
    g, t = p
    return f"tc{t['tcId']}-k{g['keySize']}-iv{g['ivSize']}-{t['result']}"


@pytest.mark.parametrize("pair", GCM_RUN, ids=_gcm_id)
def test_aes_gcm_256_96(pair: Pair) -> None:
    _, t = pair
    key, iv, aad, msg = h(t["key"]), h(t["iv"]), h(t["aad"]), h(t["msg"])
    sealed = h(t["ct"]) + h(t["tag"])
    if t["result"] == "valid":
        assert aead_encrypt(key, iv, msg, aad) == sealed
        assert aead_decrypt(key, iv, sealed, aad) == msg
    else:
        with pytest.raises(IntegrityError):
            aead_decrypt(key, iv, sealed, aad)


@pytest.mark.parametrize("pair", GCM_REFUSED, ids=_gcm_id)
def test_aes_gcm_other_sizes_refused(pair: Pair) -> None:
    _, t = pair
    key, iv, aad, msg = h(t["key"]), h(t["iv"]), h(t["aad"]), h(t["msg"])
    with pytest.raises(ConfigError, match=r"unsupported (key|nonce) length"):
        aead_encrypt(key, iv, msg, aad)
    with pytest.raises(ConfigError, match=r"unsupported (key|nonce) length"):
        aead_decrypt(key, iv, h(t["ct"]) + h(t["tag"]), aad)


def test_aes_gcm_nonce_rule_message() -> None:
    with pytest.raises(ConfigError, match="unsupported nonce length 16"):
        aead_encrypt(bytes(32), bytes(16), b"", b"")


@pytest.mark.parametrize("counts", [
    f"total{len(GCM)}-ran{len(GCM_RUN)}-refused{len(GCM_REFUSED)}"])
def test_aes_gcm_counts(counts: str) -> None:
    assert len(GCM_RUN) == 66
    assert len(GCM_RUN) + len(GCM_REFUSED) == GCM_DOC["numberOfTests"] == 316


# ------------------------------------------------------------------ AES-KWP
KWP_DOC, KWP = load_vectors("aes_kwp_test.json")
KWP_256 = [p for p in KWP if p[0]["keySize"] == 256]
KWP_OTHER = [p for p in KWP if p[0]["keySize"] != 256]


def _kwp_id(p: Pair) -> str:
    g, t = p
    return f"tc{t['tcId']}-k{g['keySize']}-{t['result']}"


def _check_kwp(t: dict[str, Any], wrap: Any, unwrap: Any) -> None:
    key, msg, ct = h(t["key"]), h(t["msg"]), h(t["ct"])
    if t["result"] == "valid":
        assert wrap(key, msg) == ct
        assert unwrap(key, ct) == msg
    else:
        with pytest.raises(IntegrityError):
            unwrap(key, ct)


@pytest.mark.parametrize("pair", KWP_256, ids=_kwp_id)
def test_aes_kwp_wrap_dek(pair: Pair) -> None:
    """256-bit KEKs go through the public wrap_dek / unwrap_dek."""
    _check_kwp(pair[1], wrap_dek, unwrap_dek)


@pytest.mark.parametrize("pair", KWP_OTHER, ids=_kwp_id)
def test_aes_kwp_other_kek_sizes(pair: Pair) -> None:
    """wrap_dek refuses 128/192-bit KEKs; the RFC 5649 core is checked below it."""
    _, t = pair
    with pytest.raises(ConfigError, match="KEK must be 32 bytes"):
        unwrap_dek(h(t["key"]), h(t["ct"]))
    _check_kwp(t, kwp_wrap, kwp_unwrap)


@pytest.mark.parametrize("counts", [
    f"total{len(KWP)}-wrap_dek{len(KWP_256)}-primitive_only{len(KWP_OTHER)}"])
def test_aes_kwp_counts(counts: str) -> None:
    assert len(KWP_256) == 94
    assert len(KWP_256) + len(KWP_OTHER) == KWP_DOC["numberOfTests"] == 254


# --------------------------------------------------------------------- HKDF
HKDF_DOC, HKDF = load_vectors("hkdf_sha256_test.json")


@pytest.mark.parametrize("pair", HKDF,
                         ids=lambda p: f"tc{p[1]['tcId']}-L{p[1]['size']}-"
                                       f"{p[1]['result']}")
def test_hkdf_sha256(pair: Pair) -> None:
    _, t = pair
    args = (h(t["ikm"]),)
    kw = {"salt": h(t["salt"]), "info": h(t["info"]), "length": t["size"]}
    if t["result"] == "valid":
        assert hkdf_sha256(*args, **kw) == h(t["okm"])
    else:
        with pytest.raises(ConfigError, match="output length"):
            hkdf_sha256(*args, **kw)


def test_hkdf_counts() -> None:
    assert len(HKDF) == HKDF_DOC["numberOfTests"] == 86


# ------------------------------------------------------------------ Ed25519
ED_DOC, ED = load_vectors("ed25519_test.json")


@pytest.mark.parametrize("pair", ED, ids=lambda p: f"tc{p[1]['tcId']}-"
                                                   f"{p[1]['result']}")
def test_ed25519_verify(pair: Pair) -> None:
    """Vectors carry the raw 32-byte key as ``publicKey.pk`` (hex)."""
    g, t = pair
    pk = h(g["publicKey"]["pk"])
    if t["result"] == "valid":
        verify_signature(pk, h(t["sig"]), h(t["msg"]))
    else:
        with pytest.raises(IntegrityError):
            verify_signature(pk, h(t["sig"]), h(t["msg"]))


def test_ed25519_counts() -> None:
    assert len(ED) == ED_DOC["numberOfTests"] == 151
    assert {t["result"] for _, t in ED} == {"valid", "invalid"}
