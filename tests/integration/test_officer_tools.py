"""Officers' offline tools end to end: prove, verify-bundle, report (Chromium).

The officer verifies a bundle in an empty directory holding only the bundle and
its own ``trust.json`` (the log's and the witnesses' keys it pinned when the
parties were introduced)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from testkit import ROOT, Sovereign, World, make_world

from orchestrator.embedded import witness

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def job(tmp_path_factory: pytest.TempPathFactory) -> tuple[World, str, Sovereign]:
    from orchestrator.embedded import submit

    world = make_world(tmp_path_factory.mktemp("officer-world"))
    result = submit(world.state, ROOT / "workflows" / "sonar_classification.toml",
                    "local")
    witness(world.state, "AUS")
    witness(world.state, "GBR")
    return world, result.model_ids[0], Sovereign(world.state.root)


def _offline(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run the CLI with an empty cwd and a state dir that does not exist."""
    env = {**os.environ, "SOVEREIGN_STATE_DIR": str(cwd / "no-such-state"),
           "COLUMNS": "200", "NO_COLOR": "1"}
    return subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=cwd,
                          env=env, capture_output=True, text=True, timeout=120,
                          check=False)


@pytest.fixture
def offline_dir(job: tuple[World, str, Sovereign], tmp_path: Path) -> Path:
    _, model_id, cli = job
    out = tmp_path / "made" / "bundle.json"
    out.parent.mkdir()
    cli("custody", "prove", model_id, "--out", str(out))
    empty = tmp_path / "officer"
    empty.mkdir()
    shutil.copy(out, empty / "bundle.json")
    shutil.copy(job[0].state.officer_dir("AUS") / "trust.json", empty / "trust.json")
    return empty


def test_bundle_verifies_in_a_fresh_process_with_nothing_else(
    job: tuple[World, str, Sovereign], offline_dir: Path
) -> None:
    _, model_id, _ = job
    proc = _offline(["custody", "verify-bundle", "bundle.json", "--trust",
                     "trust.json", "--require-cosigners", "AUS,GBR", "--json"],
                    offline_dir)
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["verified"] and report["model_id"] == model_id
    assert report["log_key_pinned"] and report["cosigners"] == ["AUS", "GBR"]
    assert sorted(p.name for p in offline_dir.iterdir()) == ["bundle.json",
                                                            "trust.json"]
    unpinned = _offline(["custody", "verify-bundle", "bundle.json"], offline_dir)
    assert unpinned.returncode == 3 and "no pinned log key" in unpinned.stderr
    bare = _offline(["custody", "verify-bundle", "bundle.json",
                     "--trust-log-on-first-use"], offline_dir)
    assert bare.returncode == 3 and "custodian:AUS's key is not pinned" in bare.stderr
    witnesses = json.loads((offline_dir / "trust.json").read_text())["witnesses"]
    tofu = _offline(["custody", "verify-bundle", "bundle.json",
                     "--trust-log-on-first-use",
                     *[f"--witness-key={n}={v}" for n, v in witnesses.items()]],
                    offline_dir)
    assert tofu.returncode == 0, tofu.stderr
    assert "verified" in tofu.stdout and "on first use" in tofu.stdout


def _rewrite(path: Path, edit: Any) -> None:
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))


def _drop_cosignature(doc: dict[str, Any]) -> None:
    note = doc["checkpoint"]["note"]
    doc["checkpoint"]["note"] = "".join(
        line for line in note.splitlines(keepends=True)
        if not line.startswith("\u2014 witness-AUS "))


def _flip_proof(doc: dict[str, Any]) -> None:
    raw = bytearray(base64.b64decode(doc["entries"][0]["proof"][0]))
    raw[0] ^= 1
    doc["entries"][0]["proof"][0] = base64.b64encode(bytes(raw)).decode()


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (lambda text: text[: len(text) // 2], "not a JSON document"),
        (lambda text: "\x00\xff garbage", "not a JSON document"),
        (lambda text: "[1, 2, 3]", "not a custody bundle"),
        (lambda text: "[" * 100000, "not a JSON document"),
    ],
)
def test_truncated_or_garbage_json(offline_dir: Path, content: Any, words: str) -> None:
    path = offline_dir / "bundle.json"
    path.write_text(content(path.read_text()), errors="surrogateescape")
    proc = _offline(["custody", "verify-bundle", "bundle.json"], offline_dir)
    assert proc.returncode == 3, proc.stderr
    assert "Traceback" not in proc.stderr and words in proc.stderr


