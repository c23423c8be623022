"""The SQLite custody log: durability, idempotency, fail-closed errors, concurrency."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import pickle
import sqlite3
import stat
from pathlib import Path

import pytest

from orchestrator.errors import LedgerError, NotFound
from orchestrator.log.backends import SQLiteBackend
from orchestrator.log.selfcheck import verify_log
from orchestrator.log.store import CustodyLog
from orchestrator.tlog.events import ZERO_HASH, CustodyEvent

from .helpers import World, make_event, make_world

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture
def log(tmp_path: Path) -> CustodyLog:
    return CustodyLog(tmp_path / "custody.db")


def append(log: CustodyLog, world: World, event: CustodyEvent) -> None:
    log.append(event, world.signer_for(event))


def test_constructor_does_no_io(tmp_path: Path) -> None:
    CustodyLog(tmp_path / "sub" / "custody.db")
    assert list(tmp_path.iterdir()) == []


def test_reads_of_a_missing_log_see_it_empty(log: CustodyLog) -> None:
    assert log.size() == 0
    assert list(log.entries()) == []
    assert log.last_hash() == ZERO_HASH
    assert log.find("key.released") == []
    assert not log.path.exists()


def test_init_creates_private_wal_file(log: CustodyLog) -> None:
    log.init()
    assert stat.S_IMODE(log.path.stat().st_mode) == 0o600
    with sqlite3.connect(log.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert {"entries", "entries_kind", "entries_job_id"} <= tables
    log.ensure_schema()  # idempotent
    assert log.size() == 0


def test_append_and_read_round_trip(log: CustodyLog, world: World) -> None:
    events = [make_event(i, job_id=f"job-{i % 2}") for i in range(8)]
    stored = [log.append(e, world.signer_for(e)) for e in events]
    assert [e.seq for e in stored] == list(range(8))
    assert stored[0].prev_hash == ZERO_HASH
    assert all(b.prev_hash == a.entry_hash() for a, b in itertools.pairwise(stored))
    assert log.size() == 8
    assert list(log.entries()) == stored
    assert list(log.entries(2, 5)) == stored[2:5]
    assert list(log.entries(6)) == stored[6:]
    assert list(log.entries(5, 5)) == []
    assert log.get(3) == stored[3]
    assert log.last_hash() == stored[-1].entry_hash()
    assert [e.event for e in log.entries()] == events
    report = verify_log(log, world.keys)
    assert report.size == 8 and report.head_hash == stored[-1].entry_hash()
    rows = list(log.rows())
    assert [r.entry_hash for r in rows] == [e.entry_hash() for e in stored]


def test_entries_pages_through_large_logs(log: CustodyLog, world: World,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    import orchestrator.log.store as store
    monkeypatch.setattr(store, "_PAGE", 3)
    stored = [log.append(e, world.signer_for(e)) for e in map(make_event, range(10))]
    assert list(log.entries()) == stored
    assert list(log.entries(1, 8)) == stored[1:8]
    assert list(log.entries(4, 7)) == stored[4:7]


def test_find_filters_on_kind_and_body(log: CustodyLog, world: World) -> None:
    for i in range(12):
        append(log, world, make_event(i, job_id=f"job-{i % 3}"))
    released = log.find("key.released")
    assert [e.event.kind for e in released] == ["key.released"] * 2
    hits = log.find("key.released", job_id="job-2")
    assert [e.seq for e in hits] == [2, 8]
    assert [e.seq for e in log.find(job_id="job-1")] == [1, 4, 7, 10]
    assert log.find("key.released", job_id="job-9") == []
    assert [e.seq for e in log.find(job_id="job-0", note="entry-0003")] == [3]
    with pytest.raises(ValueError):
        log.find(**{"a') OR 1=1 --": "x"})


def test_get_missing_entry_is_not_found(log: CustodyLog, world: World) -> None:
    append(log, world, make_event(0))
    with pytest.raises(NotFound):
        log.get(1)


def test_retry_with_same_event_is_idempotent(log: CustodyLog, world: World) -> None:
    event = make_event(0)
    first = log.append(event, world.signer_for(event))
    append(log, world, make_event(1))
    again = log.append(CustodyEvent.from_json(event.to_json()), world.signer_for(event))
    assert again == first
    assert log.size() == 2


def test_same_event_id_with_other_content_is_refused(log: CustodyLog,
                                                     world: World) -> None:
    event = make_event(0)
    append(log, world, event)
    clash = make_event(0, event_id=event.event_id, note="something else")
    with pytest.raises(LedgerError, match="different content"):
        append(log, world, clash)
    assert log.size() == 1


def test_signer_failure_records_nothing(log: CustodyLog, world: World) -> None:
    class Broken:
        key_id = "ed25519:broken"

        def sign(self, data: bytes) -> bytes:
            raise RuntimeError("HSM unavailable")

    append(log, world, make_event(0))
    with pytest.raises(RuntimeError):
        log.append(make_event(1), Broken())
    assert log.size() == 1


def _ro_open(log: SQLiteBackend) -> sqlite3.Connection:
    return sqlite3.connect(f"file:{log.path}?mode=ro", uri=True, isolation_level=None)


def test_read_only_database_fails_closed(log: CustodyLog, world: World,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    append(log, world, make_event(0))
    monkeypatch.setattr(SQLiteBackend, "_open", _ro_open)
    with pytest.raises(LedgerError, match="could not durably record"):
        append(log, world, make_event(1))
    with pytest.raises(LedgerError):  # a fresh process's first append, too
        append(CustodyLog(log.path), world, make_event(2))
    monkeypatch.undo()
    assert log.size() == 1


@pytest.mark.skipif(IS_ROOT, reason="root ignores file permissions")
def test_read_only_file_fails_closed(log: CustodyLog, world: World) -> None:
    append(log, world, make_event(0))
    os.chmod(log.path, 0o400)
    try:
        with pytest.raises(LedgerError):
            append(log, world, make_event(1))
    finally:
        os.chmod(log.path, 0o600)
    assert log.size() == 1


@pytest.mark.skipif(IS_ROOT, reason="root ignores directory permissions")
def test_read_only_directory_fails_closed(tmp_path: Path, world: World) -> None:
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    try:
        with pytest.raises(LedgerError):
            append(CustodyLog(ro / "custody.db"), world, make_event(0))
    finally:
        ro.chmod(0o700)
    assert not (ro / "custody.db").exists()


def test_unwritable_location_fails_closed(tmp_path: Path, world: World) -> None:
    (tmp_path / "file").write_text("not a directory")
    log = CustodyLog(tmp_path / "file" / "custody.db")
    with pytest.raises(LedgerError, match="could not durably record"):
        append(log, world, make_event(0))


def test_disk_full_fails_closed(log: CustodyLog, world: World,
                                monkeypatch: pytest.MonkeyPatch) -> None:
    append(log, world, make_event(0))
    real_open = SQLiteBackend._open

    def full_open(self: SQLiteBackend) -> sqlite3.Connection:
        conn = real_open(self)
        pages = conn.execute("PRAGMA page_count").fetchone()[0]
        conn.execute(f"PRAGMA max_page_count = {pages}")
        return conn

    monkeypatch.setattr(SQLiteBackend, "_open", full_open)
    big = CustodyEvent.create("task.started", "site:local", {"blob": "x" * 200_000})
    with pytest.raises(LedgerError, match="full"):
        append(log, world, big)
    monkeypatch.undo()
    assert log.size() == 1
    verify_log(log, world.keys)


def test_lock_held_beyond_timeout_fails_closed(tmp_path: Path, world: World) -> None:
    log = CustodyLog(tmp_path / "custody.db", timeout=0.2)
    append(log, world, make_event(0))
    holder = sqlite3.connect(log.path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(LedgerError, match="locked"):
            append(log, world, make_event(1))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    append(log, world, make_event(1))
    assert log.size() == 2


def test_not_a_database_fails_closed(log: CustodyLog, world: World) -> None:
    log.path.write_bytes(b"this is not an sqlite file" * 100)
    with pytest.raises(LedgerError):
        append(log, world, make_event(0))
    with pytest.raises(LedgerError):
        log.size()


def test_log_pickles_as_its_path(log: CustodyLog, world: World) -> None:
    append(log, world, make_event(0))
    clone = pickle.loads(pickle.dumps(log))
    assert clone.path == log.path and clone.timeout == log.timeout
    append(clone, world, make_event(1))
    assert log.size() == 2


def _worker(log: CustodyLog, world: World, worker: int, count: int) -> None:
    for i in range(count):
        event = make_event(worker * 1000 + i, job_id=f"job-{worker}")
        log.append(event, world.signer_for(event))


def test_concurrent_appends_from_processes(log: CustodyLog, world: World) -> None:
    # The parent uses the log first, so the children inherit a process that has
    # already talked to SQLite: fork safety is part of what is tested.
    log.init()
    assert log.size() == 0
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(log, world, w, 50)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    entries = list(log.entries())
    assert [e.seq for e in entries] == list(range(200))
    assert len({e.event.event_id for e in entries}) == 200
    report = verify_log(log, world.keys, expected_size=200)
    assert report.head_hash == log.last_hash()
    for w in range(4):
        mine = [e.event.body["n"] for e in log.find(job_id=f"job-{w}")]
        assert mine == [w * 1000 + i for i in range(50)]  # per-process order kept
