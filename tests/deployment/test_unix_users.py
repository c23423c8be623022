"""Parties apart, as separate Unix users on one machine (CI runs as root).

One user per party (two nations' custodians, one site, the log operator, the
orchestrator, an officer), each owning a 0700 directory; the parties are
introduced to each other once (``nation init``, ``site register``, ``site
accredit``) and their directories handed over; from then on the log service and
both custodian services run as their own users (``setpriv``), speak HTTPS on
loopback, and every probe below runs as the party it speaks for. What is shown:

* every party reads its own private keys and no other party's (EACCES);
* the orchestrator's client certificate gets no nonce, release or wrap from a
  custodian (403), the site's own certificate does get a nonce;
* a site that no nation accredited holds no certificate and cannot even
  complete the TLS handshake;
* the log service refuses entries the orchestrator signs in a site's or a
  nation's name, and accepts those in its own;
* the log operator has a nation's custodian witness its checkpoint (C2SP
  tlog-witness) with its own client certificate;
* the officer, with only its pinned log and witness keys, verifies the log
  through the C2SP tlog-tiles API with that cosignature required, then again
  consistently after it grew.

Not yet here: the sonar job end to end across users (the orchestrator still
serves the log to its tasks in-process; the site's Parsl workers would run under
the site's account).
"""

from __future__ import annotations

import base64
import json
import os
import pwd
import shutil
import ssl
import subprocess
import sys
import sysconfig
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from orchestrator.net.service import free_port

pytestmark = [pytest.mark.slow, pytest.mark.deployment]

ROOT = Path(__file__).resolve().parents[2]

#: party -> its Unix user.
USERS = {"log": "sov-log", "AUS": "sov-nation-aus", "USA": "sov-nation-usa",
         "site": "sov-site-local", "orchestrator": "sov-orchestrator",
         "officer": "sov-officer-aus", "other-site": "sov-site-other"}

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


def _need_root() -> None:
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.fail("the deployment test runs as root with setpriv (CI does)")


def _open_to_others(path: Path) -> bool:
    """True when every directory down to ``path`` lets other users through."""
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


def _ensure_user(name: str) -> None:
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", name],
                       check=True)


@dataclass
class Deployed:
    base: Path
    state: Path
    handover: Path
    python: Path
    log_url: str
    custodians: dict[str, str]

    def env(self) -> dict[str, str]:
        return {"HOME": "/nonexistent", "PATH": "/usr/bin:/bin",
                "SOVEREIGN_STATE_DIR": str(self.state), "PYTHONDONTWRITEBYTECODE": "1"}

    def command(self, party: str, args: list[str]) -> list[str]:
        user = USERS[party]
        return ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups",
                "env", "-i", *(f"{k}={v}" for k, v in self.env().items()),
                str(self.python), *args]

    def run(self, party: str, args: list[str], *, ok: bool = True
            ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.command(party, args), cwd=self.base, text=True,
                              capture_output=True, timeout=300)
        if ok:
            assert done.returncode == 0, done.stdout + done.stderr
        return done

    def cli(self, party: str, *args: str, ok: bool = True
            ) -> subprocess.CompletedProcess[str]:
        return self.run(party, ["-m", "orchestrator", *args], ok=ok)

    def python_as(self, party: str, code: str, *args: str
                  ) -> subprocess.CompletedProcess[str]:
        script = self.base / f"probe-{abs(hash(code))}.py"
        script.write_text(code)
        script.chmod(0o644)
        return self.run(party, [str(script), *args])


def _ca(path: Path) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(path))