@pytest.mark.parametrize(
    ("edit", "args", "words"),
    [
        (_flip_proof, [], "entry 0 inclusion proof"),
        (lambda d: d["entries"].pop(), [], "bundle: "),
        (lambda d: None, ["--require-cosigners", "USA"], "witness-USA"),
        (_drop_cosignature, ["--require-cosigners", "AUS"], "witness-AUS"),
    ],
)
def test_forged_bundles_are_refused_by_the_cli(
    offline_dir: Path, edit: Any, args: list[str], words: str
) -> None:
    _rewrite(offline_dir / "bundle.json", edit)
    proc = _offline(["custody", "verify-bundle", "bundle.json", "--trust",
                     "trust.json", *args], offline_dir)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr and words in proc.stderr, proc.stderr


def test_missing_file_and_bad_log_key(offline_dir: Path) -> None:
    proc = _offline(["custody", "verify-bundle", "nope.json"], offline_dir)
    assert proc.returncode == 2 and "cannot read bundle" in proc.stderr
    proc = _offline(["custody", "verify-bundle", "bundle.json", "--log-key", "bad"],
                    offline_dir)
    assert proc.returncode == 3 and "--log-key" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_prove_unknown_model(job: tuple[World, str, Sovereign], tmp_path: Path) -> None:
    res = job[2]("custody", "prove", "model-nope", "--out", str(tmp_path / "b.json"),
                 ok=False)
    assert res.code == 5 and not (tmp_path / "b.json").exists()


# -- the HTML report in headless Chromium -------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> str:
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "install-chromium.sh")],
                          capture_output=True, text=True, timeout=900, check=False)
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if proc.returncode != 0 or path is None:
        pytest.skip(f"chromium unavailable: {proc.stderr.strip()[-300:]}")
    return path


def _chromium(binary: str, tmp: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [binary, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync",
         f"--user-data-dir={tmp / 'chromium-profile'}", *args],
        capture_output=True, text=True, timeout=30, check=False)


def test_report_renders_in_headless_chromium(
    job: tuple[World, str, Sovereign], chromium: str, tmp_path: Path
) -> None:
    world, model_id, cli = job
    report = tmp_path / "report.html"
    cli("custody", "report", "--nation", "AUS", "--out", str(report))
    page = report.read_text()
    for external in ("http://", "https://", "<script", "<link", "@import"):
        assert external not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    dom = _chromium(chromium, tmp_path, "--dump-dom", report.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert "uci-sonar" in html and world.dataset_id in html and model_id in html
    assert html.count("custodian:AUS") >= 14  # the key-release rows
    assert 'id="key-releases"' in html and html.count("<tr>") >= 15
    assert 'id="lineage-graph"' in html and html.count('class="node"') == 3
    assert 'id="transfers-empty"' in html and 'id="denials-empty"' in html
    assert "sovereign-orchestrator/custody/" in html and "witness-AUS" in html
    assert "custody log verified" in html and "cosigned by AUS, GBR" in html
    png = tmp_path / "report.png"
    shot = _chromium(chromium, tmp_path, f"--screenshot={png}",
                     "--window-size=1200,1600", report.as_uri())
    assert shot.returncode == 0, shot.stderr[-2000:]
    data = png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 20_000
    assert struct.unpack(">II", data[16:24]) == (1200, 1600)


def test_report_escapes_and_names_denials(
    job: tuple[World, str, Sovereign], tmp_path: Path
) -> None:
    world, model_id, cli = job
    refused = cli("model", "open", model_id, "--as", "GBR", "--out",
                  str(tmp_path / "m.bin"), ok=False)
    assert refused.code == 4
    from orchestrator.embedded import render_nation_report

    page = render_nation_report(world.state, "AUS")  # AUS owns the model
    assert "model.open.denied" in page and "GBR is not an owner" in page
    assert "<script" not in page
