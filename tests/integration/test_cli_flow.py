"""The whole path on the embedded default, through the real CLI, Parsl HTEX and SQLite.

One state directory is built once per module (nations, site, sealed sonar data with
a planted canary, agreement, a 13-fold job); the tests then check what each actor
sees, and that nothing in the clear reached the disk.
"""

from __future__ import annotations

import base64
import io
import json
import os
import sqlite3
import tempfile
import time
from pathlib import Path

import pytest
import torch
from testkit import ROOT, SONAR, Sovereign

from orchestrator.canonical import b64d
from orchestrator.embedded.layout import StateDir
from orchestrator.submit.registry import Registry

pytestmark = pytest.mark.slow

CANARY = "0.7193728465"  # a value that occurs nowhere in the real data


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    base = tmp_path_factory.mktemp("world")
    started = time.time()
    data = base / "sonar_canary.csv"
    lines = SONAR.read_text().splitlines()
    cells = lines[5].split(",")
    cells[7] = CANARY
    lines[5] = ",".join(cells)
    data.write_text("\n".join(lines) + "\n")
    cli = Sovereign(base / "state")
    for nation in ("AUS", "GBR", "USA"):
        cli("nation", "init", nation)
    cli("site", "register", "site_configs/local.toml")
    cli("site", "accredit", "local", "--by", "AUS")
    cli("site", "accredit", "local", "--by", "GBR")
    cli("site", "accredit", "local", "--by", "USA")
    cli(
        "dataset",
        "seal",
        str(data),
        "--name",
        "uci-sonar",
        "--owner",
        "AUS",
        "--classification",
        "SECRET",
        "--rel-to",
        "AUS,GBR,USA",
        "--export-control",
        "EAR99",
        "--caveat",
        "DEFENCE-RESEARCH-ONLY",
    )
    cli("agreement", "add", "agreements/aus-usa.toml",
        "--sign-as", "AUS,USA")
    job = cli(
        "submit", "workflows/sonar_classification.toml", "--site", "local", "--json"
    ).json()
    return {
        "cli": cli,
        "job": job,
        "started": started,
        "base": base,
        "basetemp": tmp_path_factory.getbasetemp(),
    }


def test_thirteen_folds_reach_the_papers_accuracy(world: dict[str, object]) -> None:
    job = world["job"]
    assert isinstance(job, dict)
    folds = [t for t in job["tasks"] if t.startswith("fold-")]
    assert len(folds) == 13
    assert all(job["tasks"][f]["test_rows"] == 16 for f in folds)
    assert job["summary"]["mean_test_accuracy"] >= 0.847
    assert len(job["models"]) == 1


def test_tasks_ran_in_separate_worker_processes(world: dict[str, object]) -> None:
    cli = world["cli"]
    assert isinstance(cli, Sovereign)
    started = [
        e
        for e in cli("custody", "log", "--json", "--limit", "0").json()
        if e["event"]["kind"] == "task.started"
    ]
    pids = {e["event"]["body"]["pid"] for e in started}
    assert len(started) == 14
    assert os.getpid() not in pids


def test_custody_log_verifies_and_holds_every_step(world: dict[str, object]) -> None:
    cli = world["cli"]
    assert isinstance(cli, Sovereign)
    report = cli("custody", "verify", "--json").json()
    kinds = report["kinds"]
    assert kinds["key.released"] == 14  # one per task attempt, AUS is the only owner
    assert kinds["policy.decided"] == 1
    assert kinds["task.completed"] == 14
    assert kinds["model.sealed"] == 1
    releases = [
        e
        for e in cli(
            "custody", "log", "--json", "--kind", "key.released", "--limit", "0"
        ).json()
    ]
    assert {r["event"]["body"]["tee_mode"] for r in releases} == {"none"}
    assert len({r["event"]["body"]["attempt_id"] for r in releases}) == 14


def test_trace_leads_from_model_to_dataset(world: dict[str, object]) -> None:
    cli, job = world["cli"], world["job"]
    assert isinstance(cli, Sovereign) and isinstance(job, dict)
    lineage = cli("custody", "trace", job["models"][0], "--json").json()
    assert lineage["datasets"][0]["name"] == "uci-sonar"
    kinds = [e["kind"] for e in lineage["job"]["events"]]
    assert kinds[0] == "request.submitted" and "key.released" in kinds
    label = lineage["model"]["label"]
    assert label["ownerProducer"] == ["AUS"] and label["classification"] == "SECRET"
    assert label["releasableTo"] == ["AUS", "GBR", "USA"]


