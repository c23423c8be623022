"""Child process for ``bench_envelope.py``: seal or open one file with our envelope.

Usage::

    _envelope_worker.py seal IN OUT [--dek-file F]
    _envelope_worker.py open IN OUT [--dek-file F]

``seal`` streams ``IN`` into the envelope file ``OUT`` with
:func:`orchestrator.crypto.envelope.seal_stream` (default 1 MiB segments); ``open``
streams the envelope ``IN`` through :func:`~orchestrator.crypto.envelope.open_stream`
and writes every verified plaintext segment to ``OUT``. Files are opened as the
product opens them (``open(path, "rb")`` / ``"wb"``, default buffering).

The 32-byte DEK comes from ``--dek-file`` (default: the sealed file's path plus
``.dek``); ``seal`` creates that file with :func:`~orchestrator.crypto.new_dek` if it
does not exist. On success one JSON line goes to stdout:
``{"op", "bytes", "crypto_s", "import_s"}`` where ``crypto_s`` is the time inside
``seal_stream`` / the ``open_stream`` loop (files open, data moved, output closed) and
``import_s`` the time to import the envelope module. The parent measures the
whole-process wall time and peak RSS itself.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

_T0 = time.perf_counter()
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from orchestrator.crypto.envelope import open_stream, seal_stream  # noqa: E402
from orchestrator.crypto.keywrap import new_dek  # noqa: E402

_IMPORT_S = time.perf_counter() - _T0


def _dek(path: Path, *, create: bool) -> bytes:
    if create and not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(new_dek())
    dek = path.read_bytes()
    if len(dek) != 32:
        raise SystemExit(f"{path}: DEK must be 32 bytes, not {len(dek)}")
    return dek


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("op", choices=["seal", "open"])
    ap.add_argument("src", type=Path)
    ap.add_argument("dst", type=Path)
    ap.add_argument("--dek-file", type=Path, default=None)
    args = ap.parse_args(argv)
    sealed = args.dst if args.op == "seal" else args.src
    dek = _dek(args.dek_file or Path(str(sealed) + ".dek"), create=args.op == "seal")

    t0 = time.perf_counter()
    n = 0
    if args.op == "seal":
        with open(args.src, "rb") as src, open(args.dst, "wb") as dst:
            seal_stream(
                src,
                dst,
                dek,
                object_id="bench-object",
                label={"bench": True},
                manifest_digest="sha256:" + "0" * 64,
            )
        n = args.src.stat().st_size
    else:
        with open(args.src, "rb") as src, open(args.dst, "wb") as dst:
            _header, segments = open_stream(src, dek)
            for segment in segments:
                dst.write(segment)
                n += len(segment)
    crypto_s = time.perf_counter() - t0
    print(
        json.dumps(
            {"op": args.op, "bytes": n, "crypto_s": crypto_s, "import_s": _IMPORT_S}
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
