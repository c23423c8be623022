"""Storage backends of the custody log, chosen by a database URL.

:class:`~orchestrator.log.store.CustodyLog` builds, signs and deduplicates
entries once, in :mod:`orchestrator.log.store`; a backend only stores rows. It
offers a serialised write transaction (:meth:`Backend.transaction`, whose
:class:`WriteTxn` reads the head, looks up event ids and inserts rows) that commits
durably on a clean exit and rolls back otherwise, plus a handful of reads.

Targets accepted by :func:`orchestrator.log.targets.open_backend`:

* a :class:`~pathlib.Path` or a plain path string: SQLite (:class:`SQLiteBackend`);
* ``sqlite:///abs/path.db`` (also ``sqlite:////abs/path.db`` and
  ``sqlite:relative.db``): SQLite;
* ``postgresql://user:pass@host:port/dbname`` (or ``postgres://``): PostgreSQL
  (:class:`~orchestrator.log.postgres.PostgresBackend`).

Every database failure is raised as :class:`~orchestrator.errors.LedgerError` by
the backend, so callers fail closed.

References
----------
.. [1] SQLite, "Write-Ahead Logging", https://sqlite.org/wal.html
.. [2] SQLite, "PRAGMA synchronous" (FULL in WAL mode syncs the WAL on every
   commit), https://sqlite.org/pragma.html#pragma_synchronous
.. [3] SQLite, "BEGIN IMMEDIATE", https://sqlite.org/lang_transaction.html
.. [4] SQLite, "How To Corrupt An SQLite Database File", section 2.6 (carrying an
   open database connection across a fork), https://sqlite.org/howtocorrupt.html
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from orchestrator.errors import LedgerError

__all__ = [
    "Backend",
    "InsertRow",
    "LeafRow",
    "SQLiteBackend",
    "WriteTxn",
]

#: ``(seq, event_id, kind, actor, time, leaf, entry_hash)``, as inserted.
InsertRow = tuple[int, str, str, str, str, bytes, str]
#: ``(seq, leaf)``.
LeafRow = tuple[int, bytes]

#: Largest number of bound parameters put in one ``IN (...)`` list.
_IN_CHUNK = 500
#: Pinned SQLite connections inherited from a parent process: kept, never closed.
_INHERITED_PINS: list[sqlite3.Connection] = []


class WriteTxn(Protocol):
    """The open write transaction: the caller holds the log's append lock."""

    def head(self) -> LeafRow | None:
        """Return ``(seq, leaf)`` of the last entry, or ``None`` if empty."""
        ...

    def existing(self, event_ids: Sequence[str]) -> dict[str, LeafRow]:
        """Return ``{event_id: (seq, leaf)}`` for those of ``event_ids`` stored."""
        ...

    def insert(self, rows: Sequence[InsertRow]) -> None:
        """Insert ``rows`` (consecutive seqs following :meth:`head`)."""
        ...


class Backend(Protocol):
    """What :class:`~orchestrator.log.store.CustodyLog` needs of a database."""

    #: Where the log lives, for messages (no password).
    source: str

    def ensure_schema(self) -> None:
        """Create the tables and indexes if missing (idempotent)."""
        ...

    def transaction(self, what: str) -> contextlib.AbstractContextManager[WriteTxn]:
        """Serialise against every other appender; commit durably on clean exit.

        ``what`` names the operation in the :class:`LedgerError` raised on failure.
        """
        ...

    def rows_after(self, after: int, limit: int) -> list[tuple[Any, ...]]:
        """Return up to ``limit`` raw rows with ``seq > after``, in seq order."""
        ...

    def count(self) -> int:
        """Return the number of entries."""
        ...

    def leaf_at(self, seq: int) -> bytes | None:
        """Return the leaf of entry ``seq``, if any."""
        ...

    def last_leaf(self) -> bytes | None:
        """Return the leaf of the last entry, if any."""
        ...

    def leaf_of_event(self, event_id: str) -> LeafRow | None:
        """Return ``(seq, leaf)`` of the entry holding ``event_id``, if any."""
        ...

    def find(self, kind: str | None, body: Mapping[str, str]) -> list[LeafRow]:
        """Return ``(seq, leaf)`` candidates for ``kind`` and top-level body values
        (keys already checked to be identifiers), in seq order."""
        ...

    def put_checkpoint(self, size: int, note: bytes, published: str) -> None:
        """Durably store or replace the checkpoint note at tree ``size``."""
        ...

    def checkpoint(self, size: int | None) -> bytes | None:
        """Return the note at ``size``, or the largest one if ``size`` is None."""
        ...


