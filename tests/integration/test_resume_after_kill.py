"""Worker loss mid-training (reliability plan, tests 22, 23, 26, 27), end to end.

A real job on the local HTEX site (heartbeats of 1 s, ``retries = 2``): once the
``final`` task has sealed a checkpoint, its worker process is sent SIGKILL. Parsl
reports ``WorkerLost``, the retry handler retries it, and the new attempt attests
again, gets new grants, resumes from the sealed checkpoint and ends with the same
metrics and bit-identical weights as an uninterrupted run of the same job. Nothing
in the clear is left behind. A task that fails with ``PolicyDenied`` runs once.
"""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from testkit import ROOT, SONAR, Sovereign

from orchestrator.embedded.layout import StateDir
from orchestrator.log.store import CustodyLog

pytestmark = pytest.mark.slow

CANARY = "0.6180339887"  # occurs nowhere in the real data
EPOCHS, EVERY = 10_000, 1_000
SITE = """
[site]
name = "local"
operator_nation = "USA"
accreditation = "SECRET"

[provider]
type = "local"
init_blocks = 1
min_blocks = 0
max_blocks = 1

[executor]
type = "htex"
max_workers_per_node = 3
cores_per_worker = 0.5
heartbeat_period = 1
heartbeat_threshold = 4
retries = 2
"""


def _manifest(base: Path, name: str, code: Path, training: str) -> Path:
    path = base / f"{name}.toml"
    path.write_text(
        f'[workflow]\nname = "{name}"\ncode = "{code}"\ndataset = "uci-sonar"\n'
        'priority_area = "undersea-autonomy"\n\n'
        "[resources]\ngpu_hours = 0.5\ncpus_per_task = 1\n\n"
        f"[training]\n{training}\n"
    )
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    base = tmp_path_factory.mktemp("resume")
    lines = SONAR.read_text().splitlines()
    cells = lines[3].split(",")
    cells[11] = CANARY
    lines[3] = ",".join(cells)
    data = base / "sonar_canary.csv"
    data.write_text("\n".join(lines) + "\n")
    (base / "site.toml").write_text(SITE)
    cli = Sovereign(base / "state")
    for nation in ("AUS", "GBR", "USA"):
        cli("nation", "init", nation)
    cli("site", "register", str(base / "site.toml"))
    for nation in ("AUS", "GBR", "USA"):
        cli("site", "accredit", "local", "--by", nation)
    cli("dataset", "seal", str(data), "--name", "uci-sonar", "--owner", "AUS",
        "--classification", "SECRET", "--rel-to", "AUS,GBR,USA")
    cli("agreement", "add", "agreements/aus-usa.toml",
        "--sign-as", "AUS,USA")
    training = (f"folds = 2\nepochs = {EPOCHS}\ncheckpoint_every = {EVERY}\n"
                "final_model = true")
    long_job = _manifest(base, "sonar-long", ROOT / "workflows" /
                         "sonar_classification.py", training)
    return {"cli": cli, "base": base, "job": long_job, "started": time.time(),
            "first_row": lines[0][:60], "basetemp": tmp_path_factory.getbasetemp()}


def _events(state: Path, kind: str, **match: str) -> list[Any]:
    return CustodyLog(StateDir(state).custody_db).find(kind, **match)


def _submit_and_kill(cli: Sovereign, manifest: Path, known: set[str]
                     ) -> tuple[dict[str, Any], dict[str, Any]]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "submit", str(manifest), "--site",
         "local", "--json"], cwd=ROOT, env=cli.env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True)
    killed: dict[str, Any] = {}
    try:
        deadline = time.monotonic() + 240
        while not killed and time.monotonic() < deadline and proc.poll() is None:
            for started in _events(cli.state, "task.started", task="final"):
                body = started.event.body
                if body["job_id"] in known:
                    continue
                sealed = _events(cli.state, "checkpoint.sealed",
                                 attempt_id=body["attempt_id"])
                if sealed:
                    os.kill(int(body["pid"]), signal.SIGKILL)
                    killed = {**body, "epoch": sealed[-1].event.body["epoch"],
                              "killed_at": time.monotonic()}
                    break
            time.sleep(0.05)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert killed, f"never saw a checkpoint of the final task to kill:\n{err}"
    assert proc.returncode == 0, f"job failed after the kill:\n{out}\n{err}"
    return json.loads(out), killed


def _weights(cli: Sovereign, model_id: str, out: Path) -> dict[str, torch.Tensor]:
    cli("model", "open", model_id, "--as", "AUS", "--out", str(out))
    loaded = torch.load(io.BytesIO(out.read_bytes()), weights_only=True)
    state: dict[str, torch.Tensor] = loaded["state_dict"]
    out.unlink()
    return state


