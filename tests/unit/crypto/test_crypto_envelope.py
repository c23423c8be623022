"""Streaming envelope: round trips, every tamper attack, bounded memory."""

from __future__ import annotations

import hashlib
import io
import os
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from orchestrator.crypto import (
    MAGIC,
    EnvelopeHeader,
    new_dek,
    open_bytes,
    open_stream,
    open_to_memory,
    read_header,
    seal_bytes,
    seal_stream,
)
from orchestrator.errors import ConfigError, IntegrityError

SEG = 4096
CSEG = SEG + 16
DEK = bytes(range(32))
LABEL: dict[str, Any] = {"nation": "NO", "classification": "restricted"}
DIGEST = "sha256:" + "ab" * 32


def seal(data: bytes, dek: bytes = DEK, **kw: Any) -> bytes:
    args: dict[str, Any] = {"object_id": "obj-1", "label": LABEL,
                            "manifest_digest": DIGEST, "segment_size": SEG}
    args.update(kw)
    return seal_bytes(data, dek, **args)


def header_len(blob: bytes) -> int:
    return 12 + int.from_bytes(blob[8:12], "big")


def segments(blob: bytes) -> tuple[bytes, list[bytes]]:
    hl = header_len(blob)
    body = blob[hl:]
    return blob[:hl], [body[i:i + CSEG] for i in range(0, len(body), CSEG)]


