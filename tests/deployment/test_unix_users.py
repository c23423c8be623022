"""Parties apart, as separate Unix users on one machine (CI runs as root).

One user per party (two nations' custodians, their two officers, two sites, the
log operator, the orchestrator), each with its own 0700 state directory, as on a
machine of its own. Every party initialises itself and exports a public card;
only hand-over files cross between them (``parties.set_up``, the commands of
README's Deployment section). The log service and both custodian services run
as their own users and speak HTTPS on loopback; every probe below runs as the
party it speaks for. What is shown:

* every party reads its own private keys and no other party's (EACCES);
* the orchestrator's client certificate gets no nonce, release or wrap from a
  custodian (403), the site's own certificate does get a nonce;
* a site that no nation accredited holds no certificate and cannot even
  complete the TLS handshake;
* the log service refuses entries the orchestrator signs in a site's or a
  nation's name, and accepts those in its own;
* the log operator has a nation's custodian witness its checkpoint (C2SP
  tlog-witness) with its own client certificate, and the officer, with only its
  pinned keys, verifies the log through the C2SP tlog-tiles API;
* the sonar job end to end: the site's user runs its own Parsl worker pools
  (``site workers``, a site-started site), the orchestrator's user submits;
  every task runs as the site's user, reaches the log and the custodians over
  HTTPS only, and gives the same per-fold accuracy as the workflow's own code
  on the same plaintext;
* the officer verifies the log with both nations' cosignatures required, traces
  the model to its dataset and verifies its proof bundle in an empty directory
  with only its ``trust.json``;
* no plaintext row (a planted canary) is left in any party's directory, /tmp or
  /dev/shm.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from parties import CANARY, ROOT, SONAR, USERS, Deployed, canary_data

from orchestrator.net.log_client import HttpLog

pytestmark = [pytest.mark.slow, pytest.mark.deployment]

PROBE = r'''
import json, sys
from pathlib import Path
out = {}
for p in sys.argv[1:]:
    try:
        Path(p).read_bytes()
        out[p] = "read"
    except PermissionError:
        out[p] = "EACCES"
print(json.dumps(out))
'''


def _ca(path: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(path))


def _pem(deployed: Deployed, card: str) -> Path:
    """The CA certificate a card carries, as a PEM file (for this process's
    own probes)."""
    doc = json.loads(deployed.card(card).read_text())
    statement = doc["statement"]
    path = deployed.base / f"{card}-ca.pem"
    path.write_text(statement["ca_pem"])
    path.chmod(0o644)
    return path


#: party -> its private key files (relative to the state directory).
PRIVATE = {
    "log": ["log/log.key", "log/tls/ca.key", "log/tls/server.key",
            "log/client/client.key"],
    "AUS": ["nations/AUS/custodian.key", "nations/AUS/pki/ca.key",
            "nations/AUS/kek.json"],
    "USA": ["nations/USA/custodian.key", "nations/USA/pki/ca.key"],
    "site": ["sites/local/site.key", "sites/local/tls/client.key",
             "sites/local/parsl/certificates/client.key_secret"],
    "orchestrator": ["orchestrator/orchestrator.key", "orchestrator/tls/client.key",
                     "orchestrator/parsl/channel/server.key_secret"],
    "officer": ["officers/AUS/officer.key", "officers/AUS/tls/client.key"],
}


def _private(deployed: Deployed, party: str) -> list[str]:
    return [str(deployed.state(party) / p) for p in PRIVATE[party]]


@pytest.mark.parametrize("party", sorted(PRIVATE))
def test_each_party_reads_its_own_keys_and_no_other(deployed: Deployed,
                                                    party: str) -> None:
    paths = [p for other in PRIVATE for p in _private(deployed, other)]
    for path in paths:
        assert Path(path).exists(), path
    seen = json.loads(deployed.python_as(party, PROBE, *paths).stdout)
    own = set(_private(deployed, party))
    assert {p for p, what in seen.items() if what == "read"} == own


CALL = r'''
import json, ssl, sys
import httpx
url, ca, cert, key = sys.argv[1:5]
context = ssl.create_default_context(cafile=ca)
context.load_cert_chain(cert, key)
out = {}
with httpx.Client(base_url=url, verify=context, trust_env=False) as c:
    for path in sys.argv[5:]:
        r = c.post(path, json={})
        out[path] = r.status_code
print(json.dumps(out))
'''


def test_only_the_sites_certificate_gets_a_nonce(deployed: Deployed) -> None:
    url, ca = deployed.custodians["AUS"], str(_pem(deployed, "nation-AUS"))
    orch = deployed.state("orchestrator") / "orchestrator/tls"
    refused = json.loads(deployed.python_as(
        "orchestrator", CALL, url, ca, str(orch / "AUS.pem"), str(orch / "client.key"),
        "/v1/challenge", "/v1/release", "/v1/wrap").stdout)
    assert refused == {"/v1/challenge": 403, "/v1/release": 403, "/v1/wrap": 403}
    site = deployed.state("site") / "sites/local/tls"
    allowed = json.loads(deployed.python_as(
        "site", CALL, url, ca, str(site / "AUS.pem"), str(site / "client.key"),
        "/v1/challenge").stdout)
    assert allowed == {"/v1/challenge": 200}
    # every refusal is on the record: access.denied events the AUS custodian
    # wrote through the log service (read through the tlog-tiles entry bundles)
    bodies = [e["body"] for e in _entries(deployed, "access.denied")]
    refused_ops = {b["operation"] for b in bodies
                   if b["nation"] == "AUS" and "orchestrator" in b["reason"]}
    assert {"challenge", "release", "wrap"} <= refused_ops, bodies


HANDSHAKE = r'''
import ssl, sys, httpx
url, ca, key = sys.argv[1:4]
try:
    httpx.post(url + "/v1/challenge", verify=ssl.create_default_context(cafile=ca),
               trust_env=False, timeout=5)
    print("answered")
except httpx.HTTPError as exc:
    print("refused", type(exc).__name__)
'''


def test_an_unaccredited_site_holds_no_certificate_and_is_refused(
        deployed: Deployed) -> None:
    tls = deployed.state("other-site") / "sites/other/tls"
    assert not (tls / "AUS.pem").exists() and not (tls / "USA.pem").exists()
    out = deployed.python_as("other-site", HANDSHAKE, deployed.custodians["AUS"],
                             str(_pem(deployed, "nation-AUS")),
                             str(tls / "client.key")).stdout
    assert out.startswith("refused"), out


APPEND = r'''
import json, sys
from pathlib import Path
from orchestrator.crypto.signing import load_private_key
from orchestrator.errors import SovereignError
from orchestrator.net.log_client import HttpLog
from orchestrator.tlog.events import CustodyEvent
url, ca, key = sys.argv[1:4]
signer = load_private_key(Path(key))
log = HttpLog(url, ca=Path(ca))
out = {}
for actor, kind in [("site:local", "task.started"), ("custodian:AUS", "key.released"),
                    ("orchestrator", "request.submitted")]:
    try:
        event = CustodyEvent.create(kind, actor, {"job_id": "job-x"})
        entry = log.append(event, signer)
        out[actor] = f"accepted {entry.seq}"
    except SovereignError as exc:
        out[actor] = f"refused {type(exc).__name__}: {exc}"
print(json.dumps(out))
'''


def test_the_log_refuses_entries_in_another_partys_name(deployed: Deployed) -> None:
    out = json.loads(deployed.python_as(
        "orchestrator", APPEND, deployed.log_url,
        str(_pem(deployed, "log")),
        str(deployed.state("orchestrator") / "orchestrator/orchestrator.key")
    ).stdout)
    assert out["site:local"].startswith("refused"), out
    assert out["custodian:AUS"].startswith("refused"), out
    assert out["orchestrator"].startswith("accepted"), out


def test_the_officer_verifies_through_the_tiles_api(deployed: Deployed) -> None:
    # the log operator, as its own user, has AUS's custodian witness a fresh
    # checkpoint (C2SP tlog-witness, the log's own client certificate)
    cosigned = deployed.cli("log", "custody", "witness", "--nation", "AUS", "--url",
                            deployed.custodians["AUS"], "--ca",
                            str(deployed.card("nation-AUS"))).stdout
    assert "\u2014 witness-AUS " in cosigned
    args = ["custody", "verify", "--as", "AUS", "--json", "--log-url",
            deployed.log_url, "--log-ca", str(deployed.card("log"))]
    first = json.loads(deployed.cli("officer", *args, "--require-cosigners",
                                    "AUS").stdout)
    assert first["verified"] and first["size"] >= 10
    assert first["cosigners"] == ["AUS"]
    assert first["kinds"]["site.accredited"] == 2
    # site "other" is enrolled but accredited by no nation: its entries are named,
    # every other actor's key is anchored in a custodian the officer pinned
    assert list(first["unanchored"]) == ["site:other"]
    # the log grows (a custodian writes through the service), then is checked
    # again from the officer's trusted checkpoint
    site = deployed.state("site") / "sites/local/tls"
    deployed.python_as("site", CALL, deployed.custodians["USA"],
                       str(_pem(deployed, "nation-USA")), str(site / "USA.pem"),
                       str(site / "client.key"), "/v1/challenge")
    deployed.python_as("orchestrator", APPEND, deployed.log_url,
                       str(_pem(deployed, "log")),
                       str(deployed.state("orchestrator") /
                           "orchestrator/orchestrator.key"))
    # nobody but the operator makes the log sign a checkpoint ...
    anonymous = httpx.post(deployed.log_url + "/v1/checkpoint",
                           verify=_ca(_pem(deployed, "log")), trust_env=False)
    assert anonymous.status_code in (404, 405)
    # ... it publishes one on its own schedule once the log grew
    HttpLog(deployed.log_url, ca=_pem(deployed, "log")).publish()
    second = json.loads(deployed.cli("officer", *args).stdout)
    assert second["previous_trusted_size"] == first["checkpoint_size"]
    assert second["checkpoint_size"] > first["checkpoint_size"]
    # the orchestrator's user cannot use the officer's trust roots
    refused = deployed.cli("orchestrator", *args, ok=False, state_of="officer")
    assert refused.returncode == 2, refused.stderr
    assert "is not readable" in refused.stderr or (
        "permission denied" in refused.stderr), refused.stderr


# -- the sonar job across users ------------------------------------------------------

@dataclass
class Job:
    """The sonar job as the orchestrator's user submitted it."""

    result: dict[str, object]
    started: float
    #: pid -> uid of the site's worker service and every process under it, read
    #: as the job ended
    pool: dict[int, int]
    workers_log: Path


