"""The custody log's behaviour on both backends: SQLite and a real PostgreSQL.

Every test takes ``any_log`` (parametrised over ``sqlite`` and ``postgres``; the
PostgreSQL cases are marked ``postgres`` and use the throwaway server of
``scripts/postgres-start.sh``, one empty schema per test). Nothing is skipped: a
server that cannot be started fails the run.
"""

from __future__ import annotations

import importlib.util
import itertools
import multiprocessing
import pickle
import sys
import threading
from pathlib import Path
from types import ModuleType

import pytest

from orchestrator.errors import LedgerError, NotFound
from orchestrator.log.group_commit import GroupCommitter
from orchestrator.log.selfcheck import verify_log
from orchestrator.log.store import CustodyLog
from orchestrator.tlog.events import ZERO_HASH, CustodyEvent
from orchestrator.tlog.merkle import root_hash


def _load_helpers() -> ModuleType:
    """The unit tests' signers and events (``tests/unit/tlog/helpers.py``)."""
    path = Path(__file__).resolve().parents[1] / "unit" / "tlog" / "helpers.py"
    spec = importlib.util.spec_from_file_location("_ledger_unit_helpers", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


_helpers = _load_helpers()
World = _helpers.World
make_event = _helpers.make_event
make_world = _helpers.make_world


@pytest.fixture
def world() -> World:
    return make_world()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def any_log(request: pytest.FixtureRequest, tmp_path: Path) -> CustodyLog:
    if request.param == "sqlite":
        return CustodyLog(f"sqlite:///{tmp_path / 'custody.db'}")
    return CustodyLog(request.getfixturevalue("pg_url"))


def put(log: CustodyLog, world: World, event: CustodyEvent) -> None:
    log.append(event, world.signer_for(event))


def test_empty_log_reads(any_log: CustodyLog) -> None:
    assert any_log.size() == 0
    assert list(any_log.entries()) == []
    assert any_log.last_hash() == ZERO_HASH
    assert any_log.find("key.released", job_id="x") == []
    assert any_log.latest_checkpoint() is None


def test_round_trip(any_log: CustodyLog, world: World) -> None:
    events = [make_event(i, job_id=f"job-{i % 2}") for i in range(8)]
    stored = [any_log.append(e, world.signer_for(e)) for e in events]
    assert [e.seq for e in stored] == list(range(8))
    assert stored[0].prev_hash == ZERO_HASH
    assert all(b.prev_hash == a.entry_hash() for a, b in itertools.pairwise(stored))
    assert any_log.size() == 8
    assert list(any_log.entries()) == stored
    assert list(any_log.entries(2, 5)) == stored[2:5]
    assert any_log.get(3) == stored[3]
    with pytest.raises(NotFound):
        any_log.get(8)
    assert any_log.last_hash() == stored[-1].entry_hash()
    report = verify_log(any_log, world.keys, expected_size=8)
    assert report.head_hash == stored[-1].entry_hash()
    hashes = any_log.leaf_hashes()
    assert hashes == [bytes.fromhex(e.entry_hash()) for e in stored]
    assert any_log.leaf_hashes(2, 4) == hashes[2:4]
    assert len(root_hash(hashes)) == 32
    clone = pickle.loads(pickle.dumps(any_log))
    assert clone.size() == 8 and clone.path == any_log.path


def test_idempotent_retry_and_conflict(any_log: CustodyLog, world: World) -> None:
    event = make_event(0)
    first = any_log.append(event, world.signer_for(event))
    put(any_log, world, make_event(1))
    again = any_log.append(CustodyEvent.from_json(event.to_json()),
                           world.signer_for(event))
    assert again == first
    clash = make_event(0, event_id=event.event_id, note="something else")
    with pytest.raises(LedgerError, match="different content"):
        put(any_log, world, clash)
    assert any_log.size() == 2


def test_find(any_log: CustodyLog, world: World) -> None:
    for i in range(12):
        put(any_log, world, make_event(i, job_id=f"job-{i % 3}"))
    assert [e.seq for e in any_log.find("key.released", job_id="job-2")] == [2, 8]
    assert [e.seq for e in any_log.find(job_id="job-1")] == [1, 4, 7, 10]
    assert [e.seq for e in any_log.find(job_id="job-0", note="entry-0003")] == [3]
    assert any_log.find("key.released", job_id="job-9") == []
    assert len(any_log.find("key.released")) == 2
    with pytest.raises(ValueError):
        any_log.find(**{"a') OR 1=1 --": "x"})


def test_checkpoints(any_log: CustodyLog, world: World) -> None:
    put(any_log, world, make_event(0))
    assert any_log.checkpoint_at(1) is None
    any_log.put_checkpoint(1, b"note-1", "2026-01-01T00:00:00.000000Z")
    any_log.put_checkpoint(4, b"note-4", "2026-01-01T00:00:01.000000Z")
    any_log.put_checkpoint(1, b"note-1+cosig", "2026-01-01T00:00:02.000000Z")
    assert any_log.latest_checkpoint() == b"note-4"
    assert any_log.checkpoint_at(1) == b"note-1+cosig"
    assert any_log.checkpoint_at(2) is None


def test_append_many_is_one_all_or_nothing_batch(any_log: CustodyLog,
                                                 world: World) -> None:
    put(any_log, world, make_event(0))
    batch = [make_event(i) for i in range(1, 6)]
    out = any_log.append_many([(e, world.signer_for(e)) for e in batch])
    assert [e.seq for e in out] == [1, 2, 3, 4, 5]
    again = any_log.append_many([(batch[2], world.signer_for(batch[2])),
                                 (batch[2], world.signer_for(batch[2]))])
    assert again == [out[2], out[2]]
    clash = make_event(9, event_id=batch[0].event_id)
    fresh = make_event(10)
    with pytest.raises(LedgerError, match="different content"):
        any_log.append_many([(fresh, world.signer_for(fresh)),
                             (clash, world.signer_for(clash))])
    assert any_log.size() == 6
    assert any_log.append_many([]) == []
    verify_log(any_log, world.keys, expected_size=6)


def test_group_committer_threads(any_log: CustodyLog, world: World) -> None:
    committer = GroupCommitter(any_log, max_batch=16, max_wait=0.002)
    results: dict[int, int] = {}

    def work(t: int) -> None:
        for i in range(10):
            event = make_event(t * 100 + i, job_id=f"job-{t}")
            results[t * 100 + i] = committer.append(event, world.signer_for(event)).seq

    threads = [threading.Thread(target=work, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results.values()) == list(range(80))
    assert committer.committed == 80 and committer.batches < 80
    verify_log(any_log, world.keys, expected_size=80)
    for t in range(8):  # each thread's appends are in its own order
        assert [e.body["n"] for e in (x.event for x in any_log.find(job_id=f"job-{t}"))
                ] == [t * 100 + i for i in range(10)]


def test_group_committer_isolates_a_bad_item(any_log: CustodyLog,
                                             world: World) -> None:
    event = make_event(0)
    put(any_log, world, event)
    committer = GroupCommitter(any_log)
    clash = make_event(5, event_id=event.event_id)
    with pytest.raises(LedgerError, match="different content"):
        committer.append(clash, world.signer_for(clash))
    ok = make_event(1)
    assert committer.append(ok, world.signer_for(ok)).seq == 1


def _worker(log: CustodyLog, world: World, worker: int, count: int) -> None:
    for i in range(count):
        event = make_event(worker * 1000 + i, job_id=f"job-{worker}")
        log.append(event, world.signer_for(event))


def test_concurrent_appends_from_processes(any_log: CustodyLog, world: World) -> None:
    any_log.init()
    assert any_log.size() == 0  # the parent has talked to the database before fork
    ctx = multiprocessing.get_context("fork")
    procs = [ctx.Process(target=_worker, args=(any_log, world, w, 50))
             for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    entries = list(any_log.entries())
    assert [e.seq for e in entries] == list(range(200))
    assert len({e.event.event_id for e in entries}) == 200
    report = verify_log(any_log, world.keys, expected_size=200)
    assert report.head_hash == any_log.last_hash()
    for w in range(4):
        mine = [e.event.body["n"] for e in any_log.find(job_id=f"job-{w}")]
        assert mine == [w * 1000 + i for i in range(50)]


@pytest.mark.postgres
def test_unreachable_server_fails_closed(world: World, pg_server_url: str) -> None:
    # A port nothing listens on (the real server's port + 1 is not ours).
    url = pg_server_url.rsplit(":", 1)[0] + ":1/sovereign"
    log = CustodyLog(url, timeout=2)
    assert "***" in str(log.path) and "sovereign:sovereign@" not in repr(log)
    with pytest.raises(LedgerError, match="could not durably record"):
        put(log, world, make_event(0))
    with pytest.raises(LedgerError):
        log.size()
    with pytest.raises(LedgerError):
        log.put_checkpoint(1, b"n", "2026-01-01T00:00:00.000000Z")


@pytest.mark.postgres
def test_server_stopping_mid_use_fails_closed(world: World, pg_url: str) -> None:
    import psycopg

    log = CustodyLog(pg_url, timeout=2)
    put(log, world, make_event(0))
    with psycopg.connect(pg_url, autocommit=True) as admin:  # kill our session
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = current_database() AND pid <> pg_backend_pid()")
    with pytest.raises(LedgerError):
        put(log, world, make_event(1))
    put(log, world, make_event(1))  # reconnects
    assert log.size() == 2


@pytest.mark.postgres
def test_lock_held_beyond_timeout_fails_closed(world: World, pg_url: str) -> None:
    import psycopg

    log = CustodyLog(pg_url, timeout=0.3)
    put(log, world, make_event(0))
    with psycopg.connect(pg_url) as holder:
        holder.execute("LOCK TABLE entries IN EXCLUSIVE MODE")
        with pytest.raises(LedgerError, match="lock timeout"):
            put(log, world, make_event(1))
        holder.rollback()
    put(log, world, make_event(1))
    assert log.size() == 2