def fail(source: str, action: str, exc: BaseException) -> LedgerError:
    """Return the :class:`LedgerError` for a failed ``action`` on ``source``."""
    return LedgerError(f"custody log could not {action}: {exc}", source=source)


# -- SQLite --------------------------------------------------------------------------

_SQLITE_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS entries (
        seq INTEGER PRIMARY KEY,
        event_id TEXT UNIQUE NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        time TEXT NOT NULL,
        leaf BLOB NOT NULL,
        entry_hash TEXT NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS entries_kind ON entries(kind)",
    # Expression indexes matching the ``find`` queries for the common ids.
    *(f"CREATE INDEX IF NOT EXISTS entries_{key} ON entries("
      f"json_extract(CAST(leaf AS TEXT), '$.event.body.{key}'))"
      for key in ("job_id", "model_id", "dataset_id")),
    # Signed checkpoints (C2SP signed notes), one per published tree size.
    """CREATE TABLE IF NOT EXISTS checkpoints (
        size INTEGER PRIMARY KEY,
        note BLOB NOT NULL,
        published TEXT NOT NULL)""",
)


class EntryReads:
    """Read queries shared by the SQL backends (one dialect difference: the
    parameter placeholder, ``?`` for SQLite and ``%s`` for psycopg)."""

    placeholder = "?"

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql.replace("?", self.placeholder)

    def rows_after(self, after: int, limit: int) -> list[tuple[Any, ...]]:
        """Return up to ``limit`` raw entry rows with ``seq > after``."""
        return self._query(self._sql(
            "SELECT seq, event_id, kind, actor, time, leaf, entry_hash FROM entries"
            " WHERE seq > ? ORDER BY seq LIMIT ?"), (after, limit))

    def count(self) -> int:
        """Return the number of entries."""
        rows = self._query("SELECT COUNT(*) FROM entries")
        return int(rows[0][0]) if rows else 0

    def leaf_at(self, seq: int) -> bytes | None:
        """Return the leaf of entry ``seq``, if any."""
        rows = self._query(self._sql("SELECT leaf FROM entries WHERE seq = ?"), (seq,))
        return bytes(rows[0][0]) if rows else None

    def last_leaf(self) -> bytes | None:
        """Return the leaf of the last entry, if any."""
        rows = self._query("SELECT leaf FROM entries ORDER BY seq DESC LIMIT 1")
        return bytes(rows[0][0]) if rows else None

    def leaf_of_event(self, event_id: str) -> LeafRow | None:
        """Return ``(seq, leaf)`` of the entry holding ``event_id``, if any."""
        rows = self._query(self._sql(
            "SELECT seq, leaf FROM entries WHERE event_id = ?"), (event_id,))
        return (int(rows[0][0]), bytes(rows[0][1])) if rows else None


