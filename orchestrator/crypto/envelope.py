"""Streaming segmented AEAD envelope for sealed datasets and model weights.

The construction follows Tink's AES-GCM-HKDF streaming AEAD and age's STREAM
(Hoang, Reyhanitabar, Rogaway, Vizár, "Online Authenticated-Encryption and its
Nonce-Reuse Misuse-Resistance", CRYPTO 2015): the plaintext is cut into segments,
each sealed with AES-256-GCM (NIST SP 800-38D) under a per-object key, with the
segment index and a last-segment flag in the nonce.

File layout (all sizes in bytes)::

    MAGIC (8, b"SOVSEAL1") | header length L (4, big-endian) | header JSON (L)
    | segment 0 | segment 1 | ... | segment n-1 (final)

The header JSON is :func:`~orchestrator.canonical.canonical_bytes` of::

    {"v": 1, "aead": "AES-256-GCM", "kdf": "HKDF-SHA256", "object_id": str,
     "label": dict, "manifest_digest": str, "segment_size": int,
     "nonce_prefix": base64(7 bytes), "salt": base64(32 bytes)}

with ``1 <= L <= 65536`` and ``4096 <= segment_size <= 67108864`` (default 1048576).

* Segment key: ``HKDF-SHA256(ikm=DEK, salt=salt, info=b"sovereign-orchestrator/
  stream/v1", L=32)`` (RFC 5869); the salt is 32 random bytes per object, so one DEK
  may seal several objects without nonce reuse.
* Nonce of segment ``i`` (12 bytes): ``nonce_prefix (7) || i (4, big-endian) ||
  last (1: 0x01 for the final segment, else 0x00)``. At most 2**32 segments.
* AAD of every segment: the complete header bytes (magic, length and JSON), which
  binds the label, object id and manifest digest to every segment.
* Every plaintext segment is exactly ``segment_size`` bytes except the final one,
  which holds 0..``segment_size`` bytes (full when the plaintext length is a
  non-zero multiple of ``segment_size``; empty only for an empty plaintext). Each
  ciphertext segment is its plaintext plus a 16-byte GCM tag.

Truncation (at a segment boundary or inside one), reordering, duplication, trailing
data, any bit flip, a relabelled header and a wrong DEK all fail authentication and
raise :class:`~orchestrator.errors.IntegrityError`.
"""

from __future__ import annotations

import collections
import io
import os
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from orchestrator.crypto._primitives import GcmCipher
from orchestrator.crypto.aead import AEAD_TAG_SIZE, hkdf_sha256
from orchestrator.crypto.envelope_header import (
    DEFAULT_SEGMENT_SIZE,
    HEADER_MAX,
    MAGIC,
    MAX_SEGMENT_SIZE,
    MAX_SEGMENTS,
    MIN_SEGMENT_SIZE,
    NONCE_PREFIX_SIZE,
    SALT_SIZE,
    EnvelopeHeader,
    ReadableStream,
    WritableStream,
    read_header,
)
from orchestrator.errors import ConfigError, IntegrityError

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "HEADER_MAX",
    "MAGIC",
    "MAX_SEGMENTS",
    "MAX_SEGMENT_SIZE",
    "MIN_SEGMENT_SIZE",
    "NONCE_PREFIX_SIZE",
    "SALT_SIZE",
    "STREAM_INFO",
    "EnvelopeHeader",
    "ReadableStream",
    "WritableStream",
    "open_bytes",
    "open_stream",
    "open_to_memory",
    "read_header",
    "seal_bytes",
    "seal_stream",
]

STREAM_INFO = b"sovereign-orchestrator/stream/v1"
"""HKDF ``info`` for the segment key."""

_FINAL = b"\x01"
_NOT_FINAL = b"\x00"


def _segment_cipher(dek: bytes, header: EnvelopeHeader) -> GcmCipher:
    if len(dek) != 32:
        raise ConfigError(f"DEK must be 32 bytes, not {len(dek)}")
    key = hkdf_sha256(dek, salt=header.salt, info=STREAM_INFO, length=32)
    return GcmCipher(key)


