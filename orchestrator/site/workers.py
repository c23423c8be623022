"""Parsl worker pools the site starts itself, under its own Unix account.

For a ``site-started`` site (``[provider] type = "site-started"``) the
orchestrator starts no blocks: its HTEX interchange listens on the configured
port and the site runs Parsl's own ``process_worker_pool`` against it, as a
batch system would under the site's account. The pool reads only the site's
directory: its own CurveZMQ key pair and the orchestrator's server public key
(``parsl/certificates/``, :mod:`orchestrator.net.channel`), its log folder
(``parsl/logs/``), and its working directory (``parsl/work/``); every task it
runs reads the site's key and client certificates from the same directory
(:mod:`orchestrator.site.runner`).

:func:`serve_workers` keeps one pool connected: when a pool exits (its
orchestrator went away: no heartbeat within the threshold, or the interchange
was not up yet), it starts another after ``restart_delay`` seconds, until
SIGTERM/SIGINT.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import uuid
from dataclasses import dataclass
from types import FrameType

from orchestrator.errors import NotFound
from orchestrator.site.identity import SiteState
from orchestrator.site.runner import SITE_DIR_ENV

__all__ = ["PoolSettings", "pool_command", "serve_workers"]


@dataclass(frozen=True)
class PoolSettings:
    """How the site's pool reaches the interchange and how many workers it runs.

    Attributes
    ----------
    address
        The interchange's host (the orchestrator's ``executor.address``).
    port
        Its worker port (``provider.worker_port``).
    max_workers
        Workers in the pool (``executor.max_workers_per_node``).
    cores_per_worker
        Cores per worker (``executor.cores_per_worker``).
    heartbeat_period, heartbeat_threshold
        Seconds (``executor.heartbeat_*``).
    """

    address: str
    port: int
    max_workers: int = 1
    cores_per_worker: float = 1.0
    heartbeat_period: int = 5
    heartbeat_threshold: int = 30


def pool_command(site: SiteState, settings: PoolSettings) -> list[str]:
    """Parsl's ``process_worker_pool`` command line for ``site`` (this
    interpreter).

    Raises
    ------
    NotFound
        If the site is not initialised, or does not hold the orchestrator's
        server public key yet.
    """
    site.signing_key()  # the site is initialised here (NotFound otherwise)
    certs = site.channel_dir
    if not (certs / "client.key_secret").is_file():
        raise NotFound("no CurveZMQ key pair at the site (sovereign site init)",
                       source=str(certs))
    if not (certs / "server.key").is_file():
        raise NotFound("the orchestrator's channel key is not installed at the site "
                       "(sovereign site trust-orchestrator CARD)", source=str(certs))
    return [
        sys.executable, "-m", "parsl.executors.high_throughput.process_worker_pool",
        "--addresses", settings.address, "--port", str(settings.port),
        "--cert_dir", str(certs), "--logdir", str(site.root / "parsl" / "logs"),
        "--uid", uuid.uuid4().hex[:12], "--block_id", "site",
        "--cores_per_worker", str(settings.cores_per_worker),
        "--mem_per_worker", "None",
        "--drain_period", "None", "--prefetch_capacity", "0",
        "--max_workers_per_node", str(settings.max_workers),
        "--hb_period", str(settings.heartbeat_period),
        "--hb_threshold", str(settings.heartbeat_threshold),
        "--address_probe_timeout", "5", "--poll", "10", "--cpu-affinity", "none",
    ]


def _kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        pass


def serve_workers(site: SiteState, settings: PoolSettings, *, once: bool = False,
                  restart_delay: float = 1.0) -> int:
    """Run the site's pool in the foreground, restarting it when it exits.

    Parameters
    ----------
    site
        The site's own directory.
    settings
        See :class:`PoolSettings`.
    once
        Run one pool and return its exit status.
    restart_delay
        Seconds between a pool's exit and the next start.

    Returns
    -------
    int
        0 after SIGTERM/SIGINT; with ``once``, the pool's exit status.

    Raises
    ------
    NotFound
        See :func:`pool_command`.
    """
    work = site.root / "parsl" / "work"
    for folder in (work, site.root / "parsl" / "logs", site.staging):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    stop = threading.Event()
    current: list[subprocess.Popen[bytes]] = []

    def on_signal(signum: int, frame: FrameType | None) -> None:
        del frame
        stop.set()
        del signum
        for proc in current:
            _kill_group(proc)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while not stop.is_set():
            env = {**os.environ, "PYTHONUNBUFFERED": "1",
                   SITE_DIR_ENV: str(site.root)}  # the tasks' site directory
            # its own session: the pool and its workers stop together
            proc = subprocess.Popen(pool_command(site, settings), cwd=work, env=env,
                                    start_new_session=True)
            current[:] = [proc]
            code = proc.wait()
            _kill_group(proc)  # workers the pool left behind
            if once:
                return code
            stop.wait(restart_delay)
        return 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
