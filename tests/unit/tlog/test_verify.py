"""Offline verification: every attack is detected at the first bad index.

Attacks are applied both to in-memory entry lists (``verify_entries``) and to the
SQLite file itself (``verify_log``), over log sizes 1..40 and every position.
"""

from __future__ import annotations

import dataclasses
import shutil
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.errors import IntegrityError, LedgerVerificationError
from orchestrator.log.selfcheck import verify_log
from orchestrator.log.store import CustodyLog
from orchestrator.tlog.events import ZERO_HASH, CustodyEvent, SignedEntry, leaf_hash
from orchestrator.tlog.verify import TrustedKey, _verify_ed25519, verify_entries

from .helpers import KeySigner, chain, make_event, make_world

MAX = 40
WORLD = make_world()
FULL = chain(WORLD, [make_event(i) for i in range(MAX)])
FOREIGN = KeySigner()
MakeCopy = Callable[[int], tuple[CustodyLog, sqlite3.Connection]]
HYP = settings(max_examples=60, deadline=None,
               suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def size_and_pos(draw: st.DrawFn, min_size: int = 1) -> tuple[int, int]:
    n = draw(st.integers(min_size, MAX))
    return n, draw(st.integers(0, n - 1))


def expect_fail(entries: list[SignedEntry], index: int, match: str,
                **kw: object) -> LedgerVerificationError:
    with pytest.raises(LedgerVerificationError, match=match) as info:
        verify_entries(entries, WORLD.keys, **kw)  # type: ignore[arg-type]
    assert info.value.index == index, str(info.value)
    assert f"entry {index}" in info.value.diagnostics()
    return info.value


def resign(entry: SignedEntry, signer: KeySigner, **changes: object) -> SignedEntry:
    fields = {"seq": entry.seq, "prev_hash": entry.prev_hash, "event": entry.event}
    fields.update(changes)
    return SignedEntry.create(fields["seq"], fields["prev_hash"],  # type: ignore[arg-type]
                              fields["event"], signer)  # type: ignore[arg-type]


def forged(k: int, entries: list[SignedEntry], signer: KeySigner,
           actor: str = "custodian:AUS") -> SignedEntry:
    prev = ZERO_HASH if k == 0 else entries[k - 1].entry_hash()
    event = CustodyEvent.create("key.released", actor, {"job_id": "job-1"})
    return SignedEntry.create(k, prev, event, signer)


# -- in-memory attacks ----------------------------------------------------------


def test_valid_logs_verify() -> None:
    report = verify_entries(FULL, WORLD.keys)
    assert report.size == MAX and report.head_hash == FULL[-1].entry_hash()
    assert report.kinds == Counter(e.event.kind for e in FULL)
    assert verify_entries([], WORLD.keys).head_hash == ZERO_HASH
    assert verify_entries(FULL[:1], WORLD.keys, expected_size=1,
                          expected_head=FULL[0].entry_hash()).size == 1


@HYP
@given(size_and_pos())
def test_altered_body_in_memory(np: tuple[int, int]) -> None:
    n, k = np
    entries = FULL[:n]
    body = {**entries[k].event.body, "note": "tampered"}
    entries[k] = dataclasses.replace(
        entries[k], event=dataclasses.replace(entries[k].event, body=body))
    expect_fail(entries, k, "signature .* does not verify")


@HYP
@given(size_and_pos())
def test_removed_entry(np: tuple[int, int]) -> None:
    n, k = np
    entries = FULL[:n]
    del entries[k]
    if k < n - 1:
        expect_fail(entries, k, f"expected seq {k}, found {k + 1}")
    else:  # tail truncation: a valid shorter chain, caught only by a checkpoint
        assert verify_entries(entries, WORLD.keys).size == n - 1
        expect_fail(entries, n - 1, f"has {n - 1} entries, the trusted size is {n}",
                    expected_size=n)
        expect_fail(entries, max(n - 2, 0), "is not the trusted head",
                    expected_head=FULL[n - 1].entry_hash())


@HYP
@given(size_and_pos(min_size=2))
def test_swapped_entries(np: tuple[int, int]) -> None:
    n, k = np
    k = min(k, n - 2)
    entries = FULL[:n]
    entries[k], entries[k + 1] = entries[k + 1], entries[k]
    expect_fail(entries, k, f"expected seq {k}, found {k + 1}")


@HYP
@given(st.integers(1, MAX).flatmap(lambda n: st.tuples(st.just(n),
                                                       st.integers(0, n))))
def test_inserted_entry_from_unknown_key(nk: tuple[int, int]) -> None:
    n, k = nk  # k == n appends the forgery at the tail
    entries = FULL[:n]
    entries.insert(k, forged(k, entries, FOREIGN))
    expect_fail(entries, k, "unknown key")


@HYP
@given(st.integers(1, MAX).flatmap(lambda n: st.tuples(st.just(n),
                                                       st.integers(0, n))))
def test_inserted_entry_from_key_not_allowed_for_actor(nk: tuple[int, int]) -> None:
    n, k = nk
    entries = FULL[:n]
    site = WORLD.signers["site:local"]  # a trusted key, but not the custodian's
    entries.insert(k, forged(k, entries, site, actor="custodian:AUS"))
    expect_fail(entries, k, "may not sign for actor 'custodian:AUS'")


@HYP
@given(size_and_pos())
def test_resigned_with_foreign_key(np: tuple[int, int]) -> None:
    n, k = np
    entries = FULL[:n]
    entries[k] = resign(entries[k], FOREIGN)
    expect_fail(entries, k, "unknown key")
    # Same forgery, but claiming the legitimate signer's key id.
    entries[k] = dataclasses.replace(entries[k], signer=FULL[k].signer)
    expect_fail(entries, k, "does not verify")


@HYP
@given(size_and_pos())
def test_stale_prev_hash(np: tuple[int, int]) -> None:
    n, k = np
    entries = FULL[:n]
    stale = {0: "11" * 32, 1: ZERO_HASH}.get(k) or entries[k - 2].entry_hash()
    # Re-signed by the actor's own key: only the chain can catch it.
    entries[k] = resign(entries[k], WORLD.signer_for(entries[k].event),
                        prev_hash=stale)
    expect_fail(entries, k, "prev_hash .* is not the")


@HYP
@given(size_and_pos(min_size=2))
def test_replayed_event_is_detected(np: tuple[int, int]) -> None:
    n, k = np
    k = min(k, n - 2)
    entries = FULL[:n - 1]
    # The actor's own key re-signs an earlier event at the tail (a replay).
    replay = resign(FULL[k], WORLD.signer_for(FULL[k].event), seq=n - 1,
                    prev_hash=entries[-1].entry_hash())
    expect_fail([*entries, replay], n - 1, "already recorded at entry")


def test_size_and_head_mismatch_on_longer_log() -> None:
    expect_fail(FULL, 10, "has 40 entries, the trusted size is 10", expected_size=10)
    expect_fail(FULL, MAX - 1, "trusted head", expected_head="ab" * 32)


def test_error_is_an_integrity_error() -> None:
    with pytest.raises(IntegrityError):
        verify_entries(FULL[1:], WORLD.keys)


def test_keys_table_must_be_consistent() -> None:
    key = next(iter(WORLD.keys.values()))
    with pytest.raises(ValueError):
        verify_entries(FULL, {"other-id": key})
    with pytest.raises(ValueError):
        TrustedKey("k", b"\x00" * 31, frozenset())


def test_verify_ed25519_helper() -> None:
    signer = KeySigner()
    sig = signer.sign(b"data")
    assert _verify_ed25519(signer.public_key, sig, b"data")
    assert not _verify_ed25519(signer.public_key, sig, b"datA")
    assert not _verify_ed25519(signer.public_key, sig[:-1], b"data")
    assert not _verify_ed25519(FOREIGN.public_key, sig, b"data")


# -- attacks on the SQLite file --------------------------------------------------


@pytest.fixture(scope="module")
def base_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    log = CustodyLog(tmp_path_factory.mktemp("ledger") / "base.db")
    for e in FULL:
        log.append(e.event, WORLD.signer_for(e.event))
    with sqlite3.connect(log.path) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert list(log.entries()) == FULL  # same keys, same events: same chain
    return log.path


@pytest.fixture
def copy_db(base_db: Path) -> Iterator[MakeCopy]:
    with tempfile.TemporaryDirectory() as tmp:
        counter = iter(range(10**6))

        def make(n: int) -> tuple[CustodyLog, sqlite3.Connection]:
            path = Path(tmp) / f"log{next(counter)}.db"
            shutil.copyfile(base_db, path)
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("DELETE FROM entries WHERE seq >= ?", (n,))
            # An attacker with write access can drop the expression indexes, which
            # would otherwise refuse leaves that are not JSON.
            for key in ("job_id", "model_id", "dataset_id"):
                conn.execute(f"DROP INDEX entries_{key}")
            return CustodyLog(path), conn

        yield make


def db_fail(log: CustodyLog, conn: sqlite3.Connection, index: int, match: str,
            **kw: object) -> None:
    conn.close()
    with pytest.raises(LedgerVerificationError, match=match) as info:
        verify_log(log, WORLD.keys, **kw)  # type: ignore[arg-type]
    assert info.value.index == index, str(info.value)


def leaf_of(conn: sqlite3.Connection, seq: int) -> bytes:
    return bytes(conn.execute("SELECT leaf FROM entries WHERE seq = ?",
                              (seq,)).fetchone()[0])


@HYP
@given(np=size_and_pos())
def test_db_altered_body_byte(copy_db: MakeCopy, np: tuple[int, int]) -> None:
    n, k = np
    log, conn = copy_db(n)
    leaf = leaf_of(conn, k).replace(b'"note":"entry', b'"note":"fntry')
    conn.execute("UPDATE entries SET leaf = ? WHERE seq = ?", (leaf, k))
    db_fail(log, conn, k, "entry_hash .* is not the hash")


@HYP
@given(np=size_and_pos())
def test_db_altered_body_byte_and_hash_column(copy_db: MakeCopy,
                                              np: tuple[int, int]) -> None:
    n, k = np
    log, conn = copy_db(n)
    leaf = leaf_of(conn, k).replace(b'"note":"entry', b'"note":"fntry')
    conn.execute("UPDATE entries SET leaf = ?, entry_hash = ? WHERE seq = ?",
                 (leaf, leaf_hash(leaf), k))
    db_fail(log, conn, k, "does not verify")


@HYP
@given(np=size_and_pos(), pos=st.integers(0, 10**6), bit=st.integers(0, 7))
def test_db_any_flipped_leaf_bit(copy_db: MakeCopy, np: tuple[int, int], pos: int,
                                 bit: int) -> None:
    n, k = np
    log, conn = copy_db(n)
    leaf = bytearray(leaf_of(conn, k))
    leaf[pos % len(leaf)] ^= 1 << bit
    conn.execute("UPDATE entries SET leaf = ? WHERE seq = ?", (bytes(leaf), k))
    db_fail(log, conn, k, f"entry {k}")


@HYP
@given(np=size_and_pos())
def test_db_removed_row(copy_db: MakeCopy, np: tuple[int, int]) -> None:
    n, k = np
    log, conn = copy_db(n)
    conn.execute("DELETE FROM entries WHERE seq = ?", (k,))
    if k < n - 1:
        db_fail(log, conn, k, f"expected seq {k}, found {k + 1}")
    else:
        conn.close()
        assert verify_log(log, WORLD.keys).size == n - 1
        db_fail(log, conn, n - 1, "trusted size", expected_size=n)


@HYP
@given(np=size_and_pos(min_size=2))
def test_db_swapped_rows(copy_db: MakeCopy, np: tuple[int, int]) -> None:
    n, k = np
    k = min(k, n - 2)
    log, conn = copy_db(n)
    # Swap rows k and k+1 (every column but seq, which orders the table): the
    # leaf at position k now claims seq k+1.
    conn.execute("UPDATE entries SET seq = -1 WHERE seq = ?", (k,))
    conn.execute("UPDATE entries SET seq = ? WHERE seq = ?", (k, k + 1))
    conn.execute("UPDATE entries SET seq = ? WHERE seq = -1", (k + 1,))
    db_fail(log, conn, k, "stored seq column")


@HYP
@given(np=size_and_pos())
def test_db_inserted_forged_row(copy_db: MakeCopy, np: tuple[int, int]) -> None:
    n, k = np
    log, conn = copy_db(n)
    # Make room at k by shifting rows up, then insert a forgery chained correctly.
    rows = conn.execute("SELECT seq FROM entries WHERE seq >= ? ORDER BY seq DESC",
                        (k,)).fetchall()
    for (seq,) in rows:
        conn.execute("UPDATE entries SET seq = ? WHERE seq = ?", (seq + 1, seq))
    fake = forged(k, FULL, FOREIGN)
    conn.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?, ?, ?)",
                 (k, fake.event.event_id, fake.event.kind, fake.event.actor,
                  fake.event.time, fake.leaf_bytes(), fake.entry_hash()))
    db_fail(log, conn, k, "unknown key")


