"""The custody log: an append-only, hash-linked, signed event log.

Several processes append at once (the driver, Parsl workers, custodians). The log
lives in SQLite (one file, the default) or PostgreSQL, chosen by the target given
to :class:`CustodyLog` (see :func:`~orchestrator.log.targets.open_backend`).
This module holds everything that is the same on every backend: building entry
``seq + 1`` chained to the head, signing it, idempotency on ``event_id`` and batch
appends; the backend only provides a serialised, durable write transaction and a
few reads (:class:`~orchestrator.log.backends.Backend`).

Durability: SQLite commits under ``journal_mode=WAL`` with ``synchronous=FULL``
(the WAL is synced on every commit, [1]_ [2]_) inside ``BEGIN IMMEDIATE`` ([3]_);
PostgreSQL commits with ``synchronous_commit=on`` (``COMMIT`` returns after the WAL
record is flushed, [4]_). :meth:`CustodyLog.append_many` and
:class:`~orchestrator.log.group_commit.GroupCommitter` share one such commit,
i.e. one fsync, among many entries.

Every database failure (read-only file, disk full, lock not obtained within the
timeout, corrupt file, server unreachable) is raised as
:class:`~orchestrator.errors.LedgerError`, so callers fail closed.

References
----------
.. [1] SQLite, "Write-Ahead Logging", https://sqlite.org/wal.html
.. [2] SQLite, "PRAGMA synchronous", https://sqlite.org/pragma.html#pragma_synchronous
.. [3] SQLite, "BEGIN IMMEDIATE", https://sqlite.org/lang_transaction.html
.. [4] PostgreSQL 15 documentation, "synchronous_commit",
   https://www.postgresql.org/docs/15/runtime-config-wal.html#GUC-SYNCHRONOUS-COMMIT
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from orchestrator.errors import LedgerError, LedgerVerificationError, NotFound
from orchestrator.log.backends import Backend, InsertRow, LeafRow, WriteTxn
from orchestrator.log.targets import open_backend
from orchestrator.tlog.events import (
    ZERO_HASH,
    CustodyEvent,
    SignedEntry,
    Signer,
    leaf_hash,
)

__all__ = ["AppendItem", "CustodyLog", "StoredRow"]

_BODY_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_PAGE = 512
#: Largest leaf: entry bundles length-prefix each entry with a uint16.
MAX_LEAF_BYTES = 0xFFFF

#: One append request: the event and who signs it.
AppendItem = tuple[CustodyEvent, Signer]


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
    """Append-only custody log in SQLite or PostgreSQL.

    Parameters
    ----------
    target
        Where the log lives: a :class:`~pathlib.Path` or plain path string (an
        SQLite file), ``sqlite:///abs/path.db``, or
        ``postgresql://user:pass@host:port/dbname``. Nothing is opened or created
        until the first call.
    timeout
        Seconds to wait for another process's append lock (SQLite
        ``busy_timeout``; PostgreSQL ``lock_timeout`` and ``connect_timeout``)
        before giving up with :class:`~orchestrator.errors.LedgerError`.

    Attributes
    ----------
    path
        The SQLite file as a :class:`~pathlib.Path`; for PostgreSQL the URL with
        its password redacted (a ``str``), used as the ``source`` of errors.

    Raises
    ------
    ValueError
        If ``target`` is a URL of an unsupported scheme.

    Notes
    -----
    The object pickles as its target and timeout, so it can be sent to Parsl
    workers and used after ``fork()`` (connections are never carried over). Reads
    of an SQLite file, or of a PostgreSQL database, without the log see it empty.
    """

    def __init__(self, target: Path | str, *, timeout: float = 30.0) -> None:
        self.target: Path | str = target
        self.timeout = float(timeout)
        self._backend: Backend = open_backend(target, self.timeout)
        backend_path = getattr(self._backend, "path", None)
        self.path: Path | str = (backend_path if isinstance(backend_path, Path)
                                 else self._backend.source)
        self._schema_pid: int | None = None

    def __repr__(self) -> str:
        return f"CustodyLog({self._backend.source!r})"

    def __getstate__(self) -> dict[str, Any]:
        return {"target": self.target, "timeout": self.timeout}

    def __setstate__(self, state: dict[str, Any]) -> None:
        target = state["target"] if "target" in state else state["path"]
        self.__init__(target, timeout=state["timeout"])  # type: ignore[misc]

    @property
    def backend(self) -> Backend:
        """The storage backend (SQLite or PostgreSQL)."""
        return self._backend

    # -- schema ------------------------------------------------------------------

    def ensure_schema(self) -> None:
        """Create the log (an SQLite file gets mode 0600 and WAL) and its tables
        and indexes if missing. Done once per process.

        Raises
        ------
        LedgerError
            If the file or database cannot be created or written.
        """
        if self._schema_pid == os.getpid():
            return
        self._backend.ensure_schema()
        self._schema_pid = os.getpid()

    init = ensure_schema

    # -- writing -----------------------------------------------------------------

    def append(self, event: CustodyEvent, signer: Signer) -> SignedEntry:
        """Sign ``event`` as the next entry and durably record it.

        Inside the backend's serialised transaction: read the last entry, build
        entry ``seq + 1`` chained to its hash, sign
        :meth:`SignedEntry.signed_bytes`, insert, commit. Returns only after the
        commit is durable.

        Idempotent: if an entry with ``event.event_id`` already exists holding the
        same event, that stored entry is returned and nothing is written.

        Raises
        ------
        LedgerError
            On any database failure, or if ``event.event_id`` is already recorded
            with different content. Nothing is recorded in either case.
        Exception
            Whatever ``signer.sign`` raises (nothing is recorded).
        """
        return self.append_many([(event, signer)])[0]

    def append_many(self, items: Sequence[AppendItem]) -> list[SignedEntry]:
        """Append several events in one transaction (one durable commit, one fsync).

        All or nothing: entries are returned, in the order of ``items``, only after
        the commit; any failure records none of them. Items whose ``event_id`` is
        already stored (or repeated in ``items``) with the same content return the
        stored entry, as :meth:`append` does.

        Raises
        ------
        LedgerError
            On any database failure or an ``event_id`` conflict.
        Exception
            The first error raised by a signer.
        """
        if not items:
            return []
        outcomes = self.commit_batch(items, all_or_nothing=True)
        return [o for o in outcomes if isinstance(o, SignedEntry)]

    def commit_batch(self, items: Sequence[AppendItem], *,
                     all_or_nothing: bool = False
                     ) -> list[SignedEntry | Exception]:
        """Append ``items`` in one durable transaction; one outcome per item.

        Items that fail on their own (an ``event_id`` conflict, a signer error)
        get their exception as outcome and take no seq; the others are committed
        together, unless ``all_or_nothing`` is set, in which case the first such
        error is raised and nothing is recorded. Used by :meth:`append_many` and
        :class:`~orchestrator.log.group_commit.GroupCommitter`.

        Raises
        ------
        LedgerError
            If the transaction fails (nothing is recorded).
        """
        if not items:
            return []
        self.ensure_schema()
        what = (f"{items[0][0].kind} event {items[0][0].event_id}" if len(items) == 1
                else f"a batch of {len(items)} events")
        with self._backend.transaction(what) as txn:
            rows, outcomes = self._build(txn, items)
            if all_or_nothing:
                for outcome in outcomes:
                    if isinstance(outcome, Exception):
                        raise outcome
            txn.insert(rows)
        return outcomes

    def _build(self, txn: WriteTxn, items: Sequence[AppendItem]
               ) -> tuple[list[InsertRow], list[SignedEntry | Exception]]:
        """Number, chain and sign ``items`` after the head, under the lock."""
        stored = txn.existing([event.event_id for event, _ in items])
        head = txn.head()
        seq, prev = (0, ZERO_HASH) if head is None else (head[0] + 1,
                                                         leaf_hash(head[1]))
        known: dict[str, SignedEntry] = {}
        rows: list[InsertRow] = []
        outcomes: list[SignedEntry | Exception] = []
        for event, signer in items:
            earlier = known.get(event.event_id)
            if earlier is None and event.event_id in stored:
                earlier = self._parse(stored[event.event_id][1],
                                      stored[event.event_id][0])
                known[event.event_id] = earlier
            if earlier is not None:
                outcomes.append(earlier if earlier.event.to_json() == event.to_json()
                                else LedgerError(
                    f"custody log already holds event {event.event_id} with "
                    f"different content (entry {earlier.seq})", source=str(self.path)))
                continue
            try:
                entry = SignedEntry.create(seq, prev, event, signer)
            except Exception as exc:
                outcomes.append(exc)
                continue
            leaf = entry.leaf_bytes()
            if len(leaf) > MAX_LEAF_BYTES:
                outcomes.append(LedgerError(
                    f"{event.kind} entry of {len(leaf)} bytes exceeds the "
                    f"{MAX_LEAF_BYTES} bytes an entry bundle (C2SP tlog-tiles) "
                    "can carry", source=str(self.path)))
                continue
            prev = leaf_hash(leaf)
            rows.append((seq, event.event_id, event.kind, event.actor, event.time,
                         leaf, prev))
            known[event.event_id] = entry
            outcomes.append(entry)
            seq += 1
        return rows, outcomes

    # -- reading -----------------------------------------------------------------

    def _parse(self, leaf: bytes, seq: int) -> SignedEntry:
        try:
            return SignedEntry.from_leaf(bytes(leaf))
        except ValueError as exc:
            raise LedgerVerificationError(
                f"stored leaf of row seq {seq} does not parse: {exc}", index=seq,
                source=str(self.path)) from exc

    def rows(self, start: int = 0, stop: int | None = None) -> Iterator[StoredRow]:
        """Yield the raw stored rows with ``start <= seq < stop``, in seq order.

        Read in pages of short transactions, so no read lock is held between pages.

        Raises
        ------
        LedgerError
            If the log cannot be read.
        """
        after = start - 1
        while True:
            limit = _PAGE if stop is None else min(_PAGE, max(stop - after - 1, 0))
            if limit == 0:
                return
            page = self._backend.rows_after(after, limit)
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
        return self._backend.count()

    def get(self, seq: int) -> SignedEntry:
        """Return entry ``seq``.

        Raises
        ------
        NotFound
            If there is no such entry.
        """
        leaf = self._backend.leaf_at(seq)
        if leaf is None:
            raise NotFound(f"custody log has no entry {seq}", source=str(self.path))
        return self._parse(leaf, seq)

    def by_event_id(self, event_id: str) -> SignedEntry | None:
        """Return the entry recording ``event_id``, or ``None``."""
        row = self._backend.leaf_of_event(event_id)
        return None if row is None else self._parse(row[1], row[0])

    def last_hash(self) -> str:
        """Return the hash of the last entry, or :data:`ZERO_HASH` if empty."""
        leaf = self._backend.last_leaf()
        return leaf_hash(leaf) if leaf is not None else ZERO_HASH

    def find(self, kind: str | None = None, **body_matches: str) -> list[SignedEntry]:
        """Return entries of ``kind`` (any if ``None``) whose body has every
        ``key=value`` of ``body_matches`` at top level, in seq order.

        Example: ``log.find("key.released", job_id="j-17")``. Entries are parsed,
        not verified: use :func:`~orchestrator.tlog.verify.verify_log` before
        trusting a log that may have been edited outside this class.

        Raises
        ------
        ValueError
            If a body key is not an identifier.
        """
        for key in body_matches:
            if not _BODY_KEY_RE.match(key):
                raise ValueError(f"find: body key {key!r} is not an identifier")
        rows: list[LeafRow] = self._backend.find(kind, body_matches)
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
        self._backend.put_checkpoint(size, note, published)

    def latest_checkpoint(self) -> bytes | None:
        """Return the signed note of the largest stored checkpoint, if any."""
        return self._backend.checkpoint(None)

    def checkpoint_at(self, size: int) -> bytes | None:
        """Return the signed note of the checkpoint at tree ``size``, if stored."""
        return self._backend.checkpoint(size)