def _process_tree(root: int) -> dict[int, int]:
    """pid -> real uid of ``root`` and its descendants (from /proc)."""
    parents: dict[int, int] = {}
    uids: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            status = (entry / "status").read_text()
        except OSError:
            continue
        fields = dict(line.split(":", 1) for line in status.splitlines() if ":" in line)
        parents[int(entry.name)] = int(fields["PPid"])
        uids[int(entry.name)] = int(fields["Uid"].split()[0])
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree} - tree
        tree |= more
        grew = bool(more)
    return {pid: uids[pid] for pid in tree if pid in uids}


@pytest.fixture(scope="module")
def job(deployed: Deployed) -> Iterator[Job]:
    d = deployed
    # the site's user runs its own Parsl worker pools against the interchange
    out = d.base / "site-workers.out"
    workers = subprocess.Popen(
        d.command("site", ["-m", "orchestrator", "site", "workers",
                           str(d.site_config)]),
        cwd=d.base, stdout=out.open("wb"), stderr=subprocess.STDOUT)
    started = time.time()
    try:
        done = d.cli("orchestrator", "submit",
                     str(d.project / "workflows/sonar_classification.toml"),
                     "--site", "local", "--json")
        pool = _process_tree(workers.pid)
        yield Job(json.loads(done.stdout), started, pool, out)
    finally:
        workers.terminate()
        try:
            workers.wait(20)
        except subprocess.TimeoutExpired:
            workers.kill()


