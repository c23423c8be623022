"""Parties apart as Unix users on one machine: the harness of the deployment test.

Each party is a Unix user with its own state directory (``0700``, its own
``$SOVEREIGN_STATE_DIR``), as it would be on a machine of its own; every
command below runs as the party it speaks for (``setpriv``) and is one of the
commands README's Deployment section gives. The only thing that crosses between
parties is a file in the hand-over folder (mode ``1777``, like ``/tmp``: each
party writes its own files there and reads the others'): cards, certificates
issued from them, accreditations, the sealed dataset and its descriptor. The
log and both custodians then run as services under their own users on loopback.

Imported as ``parties`` (``tests/deployment`` on ``sys.path`` via
``conftest.py``).
"""

from __future__ import annotations

import os
import pwd
import shutil
import ssl
import subprocess
import sysconfig
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from orchestrator.net.service import free_port

ROOT = Path(__file__).resolve().parents[2]
SONAR = ROOT / "data" / "sonar" / "sonar.csv"
CANARY = "0.8314159265"  # occurs nowhere in the real data nor in other tests

#: party -> its Unix user.
USERS = {"log": "sov-log", "AUS": "sov-nation-aus", "USA": "sov-nation-usa",
         "site": "sov-site-local", "orchestrator": "sov-orchestrator",
         "officer": "sov-officer-aus", "officer-USA": "sov-officer-usa",
         "other-site": "sov-site-other"}


def canary_data() -> bytes:
    """The sonar returns with one planted value (for the plaintext scan)."""
    lines = SONAR.read_text().splitlines()
    cells = lines[5].split(",")
    cells[7] = CANARY
    lines[5] = ",".join(cells)
    return ("\n".join(lines) + "\n").encode()


def ensure_user(name: str) -> None:
    """Create a system user ``name`` (no home, no shell) unless it exists."""
    try:
        pwd.getpwnam(name)
    except KeyError:
        subprocess.run(["useradd", "-r", "-M", "-s", "/usr/sbin/nologin", name],
                       check=True)


def _open_to_others(path: Path) -> bool:
    return all(p.stat().st_mode & 0o001 for p in [path, *path.parents])


def shared_python(base: Path) -> tuple[Path, Path]:
    """An interpreter every party may execute (the project's may live under a
    0700 home): Debian's python3.11 seeing this environment's packages, and the
    project as every party reads it. Returns ``(python, project)``."""
    venv = base / "venv"
    subprocess.run(["/usr/bin/python3.11", "-m", "venv", "--without-pip", str(venv)],
                   check=True)
    purelib = sysconfig.get_paths()["purelib"]
    lines = []
    project = ROOT
    if not (_open_to_others(Path(purelib)) and _open_to_others(ROOT)):
        # a 0700 directory above the checkout or its environment: a copy of the
        # project's code and workflows and of its packages (PyTorch included:
        # the site trains), hard-linked where the file system allows
        project = base / "app"
        for folder in ("orchestrator", "workflows", "agreements"):
            shutil.copytree(ROOT / folder, project / folder,
                            ignore=shutil.ignore_patterns("__pycache__"))
        purelib_copy = base / "site-packages"
        linked = subprocess.run(["cp", "-al", purelib, str(purelib_copy)],
                                capture_output=True)
        if linked.returncode != 0:
            shutil.rmtree(purelib_copy, ignore_errors=True)
            shutil.copytree(purelib, purelib_copy, symlinks=True)
        for editable in purelib_copy.glob("__editable__*"):
            editable.unlink()  # it maps the project to the closed checkout
        lines.append(f"import sys; sys.path.insert(0, {str(project)!r})")
        purelib = str(purelib_copy)
    lines.append(f"import site; site.addsitedir({purelib!r})")
    (venv / "lib/python3.11/site-packages/sovereign-project.pth").write_text(
        "\n".join(lines) + "\n")
    subprocess.run(["chmod", "-R", "o+rX", str(base)], check=True)
    return venv / "bin/python", project


