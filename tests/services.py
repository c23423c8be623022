"""Real party services for tests: ``sovereign custodian serve`` and ``sovereign
log serve`` as separate processes, started from the project's CLI.

Imported as ``services`` (``tests/`` is on ``sys.path`` through
``tests/conftest.py``).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.net.custodian_client import CustodianUnavailable, HttpCustodian
from orchestrator.net.service import free_port

ROOT = Path(__file__).resolve().parent.parent


@dataclass
class ServiceProcess:
    """One ``python -m orchestrator ...`` service process on a loopback port.

    ``args`` are the CLI arguments (``--port`` is added); its output goes to
    ``log`` (uvicorn access lines included at ``--log-level info``).
    """

    args: list[str]
    state: Path
    log: Path
    port: int = field(default_factory=free_port)
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, ready: Any, timeout_s: float = 60.0) -> ServiceProcess:
        """Start it and wait until ``ready()`` returns without raising."""
        env = {**os.environ, "SOVEREIGN_STATE_DIR": str(self.state),
               "PATH": str(Path(sys.executable).parent) + os.pathsep
               + os.environ.get("PATH", "")}
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "orchestrator", *self.args, "--port",
             str(self.port), "--host", "127.0.0.1"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.args} exited {self.proc.returncode}:\n"
                                   + self.log.read_text())
            try:
                ready()
                return self
            except (CustodianUnavailable, OSError) as exc:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"{self.args} not ready: {exc}\n"
                                       + self.log.read_text()) from exc
                time.sleep(0.2)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)


def custodian_service(state: Any, nation: str, *, port: int | None = None,
                      extra: tuple[str, ...] = ()) -> ServiceProcess:
    """Start ``sovereign custodian serve --nation NATION`` over ``state`` (its
    own nation directory; the embedded log unless ``extra`` names a log
    service) and wait until it answers the orchestrator's client certificate."""
    nation_dir = state.nation_dir(nation)
    service = ServiceProcess(
        ["custodian", "serve", "--nation", nation, "--log-level", "info", *extra],
        state.root, nation_dir / "service.log")
    if port is not None:
        service.port = port
    orch = state.orchestrator_dir / "tls"

    def ready() -> None:
        with HttpCustodian(nation, service.url, ca=nation_dir / "pki" / "ca.pem",
                           cert=orch / f"{nation}.pem", key=orch / "client.key",
                           connect_timeout=1.0) as client:
            client.health()

    return service.start(ready)
