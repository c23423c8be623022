"""Only orchestrator/crypto/_primitives.py (and crypto/x509.py, for certificates)
may import cryptography.hazmat."""

from __future__ import annotations

import ast
from pathlib import Path

import orchestrator

ROOT = Path(orchestrator.__file__).resolve().parent
ALLOWED = ROOT / "crypto" / "_primitives.py"
ALLOWED_X509 = ROOT / "crypto" / "x509.py"


def _hazmat_importers() -> list[str]:
    found = []
    for path in sorted(ROOT.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.startswith("cryptography.hazmat") for n in names):
                found.append(str(path.relative_to(ROOT)))
                break
    return found


def test_only_primitives_imports_hazmat() -> None:
    assert _hazmat_importers() == sorted(
        str(p.relative_to(ROOT)) for p in (ALLOWED, ALLOWED_X509)
    )