def test_owner_opens_model_and_others_cannot(
    world: dict[str, object], tmp_path: Path
) -> None:
    cli, job = world["cli"], world["job"]
    assert isinstance(cli, Sovereign) and isinstance(job, dict)
    model_id = job["models"][0]
    out = tmp_path / "weights.pt"
    cli("model", "open", model_id, "--as", "AUS", "--out", str(out))
    checkpoint = torch.load(io.BytesIO(out.read_bytes()), weights_only=True)
    weights = [t for t in checkpoint["state_dict"].values() if t.ndim == 2]
    assert weights[0].shape == (12, 60)  # hidden layer: 12 units x 60 bands
    refused = cli(
        "model",
        "open",
        model_id,
        "--as",
        "GBR",
        "--out",
        str(tmp_path / "x.pt"),
        ok=False,
    )
    assert refused.code == 4 and "GBR may not open" in refused.err
    assert not (tmp_path / "x.pt").exists()
    denied = cli("custody", "log", "--json", "--kind", "model.open.denied").json()
    assert denied and denied[-1]["event"]["body"]["nation"] == "GBR"


def _all_files(roots: list[Path], since: float, skip: Path) -> list[Path]:
    """Files under ``roots`` modified since ``since``, outside ``skip`` (pytest's own
    temp tree, where other tests keep their plaintext *inputs* on purpose)."""
    found = []
    for root in roots:
        for dirpath, dirs, files in os.walk(root):
            dirs[:] = [d for d in dirs if Path(dirpath, d) != skip]
            for name in files:
                path = Path(dirpath) / name
                try:
                    if path.is_file() and path.stat().st_mtime >= since - 1:
                        found.append(path)
                except OSError:
                    continue
    return found


def test_no_plaintext_or_key_on_disk(world: dict[str, object]) -> None:
    """Plant a canary in the data; scan state dir, Parsl run dirs and temp dirs."""
    cli, base = world["cli"], world["base"]
    assert isinstance(cli, Sovereign) and isinstance(base, Path)
    state = StateDir(cli.state)
    from testkit import ctx_of

    dataset = Registry(state.registry_db).dataset("uci-sonar")
    aus = ctx_of(state, "AUS")  # the AUS custodian's own record of the key it wrapped
    wrapped = aus.store.dataset(dataset.id).wrapped
    dek = aus.keys.keystore().unwrap(
        wrapped["kek_id"], int(wrapped["kek_version"]), b64d(wrapped["wrapped_dek"]))
    secrets = [
        CANARY.encode(),
        SONAR.read_text().splitlines()[0][:60].encode(),
        dek,
        dek.hex().encode(),
        base64.b64encode(dek),
    ]
    roots = [cli.state, Path(tempfile.gettempdir()), Path("/dev/shm")]
    skip = Path(str(world["basetemp"]))
    files = _all_files(roots, float(str(world["started"])), skip)
    assert any(str(p).startswith(str(cli.state)) for p in files)
    assert any("runinfo" in str(p) for p in files), "Parsl run dir not scanned"
    for path in files:
        try:
            blob = path.read_bytes()
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            continue  # another process's temp file vanished while we scanned
        for secret in secrets:
            assert secret not in blob, f"plaintext or DEK found in {path}"


def test_tampered_custody_log_names_the_entry(
    world: dict[str, object], tmp_path: Path
) -> None:
    cli = world["cli"]
    assert isinstance(cli, Sovereign)
    copy = Sovereign(tmp_path / "state")
    import shutil

    shutil.copytree(cli.state, copy.state)
    db = sqlite3.connect(copy.state / "log" / "custody.db")
    leaf = db.execute("SELECT leaf FROM entries WHERE seq=5").fetchone()[0]
    doc = json.loads(leaf)
    doc["event"]["time"] = "2020-01-01T00:00:00.000000Z"
    forged = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    db.execute("DROP INDEX IF EXISTS entries_job_id")
    db.execute("UPDATE entries SET leaf=? WHERE seq=5", (forged,))
    db.commit()
    db.close()
    result = copy("custody", "verify", ok=False)
    assert result.code == 3
    assert "entry 5" in result.err
    assert ROOT.exists()
