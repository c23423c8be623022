"""Checkpoints as C2SP signed notes, with tlog-cosignature witness cosignatures."""

from __future__ import annotations

import base64
import hashlib

import pytest

from orchestrator.crypto import SigningKey
from orchestrator.errors import ConfigError, IntegrityError
from orchestrator.tlog.checkpoint import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    MAX_NOTE_SIZE,
    Checkpoint,
    CheckpointError,
    NoteSigner,
    NoteVerifier,
    add_signature,
    cosign,
    key_hint,
    open_note,
    parse_note,
    sign,
    verify_cosigned,
    verify_note,
)
from orchestrator.tlog.merkle import leaf_hash, root_hash

ORIGIN = "sovereign-orchestrator.example/custody/log-1"
DASH = "\u2014 ".encode()

# golang.org/x/mod/sumdb/note example key and note (note_test.go / doc.go).
GO_SKEY_SEED = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz"
GO_VKEY = "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
GO_TEXT = (b"If you think cryptography is the answer to your problem,\n"
           b"then you don't know what your problem is.\n")
GO_SIG = ("x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngot"
          "pRZb6KE6RyyBwJnAM=")

# A real checkpoint of the transparency.dev staging CT log arche2025h1: an RFC 6962
# (type 0x05) and an Ed25519 log signature, then four cosignature/v1 lines.
REAL_NOTE = """arche2025h1.staging.ct.transparency.dev
1432088532
U7WM79jrzyhGZ5/GUBTpM7NzwdyfFx61t3RovgcC4Ro=

— arche2025h1.staging.ct.transparency.dev zTM8sQAAAZ5W0WdjBAMARjBEAiBjW5IQf9pvsYLfQFX6\
hoGREPMHbdQ3urbllzalApkptQIgIpwtEroeW2BXaHAI4kJXFbon5Ch9MNL5zRNZ55lvGt0=
— arche2025h1.staging.ct.transparency.dev ui8GwCF1+kWqZrxGdhj4aX3gcw7XUlXQQabg/27lefwh\
UkzbC3NygNI75MdhL1bfTW9g8Ei59RA23oHP7Ry1k3ZFWwQ=
— transparency.dev/DEV:witness-little-garden 2AQqhwAAAABqEiEgzgFIqqhbUoDwjMWE6UP8nd8/\
KYTzwZ2rhIgcqoXHAwVkjZr4AscylP3v7sEodkRAErumC2q44vdgJY096st5BQ==
— witness1.smartit.nu/witness1 pIyCDwAAAABqEiEghIp82KWebrw7/oHQwlTAm3g2RKS4+eebl8eO0WH+\
/iEcxZ75W3u5hNI7TOQtmJbqmNWVuE0tgh0XwzdZsDsUAQ==
— remora.n621.de 2net5wAAAABqEiEgPlfF3V06o0Y+fHM+J5J9s27wgxxcOVSpZ/2g/KSiXCg9DEZI+aVCI\
obWX9sXTynk5XeU/zZ0WBxtqB0DrAWfBw==
— witness.stagemole.eu Z/euoAAAAABqEiEgw0i+7g2ENfDAWHmtRzCfKTHSDwYDJA2NmKeGi9Y8FtEyOUvV\
r+AJmIY/2TUFucgKi7lI7cUiOvKFYe/TmN9DAg==
""".encode()
REAL_LOG = ("arche2025h1.staging.ct.transparency.dev+ba2f06c0+"
            "AU0vHmlGCS/PdN8b2OaGmKprLI8HKM+dJ472xgFYh15f")
REAL_WITNESSES = [
    "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",
    "witness.stagemole.eu+67f7aea0+BEqSG3yu9YrmcM3BHvQYTxwFj3uSWakQepafafpUqklv",
    "transparency.dev/DEV:witness-little-garden+d8042a87+"
    "BCtusOxINQNUTN5Oj8HObRkh2yHf/MwYaGX4CPdiVEPM",
    "witness1.smartit.nu/witness1+a48c820f+BPSFWg9G6KPiO7QPryYO5Xq4oYJJ+kAvLKLSimDhoxMO",
]


