"""PostgreSQL backend of the custody log (psycopg 3).

Same schema semantics as the SQLite file: an ``entries`` table keyed by ``seq`` with
a unique ``event_id``, the leaf stored as ``BYTEA`` (the authoritative bytes) and,
for :meth:`PostgresBackend.find`, also as ``JSONB`` (``doc``, indexed with GIN
``jsonb_path_ops`` for containment queries), and a ``checkpoints`` table.

Appends are serialised across processes by ``LOCK TABLE entries IN EXCLUSIVE MODE``
at the start of each write transaction ([2]_): it conflicts with itself and with
every writer, yet lets plain ``SELECT`` readers through. Under READ COMMITTED each
later statement of the transaction takes a fresh snapshot, so the head read after
the lock is the committed head. Sessions run with ``synchronous_commit = on``
([1]_), so ``COMMIT`` returns only after the commit's WAL record is flushed to
disk, and with ``lock_timeout`` set to the log's timeout, so a lock that is never
granted fails closed.

Connections are cached per thread and per process id, so none is shared between
threads or used in a forked child; a broken one is dropped and the next call
reconnects. The server being unreachable raises
:class:`~orchestrator.errors.LedgerError` for reads as well as writes.

References
----------
.. [1] PostgreSQL 15 documentation, "synchronous_commit",
   https://www.postgresql.org/docs/15/runtime-config-wal.html#GUC-SYNCHRONOUS-COMMIT
.. [2] PostgreSQL 15 documentation, "Explicit Locking: Table-Level Locks",
   https://www.postgresql.org/docs/15/explicit-locking.html#LOCKING-TABLES
.. [3] PostgreSQL 15 documentation, "jsonb Containment and Existence",
   https://www.postgresql.org/docs/15/datatype-json.html#JSON-CONTAINMENT
"""

from __future__ import annotations

import contextlib
import json
import os
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import errors as pg_errors
from psycopg.conninfo import conninfo_to_dict

from orchestrator.log.backends import EntryReads, InsertRow, LeafRow, WriteTxn, fail

__all__ = ["PostgresBackend", "redact_url"]

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS entries (
        seq BIGINT PRIMARY KEY,
        event_id TEXT UNIQUE NOT NULL,
        kind TEXT NOT NULL,
        actor TEXT NOT NULL,
        time TEXT NOT NULL,
        leaf BYTEA NOT NULL,
        entry_hash TEXT NOT NULL,
        doc JSONB NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS entries_kind ON entries(kind)",
    "CREATE INDEX IF NOT EXISTS entries_doc ON entries USING GIN "
    "(doc jsonb_path_ops)",
    """CREATE TABLE IF NOT EXISTS checkpoints (
        size BIGINT PRIMARY KEY,
        note BYTEA NOT NULL,
        published TEXT NOT NULL)""",
)
#: Advisory lock key serialising concurrent schema creation ("custody" in ASCII).
_SCHEMA_LOCK = 0x637573746F6479
_IN_CHUNK = 1000


