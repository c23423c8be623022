"""The custody log: an append-only, hash-linked, signed event log in SQLite.

Several processes append at once (the driver and Parsl workers). Each call opens its
own short-lived connection, so no connection is ever shared between threads or
carried across ``fork()`` (which SQLite forbids, see "How To Corrupt An SQLite
Database File", section 2.6). Appends run inside ``BEGIN IMMEDIATE`` so the
read-last-entry / insert-next-entry pair is serialised across processes, and return
only after ``COMMIT`` under ``journal_mode=WAL`` with ``synchronous=FULL``, i.e. after
the write-ahead log has been synced to disk.

Every SQLite failure (read-only file or directory, disk full, lock not obtained
within the busy timeout, corrupt file) is raised as
:class:`~orchestrator.errors.LedgerError`, so callers fail closed.

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
import re
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from orchestrator.errors import LedgerError, LedgerVerificationError, NotFound
from orchestrator.ledger.events import (
    ZERO_HASH,
    CustodyEvent,
    SignedEntry,
    Signer,
    leaf_hash,
)

__all__ = ["CustodyLog", "StoredRow"]

_SCHEMA = (
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
_BODY_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PAGE = 512


class StoredRow(NamedTuple):
    """One raw row of the ``entries`` table, as stored (for verification)."""

    seq: int
    event_id: str
    kind: str
    actor: str
    time: str
    leaf: bytes
    entry_hash: str


class CustodyLog:
    """Append-only custody log stored in one SQLite file.

    Parameters
    ----------
    path
        The SQLite file. Nothing is opened or created until the first call.
    timeout
        Seconds to wait for another process's write lock (SQLite ``busy_timeout``)
        before giving up with :class:`~orchestrator.errors.LedgerError`.

    Notes
    -----
    The object holds only the path, so it can be pickled to Parsl workers and used
    after ``fork()``. Reads of a log file that does not exist see an empty log.
    """

    def __init__(self, path: Path | str, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = float(timeout)
        self._schema_pid: int | None = None

    def __repr__(self) -> str:
        return f"CustodyLog({str(self.path)!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"path": self.path, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.path = Path(state["path"])
        self.timeout = float(state["timeout"])
        self._schema_pid = None

    # -- connections -------------------------------------------------------------

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

    def _fail(self, action: str, exc: BaseException) -> LedgerError:
        return LedgerError(f"custody log could not {action}: {exc}",
                           source=str(self.path))

    # -- schema ------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the log file (mode 0600) and its table and indexes if missing.

        Also switches the file to write-ahead logging (persistent in the file).

        Raises
        ------
        LedgerError
            If the file cannot be created or written.
        """
        if self._schema_pid == os.getpid():
            return
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
                for statement in _SCHEMA:
                    conn.execute(statement)
        except (sqlite3.Error, OSError) as exc:
            raise self._fail("durably record (schema setup failed)", exc) from exc
        self._schema_pid = os.getpid()

    init = ensure_schema

    # -- writing -----------------------------------------------------------------

    def append(self, event: CustodyEvent, signer: Signer) -> SignedEntry:
        """Sign ``event`` as the next entry and durably record it.

        Inside ``BEGIN IMMEDIATE``: read the last entry, build entry ``seq + 1``
        chained to its hash, sign :meth:`SignedEntry.signed_bytes`, insert, commit.
        Returns only after the commit is durable.

        Idempotent: if an entry with ``event.event_id`` already exists holding the same
        event, that stored entry is returned and nothing is written.

        Raises
        ------
        LedgerError
            On any SQLite failure, or if ``event.event_id`` is already recorded with
            different content. Nothing is recorded in either case.
        """
        self.ensure_schema()
        try:
            with self._connection() as conn:
                conn.execute("BEGIN IMMEDIATE")
                try:
                    entry = self._append_locked(conn, event, signer)
                    if conn.in_transaction:
                        conn.execute("COMMIT")
                except BaseException:
                    if conn.in_transaction:
                        with contextlib.suppress(sqlite3.Error):
                            conn.execute("ROLLBACK")
                    raise
        except sqlite3.Error as exc:
            raise self._fail(
                f"durably record {event.kind} event {event.event_id}", exc) from exc
        return entry

    def _append_locked(self, conn: sqlite3.Connection, event: CustodyEvent,
                       signer: Signer) -> SignedEntry:
        row = conn.execute("SELECT seq, leaf FROM entries WHERE event_id = ?",
                           (event.event_id,)).fetchone()
        if row is not None:
            existing = self._parse(row[1], row[0])
            conn.execute("ROLLBACK")
            if existing.event.to_json() == event.to_json():
                return existing
            raise LedgerError(
                f"custody log already holds event {event.event_id} with different "
                f"content (entry {row[0]})", source=str(self.path))
        last = conn.execute(
            "SELECT seq, leaf FROM entries ORDER BY seq DESC LIMIT 1").fetchone()
        if last is None:
            seq, prev = 0, ZERO_HASH
        else:
            seq, prev = int(last[0]) + 1, leaf_hash(bytes(last[1]))
        entry = SignedEntry.create(seq, prev, event, signer)
        leaf = entry.leaf_bytes()
        conn.execute(
            "INSERT INTO entries (seq, event_id, kind, actor, time, leaf, entry_hash)"
            " VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, event.event_id, event.kind, event.actor, event.time, leaf,
             leaf_hash(leaf)))
        return entry

    # -- reading -----------------------------------------------------------------

    def _parse(self, leaf: bytes, seq: int) -> SignedEntry:
        try:
            return SignedEntry.from_leaf(bytes(leaf))
        except ValueError as exc:
            raise LedgerVerificationError(
                f"stored leaf of row seq {seq} does not parse: {exc}", index=seq,
                source=str(self.path)) from exc

    def _query(self, sql: str, params: tuple[Any, ...] = ()) -> list[Any]:
        if not self.path.exists():
            return []
        try:
            with self._connection() as conn:
                return conn.execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            if "no such table" in str(exc):
                return []
            raise self._fail("be read", exc) from exc

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[StoredRow]:
        """Yield the raw stored rows with ``start <= seq < stop``, in seq order.

        Read in pages of short transactions, so no read lock is held between pages.
        """
        after = start - 1
        while True:
            limit = _PAGE if stop is None else min(_PAGE, max(stop - after - 1, 0))
            if limit == 0:
                return
            page = self._query(
                "SELECT seq, event_id, kind, actor, time, leaf, entry_hash FROM entries"
                " WHERE seq > ? ORDER BY seq LIMIT ?", (after, limit))
            for r in page:
                if stop is not None and r[0] >= stop:
                    return
                yield StoredRow(int(r[0]), r[1], r[2], r[3], r[4], bytes(r[5]), r[6])
            if len(page) < limit:
                return
            after = int(page[-1][0])

    def entries(self, start: int = 0, stop: int | None = None) -> Iterator[SignedEntry]:
        """Yield the entries with ``start <= seq < stop`` parsed from their leaves.

        Raises
        ------
        LedgerVerificationError
            If a stored leaf does not parse (``index`` is its row seq).
        """
        for row in self.rows(start, stop):
            yield self._parse(row.leaf, row.seq)

    def size(self) -> int:
        """Return the number of entries."""
        rows = self._query("SELECT COUNT(*) FROM entries")
        return int(rows[0][0]) if rows else 0

    def get(self, seq: int) -> SignedEntry:
        """Return entry ``seq``.

        Raises
        ------
        NotFound
            If there is no such entry.
        """
        rows = self._query("SELECT leaf FROM entries WHERE seq = ?", (seq,))
        if not rows:
            raise NotFound(f"custody log has no entry {seq}", source=str(self.path))
        return self._parse(rows[0][0], seq)

    def last_hash(self) -> str:
        """Return the hash of the last entry, or :data:`ZERO_HASH` if empty."""
        rows = self._query("SELECT leaf FROM entries ORDER BY seq DESC LIMIT 1")
        return leaf_hash(bytes(rows[0][0])) if rows else ZERO_HASH

    def find(self, kind: str | None = None, **body_matches: str) -> list[SignedEntry]:
        """Return entries of ``kind`` (any if ``None``) whose body has every
        ``key=value`` of ``body_matches`` at top level, in seq order.

        Example: ``log.find("key.released", job_id="j-17")``. Entries are parsed,
        not verified: use :func:`~orchestrator.ledger.verify.verify_log` before
        trusting a log that may have been edited outside this class.

        Raises
        ------
        ValueError
            If a body key is not an identifier.
        """
        clauses, params = ["1 = 1"], []
        if kind is not None:
            clauses.append("kind = ?")
            params.append(kind)
        for key, value in body_matches.items():
            if not _BODY_KEY_RE.match(key):
                raise ValueError(f"find: body key {key!r} is not an identifier")
            clauses.append(
                f"json_extract(CAST(leaf AS TEXT), '$.event.body.{key}') = ?")
            params.append(value)
        rows = self._query(
            f"SELECT seq, leaf FROM entries WHERE {' AND '.join(clauses)} ORDER BY seq",
            tuple(params))
        found = [self._parse(leaf, seq) for seq, leaf in rows]
        return [e for e in found
                if (kind is None or e.event.kind == kind)
                and all(e.event.body.get(k) == v for k, v in body_matches.items())]

    # -- checkpoints (signed tree heads) -----------------------------------------

    def leaf_hashes(self, start: int = 0, stop: int | None = None) -> list[bytes]:
        """Return the 32-byte RFC 9162 leaf hashes of entries ``start <= seq < stop``,
        recomputed from the stored leaves (never trusted from the hash column)."""
        return [bytes.fromhex(leaf_hash(row.leaf)) for row in self.rows(start, stop)]

    def put_checkpoint(self, size: int, note: bytes, published: str) -> None:
        """Durably store (or replace, e.g. with more cosignatures) the signed note
        of the checkpoint at tree ``size``.

        Raises
        ------
        LedgerError
            If it cannot be recorded.
        """
        self.ensure_schema()
        try:
            with self._connection() as conn:
                conn.execute("INSERT INTO checkpoints (size, note, published) "
                             "VALUES (?, ?, ?) ON CONFLICT(size) DO UPDATE SET "
                             "note = excluded.note", (size, note, published))
        except sqlite3.Error as exc:
            raise self._fail("durably record a checkpoint", exc) from exc

    def latest_checkpoint(self) -> bytes | None:
        """Return the signed note of the largest stored checkpoint, if any."""
        rows = self._query("SELECT note FROM checkpoints ORDER BY size DESC LIMIT 1")
        return bytes(rows[0][0]) if rows else None

    def checkpoint_at(self, size: int) -> bytes | None:
        """Return the signed note of the checkpoint at tree ``size``, if stored."""
        rows = self._query("SELECT note FROM checkpoints WHERE size = ?", (size,))
        return bytes(rows[0][0]) if rows else None
