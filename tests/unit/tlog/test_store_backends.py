"""Backend selection by URL, batch appends and group commit on SQLite."""

from __future__ import annotations

import pickle
import threading
from pathlib import Path

import pytest

from orchestrator.errors import LedgerError
from orchestrator.log.backends import SQLiteBackend
from orchestrator.log.group_commit import GroupCommitter
from orchestrator.log.postgres import PostgresBackend, redact_url
from orchestrator.log.selfcheck import verify_log
from orchestrator.log.store import CustodyLog
from orchestrator.log.targets import open_backend

from .helpers import World, make_event, make_world


@pytest.fixture
def world() -> World:
    return make_world()


def test_targets_select_backends(tmp_path: Path) -> None:
    db = tmp_path / "c.db"
    for target in (db, str(db), f"sqlite:///{db}", f"sqlite:{db}"):
        backend = open_backend(target, 1.0)
        assert isinstance(backend, SQLiteBackend) and backend.path == db
    assert CustodyLog(f"sqlite:///{db}").path == db
    pg = open_backend("postgresql://u:secret@127.0.0.1:5/d", 1.0)
    assert isinstance(pg, PostgresBackend)
    assert isinstance(open_backend("postgres://u@h/d", 1.0), PostgresBackend)
    with pytest.raises(ValueError, match="unsupported"):
        open_backend("mysql://u@h/d", 1.0)
    with pytest.raises(ValueError, match="names no file"):
        open_backend("sqlite://", 1.0)


def test_postgres_url_password_is_redacted() -> None:
    url = "postgresql://u:secret@127.0.0.1:5432/d?sslmode=disable"
    assert redact_url(url) == "postgresql://u:***@127.0.0.1:5432/d?sslmode=disable"
    assert redact_url("postgresql://u@h/d") == "postgresql://u@h/d"
    log = CustodyLog(url)
    assert "secret" not in repr(log) and "secret" not in str(log.path)
    clone = pickle.loads(pickle.dumps(log))
    assert clone.target == url and clone.timeout == log.timeout


def test_old_pickles_still_load(tmp_path: Path) -> None:
    log = CustodyLog.__new__(CustodyLog)
    log.__setstate__({"path": tmp_path / "c.db", "timeout": 3.0})
    assert log.path == tmp_path / "c.db" and log.timeout == 3.0


def test_append_many_round_trip(tmp_path: Path, world: World) -> None:
    log = CustodyLog(tmp_path / "c.db")
    events = [make_event(i) for i in range(100)]
    out = log.append_many([(e, world.signer_for(e)) for e in events])
    assert [e.seq for e in out] == list(range(100))
    assert list(log.entries()) == out
    verify_log(log, world.keys, expected_size=100)


def test_append_many_signer_failure_records_nothing(tmp_path: Path,
                                                    world: World) -> None:
    class Broken:
        key_id = "ed25519:broken"

        def sign(self, data: bytes) -> bytes:
            raise RuntimeError("HSM unavailable")

    log = CustodyLog(tmp_path / "c.db")
    good = make_event(0)
    with pytest.raises(RuntimeError):
        log.append_many([(good, world.signer_for(good)), (make_event(1), Broken())])
    assert log.size() == 0


def test_group_committer_batches_and_isolates_failures(tmp_path: Path,
                                                       world: World) -> None:
    class Broken:
        key_id = "ed25519:broken"

        def sign(self, data: bytes) -> bytes:
            raise RuntimeError("HSM unavailable")

    log = CustodyLog(tmp_path / "c.db")
    committer = GroupCommitter(log, max_batch=8, max_wait=0.005)
    seqs: list[int] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        event = make_event(i)
        signer = Broken() if i == 5 else world.signer_for(event)
        try:
            seq = committer.append(event, signer).seq
        except RuntimeError as exc:
            with lock:
                errors.append(exc)
            return
        with lock:
            seqs.append(seq)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(20)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(seqs) == list(range(19)) and len(errors) == 1
    assert committer.batches < 20
    verify_log(log, world.keys, expected_size=19)


def test_group_committer_database_failure_reaches_every_waiter(
        tmp_path: Path, world: World) -> None:
    (tmp_path / "file").write_text("not a directory")
    committer = GroupCommitter(CustodyLog(tmp_path / "file" / "c.db"))
    event = make_event(0)
    with pytest.raises(LedgerError, match="could not durably record"):
        committer.append(event, world.signer_for(event))
    with pytest.raises(ValueError):
        GroupCommitter(CustodyLog(tmp_path / "x.db"), max_batch=0)