def redact_url(url: str) -> str:
    """Return ``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rpartition("@")
    user = netloc[0].partition(":")[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{netloc[2]}"))


class _PgTxn:
    def __init__(self, cur: psycopg.Cursor[Any]) -> None:
        self.cur = cur

    def head(self) -> LeafRow | None:
        row = self.cur.execute(
            "SELECT seq, leaf FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        return None if row is None else (int(row[0]), bytes(row[1]))

    def existing(self, event_ids: Sequence[str]) -> dict[str, LeafRow]:
        found: dict[str, LeafRow] = {}
        ids = list(dict.fromkeys(event_ids))
        for i in range(0, len(ids), _IN_CHUNK):
            for event_id, seq, leaf in self.cur.execute(
                    "SELECT event_id, seq, leaf FROM entries WHERE event_id = ANY(%s)",
                    (ids[i:i + _IN_CHUNK],)).fetchall():
                found[str(event_id)] = (int(seq), bytes(leaf))
        return found

    def insert(self, rows: Sequence[InsertRow]) -> None:
        if not rows:
            return
        self.cur.executemany(
            "INSERT INTO entries (seq, event_id, kind, actor, time, leaf, entry_hash,"
            " doc) VALUES (%s, %s, %s, %s, %s, %s, %s, %s::jsonb)",
            [(*row, row[5].decode("utf-8")) for row in rows])


class PostgresBackend(EntryReads):
    """The custody log in a PostgreSQL database.

    Parameters
    ----------
    url
        ``postgresql://user:pass@host:port/dbname`` (libpq URI syntax).
    timeout
        Seconds for connecting and for waiting on the append lock
        (``connect_timeout``, ``lock_timeout``).
    """

    placeholder = "%s"

    def __init__(self, url: str, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self.source = redact_url(url)
        self._local = threading.local()

    def _connect(self) -> psycopg.Connection[Any]:
        """Connect with ``synchronous_commit=on`` and ``lock_timeout`` appended to
        any ``options`` the URL carries (e.g. a ``search_path``)."""
        ms = max(int(self.timeout * 1000), 1)
        given = conninfo_to_dict(self.url).get("options") or ""
        return psycopg.connect(
            self.url, autocommit=True, connect_timeout=max(int(self.timeout), 1),
            options=f"{given} -c synchronous_commit=on -c lock_timeout={ms}".strip())

    @contextlib.contextmanager
    def _connection(self, action: str) -> Iterator[psycopg.Connection[Any]]:
        """Yield this thread's connection; translate psycopg errors.

        Raises
        ------
        LedgerError
            If the server is unreachable or a statement fails.
        """
        local = self._local
        try:
            conn: psycopg.Connection[Any] | None = getattr(local, "conn", None)
            if conn is None or getattr(local, "pid", None) != os.getpid() \
                    or conn.closed:
                local.conn = None
                conn = self._connect()
                local.conn, local.pid = conn, os.getpid()
            try:
                yield conn
            except psycopg.Error:
                if conn.broken or conn.closed:
                    local.conn = None
                    with contextlib.suppress(psycopg.Error):
                        conn.close()
                raise
        except psycopg.Error as exc:
            raise fail(self.source, action, exc) from exc

    def ensure_schema(self) -> None:
        """Create tables and indexes if missing, under an advisory lock.

        Raises
        ------
        LedgerError
            If the server is unreachable or refuses.
        """
        with self._connection("durably record (schema setup failed)") as conn, \
                conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (_SCHEMA_LOCK,))
            for statement in _SCHEMA:
                conn.execute(statement)

    @contextlib.contextmanager
    def transaction(self, what: str) -> Iterator[WriteTxn]:
        """Lock ``entries`` in EXCLUSIVE mode; ``COMMIT`` (WAL flushed) on success.

        Raises
        ------
        LedgerError
            On any server failure, lock timeout or lost connection (nothing is
            recorded). Errors raised by the body propagate after the rollback.
        """
        with self._connection(f"durably record {what}") as conn, \
                conn.transaction(), conn.cursor() as cur:
            cur.execute("LOCK TABLE entries IN EXCLUSIVE MODE")
            yield _PgTxn(cur)

    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        try:
            with self._connection("be read") as conn:
                return conn.execute(sql, params).fetchall()
        except Exception as exc:
            if isinstance(exc.__cause__, pg_errors.UndefinedTable):
                return []
            raise

    def find(self, kind: str | None, body: Mapping[str, str]) -> list[LeafRow]:
        """Candidates by ``kind`` and JSONB containment ``doc @> {...}`` ([3]_)."""
        pattern = json.dumps({"event": {"body": dict(body)}})
        sql = "SELECT seq, leaf FROM entries WHERE doc @> %s::jsonb"
        params: list[Any] = [pattern]
        if kind is not None:
            sql += " AND kind = %s"
            params.append(kind)
        rows = self._query(sql + " ORDER BY seq", params)
        return [(int(seq), bytes(leaf)) for seq, leaf in rows]

    def put_checkpoint(self, size: int, note: bytes, published: str) -> None:
        """Insert or replace the note at ``size`` (autocommit, durable).

        Raises
        ------
        LedgerError
            If it cannot be recorded.
        """
        with self._connection("durably record a checkpoint") as conn:
            conn.execute("INSERT INTO checkpoints (size, note, published) "
                         "VALUES (%s, %s, %s) ON CONFLICT (size) DO UPDATE SET "
                         "note = excluded.note", (size, note, published))

    def checkpoint(self, size: int | None) -> bytes | None:
        """Return the note at ``size`` (the largest if ``None``), if stored."""
        if size is None:
            rows = self._query(
                "SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1")
        else:
            rows = self._query("SELECT note FROM checkpoints WHERE size = %s",
                               (size,))
        return bytes(rows[0][0]) if rows else None
