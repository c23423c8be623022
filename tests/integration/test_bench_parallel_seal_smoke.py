"""Smoke test: ``bench_parallel_seal.py --quick`` runs and writes sane JSON."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_bench_parallel_seal_quick(tmp_path: Path) -> None:
    out = tmp_path / "parallel_seal.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "bench_parallel_seal.py"),
         "--quick", "--dir", str(tmp_path), "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "|" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["verified"]["w2_byte_identical_to_w1"] is True
    for name in ("ours_w1", "ours_w2"):
        assert doc["operations"][name]["gb_per_s"]["median"] > 0
    assert doc["speedup_w2_over_w1"] > 0
    assert "openssl" in doc["operations"] and "age" in doc["operations"]
