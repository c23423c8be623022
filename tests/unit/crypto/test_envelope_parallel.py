"""Parallel segment sealing (``workers=2``) is byte-identical to sequential."""

from __future__ import annotations

import os

import pytest

from orchestrator.crypto import envelope, new_dek, open_bytes

DIGEST = "sha256:" + "0" * 64


@pytest.mark.parametrize("size", [0, 1, 4096, 4096 * 7, 4096 * 7 + 5])
@pytest.mark.parametrize("workers", [2, 3])
def test_parallel_seal_is_byte_identical(monkeypatch: pytest.MonkeyPatch,
                                         size: int, workers: int) -> None:
    data, dek = os.urandom(size), new_dek()
    monkeypatch.setattr(envelope.os, "urandom", lambda n: b"\x5a" * n)
    kw = {"object_id": "o", "label": {"a": 1}, "manifest_digest": DIGEST,
          "segment_size": 4096}
    sequential = envelope.seal_bytes(data, dek, **kw)  # type: ignore[arg-type]
    parallel = envelope.seal_bytes(data, dek, workers=workers,
                                   **kw)  # type: ignore[arg-type]
    assert parallel == sequential
    assert open_bytes(parallel, dek)[1] == data


def test_parallel_seal_reports_progress_in_order() -> None:
    import io

    seen: list[int] = []
    envelope.seal_stream(io.BytesIO(bytes(4096 * 5 + 1)), io.BytesIO(), new_dek(),
                         object_id="o", label={}, manifest_digest=DIGEST,
                         segment_size=4096, progress=seen.append, workers=2)
    assert seen == [4096, 8192, 12288, 16384, 20480, 20481]
