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
    """A state directory with AUS, GBR and USA, the local site accredited by all
    three, a sealed sonar dataset owned by AUS (SECRET, REL TO AUS, GBR, USA) and
    the AUS-USA agreement."""

    state: Any
    dataset_id: str
    site: str = "local"
    #: ``"sha256:<hex>"`` of the sealed dataset (what release requests name).
    dataset_digest: str = ""

    @property
    def deployment(self) -> Any:
        """The embedded deployment over :attr:`state`."""
        from orchestrator.embedded import Deployment

        return Deployment(self.state)

    def custodian(self, nation: str) -> Any:
        """``nation``'s custodian in-process, over its own directory."""
        return self.deployment.custodian(nation)


def make_world(
    root: Path, *, accreditation: str = "SECRET", agreement: Path | None = None,
    accredit_by: tuple[str, ...] = ("AUS", "GBR", "USA"),
) -> World:
    from orchestrator.embedded import (
        StateDir,
        accredit_site,
        init_nation,
        register_site,
        seal_dataset,
    )

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
    for code in accredit_by:
        accredit_site(state, "local", code)
    record = seal_dataset(
        state,
        SONAR,
        name="uci-sonar",
        owners=["AUS"],
        classification="SECRET",
        releasable_to=["AUS", "GBR", "USA"],
    )
    add_signed_agreement(state, agreement or ROOT / "agreements" / "aus-usa.toml")
    return World(state=state, dataset_id=record.id,
                 dataset_digest=record.sealed_digest)


def add_signed_agreement(state: Any, path: Path) -> Any:
    """Record the agreement at ``path`` signed by every party's officer (in force)."""
    from orchestrator.embedded import add_agreement
    from orchestrator.protocol.agreements import load_agreement

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
        world.custodian(nation).decide(request)
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
        job_id, attempt, "fold-0", world.dataset_id, world.site, evidence,
        world.dataset_digest))


def officer_key(world: World, nation: str) -> Any:
    """``nation``'s sovereignty officer's signing key in the world's state dir."""
    from orchestrator.crypto import load_private_key

    return load_private_key(world.state.officer_dir(nation) / "officer.key")


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


def custodian_of(state: Any, nation: str, **options: Any) -> Any:
    """A fresh in-process :class:`~orchestrator.nation.custodian.LocalCustodian`
    of ``nation`` over its own directory in ``state`` and the state's log
    (``options``: ``clock``, ``verifier``)."""
    from orchestrator.embedded import Deployment
    from orchestrator.nation.custodian import LocalCustodian

    deployment = Deployment(state)
    return LocalCustodian(deployment.nation(nation).require(), deployment.log(),
                          **options)


def ctx_of(state: Any, nation: str, **options: Any) -> Any:
    """The :class:`~orchestrator.nation.context.CustodianContext` of
    :func:`custodian_of` (its store, journal, keys and log client)."""
    return custodian_of(state, nation, **options).ctx


def edit_journal_body(state: Any, nation: str, seq: int, edit: Any) -> None:
    """Tamper with ``nation``'s custodian journal (an attacker with write access
    to its database): rewrite entry ``seq``'s leaf with ``edit(body)`` applied."""
    import json
    import sqlite3

    from orchestrator.canonical import canonical_bytes

    db = sqlite3.connect(state.nation_dir(nation) / "journal.db")
    try:
        (leaf,) = db.execute("SELECT leaf FROM entries WHERE seq = ?",
                             (seq,)).fetchone()
        doc = json.loads(bytes(leaf))
        edit(doc["event"]["body"])
        db.execute("UPDATE entries SET leaf = ?, body = ? WHERE seq = ?",
                   (canonical_bytes(doc), json.dumps(doc["event"]["body"]), seq))
        db.commit()
    finally:
        db.close()


def officer_event(kind: str, nation: str, body: dict[str, Any], key: Any) -> Any:
    """A :class:`~orchestrator.protocol.log.SignedEvent` as ``nation``'s officer
    would make it, but signed with ``key`` (any key: for forgeries)."""
    from orchestrator.protocol.log import SignedEvent
    from orchestrator.tlog.events import CustodyEvent

    return SignedEvent.create(CustodyEvent.create(kind, f"officer:{nation}", body), key)


def inject_journal(state: Any, nation: str, kind: str, actor: str,
                   body: dict[str, Any], key: Any) -> Any:
    """Tamper with ``nation``'s custodian journal: insert an entry the log never
    placed (``kind`` by ``actor``, signed with ``key``), as an attacker with
    write access to its database could; return it."""
    from orchestrator.nation.journal import Journal
    from orchestrator.tlog.events import ZERO_HASH, CustodyEvent, SignedEntry

    journal = Journal(state.nation_dir(nation) / "journal.db")
    seq = 10**6 + len(journal.entries())
    return journal.add(SignedEntry.create(seq, ZERO_HASH,
                                          CustodyEvent.create(kind, actor, body), key))


def restart_log(state: Any) -> None:
    """Forget this process's log operator over ``state`` (as if its service
    restarted): the next use re-reads its storage."""
    from orchestrator.embedded import deployment

    with deployment._LOCK:
        deployment._LOGS.pop(state.log_dir.resolve(), None)


def tamper_log(state: Any, *statements: tuple[str, tuple[Any, ...]]) -> None:
    """Run SQL on the log operator's storage (an operator editing its own
    database), then restart it."""
    import sqlite3

    db = sqlite3.connect(state.custody_db)
    try:
        for name in ("entries_job_id", "entries_model_id", "entries_dataset_id"):
            db.execute(f"DROP INDEX IF EXISTS {name}")
        for sql, params in statements:
            db.execute(sql, params)
        db.commit()
    finally:
        db.close()
    restart_log(state)


def register_accredited_site(state: Any, path: Path,
                             by: tuple[str, ...] = ("AUS", "GBR", "USA")) -> Any:
    """Register the site of config ``path`` and have ``by`` accredit it (TEE kind
    ``none``); return its registry record."""
    from orchestrator.embedded import accredit_site, register_site

    record = register_site(state, path)
    for nation in by:
        accredit_site(state, record.name, nation)
    return record