def test_killed_worker_resumes_from_sealed_checkpoint(
        world: dict[str, Any], tmp_path: Path) -> None:
    cli, manifest = world["cli"], world["job"]
    baseline = cli("submit", str(manifest), "--site", "local", "--json",
                   timeout=400).json()
    job, killed = _submit_and_kill(cli, manifest, {baseline["job_id"]})
    job_id = job["job_id"]
    assert 0 < killed["epoch"] < EPOCHS

    # Metrics and weights equal the uninterrupted run's exactly.
    def strip(tasks: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
        return {t: {k: v for k, v in m.items() if k != "wall_seconds"}
                for t, m in tasks.items()}

    assert strip(job["tasks"]) == strip(baseline["tasks"])
    a = _weights(cli, job["models"][0], tmp_path / "a.pt")
    b = _weights(cli, baseline["models"][0], tmp_path / "b.pt")
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)

    # The custody log: release (attempt 1) -> checkpoint -> loss -> release
    # (attempt 2, new id, new grant) -> restored -> completed.
    state = cli.state
    entries = [e for e in CustodyLog(StateDir(state).custody_db).entries()
               if e.event.body.get("job_id") == job_id
               and e.event.body.get("task") == "final"]
    starts = [e for e in entries if e.event.kind == "task.started"]
    assert len(starts) == 2
    first, second = (s.event.body["attempt_id"] for s in starts)
    assert first == killed["attempt_id"] and second != first
    assert starts[1].event.body["pid"] != killed["pid"]

    def seq(kind: str, attempt: str | None = None) -> list[int]:
        return [e.seq for e in entries if e.event.kind == kind
                and (attempt is None or e.event.body.get("attempt_id") == attempt)]

    released_1, released_2 = seq("key.released", first), seq("key.released", second)
    sealed_1 = seq("checkpoint.sealed", first)
    (retried,) = [e for e in entries if e.event.kind == "task.retried"]
    assert retried.event.body["error"] == "WorkerLost"
    assert retried.event.body["attempt"] == 2
    (restored,) = [e for e in entries if e.event.kind == "checkpoint.restored"]
    assert restored.event.body["attempt_id"] == second
    assert restored.event.body["sealed_by_attempt_id"] == first
    assert restored.event.body["epoch"] >= killed["epoch"]
    (completed,) = seq("task.completed")
    assert released_1 and sealed_1 and released_2
    assert released_1[0] < sealed_1[0] < retried.seq < released_2[0] < restored.seq
    assert restored.seq < completed
    assert not seq("task.completed", first)
    grants_1 = {e.event.body["grant_id"] for e in entries
                if e.event.kind == "key.released" and e.seq in released_1}
    grants_2 = {e.event.body["grant_id"] for e in entries
                if e.event.kind == "key.released" and e.seq in released_2}
    assert grants_1.isdisjoint(grants_2)

    # Checkpoints are gone once the job is done; nothing in the clear anywhere.
    assert not (state / "objects" / "checkpoints" / job_id).exists()
    secrets = [CANARY.encode(), world["first_row"].encode()]
    roots = [state, Path(tempfile.gettempdir()), Path("/dev/shm")]
    skip = str(world["basetemp"])
    scanned = 0
    for root in roots:
        for dirpath, _, names in os.walk(root):
            if dirpath.startswith(skip) and not dirpath.startswith(str(state)):
                continue  # pytest's own tree holds the plaintext *input* on purpose
            for name in names:
                path = Path(dirpath) / name
                try:
                    if path.stat().st_mtime < world["started"] or path.is_symlink():
                        continue
                    blob = path.read_bytes()
                except OSError:
                    continue
                scanned += 1
                for secret in secrets:
                    assert secret not in blob, f"plaintext found in {path}"
    assert scanned and (state / "orchestrator" / "runinfo").exists()


DENY = '''
from orchestrator.errors import PolicyDenied


def tasks(params):
    return ["only"]


def run_task(ctx):
    ctx.dataset()
    raise PolicyDenied("refused inside the enclave", reasons=["test refusal"])
'''


def test_policy_denied_task_is_attempted_once(world: dict[str, Any]) -> None:
    cli, base = world["cli"], world["base"]
    code = base / "deny.py"
    code.write_text(DENY)
    manifest = _manifest(base, "deny", code, "seed = 1")
    result = cli("submit", str(manifest), "--site", "local", "--json", ok=False)
    assert result.code == 4, result.err
    (submitted,) = _events(cli.state, "request.submitted", workflow="deny")
    job_id = submitted.event.body["job_id"]
    assert len(_events(cli.state, "task.started", job_id=job_id)) == 1
    assert len(_events(cli.state, "task.failed", job_id=job_id)) == 1
    assert _events(cli.state, "task.retried", job_id=job_id) == []
    (failed,) = _events(cli.state, "job.failed", job_id=job_id)
    assert failed.event.body["error"] == "PolicyDenied"