def _key_from_seed(seed: bytes) -> SigningKey:
    der = bytes.fromhex("302e020100300506032b657004220420") + seed  # RFC 8410
    pem = (b"-----BEGIN PRIVATE KEY-----\n" + base64.encodebytes(der)
           + b"-----END PRIVATE KEY-----\n")
    return SigningKey.from_pem(pem)


@pytest.fixture(scope="module")
def log_signer() -> NoteSigner:
    return NoteSigner(ORIGIN, SigningKey.generate())


@pytest.fixture(scope="module")
def checkpoint() -> Checkpoint:
    return Checkpoint(ORIGIN, 3, root_hash([leaf_hash(b"a"), leaf_hash(b"b"),
                                            leaf_hash(b"c")]))


def _witness(nation: str) -> NoteSigner:
    return NoteSigner(f"witness.{nation}.example", SigningKey.generate(),
                      ALG_COSIGNATURE_V1)


def _reason(exc: pytest.ExceptionInfo[CheckpointError]) -> str:
    return exc.value.reason


# --- format -------------------------------------------------------------------


def test_body_bytes_exact() -> None:
    cp = Checkpoint("example.com/log", 5, bytes(range(32)))
    assert cp.body() == (b"example.com/log\n5\n"
                         b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n")
    assert Checkpoint.from_body(cp.body()) == cp
    ext = Checkpoint("example.com/log", 0, bytes(32), ("ext one", "ext two"))
    assert ext.body().endswith(b"=\next one\next two\n")
    assert Checkpoint.from_body(ext.body()) == ext


@pytest.mark.parametrize("body", [
    b"example.com/log\n5\n", b"example.com/log\n05\nAAAA\n",
    b"example.com/log\n+5\n" + base64.b64encode(bytes(32)) + b"\n",
    b"example.com/log\n5\n" + base64.b64encode(bytes(31)) + b"\n",
    b"example.com/log\n5\n" + base64.b64encode(bytes(32)),
    b"\n5\n" + base64.b64encode(bytes(32)) + b"\n",
    b"example.com/log\n5\n" + base64.b64encode(bytes(32))[:-1] + b"\n",
])
def test_malformed_bodies(body: bytes) -> None:
    with pytest.raises(CheckpointError) as exc:
        Checkpoint.from_body(body)
    assert _reason(exc) == "malformed"


def test_invalid_checkpoint_fields() -> None:
    for args in [("", 1, bytes(32)), ("a\nb", 1, bytes(32)), ("o", -1, bytes(32)),
                 ("o", 1, bytes(31)), ("o", True, bytes(32))]:
        with pytest.raises(ConfigError):
            Checkpoint(*args)  # type: ignore[arg-type]


def test_go_reference_key_hint_vkey_and_signature() -> None:
    verifier = NoteVerifier.from_vkey(GO_VKEY)
    assert verifier.name == "PeterNeumann"
    assert verifier.hint.hex() == "c74f20a3"
    assert verifier.hint == hashlib.sha256(
        b"PeterNeumann\n\x01" + verifier.public_key).digest()[:4]
    assert verifier.vkey() == GO_VKEY
    signer = NoteSigner("PeterNeumann",
                        _key_from_seed(base64.b64decode(GO_SKEY_SEED)[1:]))
    assert signer.verifier() == verifier
    line = signer.signature_line(GO_TEXT)
    assert line == DASH + b"PeterNeumann " + GO_SIG.encode() + b"\n"


@pytest.mark.parametrize("vkey", [
    "TEST+7997405c+AQcC+FTVKf0jlTdHDY3rbevmnKxxPjigCXlVtGe6RIr6",
    "remora.n621.de+da77ade7+BOvN63jn/bLvkieywe8R6UYAtVtNbZpXh34x7onlmtw2",
])
def test_vkey_round_trip(vkey: str) -> None:
    assert NoteVerifier.from_vkey(vkey).vkey() == vkey


@pytest.mark.parametrize("vkey", [
    "PeterNeumann+c74f20a4+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
    "PeterNeumann+c74f20a3", "PeterNeumann+c74f20a3+!!!!",
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWAA==",
    "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
])
def test_bad_vkeys(vkey: str) -> None:
    with pytest.raises(ConfigError):
        NoteVerifier.from_vkey(vkey)


def test_key_hint_types_differ() -> None:
    key = SigningKey.generate()
    a = NoteSigner("w.example", key)
    b = NoteSigner("w.example", key, ALG_COSIGNATURE_V1)
    assert a.hint != b.hint
    assert b.hint == key_hint("w.example", 0x04, key.public_bytes())
    for bad in ["", "a b", "a+b", "a\u00a0b"]:
        with pytest.raises(ConfigError):
            NoteSigner(bad, key)


# --- signing and verification -------------------------------------------------


def test_round_trip(log_signer: NoteSigner, checkpoint: Checkpoint) -> None:
    note = sign(checkpoint, log_signer)
    assert note.startswith(checkpoint.body() + b"\n" + DASH + ORIGIN.encode())
    verifier = log_signer.verifier()
    assert verify_note(note, [verifier]) == checkpoint
    assert verify_note(note, [verifier], required=[ORIGIN], origin=ORIGIN) == checkpoint
    parsed = parse_note(note)
    assert parsed.text == checkpoint.body()
    (sig,) = parsed.signatures
    assert (sig.name, sig.hint, len(sig.signature)) == (ORIGIN, verifier.hint, 64)


def _replace_line(note: bytes, index: int, new: bytes) -> bytes:
    lines = note.split(b"\n")
    lines[index] = new
    return b"\n".join(lines)


def test_tampering(log_signer: NoteSigner, checkpoint: Checkpoint) -> None:
    note = sign(checkpoint, log_signer)
    v = [log_signer.verifier()]
    root = bytearray(checkpoint.root)
    root[0] ^= 1
    flipped = _replace_line(note, 2, base64.b64encode(bytes(root)))
    cases = {
        "flip root byte": (flipped, "bad-signature"),
        "change size": (_replace_line(note, 1, b"4"), "bad-signature"),
        "foreign key": (sign(checkpoint, NoteSigner(ORIGIN, SigningKey.generate())),
                        "unknown-key"),
        "strip signature": (checkpoint.body() + b"\n", "malformed"),
        "duplicate line": (note + note.split(b"\n\n")[1], "malformed"),
        "missing blank line": (note.replace(b"\n\n", b"\n"), "malformed"),
        "bad base64": (note[:-3] + b"!=\n", "malformed"),
        "no final newline": (note[:-1], "malformed"),
        "no em dash": (note.replace(DASH, b"- "), "malformed"),
        "control character": (note.replace(b"log-1", b"log\t1"), "malformed"),
        "not utf-8": (note.replace(b"log-1", b"log\xff1"), "malformed"),
        "oversize": (note + b"x" * MAX_NOTE_SIZE, "oversize"),
        "short signature": (checkpoint.body() + b"\n" + DASH + b"k AAAA\n",
                            "malformed"),
    }
    for what, (bad, reason) in cases.items():
        with pytest.raises(CheckpointError) as exc:
            verify_note(bad, v)
        assert _reason(exc) == reason, what
        assert isinstance(exc.value, IntegrityError)
    with pytest.raises(CheckpointError, match="wrong-origin"):
        verify_note(note, v, origin="other.example/log")
    sig = note.split(b"\n\n")[1].split(b" ")[-1]
    raw = bytearray(base64.b64decode(sig))
    raw[-1] ^= 1
    corrupt = note.replace(sig.strip(), base64.b64encode(bytes(raw)))
    with pytest.raises(CheckpointError, match="bad-signature"):
        verify_note(corrupt, v)


def test_unknown_lines_ignored_unless_required(
    log_signer: NoteSigner, checkpoint: Checkpoint
) -> None:
    other = NoteSigner("other.example", SigningKey.generate())
    note = add_signature(sign(checkpoint, log_signer), other)
    v = [log_signer.verifier()]
    assert verify_note(note, v) == checkpoint
    with pytest.raises(CheckpointError, match=r"unknown-key.*other\.example"):
        verify_note(note, v, required=[ORIGIN, "other.example"])
    with pytest.raises(CheckpointError, match=r"missing-signer.*third\.example"):
        verify_note(note, v, required=[ORIGIN, "third.example"])
    both = [*v, other.verifier()]
    assert open_note(note, both, required=2).verified == {
        ORIGIN: None, "other.example": None}
    with pytest.raises(CheckpointError, match="missing-signer"):
        verify_note(sign(checkpoint, log_signer), both, required=2)
    with pytest.raises(ConfigError):
        add_signature(note, other)
    with pytest.raises(ConfigError):
        verify_note(note, v, required=0)


def test_cosignature_round_trip(log_signer: NoteSigner, checkpoint: Checkpoint) -> None:
    aus, nzl, can = _witness("aus"), _witness("nzl"), _witness("can")
    note = sign(checkpoint, log_signer)
    note += cosign(checkpoint, aus, 1_700_000_000)
    note = add_signature(note, nzl, timestamp=1_700_000_001)
    witnesses = [w.verifier() for w in (aus, nzl, can)]
    got = verify_cosigned(note, log_signer.verifier(), witnesses,
                          required_witnesses=[aus.name, nzl.name], origin=ORIGIN)
    assert got.checkpoint == checkpoint
    assert got.verified == {ORIGIN: None, aus.name: 1_700_000_000,
                            nzl.name: 1_700_000_001}
    line = cosign(checkpoint, aus, 7)
    raw = base64.b64decode(line.split(b" ")[-1])
    assert raw[:4] == aus.hint and raw[4:12] == (7).to_bytes(8, "big")
    assert len(raw) == 4 + 8 + 64
    with pytest.raises(CheckpointError, match=f"missing-signer.*{can.name}"):
        verify_cosigned(note, log_signer.verifier(), witnesses,
                        required_witnesses=[aus.name, can.name])
    # A cosignature for another checkpoint, or with a changed timestamp, fails.
    other = Checkpoint(ORIGIN, 4, checkpoint.root)
    forged = sign(checkpoint, log_signer) + cosign(other, can, 5)
    with pytest.raises(CheckpointError, match="bad-signature"):
        verify_note(forged, witnesses)
    ts_raw = bytearray(raw)
    ts_raw[11] ^= 1
    retimed = sign(checkpoint, log_signer) + line.replace(
        line.split(b" ")[-1], base64.b64encode(bytes(ts_raw)) + b"\n")
    with pytest.raises(CheckpointError, match="bad-signature"):
        verify_note(retimed, witnesses)


def test_cosignature_key_types(log_signer: NoteSigner, checkpoint: Checkpoint) -> None:
    with pytest.raises(ConfigError):
        cosign(checkpoint, log_signer, 1)
    with pytest.raises(ConfigError):
        sign(checkpoint, _witness("aus"))
    with pytest.raises(ConfigError):
        _witness("aus").signature_line(b"x\n")
    with pytest.raises(ConfigError):
        log_signer.signature_line(b"x\n", timestamp=1)
    with pytest.raises(ConfigError):
        cosign(checkpoint, _witness("aus"), -1)
    with pytest.raises(ConfigError):
        verify_cosigned(sign(checkpoint, log_signer), log_signer.verifier(),
                        [log_signer.verifier()], required_witnesses=[])
    assert ALG_ED25519 == log_signer.alg


def test_real_cosigned_checkpoint() -> None:
    log = NoteVerifier.from_vkey(REAL_LOG)
    witnesses = [NoteVerifier.from_vkey(v) for v in REAL_WITNESSES]
    got = verify_cosigned(REAL_NOTE, log, witnesses,
                          required_witnesses=[w.name for w in witnesses])
    assert got.checkpoint.size == 1432088532
    assert set(got.verified.values()) == {None, 1779573024}
    clobbered = REAL_NOTE.replace(b"1432088532", b"1432088533")
    with pytest.raises(CheckpointError, match="bad-signature"):
        verify_cosigned(clobbered, log, witnesses, required_witnesses=[])