def _root_cli(state: Path, *args: str) -> None:
    env = {**os.environ, "SOVEREIGN_STATE_DIR": str(state)}
    done = subprocess.run([sys.executable, "-m", "orchestrator", *args], cwd=ROOT,
                          env=env, text=True, capture_output=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


def _wait(url: str, ca: Path, proc: subprocess.Popen[bytes], log: Path,
          path: str) -> None:
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited {proc.returncode}:\n{log.read_text()}")
        try:
            httpx.get(url + path, verify=_ca(ca), timeout=2, trust_env=False)
            return
        except httpx.HTTPError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not ready:\n{log.read_text()}") from None
            time.sleep(0.3)


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    _need_root()
    for user in USERS.values():
        _ensure_user(user)
    base = Path(tempfile.mkdtemp(prefix="sov-deploy-", dir="/tmp"))
    base.chmod(0o755)
    # An interpreter every party may execute (the project's may live under a
    # 0700 home): Debian's python3.11, seeing this environment's packages.
    venv = base / "venv"
    subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--without-pip", str(venv)],
                   check=True)
    purelib = sysconfig.get_paths()["purelib"]
    lines = []
    if not (_open_to_others(Path(purelib)) and _open_to_others(ROOT)):
        # a 0700 directory above the checkout or its environment: give the
        # parties a copy (the project and its packages, without PyTorch)
        app = base / "app"
        shutil.copytree(ROOT / "orchestrator", app / "orchestrator",
                        ignore=shutil.ignore_patterns("__pycache__"))
        purelib_copy = base / "site-packages"
        shutil.copytree(purelib, purelib_copy, symlinks=True,
                        ignore=shutil.ignore_patterns(
                            "__pycache__", "torch", "torch-*", "nvidia*", "triton*",
                            "__editable__*"))
        lines.append(f"import sys; sys.path.insert(0, {str(app)!r})")
        purelib = str(purelib_copy)
    lines.append(f"import site; site.addsitedir({purelib!r})")
    (venv / "lib/python3.11/site-packages/sovereign-project.pth").write_text(
        "\n".join(lines) + "\n")
    subprocess.run(["chmod", "-R", "o+rX", str(base)], check=True)
    state = base / "state"
    # Introductions, once, as the machine's administrator.
    _root_cli(state, "nation", "init", "AUS")
    _root_cli(state, "nation", "init", "USA")
    _root_cli(state, "site", "register", "site_configs/local.toml")
    other = base / "other.toml"
    other.write_text((ROOT / "site_configs/local.toml").read_text().replace(
        'name = "local"', 'name = "other"', 1))
    _root_cli(state, "site", "register", str(other))
    _root_cli(state, "site", "accredit", "local", "--by", "AUS", "--tee", "none",
              "--days", "30")
    _root_cli(state, "site", "accredit", "local", "--by", "USA", "--tee", "none",
              "--days", "30")
    # Each party's directory to its user, 0700; the public hand-over files apart.
    owners = {"log": state / "log", "AUS": state / "nations/AUS",
              "USA": state / "nations/USA", "site": state / "sites/local",
              "other-site": state / "sites/other",
              "orchestrator": state / "orchestrator",
              "officer": state / "officers/AUS"}
    for party, directory in owners.items():
        subprocess.run(["chown", "-R", f"{USERS[party]}:{USERS[party]}",
                        str(directory)], check=True)
        directory.chmod(0o700)
    for shared in (state, state / "nations", state / "sites", state / "officers"):
        shared.chmod(0o755)
    deployment = Deployed(base, state, base / "handover", venv / "bin/python", "", {})
    probe = deployment.run("orchestrator", ["-c", "import orchestrator.cli"],
                           ok=False)
    if probe.returncode != 0:
        pytest.fail("another user cannot import the project (a 0700 directory "
                    f"above {ROOT} or {purelib}?): {probe.stderr}")
    deployment.cli("log", "log", "init", "--host", "127.0.0.1")
    handover = deployment.handover
    handover.mkdir(mode=0o755)
    shutil.copy(state / "log/tls/ca.pem", handover / "log-ca.pem")
    for nation in ("AUS", "USA"):
        shutil.copy(state / f"nations/{nation}/pki/ca.pem",
                    handover / f"{nation}-ca.pem")
    subprocess.run(["chmod", "-R", "a+rX", str(handover)], check=True)
    procs: list[subprocess.Popen[bytes]] = []
    try:
        port = free_port()
        deployment.log_url = f"https://127.0.0.1:{port}"
        out = base / "log-service.out"
        procs.append(subprocess.Popen(
            deployment.command("log", ["-m", "orchestrator", "log", "serve", "--port",
                                       str(port)]),
            cwd=base, stdout=out.open("wb"), stderr=subprocess.STDOUT))
        _wait(deployment.log_url, handover / "log-ca.pem", procs[-1], out,
              "/checkpoint")
        for nation in ("AUS", "USA"):
            port = free_port()
            url = f"https://127.0.0.1:{port}"
            out = base / f"{nation}-service.out"
            procs.append(subprocess.Popen(
                deployment.command(nation, [
                    "-m", "orchestrator", "custodian", "serve", "--nation", nation,
                    "--port", str(port), "--log-url", deployment.log_url,
                    "--log-ca", str(handover / "log-ca.pem")]),
                cwd=base, stdout=out.open("wb"), stderr=subprocess.STDOUT))
            deployment.custodians[nation] = url
            ca = handover / f"{nation}-ca.pem"
            deadline = time.monotonic() + 60
            while True:  # mTLS: no health without a certificate; wait for the port
                if procs[-1].poll() is not None:
                    raise RuntimeError(out.read_text())
                try:
                    httpx.get(url + "/v1/health", verify=_ca(ca), timeout=2,
                              trust_env=False)
                    break
                except httpx.ConnectError:
                    if time.monotonic() > deadline:
                        raise RuntimeError(out.read_text()) from None
                    time.sleep(0.3)
                except httpx.HTTPError:
                    break
        yield deployment
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(base, ignore_errors=True)


