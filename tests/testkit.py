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
    from orchestrator.embedded.layout import StateDir
    from orchestrator.submit.registration import register_site

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
    add_signed_agreement(state, agreement or ROOT / "agreements" / "aus-usa.toml")
    return World(state=state, dataset_id=record.id)


def add_signed_agreement(state: Any, path: Path) -> Any:
    """Record the agreement at ``path`` signed by every party's officer (in force)."""
    from orchestrator.protocol.agreements import load_agreement
    from orchestrator.submit.registration import add_agreement

    return add_agreement(state, path, sign_as=load_agreement(path).parties)


@pytest.fixture
def world(tmp_path: Path) -> World:
    """A fresh embedded world (see :class:`World`)."""
    return make_world(tmp_path)


#: A fixed code measurement for jobs registered directly (no workflow file).
MEASUREMENT = "sha256:" + "ab" * 32


def register_job(world: World, job_id: str, area: str = "undersea-autonomy",
                 gpu_hours: float = 0.5, *, admit: tuple[str, ...] = ()) -> Any:
    """Register ``job_id`` over the world's dataset at its site and return its
    :class:`~orchestrator.protocol.release.JobRequest`.

    ``admit``: nations whose custodians then decide the request (a permit is the
    job's admission, which key releases need), as a submission does.
    """
    from orchestrator.nation.custodian import LocalCustodian
    from orchestrator.protocol.release import JobRequest
    from orchestrator.submit.registry import JobRecord, Registry

    Registry(world.state.registry_db).add_job(JobRecord(
        id=job_id, workflow="sonar", site=world.site,
        request={"dataset_ids": [world.dataset_id], "priority_area": area,
                 "gpu_hours": gpu_hours},
        measurement=MEASUREMENT, state="submitted", summary={},
        created="2026-11-21T00:00:00Z", finished=None))
    request = JobRequest(job_id, world.dataset_id, world.site, area, gpu_hours,
                         MEASUREMENT)
    for nation in admit:
        LocalCustodian(world.state, nation).decide(request)
    return request


def attested_release(world: World, custodian: Any, job_id: str, attempt: str = "a1",
                     clock: Any = None) -> Any:
    """Ask ``custodian`` (local or HTTP) for task ``fold-0``'s key with fresh
    site-signed evidence answering its nonce; return the grant."""
    from orchestrator.crypto import RecipientKey, load_private_key
    from orchestrator.protocol.release import ReleaseRequest
    from orchestrator.site.attestation import SoftwareAttester
    from orchestrator.timeutil import system_clock

    key = RecipientKey.generate()
    site_key = load_private_key(world.state.site_dir(world.site) / "site.key")
    evidence = SoftwareAttester(world.site, site_key, clock or system_clock).attest(
        job_id=job_id, attempt_id=attempt, code_measurement=MEASUREMENT,
        enclave_public_key=key.public_bytes(), hpke_suite=key.suite.value,
        nonce=custodian.challenge())
    return custodian.release_key(ReleaseRequest(
        job_id, attempt, "fold-0", world.dataset_id, world.site, evidence))


def officer_key(world: World, nation: str) -> Any:
    """``nation``'s sovereignty officer's signing key in the world's state dir."""
    from orchestrator.crypto import load_private_key

    return load_private_key(world.state.nation_dir(nation) / "officer.key")


def edit_entry_body(world: World, seq: int, edit: Any) -> None:
    """Tamper with the custody log: rewrite entry ``seq``'s stored leaf with
    ``edit(body)`` applied to its event body (signature left as it was)."""
    import json
    import sqlite3

    from orchestrator.canonical import canonical_bytes

    db = sqlite3.connect(world.state.custody_db)
    try:
        (leaf,) = db.execute("SELECT leaf FROM entries WHERE seq = ?",
                             (seq,)).fetchone()
        doc = json.loads(bytes(leaf))
        edit(doc["event"]["body"])
        db.execute("UPDATE entries SET leaf = ? WHERE seq = ?",
                   (canonical_bytes(doc), seq))
        db.commit()
    finally:
        db.close()