def _reference_metrics(tasks: list[str]) -> dict[str, dict[str, float]]:
    """The workflow's own code on the same plaintext, in this process: what the
    enclave must reproduce for the same seed."""
    import importlib.util
    import tomllib

    import torch

    from orchestrator.tabular import parse_csv

    manifest = tomllib.loads((ROOT / "workflows/sonar_classification.toml").read_text())
    spec = importlib.util.spec_from_file_location(
        "sonar_reference", ROOT / "workflows/sonar_classification.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = parse_csv(canary_data(), source="sonar.csv")

    class Ctx:
        def __init__(self, task: str) -> None:
            self.task, self.params = task, dict(manifest["training"])

        def dataset(self) -> object:
            return table

        def progress(self, done: int, total: int) -> None:
            del done, total

    torch.set_num_threads(int(manifest["resources"]["cpus_per_task"]))
    return {task: module.run_task(Ctx(task)).metrics for task in tasks}


def test_the_sonar_job_runs_across_users_with_the_same_accuracy(job: Job) -> None:
    tasks = job.result["tasks"]
    assert isinstance(tasks, dict)
    assert sorted(tasks) == sorted([f"fold-{i}" for i in range(13)] + ["final"])
    reference = _reference_metrics(sorted(tasks))
    for task, metrics in tasks.items():
        for key in ("test_accuracy", "train_accuracy"):
            if key in reference[task]:
                assert metrics[key] == reference[task][key], (task, key)
    summary = job.result["summary"]
    assert isinstance(summary, dict)
    folds = [reference[t]["test_accuracy"] for t in tasks if t.startswith("fold-")]
    assert summary["mean_test_accuracy"] == pytest.approx(sum(folds) / len(folds))
    models = job.result["models"]
    assert isinstance(models, list) and len(models) == 1
    print(f"\ndeployment job: first result after {job.result['first_result_s']:.1f} s;"
          f" job took {job.result['elapsed_s']:.1f} s")  # README, Deployment


def _log(deployed: Deployed) -> HttpLog:
    """A reader of the log service, as anyone on the network: tlog-tiles only."""
    return HttpLog(deployed.log_url, ca=_pem(deployed, "log"))


def _entries(deployed: Deployed, kind: str) -> list[dict[str, Any]]:
    return [e.event.to_json() for e in _log(deployed).find(kind)]


def test_every_task_ran_as_the_sites_user(deployed: Deployed, job: Job) -> None:
    site_uid = pwd.getpwnam(USERS["site"]).pw_uid
    assert len(job.pool) > 2, job.workers_log.read_text()  # service, pool, workers
    assert set(job.pool.values()) == {site_uid}
    started = [e for e in _entries(deployed, "task.started")
               if e["actor"] == "site:local"]
    pids = {e["body"]["pid"] for e in started}  # type: ignore[index]
    assert len(started) == 14
    assert pids <= set(job.pool), (pids, job.pool)
    # the orchestrator's user holds no worker or interchange of the site's
    logs = deployed.state("site") / "sites/local/parsl/logs"
    assert all(p.stat().st_uid == site_uid for p in logs.rglob("*"))


def test_the_officer_verifies_traces_and_proves_the_model(deployed: Deployed,
                                                         job: Job) -> None:
    d = deployed
    for nation in ("AUS", "USA"):
        d.cli("log", "custody", "witness", "--nation", nation, "--url",
              d.custodians[nation], "--ca", str(d.card(f"nation-{nation}")))
    log = ["--log-url", d.log_url, "--log-ca", str(d.card("log"))]
    verified = json.loads(d.cli("officer", "custody", "verify", "--as", "AUS",
                                "--json", "--require-cosigners", "AUS,USA",
                                "--witness-history", "1", *log).stdout)
    assert verified["verified"] and verified["cosigners"] == ["AUS", "USA"]
    # asked over mTLS with the officer's certificates: AUS's witness has followed
    # the log since before this checkpoint (it cosigned one in an earlier test)
    history = {h["nation"]: h for h in verified["witness_history"]}
    assert history["AUS"]["has_history"], history
    assert verified["kinds"]["key.released"] == 14
    assert verified["kinds"]["task.completed"] == 14
    model_id = job.result["models"][0]  # type: ignore[index]
    model_id = model_id["id"] if isinstance(model_id, dict) else model_id
    lineage = json.loads(d.cli("officer", "custody", "trace", model_id, "--json",
                               *log).stdout)
    assert [ds["name"] for ds in lineage["datasets"]] == ["uci-sonar"]
    assert lineage["datasets"][0]["events"][0]["actor"] == "custodian:AUS"
    # the officer writes the bundle in a folder of its own, then verifies it in
    # an empty one with nothing but the bundle and its own trust.json
    work = d.base / "officer-work"
    work.mkdir(mode=0o700)
    shutil.chown(work, USERS["officer"], USERS["officer"])
    bundle = work / "bundle.json"
    d.cli("officer", "custody", "prove", model_id, "--out", str(bundle), *log)
    offline = work / "offline"
    d.run("officer", ["-c", "import os, shutil, sys; os.mkdir(sys.argv[3]); "
                      "shutil.copy(sys.argv[1], sys.argv[3]); "
                      "shutil.copy(sys.argv[2], sys.argv[3])", str(bundle),
                      str(d.state("officer") / "officers/AUS/trust.json"),
                      str(offline)])
    proved = d.cli("officer", "custody", "verify-bundle", str(offline / "bundle.json"),
                   "--trust", str(offline / "trust.json"), "--require-cosigners",
                   "AUS,USA")
    assert "custody bundle verified" in proved.stdout, proved.stdout


def test_another_nations_officer_cannot_accredit_revoke_or_open_at_aus(
        deployed: Deployed, job: Job) -> None:
    d = deployed
    model_id = job.result["models"][0]  # type: ignore[index]
    tls = d.state("officer-USA") / "officers/USA/tls"
    answered = json.loads(d.python_as(
        "officer-USA", CALL, d.custodians["AUS"], str(_pem(d, "nation-AUS")),
        str(tls / "AUS.pem"), str(tls / "client.key"), "/v1/accreditations",
        "/v1/accreditations/local/revoke", f"/v1/objects/{model_id}/open").stdout)
    assert set(answered.values()) == {403}, answered
    denied = [e["body"] for e in _entries(d, "access.denied")]
    by_usa = {b["operation"] for b in denied  # type: ignore[index]
              if b["peer"] == "spiffe://aus/officer/usa"}  # type: ignore[index]
    assert {"accredit", "revoke_accreditation", "open_model_key"} <= by_usa, denied
    # AUS's accreditation of the site stands
    live = json.loads(d.python_as(
        "site", CALL.replace("c.post(path, json={})", "c.get(path)").replace(
            "out[path] = r.status_code", "out[path] = r.json()"),
        d.custodians["AUS"], str(_pem(d, "nation-AUS")),
        str(d.state("site") / "sites/local/tls/AUS.pem"),
        str(d.state("site") / "sites/local/tls/client.key"),
        "/v1/accreditations").stdout)["/v1/accreditations"]
    assert live and all(a["revoked_at"] is None for a in live), live


def test_no_plaintext_row_is_left_anywhere(deployed: Deployed, job: Job) -> None:
    secrets = [CANARY.encode(), SONAR.read_text().splitlines()[0][:60].encode()]
    roots = [deployed.base, Path(tempfile.gettempdir()), Path("/dev/shm")]
    scanned = 0
    for root in roots:
        for dirpath, _, names in os.walk(root):
            for name in names:
                path = Path(dirpath) / name
                try:
                    if path.is_symlink() or path.stat().st_mtime < job.started - 1:
                        continue
                    blob = path.read_bytes()
                except OSError:
                    continue  # another process's temp file vanished
                scanned += 1
                for secret in secrets:
                    assert secret not in blob, f"plaintext found in {path}"
    assert scanned > 20  # the parties' directories and Parsl's run files were read


# -- faults on the separated path --------------------------------------------------

def _submit(d: Deployed) -> subprocess.Popen[str]:
    return subprocess.Popen(
        d.command("orchestrator", [
            "-m", "orchestrator", "submit",
            str(d.project / "workflows/sonar_classification.toml"), "--site", "local",
            "--json"]),
        cwd=d.base, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _jobs(d: Deployed) -> set[str]:
    return {str(e["body"]["job_id"])  # type: ignore[index]
            for e in _entries(d, "request.submitted")}


def _start_job(d: Deployed, under_way: str) -> tuple[subprocess.Popen[str], str]:
    """Submit the sonar job as the orchestrator; return once the log holds an
    ``under_way`` event of it (the submission and the job's id)."""
    known = _jobs(d)
    submit = _submit(d)
    deadline = time.monotonic() + 120
    while not (fresh := _jobs(d) - known):
        assert time.monotonic() < deadline and submit.poll() is None
        time.sleep(0.1)
    job_id = fresh.pop()
    while not _of_job(d, under_way, job_id):
        assert time.monotonic() < deadline and submit.poll() is None
        time.sleep(0.05)
    return submit, job_id


def _of_job(d: Deployed, kind: str, job_id: str) -> list[dict[str, Any]]:
    return [e for e in _entries(d, kind) if e["body"]["job_id"] == job_id]  # type: ignore[index]


def _finish(d: Deployed, submit: subprocess.Popen[str], job_id: str
            ) -> tuple[dict[str, Any], bool]:
    """Wait for the submission; resume the job if it was interrupted. Returns
    the job's result and whether it needed resuming."""
    out, err = submit.communicate(timeout=300)
    if submit.returncode == 0:
        return json.loads(out), False
    assert submit.returncode == 9, err  # JobInterrupted: resumable, nothing else
    interrupted = json.loads(out)
    assert interrupted["state"] == "interrupted" and interrupted["failed"], out
    resumed = d.cli("orchestrator", "jobs", "resume", job_id, "--json")
    return json.loads(resumed.stdout), True


def _one_release_per_attempt(d: Deployed, job_id: str) -> None:
    released = _of_job(d, "key.released", job_id)
    attempts = [e["body"]["attempt_id"] for e in released]
    assert attempts and len(attempts) == len(set(attempts)), attempts
    completed = {e["body"]["task"] for e in _of_job(d, "task.completed", job_id)}
    assert completed == {f"fold-{i}" for i in range(13)} | {"final"}


def test_a_custodian_stopped_mid_job_fails_closed_and_the_job_resumes(
        deployed: Deployed, job: Job) -> None:
    d = deployed
    submit, job_id = _start_job(d, "key.released")  # the job is under way
    d.halt("AUS-service")
    halted_at = len(_of_job(d, "key.released", job_id))
    out, err = submit.communicate(timeout=300)
    # the tasks that needed AUS's key failed closed: no key left AUS after it
    # stopped, and the job is kept resumable
    assert submit.returncode == 9, out + err
    interrupted = json.loads(out)
    assert interrupted["state"] == "interrupted" and interrupted["failed"]
    assert len(_of_job(d, "key.released", job_id)) == halted_at
    failed = _of_job(d, "task.failed", job_id)
    assert failed and all(e["body"]["error"] == "CustodianUnavailable" for e in failed)
    d.restart("AUS-service", d.custodians["AUS"])
    resumed = json.loads(d.cli("orchestrator", "jobs", "resume", job_id,
                               "--json").stdout)
    assert sorted(resumed["tasks"]) == sorted(job.result["tasks"])  # type: ignore[arg-type]
    for task, metrics in resumed["tasks"].items():
        first = job.result["tasks"][task]  # type: ignore[index]
        assert metrics["test_accuracy" if "test_accuracy" in metrics
                       else "train_accuracy"] == first[
            "test_accuracy" if "test_accuracy" in first else "train_accuracy"]
    assert len(resumed["models"]) == 1
    _one_release_per_attempt(d, job_id)
    assert len(_of_job(d, "job.interrupted", job_id)) == 1
    assert len(_of_job(d, "job.completed", job_id)) == 1


def _all_leaves(d: Deployed) -> list[bytes]:
    log = _log(d)
    return list(log.leaves(0, log.size()))


def test_a_log_service_restarted_mid_job_loses_no_acknowledged_entry(
        deployed: Deployed, job: Job) -> None:
    d = deployed
    submit, job_id = _start_job(d, "task.completed")
    acknowledged = _all_leaves(d)  # what the service has answered for so far
    d.halt("log-service")
    d.restart("log-service", d.log_url)
    result, _ = _finish(d, submit, job_id)
    assert len(result["tasks"]) == 14 and len(result["models"]) == 1
    after = _all_leaves(d)
    # every acknowledged entry survived, byte for byte, at the same index
    assert after[:len(acknowledged)] == acknowledged
    assert len(after) > len(acknowledged)
    _one_release_per_attempt(d, job_id)
    # the officer's trusted checkpoint (from the tests above) extends to the
    # restarted log's: nothing acknowledged was rewritten or dropped
    verified = json.loads(d.cli(
        "officer", "custody", "verify", "--as", "AUS", "--json", "--log-url",
        d.log_url, "--log-ca", str(d.card("log"))).stdout)
    assert verified["verified"]
    assert verified["checkpoint_size"] >= verified["previous_trusted_size"] > 0