class _SQLiteTxn:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def head(self) -> LeafRow | None:
        row = self.conn.execute(
            "SELECT seq, leaf FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def existing(self, event_ids: Sequence[str]) -> dict[str, LeafRow]:
        found: dict[str, LeafRow] = {}
        ids = list(dict.fromkeys(event_ids))
        for i in range(0, len(ids), _IN_CHUNK):
            chunk = ids[i:i + _IN_CHUNK]
            marks = ", ".join("?" * len(chunk))
            for event_id, seq, leaf in self.conn.execute(
                    f"SELECT event_id, seq, leaf FROM entries WHERE event_id IN "
                    f"({marks})", chunk):
                found[str(event_id)] = (int(seq), bytes(leaf))
        return found

    def insert(self, rows: Sequence[InsertRow]) -> None:
        self.conn.executemany(
            "INSERT INTO entries (seq, event_id, kind, actor, time, leaf, entry_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


class SQLiteBackend(EntryReads):
    """The custody log in one SQLite file (WAL, ``synchronous=FULL``).

    Each call opens its own short-lived connection, so no connection is shared
    between threads or carried across ``fork()`` ([4]_). Write transactions run
    inside ``BEGIN IMMEDIATE`` ([3]_), which serialises the read-head /
    insert-next pair across processes, and return only after ``COMMIT`` under
    ``journal_mode=WAL`` with ``synchronous=FULL`` ([1]_, [2]_), i.e. after the
    write-ahead log has been synced to disk. Reads of a file that does not exist
    see an empty log.

    Parameters
    ----------
    path
        The SQLite file; nothing is opened or created until the first call.
    timeout
        Seconds to wait for another process's write lock (``busy_timeout``).
    """

    def __init__(self, path: Path, timeout: float) -> None:
        self.path = path
        self.timeout = timeout
        self.source = str(path)
        self._pin: tuple[int, sqlite3.Connection] | None = None

    def _keep_open(self) -> None:
        """Hold one idle connection open for this object's life in this process.

        The last connection to close checkpoints and removes the WAL ([1]_), an
        extra fsync per short-lived append connection; an idle pin (no transaction,
        so no lock) avoids it; automatic checkpoints still run. A pin inherited
        across ``fork()`` is never used nor closed ([4]_).
        """
        if self._pin is not None:
            if self._pin[0] == os.getpid():
                return
            _INHERITED_PINS.append(self._pin[1])
            self._pin = None
        with contextlib.suppress(sqlite3.Error):
            conn = sqlite3.connect(str(self.path), isolation_level=None,
                                   check_same_thread=False)
            conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # attach
            self._pin = (os.getpid(), conn)

    def _open(self) -> sqlite3.Connection:
        """Open a new autocommit connection with the durability pragmas set."""
        conn = sqlite3.connect(str(self.path), timeout=self.timeout,
                               isolation_level=None)
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.timeout * 1000)}")
            conn.execute("PRAGMA synchronous = FULL")
        except BaseException:
            conn.close()
            raise
        return conn

    @contextlib.contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        conn = self._open()
        try:
            yield conn
        finally:
            conn.close()

    def ensure_schema(self) -> None:
        """Create the file (mode 0600), switch it to WAL, create tables/indexes.

        Raises
        ------
        LedgerError
            If the file cannot be created or written.
        """
        try:
            if not self.path.exists():
                fd = os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600)
                os.close(fd)
                with contextlib.suppress(OSError):
                    dir_fd = os.open(self.path.parent, os.O_RDONLY)
                    try:
                        os.fsync(dir_fd)
                    finally:
                        os.close(dir_fd)
            with self._connection() as conn:
                mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()
                if mode is None or str(mode[0]).lower() != "wal":
                    raise sqlite3.OperationalError(f"journal_mode is {mode!r}, not wal")
                for statement in _SQLITE_SCHEMA:
                    conn.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise fail(self.source, "durably record (schema setup failed)",
                       exc) from exc
        self._keep_open()

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[WriteTxn]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (durable), rollback on any error.

        Raises
        ------
        LedgerError
            On any SQLite failure (lock not obtained within the timeout, disk full,
            read-only file, corrupt file). Errors raised by the body propagate
            unchanged after the rollback.
        """
        self._keep_open()
        try:
            with self._connection() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    yield _SQLiteTxn(conn)
                    conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise fail(self.source, f"durably record {what}", exc) from exc

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if not self.path.exists():
            return []
        try:
            with self._connection() as conn:
                return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            if "no such table" in str(exc):
                return []
            raise fail(self.source, "be read", exc) from exc

    def find(self, kind: str | None, body: Mapping[str, str]) -> list[LeafRow]:
        """Candidates by ``kind`` and ``json_extract`` of the body keys."""
        clauses, params = ["1 = 1"], []
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        for key, value in body.items():
            clauses.append(
                f"json_extract(CAST(leaf AS TEXT), '$.event.body.{key}') = ?")
            params.append(value)
        rows = self._query(
            f"SELECT seq, leaf FROM entries WHERE {' AND '.join(clauses)} ORDER BY seq",
            tuple(params))
        return [(int(seq), bytes(leaf)) for seq, leaf in rows]

    def put_checkpoint(self, size: int, note: bytes, published: str) -> None:
        """Insert or replace the note at ``size`` (autocommit, durable).

        Raises
        ------
        LedgerError
            If it cannot be recorded.
        """
        try:
            with self._connection() as conn:
                conn.execute("INSERT INTO checkpoints (size, note, published) "
                             "VALUES (?, ?, ?) ON CONFLICT(size) DO UPDATE SET "
                             "note = excluded.note", (size, note, published))
        except sqlite3.Error as exc:
            raise fail(self.source, "durably record a checkpoint", exc) from exc

    def checkpoint(self, size: int | None) -> bytes | None:
        """Return the note at ``size`` (the largest if ``None``), if stored."""
        if size is None:
            rows = self._query(
                "SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1")
        else:
            rows = self._query("SELECT note FROM checkpoints WHERE size = ?", (size,))
        return bytes(rows[0][0]) if rows else None
