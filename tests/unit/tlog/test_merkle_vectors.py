"""transparency-dev/merkle test vectors for RFC 9162 inclusion and consistency proofs.

The vectors (Apache-2.0, see ``tests/vectors/merkle/LICENSE``) are copied from
transparency-dev/merkle ``testdata/{inclusion,consistency}``. Each JSON file holds
base64 hashes and ``wantErr``; every file is one test case.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from orchestrator.tlog.merkle import ProofError, verify_consistency, verify_inclusion

ROOT = Path(__file__).resolve().parents[2] / "vectors" / "merkle" / "testdata"
INCLUSION = sorted((ROOT / "inclusion").rglob("*.json"))
CONSISTENCY = sorted((ROOT / "consistency").rglob("*.json"))


def _id(path: Path) -> str:
    return str(path.relative_to(ROOT))


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _b64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _proof(data: dict[str, Any]) -> list[bytes]:
    return [_b64(p) for p in data["proof"] or []]


def test_vectors_present() -> None:
    assert (ROOT.parent / "LICENSE").is_file()
    assert len(INCLUSION) == 98
    assert len(CONSISTENCY) == 98


@pytest.mark.parametrize("path", INCLUSION, ids=_id)
def test_inclusion_vector(path: Path) -> None:
    v = _load(path)
    args = (_b64(v["leafHash"]), v["leafIdx"], v["treeSize"], _proof(v),
            _b64(v["root"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_inclusion(*args)
    else:
        verify_inclusion(*args)


@pytest.mark.parametrize("path", CONSISTENCY, ids=_id)
def test_consistency_vector(path: Path) -> None:
    v = _load(path)
    args = (v["size1"], v["size2"], _proof(v), _b64(v["root1"]), _b64(v["root2"]))
    if v["wantErr"]:
        with pytest.raises(ProofError):
            verify_consistency(*args)
    else:
        verify_consistency(*args)