def _nonce(prefix: bytes, index: int, last: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (_FINAL if last else _NOT_FINAL)


def _read_full(src: ReadableStream, view: memoryview) -> int:
    """Fill ``view`` from ``src`` until full or at EOF; return the byte count."""
    readinto: Callable[[memoryview], int | None] | None = getattr(
        src, "readinto", None)
    total = 0
    size = len(view)
    while total < size:
        if readinto is not None:
            got = readinto(view[total:])
            if got is None:
                raise ConfigError("non-blocking streams are not supported")
        else:
            chunk = src.read(size - total)
            if chunk is None:
                raise ConfigError("non-blocking streams are not supported")
            got = len(chunk)
            view[total:total + got] = chunk
        if got == 0:
            break
        total += got
    return total


def _write_all(dst: WritableStream, view: memoryview) -> None:
    """Write all of ``view``, looping over short writes of raw (unbuffered) files."""
    while view:
        done = dst.write(view)
        if not isinstance(done, int) or done >= len(view):
            return
        view = view[done:]


def seal_stream(src: ReadableStream, dst: WritableStream, dek: bytes, *,
                object_id: str, label: dict[str, Any], manifest_digest: str,
                segment_size: int = DEFAULT_SEGMENT_SIZE,
                progress: Callable[[int], None] | None = None,
                workers: int = 1) -> EnvelopeHeader:
    """Seal everything readable from ``src`` into ``dst`` as an envelope.

    Streams: memory use is about two segments (one ``segment_size + 1`` input
    buffer and one ``segment_size + 16`` output buffer, both reused) whatever the
    input size. A fresh 7-byte nonce prefix and 32-byte salt come from
    ``os.urandom`` per call.

    Parameters
    ----------
    src
        Plaintext source, read to EOF (``readinto`` is used where available).
    dst
        Destination; receives the header then each sealed segment.
    dek
        32-byte data-encryption key (see :func:`~orchestrator.crypto.new_dek`).
    object_id, label, manifest_digest
        Bound into the header and so authenticated by every segment. ``label``
        must be JSON-serialisable without floats NaN/Infinity.
    segment_size
        Plaintext bytes per segment, 4096..67108864 (default 1048576).
    progress
        Called after each segment with the number of plaintext bytes sealed so far.
    workers
        Segments sealed in parallel by a thread pool (AES-GCM releases the GIL);
        ``1`` (default) seals sequentially. The output is byte-identical for any
        value (same header, same per-segment nonces, written in order); memory
        use grows to about ``3 * workers`` segments.

    Returns
    -------
    EnvelopeHeader
        The header written (its ``raw`` is the exact header bytes).

    Raises
    ------
    ConfigError
        If ``dek`` is not 32 bytes, a header field is invalid, the header exceeds
        65536 bytes, or the input would need more than 2**32 segments.
    """
    header = EnvelopeHeader.create(
        object_id=object_id, label=label, manifest_digest=manifest_digest,
        segment_size=segment_size, nonce_prefix=os.urandom(NONCE_PREFIX_SIZE),
        salt=os.urandom(SALT_SIZE))
    cipher = _segment_cipher(dek, header)
    aad = header.raw
    _write_all(dst, memoryview(aad))
    if workers > 1:
        _seal_parallel(src, dst, cipher, header, workers, progress)
        return header
    size = header.segment_size
    buf = bytearray(size + 1)
    view = memoryview(buf)
    out = bytearray(size + AEAD_TAG_SIZE)
    out_view = memoryview(out)
    have = 0
    index = 0
    done = 0
    while True:
        have += _read_full(src, view[have:])
        last = have <= size
        seg_len = have if last else size
        written = cipher.encrypt_into(_nonce(header.nonce_prefix, index, last),
                                      view[:seg_len], aad,
                                      out_view[:seg_len + AEAD_TAG_SIZE])
        _write_all(dst, out_view[:written])
        done += seg_len
        if progress is not None:
            progress(done)
        if last:
            return header
        # One byte of look-ahead told us this segment was not the final one.
        buf[0] = buf[size]
        have = 1
        index += 1
        if index >= MAX_SEGMENTS:
            raise ConfigError("input too large: more than 2**32 segments")


def _plain_segments(src: ReadableStream,
                    size: int) -> Iterator[tuple[int, bool, bytes]]:
    """Yield ``(index, last, plaintext)``, with the same look-ahead as sealing."""
    buf = bytearray(size + 1)
    view = memoryview(buf)
    have = index = 0
    while True:
        have += _read_full(src, view[have:])
        last = have <= size
        yield index, last, bytes(view[:have if last else size])
        if last:
            return
        buf[0] = buf[size]
        have = 1
        index += 1
        if index >= MAX_SEGMENTS:
            raise ConfigError("input too large: more than 2**32 segments")


def _seal_parallel(src: ReadableStream, dst: WritableStream, cipher: GcmCipher,
                   header: EnvelopeHeader, workers: int,
                   progress: Callable[[int], None] | None) -> None:
    """Seal segments on ``workers`` threads, writing them in index order."""
    pending: collections.deque[tuple[int, Future[bytes]]] = collections.deque()
    done = 0

    def drain(keep: int) -> None:
        nonlocal done
        while len(pending) > keep:
            seg_len, future = pending.popleft()
            _write_all(dst, memoryview(future.result()))
            done += seg_len
            if progress is not None:
                progress(done)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        for index, last, plain in _plain_segments(src, header.segment_size):
            nonce = _nonce(header.nonce_prefix, index, last)
            pending.append((len(plain), pool.submit(cipher.encrypt, nonce, plain,
                                                    header.raw)))
            drain(2 * workers)
        drain(0)


def open_stream(src: ReadableStream,
                dek: bytes) -> tuple[EnvelopeHeader, Iterator[bytes]]:
    """Open an envelope, yielding verified plaintext segments lazily.

    The header is read and parsed now; segments are read, verified and decrypted
    as the iterator is consumed, one segment (plus one byte of look-ahead to tell
    the final segment apart) at a time.

    .. warning::
       Each yielded segment has been authenticated on its own, but the *object* is
       only authentic once the iterator is exhausted without error. If it raises
       :class:`~orchestrator.errors.IntegrityError` part-way (truncation, reordered
       or tampered segment), the consumer must discard every segment it already
       received: write to a temporary file and rename only on success.

    Parameters
    ----------
    src
        Envelope source positioned at the magic.
    dek
        The 32-byte DEK used to seal.

    Returns
    -------
    tuple[EnvelopeHeader, Iterator[bytes]]
        The parsed header (not yet authenticated) and a lazy segment iterator.

    Raises
    ------
    ConfigError
        If ``dek`` is not 32 bytes.
    IntegrityError
        Now, for a malformed header (see :func:`read_header`); during iteration,
        naming the segment index, for any segment that fails to authenticate: wrong
        DEK, relabelled header, bit flip, truncation, reordering, duplication or
        trailing data.
    """
    header = read_header(src)
    cipher = _segment_cipher(dek, header)
    return header, _segments(src, cipher, header)


def _walk(src: ReadableStream,
          header: EnvelopeHeader) -> Iterator[tuple[int, bool, memoryview]]:
    """Yield ``(index, last, ciphertext)`` per segment; the view is reused."""
    csize = header.segment_size + AEAD_TAG_SIZE
    buf = bytearray(csize + 1)
    view = memoryview(buf)
    have = 0
    index = 0
    while True:
        have += _read_full(src, view[have:])
        last = have <= csize
        clen = have if last else csize
        if clen < AEAD_TAG_SIZE:
            raise IntegrityError(
                f"segment {index}: truncated ({clen} bytes, shorter than a tag)",
                field=f"segment {index}")
        yield index, last, view[:clen]
        if last:
            return
        # One byte of look-ahead told us this segment was not the final one.
        buf[0] = buf[csize]
        have = 1
        index += 1
        if index >= MAX_SEGMENTS:
            raise IntegrityError("more than 2**32 segments", field=f"segment {index}")


def _auth_error(index: int, exc: IntegrityError) -> IntegrityError:
    err = IntegrityError(
        f"segment {index} failed authentication (wrong key, tampered, relabelled, "
        "truncated or reordered)", field=f"segment {index}")
    err.__cause__ = exc
    return err


def _segments(src: ReadableStream, cipher: GcmCipher,
              header: EnvelopeHeader) -> Iterator[bytes]:
    aad = header.raw
    for index, last, ct in _walk(src, header):
        try:
            plain = cipher.decrypt(_nonce(header.nonce_prefix, index, last), ct, aad)
        except IntegrityError as exc:
            raise _auth_error(index, exc) from exc
        yield plain


def _remaining(src: ReadableStream) -> int | None:
    """Bytes left in a seekable ``src``, or ``None`` when it cannot tell."""
    if not isinstance(src, io.IOBase):
        return None
    try:
        if not src.seekable():
            return None
        pos = src.tell()
        end = src.seek(0, io.SEEK_END)
        src.seek(pos)
    except (OSError, ValueError):
        return None
    return end - pos


def open_to_memory(src: ReadableStream,
                   dek: bytes) -> tuple[EnvelopeHeader, bytearray]:
    """Open and fully verify an envelope into one ``bytearray``.

    Nothing is returned unless every segment verified, so there is nothing to
    discard on failure. For a seekable ``src`` the result is allocated once at its
    final size and each segment is decrypted straight into it (no per-segment
    copies), which matters for multi-GiB objects.

    Raises
    ------
    ConfigError
        If ``dek`` is not 32 bytes.
    IntegrityError
        As :func:`open_stream`.
    """
    header = read_header(src)
    cipher = _segment_cipher(dek, header)
    left = _remaining(src)
    csize = header.segment_size + AEAD_TAG_SIZE
    guess = 0
    if left is not None and left >= AEAD_TAG_SIZE:
        guess = left - AEAD_TAG_SIZE * max(1, -(-left // csize))
    data = bytearray(max(guess, 0))
    aad = header.raw
    pos = 0
    for index, last, ct in _walk(src, header):
        end = pos + len(ct) - AEAD_TAG_SIZE
        if end > len(data):
            data.extend(bytes(end - len(data)))
        try:
            cipher.decrypt_into(_nonce(header.nonce_prefix, index, last), ct, aad,
                                memoryview(data)[pos:end])
        except IntegrityError as exc:
            raise _auth_error(index, exc) from exc
        pos = end
    del data[pos:]
    return header, data


def seal_bytes(data: bytes, dek: bytes, *, object_id: str, label: dict[str, Any],
               manifest_digest: str,
               segment_size: int = DEFAULT_SEGMENT_SIZE, workers: int = 1) -> bytes:
    """Seal ``data`` in memory; see :func:`seal_stream` for parameters and errors."""
    out = io.BytesIO()
    seal_stream(io.BytesIO(data), out, dek, object_id=object_id, label=label,
                manifest_digest=manifest_digest, segment_size=segment_size,
                workers=workers)
    return out.getvalue()


def open_bytes(blob: bytes, dek: bytes, *,
               expected_object_id: str | None = None) -> tuple[EnvelopeHeader, bytes]:
    """Open and fully verify an in-memory envelope.

    Parameters
    ----------
    blob
        The complete envelope.
    dek
        The 32-byte DEK used to seal.
    expected_object_id
        If given, the header's ``object_id`` must equal it (defends against a valid
        envelope of another object being substituted).

    Raises
    ------
    ConfigError
        If ``dek`` is not 32 bytes.
    IntegrityError
        As :func:`open_stream`, or if ``object_id`` differs from
        ``expected_object_id``.
    """
    src = io.BytesIO(blob)
    header, data = open_to_memory(src, dek)
    if expected_object_id is not None and header.object_id != expected_object_id:
        raise IntegrityError(
            f"sealed object is {header.object_id!r}, expected {expected_object_id!r}",
            field="object_id")
    return header, bytes(data)