#: party -> its private key files (relative to the state directory).
PRIVATE = {
    "log": ["log/log.key", "log/tls/ca.key", "log/tls/server.key"],
    "AUS": ["nations/AUS/custodian.key", "nations/AUS/pki/ca.key"],
    "USA": ["nations/USA/custodian.key", "nations/USA/pki/ca.key"],
    "site": ["sites/local/site.key", "sites/local/tls/client.key"],
    "orchestrator": ["orchestrator/orchestrator.key", "orchestrator/tls/client.key"],
    "officer": ["officers/AUS/officer.key"],
}


@pytest.mark.parametrize("party", sorted(PRIVATE))
def test_each_party_reads_its_own_keys_and_no_other(deployed: Deployed,
                                                    party: str) -> None:
    paths = [str(deployed.state / p) for keys in PRIVATE.values() for p in keys]
    for path in paths:
        assert Path(path).exists(), path
    seen = json.loads(deployed.python_as(party, PROBE, *paths).stdout)
    own = {str(deployed.state / p) for p in PRIVATE[party]}
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
    url, ca = deployed.custodians["AUS"], str(deployed.handover / "AUS-ca.pem")
    orch = deployed.state / "orchestrator/tls"
    refused = json.loads(deployed.python_as(
        "orchestrator", CALL, url, ca, str(orch / "AUS.pem"), str(orch / "client.key"),
        "/v1/challenge", "/v1/release", "/v1/wrap").stdout)
    assert refused == {"/v1/challenge": 403, "/v1/release": 403, "/v1/wrap": 403}
    site = deployed.state / "sites/local/tls"
    allowed = json.loads(deployed.python_as(
        "site", CALL, url, ca, str(site / "AUS.pem"), str(site / "client.key"),
        "/v1/challenge").stdout)
    assert allowed == {"/v1/challenge": 200}
    # every refusal is on the record: access.denied events the AUS custodian
    # wrote through the log service (public reads)
    found = httpx.get(deployed.log_url + "/v1/entries", params={
        "kind": "access.denied"}, verify=_ca(deployed.handover / "log-ca.pem"),
        trust_env=False).json()
    bodies = [json.loads(base64.b64decode(e["leaf"]))["event"]["body"] for e in found]
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
    tls = deployed.state / "sites/other/tls"
    assert not (tls / "AUS.pem").exists() and not (tls / "USA.pem").exists()
    out = deployed.python_as("other-site", HANDSHAKE, deployed.custodians["AUS"],
                             str(deployed.handover / "AUS-ca.pem"),
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
        str(deployed.handover / "log-ca.pem"),
        str(deployed.state / "orchestrator/orchestrator.key")).stdout)
    assert out["site:local"].startswith("refused"), out
    assert out["custodian:AUS"].startswith("refused"), out
    assert out["orchestrator"].startswith("accepted"), out


def test_the_officer_verifies_through_the_tiles_api(deployed: Deployed) -> None:
    # the log operator, as its own user, has AUS's custodian witness a fresh
    # checkpoint (C2SP tlog-witness, the log's own client certificate)
    cosigned = deployed.cli("log", "custody", "witness", "--nation", "AUS", "--url",
                            deployed.custodians["AUS"], "--ca",
                            str(deployed.handover / "AUS-ca.pem")).stdout
    assert "\u2014 witness-AUS " in cosigned
    args = ["custody", "verify", "--as", "AUS", "--json", "--log-url",
            deployed.log_url, "--log-ca", str(deployed.handover / "log-ca.pem")]
    first = json.loads(deployed.cli("officer", *args, "--require-cosigners",
                                    "AUS").stdout)
    assert first["verified"] and first["size"] >= 10
    assert first["cosigners"] == ["AUS"]
    assert first["kinds"]["site.accredited"] == 2
    # the log grows (a custodian writes through the service), then is checked
    # again from the officer's trusted checkpoint
    site = deployed.state / "sites/local/tls"
    deployed.python_as("site", CALL, deployed.custodians["USA"],
                       str(deployed.handover / "USA-ca.pem"), str(site / "USA.pem"),
                       str(site / "client.key"), "/v1/challenge")
    deployed.python_as("orchestrator", APPEND, deployed.log_url,
                       str(deployed.handover / "log-ca.pem"),
                       str(deployed.state / "orchestrator/orchestrator.key"))
    httpx.post(deployed.log_url + "/v1/checkpoint",
               verify=_ca(deployed.handover / "log-ca.pem"), trust_env=False)
    second = json.loads(deployed.cli("officer", *args).stdout)
    assert second["previous_trusted_size"] == first["checkpoint_size"]
    assert second["checkpoint_size"] > first["checkpoint_size"]
    # the orchestrator's user cannot use the officer's trust roots
    refused = deployed.cli("orchestrator", *args, ok=False)
    assert refused.returncode == 2 and "permission denied" in refused.stderr
