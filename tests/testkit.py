"""Shared test helpers: the real ``sovereign`` CLI in subprocesses, and a real
embedded world (nations, site, sealed sonar data, agreement) built in-process.

Imported as ``testkit`` (``tests/`` is on ``sys.path`` through ``tests/conftest.py``);
the fixtures are exposed by ``tests/conftest.py``."""

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


@dataclass
class World:
    """A state directory with AUS, GBR and USA, the local site, a sealed sonar
    dataset owned by AUS (SECRET, REL TO AUS, GBR, USA) and the AUS-USA agreement."""

    state: Any
    dataset_id: str
    site: str = "local"


def make_world(
    root: Path, *, accreditation: str = "SECRET", agreement: Path | None = None
) -> World:
    from orchestrator.nation.identity import init_nation
    from orchestrator.nation.steward import seal_dataset
    from orchestrator.state import StateDir
    from orchestrator.submit.registration import add_agreement, register_site

    state = StateDir(root / "state").ensure()
    for code in ("AUS", "GBR", "USA"):
        init_nation(state, code)
    site_file = root / "site.toml"
    site_file.write_text(
        (ROOT / "site_configs" / "local.toml")
        .read_text()
        .replace('accreditation = "SECRET"', f'accreditation = "{accreditation}"')
    )
    register_site(state, site_file)
    record = seal_dataset(
        state,
        SONAR,
        name="uci-sonar",
        owners=["AUS"],
        classification="SECRET",
        releasable_to=["AUS", "GBR", "USA"],
    )
    add_agreement(state, agreement or ROOT / "agreements" / "aus-usa.toml")
    return World(state=state, dataset_id=record.id)


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A fresh embedded world (see :class:`World`)."""
    return make_world(tmp_path)
