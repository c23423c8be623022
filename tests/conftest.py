"""Shared fixtures: run the real ``sovereign`` CLI in subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
SONAR = ROOT / "data" / "sonar" / "sonar.csv"


@dataclass
class CliResult:
    """Exit code and output of one ``sovereign`` invocation."""

    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


class Sovereign:
    """Runs ``python -m orchestrator`` against one state directory."""

    def __init__(self, state: Path) -> None:
        self.state = state
        bindir = str(Path(sys.executable).parent)
        self.env = {
            **os.environ,
            "SOVEREIGN_STATE_DIR": str(state),
            "PATH": bindir + os.pathsep + os.environ.get("PATH", ""),
            "COLUMNS": "200",
            "NO_COLOR": "1",
        }

    def __call__(self, *args: str, ok: bool = True, timeout: float = 300) -> CliResult:
        proc = subprocess.run(
            [sys.executable, "-m", "orchestrator", *args],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        result = CliResult(proc.returncode, proc.stdout, proc.stderr)
        if ok and proc.returncode != 0:
            raise AssertionError(
                f"sovereign {' '.join(args)} exited {proc.returncode}:"
                f"\n{proc.stdout}\n{proc.stderr}"
            )
        return result


@pytest.fixture
def sovereign(tmp_path: Path) -> Sovereign:
    """A CLI bound to a fresh state directory."""
    return Sovereign(tmp_path / "state")