PLAIN = os.urandom(3 * SEG + SEG // 2)  # 3.5 segments
BLOB = seal(PLAIN)


# ----------------------------------------------------------------- round trips
@pytest.mark.parametrize("size", [0, 1, SEG - 1, SEG, SEG + 1, 2 * SEG,
                                  3 * SEG + SEG // 2],
                         ids=["empty", "one", "seg-1", "seg", "seg+1", "2seg",
                              "3.5seg"])
def test_round_trip_sizes(size: int) -> None:
    data = os.urandom(size)
    blob = seal(data)
    n_segments = max(1, -(-size // SEG))
    assert len(blob) == header_len(blob) + size + 16 * n_segments
    header, out = open_bytes(blob, DEK, expected_object_id="obj-1")
    assert out == data
    assert header.label == LABEL and header.manifest_digest == DIGEST
    assert header.segment_size == SEG


@settings(max_examples=40, deadline=None)
@given(data=st.binary(max_size=5 * SEG),
       seg=st.sampled_from([4096, 8192]))
def test_round_trip_hypothesis(data: bytes, seg: int) -> None:
    blob = seal(data, segment_size=seg)
    assert open_bytes(blob, DEK)[1] == data


def test_streaming_yields_segments_and_progress() -> None:
    seen: list[int] = []
    dst = io.BytesIO()
    seal_stream(io.BytesIO(PLAIN), dst, DEK, object_id="o", label={},
                manifest_digest="", segment_size=SEG, progress=seen.append)
    assert seen == [SEG, 2 * SEG, 3 * SEG, len(PLAIN)]
    dst.seek(0)
    header, it = open_stream(dst, DEK)
    parts = list(it)
    assert [len(p) for p in parts] == [SEG, SEG, SEG, SEG // 2]
    assert b"".join(parts) == PLAIN and header.object_id == "o"


def test_default_segment_size_and_fresh_randomness() -> None:
    a, b = seal_bytes(b"x", DEK, object_id="o", label={}, manifest_digest=""), \
        seal_bytes(b"x", DEK, object_id="o", label={}, manifest_digest="")
    ha, hb = EnvelopeHeader.parse(a[:header_len(a)]), EnvelopeHeader.parse(
        b[:header_len(b)])
    assert ha.segment_size == 1 << 20
    assert ha.salt != hb.salt and ha.nonce_prefix != hb.nonce_prefix and a != b


def test_read_header_without_key_and_reparse() -> None:
    src = io.BytesIO(BLOB)
    header = read_header(src)
    assert src.tell() == header_len(BLOB)
    assert header.to_bytes() == BLOB[:header_len(BLOB)]
    assert EnvelopeHeader.parse(header.to_bytes()) == header
    assert len(header.nonce_prefix) == 7 and len(header.salt) == 32
    assert BLOB.startswith(MAGIC)


def test_source_without_readinto() -> None:
    class ReadOnly:
        def __init__(self, data: bytes) -> None:
            self._b = io.BytesIO(data)

        def read(self, n: int = -1) -> bytes:
            return self._b.read(min(n, 1000))  # short reads on purpose

    dst = io.BytesIO()
    seal_stream(ReadOnly(PLAIN), dst, DEK, object_id="o",
                label={}, manifest_digest="", segment_size=SEG)
    dst.seek(0)
    assert open_to_memory(ReadOnly(dst.getvalue()), DEK)[1] == PLAIN


# ------------------------------------------------------------------ parameters
@pytest.mark.parametrize("kw", [{"segment_size": 4095},
                                {"segment_size": 64 * 2**20 + 1},
                                {"object_id": ""}, {"label": {"x": float("nan")}},
                                {"label": {"x": object()}},
                                {"label": {"big": "x" * 70000}}],
                         ids=["seg-too-small", "seg-too-big", "empty-object-id",
                              "label-nan", "label-unserialisable", "header-too-big"])
def test_bad_parameters(kw: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        seal(b"data", **kw)


@pytest.mark.parametrize("dek", [b"", bytes(16), bytes(33)], ids=["0", "16", "33"])
def test_bad_dek_size(dek: bytes) -> None:
    with pytest.raises(ConfigError, match="DEK must be 32 bytes"):
        seal(b"x", dek)
    with pytest.raises(ConfigError, match="DEK must be 32 bytes"):
        open_bytes(BLOB, dek)


# ---------------------------------------------------------------------- attacks
def _attacks() -> dict[str, bytes]:
    head, segs = segments(BLOB)
    assert len(segs) == 4
    hl = len(head)
    flip = bytearray(BLOB)
    flip[hl + CSEG + 5] ^= 1
    tag_flip = bytearray(BLOB)
    tag_flip[hl + 2 * CSEG - 1] ^= 0x80
    last_tag_flip = bytearray(BLOB)
    last_tag_flip[-1] ^= 1
    magic_flip = bytearray(BLOB)
    magic_flip[0] ^= 1
    digest_at = BLOB.index(DIGEST.encode())
    digest_flip = bytearray(BLOB)
    digest_flip[digest_at + 10] ^= 1  # 'b' -> 'c': still valid JSON
    label_at = BLOB.index(b"restricted")
    label_edit = BLOB[:label_at] + b"unrestrict" + BLOB[label_at + 10:]
    other = seal(PLAIN)
    exact = seal(os.urandom(2 * SEG))
    _, exact_segs = segments(exact)
    return {
        "truncate-drop-final-segment": head + b"".join(segs[:3]),
        "truncate-drop-final-full-segment": exact[:header_len(exact)] + exact_segs[0],
        "truncate-mid-segment": BLOB[:hl + CSEG + 100],
        "truncate-mid-tag": BLOB[:-5],
        "truncate-header-only": head,
        "truncate-empty-object-final": seal(b"")[:-16],
        "truncate-inside-header": BLOB[:hl - 5],
        "truncate-inside-length": BLOB[:10],
        "truncate-inside-magic": BLOB[:4],
        "empty-file": b"",
        "reorder-segments-0-1": head + segs[1] + segs[0] + segs[2] + segs[3],
        "reorder-final-moved-first": head + segs[3] + segs[0] + segs[1] + segs[2],
        "duplicate-segment": head + segs[0] + segs[1] + segs[1] + segs[2] + segs[3],
        "segment-from-other-object": head + segs[0] + segments(other)[1][1]
        + segs[2] + segs[3],
        "header-from-other-object": other[:header_len(other)] + BLOB[hl:],
        "trailing-byte": BLOB + b"\x00",
        "trailing-segment-copy": BLOB + segs[2],
        "bitflip-ciphertext": bytes(flip),
        "bitflip-tag": bytes(tag_flip),
        "bitflip-final-tag": bytes(last_tag_flip),
        "bitflip-magic": bytes(magic_flip),
        "bitflip-manifest-digest": bytes(digest_flip),
        "edit-label-bytes": label_edit,
    }


ATTACKS = _attacks()


def _open_streaming(blob: bytes) -> None:
    _, it = open_stream(io.BytesIO(blob), DEK)
    for _seg in it:
        pass


def _open_unseekable(blob: bytes) -> None:
    class Pipe:
        def __init__(self) -> None:
            self._b = io.BytesIO(blob)

        def read(self, n: int = -1) -> bytes:
            return self._b.read(n)

    open_to_memory(Pipe(), DEK)


OPENERS = {"open_bytes": lambda b: open_bytes(b, DEK),
           "open_stream": _open_streaming, "open_to_memory-pipe": _open_unseekable}


@pytest.mark.parametrize("via", sorted(OPENERS))
@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_detected(name: str, via: str) -> None:
    with pytest.raises(IntegrityError):
        OPENERS[via](ATTACKS[name])


def test_every_header_bit_flip_detected() -> None:
    hl = header_len(BLOB)
    for pos in range(hl):
        for bit in (0, 7):
            blob = bytearray(BLOB)
            blob[pos] ^= 1 << bit
            with pytest.raises(IntegrityError):
                open_bytes(bytes(blob), DEK)


def test_wrong_dek() -> None:
    with pytest.raises(IntegrityError, match="segment 0"):
        open_bytes(BLOB, new_dek())


def test_swapped_label_rewritten_header() -> None:
    """A well-formed header re-encoded with another label (same salt/nonce)."""
    head = read_header(io.BytesIO(BLOB))
    forged = EnvelopeHeader.create(
        object_id=head.object_id, label={"nation": "NO", "classification": "open"},
        manifest_digest=head.manifest_digest, segment_size=head.segment_size,
        nonce_prefix=head.nonce_prefix, salt=head.salt)
    blob = forged.to_bytes() + BLOB[header_len(BLOB):]
    assert read_header(io.BytesIO(blob)).label["classification"] == "open"
    with pytest.raises(IntegrityError, match="segment 0"):
        open_bytes(blob, DEK)


def test_object_id_mismatch() -> None:
    with pytest.raises(IntegrityError, match="expected 'obj-2'"):
        open_bytes(BLOB, DEK, expected_object_id="obj-2")


@pytest.mark.parametrize("delta", [1, -1, 1000], ids=["+1", "-1", "+1000"])
def test_header_length_lies(delta: int) -> None:
    true_len = header_len(BLOB) - 12
    blob = BLOB[:8] + (true_len + delta).to_bytes(4, "big") + BLOB[12:]
    with pytest.raises(IntegrityError):
        open_bytes(blob, DEK)


@pytest.mark.parametrize("value", [0, 65537, 2**32 - 1])
def test_header_length_out_of_range(value: int) -> None:
    blob = BLOB[:8] + value.to_bytes(4, "big") + BLOB[12:]
    with pytest.raises(IntegrityError, match="header length"):
        read_header(io.BytesIO(blob))


@pytest.mark.parametrize("body", [b"not json", b"[]", b'{"v":1}', b'{"v": 1}',
                                  "{\"v\":\"\u00e9\"}".encode("latin-1")],
                         ids=["garbage", "array", "missing-keys", "non-canonical",
                              "bad-utf8"])
def test_header_bad_json(body: bytes) -> None:
    raw = MAGIC + len(body).to_bytes(4, "big") + body
    with pytest.raises(IntegrityError, match="envelope header"):
        EnvelopeHeader.parse(raw)


def test_non_canonical_but_valid_header_refused() -> None:
    import json
    head = read_header(io.BytesIO(BLOB))
    doc = json.loads(head.raw[12:])
    body = json.dumps(doc, indent=1).encode()
    with pytest.raises(IntegrityError, match="not canonical"):
        EnvelopeHeader.parse(MAGIC + len(body).to_bytes(4, "big") + body)


def test_streaming_failure_names_segment_after_good_ones() -> None:
    blob = ATTACKS["truncate-drop-final-segment"]
    _, it = open_stream(io.BytesIO(blob), DEK)
    assert next(it) == PLAIN[:SEG]
    assert next(it) == PLAIN[SEG:2 * SEG]
    with pytest.raises(IntegrityError) as info:
        next(it)
    assert info.value.field == "segment 2"


# ---------------------------------------------------------------------- memory
class PatternSource(io.RawIOBase):
    """A ``size``-byte read-only stream generated on the fly (never materialised)."""

    PERIOD = 65521  # prime, so 1 MiB segments all differ

    def __init__(self, size: int) -> None:
        self._left = size
        self._pos = 0
        self._block = hashlib.shake_256(b"seed").digest(self.PERIOD) * 2

    def readable(self) -> bool:
        return True

    def readinto(self, buf: Any) -> int:
        n = min(len(buf), self._left, self.PERIOD)
        off = self._pos % self.PERIOD
        buf[:n] = self._block[off:off + n]
        self._left -= n
        self._pos += n
        return n


class HashSink(io.RawIOBase):
    def __init__(self) -> None:
        self.sha = hashlib.sha256()
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        self.sha.update(b)
        self.size += len(b)
        return len(b)


def _chunks(it: Iterator[bytes]) -> tuple[int, str]:
    sha = hashlib.sha256()
    n = 0
    for seg in it:
        sha.update(seg)
        n += len(seg)
    return n, sha.hexdigest()


def test_streaming_memory_bounded(tmp_path: Path) -> None:
    size = 64 * 2**20
    dek = new_dek()
    path = tmp_path / "big.sealed"
    tracemalloc.start()
    try:
        with path.open("wb") as dst:
            seal_stream(PatternSource(size), dst, dek, object_id="big", label={},
                        manifest_digest="", segment_size=1 << 20)
        _, seal_peak = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        with path.open("rb") as src:
            _, it = open_stream(src, dek)
            n, digest = _chunks(it)
        _, open_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"tracemalloc peaks: seal {seal_peak} B, open {open_peak} B")
    assert seal_peak < 8 * 2**20, seal_peak
    assert open_peak < 8 * 2**20, open_peak
    with path.open("rb") as fh:
        hl = header_len(fh.read(4096))
    assert path.stat().st_size == hl + size + 64 * 16
    expect = hashlib.sha256()
    gen = PatternSource(size)
    buf = bytearray(1 << 20)
    while (k := gen.readinto(buf)):
        expect.update(buf[:k])
    assert (n, digest) == (size, expect.hexdigest())


# --------------------------------------------------------------- counter limit
def test_counter_overflow_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """The 4-byte counter allows 2**32 segments; simulate the limit at 2."""
    from orchestrator.crypto import envelope

    blob = seal(os.urandom(2 * SEG + 1))  # 3 segments
    monkeypatch.setattr(envelope, "MAX_SEGMENTS", 2)
    with pytest.raises(ConfigError, match="2\\*\\*32 segments"):
        seal(os.urandom(2 * SEG + 1))
    assert len(seal(os.urandom(2 * SEG))) > 0  # exactly 2 segments is fine
    with pytest.raises(IntegrityError, match="2\\*\\*32 segments"):
        open_bytes(blob, DEK)


@pytest.mark.parametrize("size", [0, SEG, 3 * SEG + 7])
def test_open_to_memory_from_file(tmp_path: Path, size: int) -> None:
    data = os.urandom(size)
    path = tmp_path / "obj.sealed"
    path.write_bytes(b"junk-before" + seal(data))
    with path.open("rb") as fh:
        fh.seek(len(b"junk-before"))
        header, out = open_to_memory(fh, DEK)
    assert out == data and isinstance(out, bytearray) and header.object_id == "obj-1"