def test_db_unparseable_leaf(copy_db: MakeCopy) -> None:
    log, conn = copy_db(5)
    conn.execute("UPDATE entries SET leaf = ? WHERE seq = 3", (b"\x00garbage",))
    db_fail(log, conn, 3, "does not parse")
    with pytest.raises(LedgerVerificationError):
        list(log.entries())


@pytest.mark.parametrize("column", ["event_id", "kind", "actor", "time"])
def test_db_edited_columns(copy_db: MakeCopy, column: str) -> None:
    log, conn = copy_db(6)
    value = {"event_id": "x" * 32, "kind": "key.denied", "actor": "officer:AUS",
             "time": "2030-01-01T00:00:00.000000Z"}[column]
    conn.execute(f"UPDATE entries SET {column} = ? WHERE seq = 4", (value,))
    db_fail(log, conn, 4, f"stored {column} column")


def test_db_valid_copy_verifies(copy_db: MakeCopy) -> None:
    log, conn = copy_db(MAX)
    conn.close()
    report = verify_log(log, WORLD.keys, expected_size=MAX,
                        expected_head=FULL[-1].entry_hash())
    assert report.size == MAX


def test_world_is_consistent() -> None:
    assert len(WORLD.keys) == 4 and FOREIGN.key_id not in WORLD.keys
