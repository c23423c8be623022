"""A custodian's journal: the custody events it wrote or accepted, in its own store.

A custodian decides only on facts it holds itself. The events it writes
(decisions, releases, approval requests, notifications, ...) and the signed
events it accepted from others (officers' agreement signatures, terminations,
approvals and acknowledgements; the orchestrator's allocation reports) are kept
here, each as the entry the custody log placed it at, so the rest of the
custodian reads them with the same ``find`` it would use on the log, but from a
file only it can write. Nothing the log operator or the orchestrator edits
changes a decision.

SQLite at ``<nation>/journal.db`` (WAL, ``synchronous=FULL``): one row per
entry, keyed by its log index; the leaf bytes are kept verbatim.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from orchestrator.errors import LedgerError
from orchestrator.tlog.events import SignedEntry

__all__ = ["Journal"]

_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Journal:
    """The journal at ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self._db() as con:
            con.execute("CREATE TABLE IF NOT EXISTS entries (seq INTEGER PRIMARY KEY,"
                        " event_id TEXT UNIQUE NOT NULL, kind TEXT NOT NULL,"
                        " body TEXT NOT NULL, leaf BLOB NOT NULL)")
            con.execute("CREATE INDEX IF NOT EXISTS entries_kind ON entries(kind)")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.path, timeout=30,
                                         isolation_level=None)) as con:
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=FULL")
                yield con
        except sqlite3.Error as exc:
            raise LedgerError(f"custodian journal: {exc}",
                              source=str(self.path)) from exc

    def add(self, entry: SignedEntry) -> SignedEntry:
        """Keep ``entry`` (idempotent: the same entry again is a no-op).

        Raises
        ------
        LedgerError
            If the journal cannot be written, or holds another entry at that
            index or for that event id.
        """
        leaf = entry.leaf_bytes()
        with self._db() as con:
            row = con.execute("SELECT leaf FROM entries WHERE seq = ? OR event_id = ?",
                              (entry.seq, entry.event.event_id)).fetchone()
            if row is not None:
                if bytes(row[0]) != leaf:
                    raise LedgerError(f"journal already holds another entry at "
                                      f"{entry.seq} or for {entry.event.event_id}",
                                      source=str(self.path))
                return entry
            con.execute("INSERT INTO entries VALUES (?, ?, ?, ?, ?)",
                        (entry.seq, entry.event.event_id, entry.event.kind,
                         json.dumps(dict(entry.event.body)), leaf))
        return entry

    def find(self, kind: str | None = None,
             **body_matches: object) -> list[SignedEntry]:
        """Entries of ``kind`` (any if ``None``) whose body has every
        ``key=value``, in log order (as :meth:`CustodyLog.find`).

        Raises
        ------
        ValueError
            If a body key is not an identifier.
        """
        for key in body_matches:
            if not _KEY.match(key):
                raise ValueError(f"find: body key {key!r} is not an identifier")
        where: list[str] = ["1"]
        params: list[Any] = []
        if kind is not None:
            where.append("kind = ?")
            params.append(kind)
        for key, value in body_matches.items():
            if isinstance(value, str | int) and not isinstance(value, bool):
                where.append(f"json_extract(body, '$.{key}') = ?")
                params.append(value)
        with self._db() as con:
            rows = con.execute(f"SELECT leaf FROM entries WHERE {' AND '.join(where)} "
                               "ORDER BY seq", params).fetchall()
        out = []
        for (leaf,) in rows:
            entry = SignedEntry.from_leaf(bytes(leaf))
            body = entry.event.body
            if all(body.get(k) == v for k, v in body_matches.items()):
                out.append(entry)
        return out

    def entries(self) -> list[SignedEntry]:
        """Every entry, in log order."""
        return self.find()
