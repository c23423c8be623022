"""Helpers shared by the benchmark scripts: whole-process timing and statistics."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DASH = "\u2013"
"""En dash, for ``median [min\u2013max]``."""

ROOT = Path(__file__).resolve().parent.parent
RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class ProcRun:
    """One finished child process: wall clock, peak RSS and CPU times."""

    wall_s: float
    maxrss_mib: float
    user_s: float
    sys_s: float
    returncode: int
    stdout: str
    stderr: str


GNU_TIME = "/usr/bin/time"


def rss_method() -> str:
    """How :func:`run_measured` gets peak RSS on this machine."""
    if os.access(GNU_TIME, os.X_OK):
        return "GNU time %M (target forked from a ~1 MiB process)"
    return "os.wait4 ru_maxrss (includes the forking Python parent's RSS floor)"


def run_measured(
    cmd: list[str],
    *,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> ProcRun:
    """Run ``cmd`` to completion; measure it alone.

    Wall clock is taken here around spawn..exit; user/sys CPU from ``os.wait4``
    (rusage of exactly this child and the descendants it waited for, so runs do not
    contaminate each other as cumulative ``RUSAGE_CHILDREN`` would). Peak RSS comes
    from ``/usr/bin/time -f %M`` when it exists: Linux carries ``ru_maxrss`` across
    ``execve``, so a child forked straight from this (tens of MiB) Python process
    would report at least this process's RSS; forked from ``time`` (about 1 MiB) the
    figure is the target's own. Without GNU time, ``wait4``'s ``ru_maxrss`` is used.
    stdout/stderr go to temporary files to avoid pipe deadlocks.
    """
    import tempfile

    use_time = os.access(GNU_TIME, os.X_OK)
    with (
        tempfile.TemporaryFile() as out,
        tempfile.TemporaryFile() as err,
        tempfile.NamedTemporaryFile(suffix=".time") as tf,
    ):
        full = [GNU_TIME, "-f", "%M", "-o", tf.name, *cmd] if use_time else list(cmd)
        t0 = time.perf_counter()
        proc = subprocess.Popen(full, stdout=out, stderr=err, env=env, cwd=cwd)
        deadline = None if timeout is None else t0 + timeout
        while True:
            pid, status, ru = os.wait4(proc.pid, os.WNOHANG if deadline else 0)
            if pid:
                break
            if deadline and time.perf_counter() > deadline:
                proc.kill()
                pid, status, ru = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        maxrss_kib = float(ru.ru_maxrss)
        if use_time:
            text = Path(tf.name).read_text().strip().splitlines()
            if text and text[-1].strip().isdigit():
                maxrss_kib = float(text[-1].strip())
        out.seek(0)
        err.seek(0)
        return ProcRun(
            wall,
            maxrss_kib / 1024.0,
            ru.ru_utime,
            ru.ru_stime,
            proc.returncode,
            out.read().decode("utf-8", "replace"),
            err.read().decode("utf-8", "replace"),
        )


def summary(values: list[float]) -> dict[str, Any]:
    """``{"median", "min", "max", "n", "values"}`` of ``values``."""
    return {
        "median": statistics.median(values),
        "min": min(values),
        "max": max(values),
        "n": len(values),
        "values": values,
    }


def fmt(s: dict[str, Any], digits: int = 3) -> str:
    """``median [min-max]`` (en dash) of a :func:`summary`."""
    return (
        f"{s['median']:.{digits}f} [{s['min']:.{digits}f}{DASH}{s['max']:.{digits}f}]"
    )


def machine() -> dict[str, Any]:
    """What the numbers were measured on, and how loaded it was at the start."""
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpus": os.cpu_count(),
    }
    try:
        info["loadavg"] = list(os.getloadavg())
    except OSError:
        pass
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return info
