"""Smoke test of the benchmark scripts: each runs in a quick mode and writes its JSON.

Quick modes: ``bench_envelope.py --size-mib 8 --reps 1`` (with ``age`` when
installed, and once with ``--age`` pointing nowhere, which must still measure our
side and record age as unavailable) and ``bench_workflow.py --reps 1``. The figures
are not checked for speed, only for presence and sanity.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"


def _run(script: str, out: Path, *args: str, timeout: float) -> dict:
    bindir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bindir + os.pathsep + os.environ.get("PATH", "")}
    proc = subprocess.run(
        [sys.executable, str(BENCH / script), *args, "--json", str(out)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert proc.returncode == 0, (
        f"{script} exited {proc.returncode}:\n"
        f"{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    assert out.is_file()
    assert "|" in proc.stdout  # printed a Markdown table
    return json.loads(out.read_text())


def _check_ours(doc: dict) -> None:
    assert doc["benchmark"] == "envelope"
    assert doc["config"]["size_mib"] == 8
    for key in ("our_seal", "our_open", "our_seal_small", "python_floor"):
        op = doc["operations"][key]
        assert op["available"] is True
        assert op["wall_s"]["median"] > 0
        assert op["maxrss_mib"]["median"] > 0
    for key in ("our_seal", "our_open"):
        assert doc["operations"][key]["gb_per_s"]["median"] > 0
    assert doc["verified"]["our_roundtrip"] is True
    mem = doc["memory"]
    for key in (
        "seal_peak_rss_mib",
        "small_seal_peak_rss_mib",
        "python_floor_rss_mib",
        "rss_growth_mib",
        "bounded",
    ):
        assert key in mem
    assert mem["bounded"] is True


def test_envelope_quick(tmp_path: Path) -> None:
    doc = _run(
        "bench_envelope.py",
        tmp_path / "envelope.json",
        "--size-mib",
        "8",
        "--reps",
        "1",
        timeout=60,
    )
    _check_ours(doc)
    if shutil.which("age") and shutil.which("age-keygen"):
        assert doc["age_available"] is True
        for key in ("age_encrypt", "age_decrypt"):
            assert doc["operations"][key]["available"] is True
            assert doc["operations"][key]["gb_per_s"]["median"] > 0
        assert doc["verified"]["age_roundtrip"] is True
        for key in ("seal_over_age_encrypt", "open_over_age_decrypt"):
            assert doc["ratios"][key]["wall_time"]["median"] > 0
    else:
        assert doc["age_available"] is False


def test_envelope_quick_without_age(tmp_path: Path) -> None:
    doc = _run(
        "bench_envelope.py",
        tmp_path / "envelope.json",
        "--size-mib",
        "8",
        "--reps",
        "1",
        "--age",
        str(tmp_path / "no-such-age"),
        timeout=60,
    )
    _check_ours(doc)
    assert doc["age_available"] is False
    assert doc["operations"]["age_encrypt"] == {"available": False}
    assert doc["operations"]["age_decrypt"] == {"available": False}
    assert doc["ratios"] == {}


def test_workflow_quick(tmp_path: Path) -> None:
    doc = _run(
        "bench_workflow.py", tmp_path / "workflow.json", "--reps", "1", timeout=80
    )
    assert doc["benchmark"] == "workflow"
    assert doc["config"]["n_tasks"] == 14
    for mode in ("sovereign", "plain"):
        for key in ("wall_s", "process_wall_s", "first_fold_s"):
            assert doc[mode][key]["median"] > 0
        assert doc[mode]["first_fold_s"]["median"] <= doc[mode]["wall_s"]["median"]
    for key in ("wall_s", "process_wall_s", "first_fold_s"):
        assert doc["ratio_sovereign_over_plain"][key]["median"] > 0
    acc = doc["mean_test_accuracy"]
    assert acc["sovereign"] == acc["plain"]
    assert 0.5 < acc["plain"] <= 1.0
    assert doc["accuracy_equal"] is True