@dataclass
class Deployed:
    """The parties, their services and the hand-over folder."""

    base: Path
    python: Path
    project: Path
    log_url: str = ""
    custodians: dict[str, str] = field(default_factory=dict)
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    #: service name -> (party, arguments, its process)
    services: dict[str, tuple[str, list[str], subprocess.Popen[bytes]]] = field(
        default_factory=dict)

    @property
    def handover(self) -> Path:
        """The only folder parties share (public files)."""
        return self.base / "handover"

    def state(self, party: str) -> Path:
        """``party``'s own state directory (its machine's)."""
        return self.base / "parties" / party

    def card(self, name: str) -> Path:
        """A card in the hand-over folder."""
        return self.handover / f"{name}.card.json"

    @property
    def site_config(self) -> Path:
        """The main site's config (site-started: its own worker pools)."""
        return self.handover / "local.toml"

    def command(self, party: str, args: list[str], *,
                state_of: str | None = None) -> list[str]:
        """``args`` for the interpreter, run as ``party``'s user over its own
        state directory (or ``state_of``'s, to show it cannot read it)."""
        user = USERS[party]
        env = {"HOME": "/nonexistent", "PATH": "/usr/bin:/bin",
               "SOVEREIGN_STATE_DIR": str(self.state(state_of or party)),
               "PYTHONDONTWRITEBYTECODE": "1", "COLUMNS": "200", "NO_COLOR": "1"}
        return ["setpriv", f"--reuid={user}", f"--regid={user}", "--clear-groups",
                "env", "-i", *(f"{k}={v}" for k, v in env.items()), str(self.python),
                *args]

    def run(self, party: str, args: list[str], *, ok: bool = True,
            state_of: str | None = None) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(self.command(party, args, state_of=state_of),
                              cwd=self.base, text=True, capture_output=True,
                              timeout=300)
        if ok:
            assert done.returncode == 0, (party, args, done.stdout + done.stderr)
        return done

    def cli(self, party: str, *args: str, ok: bool = True,
            state_of: str | None = None) -> subprocess.CompletedProcess[str]:
        """``sovereign ARGS`` as ``party``."""
        return self.run(party, ["-m", "orchestrator", *args], ok=ok,
                        state_of=state_of)

    def python_as(self, party: str, code: str, *args: str
                  ) -> subprocess.CompletedProcess[str]:
        script = self.base / f"probe-{abs(hash(code))}.py"
        script.write_text(code)
        script.chmod(0o644)
        return self.run(party, [str(script), *args])

    def serve(self, party: str, args: list[str], name: str) -> None:
        """Start ``sovereign ARGS`` as ``party`` in the background, as ``name``."""
        out = self.base / f"{name}.out"
        proc = subprocess.Popen(
            self.command(party, ["-m", "orchestrator", *args]), cwd=self.base,
            stdout=out.open("ab"), stderr=subprocess.STDOUT)
        self.procs.append(proc)
        self.services[name] = (party, args, proc)

    def halt(self, name: str) -> None:
        """Stop service ``name`` (SIGTERM, as an operator would)."""
        proc = self.services[name][2]
        proc.terminate()
        proc.wait(20)

    def restart(self, name: str, url: str) -> None:
        """Start service ``name`` again with the same arguments (same port) and
        wait until it answers."""
        party, args, _ = self.services[name]
        self.serve(party, args, name)
        _wait_tls(url, self.procs[-1], self.base / f"{name}.out")

    def stop(self) -> None:
        for proc in self.procs:
            proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_tls(url: str, proc: subprocess.Popen[bytes], out: Path) -> None:
    """Wait until ``url`` completes a TLS handshake (its CA not checked: the
    parties pin it; this only waits for the port)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"{url} exited {proc.returncode}:\n{out.read_text()}")
        try:
            httpx.get(url + "/v1/health", verify=context, timeout=2, trust_env=False)
            return
        except httpx.ConnectError:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} not up:\n{out.read_text()}") from None
            time.sleep(0.3)
        except httpx.HTTPError:
            return  # answered (or refused this client): it is up


def set_up(d: Deployed) -> None:
    """Every party initialises itself, the cards go round, the services start,
    the site is accredited, the dataset sealed and the agreement signed: the
    steps of README's Deployment section, each as its own party."""
    port = free_port
    d.handover.mkdir(mode=0o755)
    d.handover.chmod(0o1777)
    (d.base / "parties").mkdir(mode=0o755)
    for party, user in USERS.items():
        d.state(party).mkdir(mode=0o700)
        shutil.chown(d.state(party), user, user)
    site_text = (ROOT / "site_configs/local-site-started.toml").read_text().replace(
        "worker_port = 54390", f"worker_port = {port()}", 1)
    d.site_config.write_text(site_text)
    (d.handover / "other.toml").write_text(
        (ROOT / "site_configs/local.toml").read_text().replace(
            'name = "local"', 'name = "other"', 1))
    h, card = d.handover, d.card
    # 1. each party initialises itself and writes its card
    d.cli("log", "log", "init", "--host", "127.0.0.1", "--card", str(card("log")))
    for nation, officer in (("AUS", "officer"), ("USA", "officer-USA")):
        d.cli(officer, "officer", "init", nation, "--card",
              str(card(f"officer-{nation}")))
        d.cli(nation, "nation", "init", nation, "--officer-card",
              str(card(f"officer-{nation}")), "--card", str(card(f"nation-{nation}")))
    d.cli("site", "site", "init", str(d.site_config), "--card",
          str(card("site-local")))
    d.cli("other-site", "site", "init", str(h / "other.toml"), "--card",
          str(card("site-other")))
    d.cli("orchestrator", "orchestrator", "init", "--card", str(card("orchestrator")))
    # 2. the log operator enrolls every actor from its card
    d.cli("log", "log", "enroll", *(str(card(n)) for n in (
        "nation-AUS", "nation-USA", "officer-AUS", "officer-USA", "site-local",
        "site-other", "orchestrator")))
    # 3. each nation pins the log and its peer, issues certificates from cards
    for nation, peer in (("AUS", "USA"), ("USA", "AUS")):
        d.cli(nation, "nation", "pin", nation, str(card("log")))
        d.cli(nation, "nation", "pin", nation, str(card(f"nation-{peer}")))
        for holder in ("orchestrator", "log", "officer-AUS", "officer-USA"):
            d.cli(nation, "nation", "issue", nation, str(card(holder)), "--out",
                  str(h / f"{nation}-{holder}.pem"))
        d.cli("log", "log", "install-cert", str(h / f"{nation}-log.pem"), "--nation",
              nation)
    # 4. the services, each under its own user
    log_port = port()
    d.log_url = f"https://127.0.0.1:{log_port}"
    d.serve("log", ["log", "serve", "--port", str(log_port)], "log-service")
    _wait_tls(d.log_url, d.procs[-1], d.base / "log-service.out")
    log = ["--log-url", d.log_url, "--log-ca", str(card("log"))]
    for nation in ("AUS", "USA"):
        nation_port = port()
        d.custodians[nation] = f"https://127.0.0.1:{nation_port}"
        d.serve(nation, ["custodian", "serve", "--nation", nation, "--port",
                         str(nation_port), *log], f"{nation}-service")
        _wait_tls(d.custodians[nation], d.procs[-1], d.base / f"{nation}-service.out")
    # 5. each nation accredits the site from its card; the site keeps them
    for nation in ("AUS", "USA"):
        acc = h / f"accreditation-{nation}-local.json"
        d.cli(nation, "site", "accredit", "local", "--by", nation, "--tee", "none",
              "--days", "30", "--card", str(card("site-local")), "--out", str(acc),
              *log)
        d.cli("site", "site", "install", str(d.site_config), str(acc))
    d.cli("site", "site", "trust-orchestrator", str(d.site_config),
          str(card("orchestrator")))
    # 6. the orchestrator: the log service, the nations, their custodians, sites
    d.cli("orchestrator", "log", "register", "--url", d.log_url, "--ca",
          str(card("log")))
    for nation in ("AUS", "USA"):
        d.cli("orchestrator", "nation", "add", str(card(f"nation-{nation}")))
        d.cli("orchestrator", "custodian", "register", nation, "--url",
              d.custodians[nation], "--ca", str(card(f"nation-{nation}")), "--cert",
              str(h / f"{nation}-orchestrator.pem"))
    d.cli("orchestrator", "site", "register", str(d.site_config), "--card",
          str(card("site-local")))
    d.cli("orchestrator", "site", "register", str(h / "other.toml"), "--card",
          str(card("site-other")))
    # 7. the officers: trust roots, certificates, their custodians
    for nation, officer in (("AUS", "officer"), ("USA", "officer-USA")):
        d.cli(officer, "officer", "trust", nation, "--log-card", str(card("log")),
              "--nation-card", str(card("nation-AUS")), "--nation-card",
              str(card("nation-USA")))
        for issuer in ("AUS", "USA"):
            d.cli(officer, "officer", "install-cert", nation,
                  str(h / f"{issuer}-officer-{nation}.pem"), "--nation", issuer)
            d.cli(officer, "custodian", "register", issuer, "--officer", nation,
                  "--url", d.custodians[issuer], "--ca", str(card(f"nation-{issuer}")))
    # 8. the AUS steward seals the sonar returns at AUS (plaintext in AUS's own
    # directory only, removed once sealed); the orchestrator takes them in
    steward = d.state("AUS") / "steward"
    d.run("AUS", ["-c", "import os, sys; os.mkdir(sys.argv[1], 0o700)",
                  str(steward)])
    (steward / "sonar.csv").write_bytes(canary_data())
    shutil.chown(steward / "sonar.csv", USERS["AUS"], USERS["AUS"])
    (steward / "sonar.csv").chmod(0o600)
    sealed = h / "sealed"
    d.cli("AUS", "dataset", "seal", str(steward / "sonar.csv"), "--name", "uci-sonar",
          "--owner", "AUS", "--classification", "SECRET", "--rel-to", "AUS,USA",
          "--export-control", "EAR99", "--out", str(sealed), *log)
    d.run("AUS", ["-c", "import shutil, sys; shutil.rmtree(sys.argv[1])",
                  str(steward)])
    descriptor = next(sealed.glob("*.descriptor.json"))
    d.cli("orchestrator", "dataset", "register", str(descriptor),
          str(descriptor).replace(".descriptor.json", ".sealed"))
    # 9. the agreement: the orchestrator proposes, each officer signs
    d.cli("orchestrator", "agreement", "add",
          str(d.project / "agreements/aus-usa.toml"))
    d.cli("officer", "agreement", "sign", "AUS-USA-SONAR-2026", "--as", "AUS")
    d.cli("officer-USA", "agreement", "sign", "AUS-USA-SONAR-2026", "--as", "USA")


def python_ok(d: Deployed) -> str | None:
    """``None`` when another user can import the project, else why not."""
    probe = d.run("orchestrator", ["-c", "import orchestrator.cli"], ok=False)
    return None if probe.returncode == 0 else probe.stderr


def need_root() -> str | None:
    """Why this machine cannot run the test (``None``: it can)."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        return "the deployment test runs as root with setpriv (CI does)"
    if not Path("/usr/bin/python3.11").exists():
        return "Debian's /usr/bin/python3.11 is missing"
    return None


__all__ = ["CANARY", "ROOT", "SONAR", "USERS", "Deployed", "canary_data",
           "ensure_user", "need_root", "python_ok", "set_up", "shared_python"]
