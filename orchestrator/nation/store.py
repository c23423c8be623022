"""A custodian's own records: its datasets, objects, accreditations, agreements.

What a custodian decides on comes from here (or from its :mod:`journal
<orchestrator.nation.journal>`), never from a row the orchestrator holds:

* ``datasets``: each dataset this nation owns (or co-owns): label, manifest and
  sealed digests, and this nation's wrapped DEK (or DEK share);
* ``objects``: each model and checkpoint whose DEK this custodian wrapped for an
  attested enclave: its label, job, attempt and inputs, and the wrapped DEK
  (so opening and transferring it never trusts a record handed in);
* ``accreditations``: the site accreditations this nation signed, and their
  revocations;
* ``agreements``: every version of every agreement document it was given (in
  force only once signed by every party: :mod:`orchestrator.policy.standing`).

SQLite at ``<nation>/store.db`` (WAL, ``synchronous=FULL``).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import AlreadyExists, LedgerError, NotFound

__all__ = ["AccreditationRow", "CustodianStore", "OwnedObject", "SealedDataset"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, label TEXT NOT NULL,
    manifest_digest TEXT NOT NULL, sealed_digest TEXT NOT NULL,
    wrapped TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, label TEXT NOT NULL,
    job_id TEXT NOT NULL, attempt_id TEXT NOT NULL, site TEXT NOT NULL,
    inputs TEXT NOT NULL, wrapped TEXT NOT NULL, sealed_digest TEXT NOT NULL,
    created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accreditations (
    id TEXT PRIMARY KEY, site TEXT NOT NULL, document TEXT NOT NULL,
    issued TEXT NOT NULL, revoked TEXT, reason TEXT, sig TEXT);
CREATE TABLE IF NOT EXISTS agreements (
    id TEXT NOT NULL, version INTEGER NOT NULL, document TEXT NOT NULL,
    digest TEXT NOT NULL, added TEXT NOT NULL, PRIMARY KEY (id, version));
"""


@dataclass(frozen=True)
class AccreditationRow:
    """One accreditation as the custodian keeps it: the signed document, its
    revocation (time and reason, or ``None``) and the custodian's signature of
    that state (base64, ``None`` in a store from before rows were signed)."""

    id: str
    site: str
    document: dict[str, Any]
    issued: str
    revoked: str | None = None
    reason: str | None = None
    sig: str | None = None


@dataclass(frozen=True)
class SealedDataset:
    """A dataset this nation owns or co-owns, as its custodian recorded it.

    ``wrapped``: ``{"kek_id", "kek_version", "wrapped_dek"}`` (base64 RFC 5649)
    plus ``"share"`` (``"i/n"``) for a jointly owned dataset.
    """

    id: str
    name: str
    label: dict[str, Any]
    manifest_digest: str
    sealed_digest: str
    wrapped: dict[str, Any]
    created: str


@dataclass(frozen=True)
class OwnedObject:
    """A model or checkpoint whose DEK this custodian wrapped under its KEK."""

    id: str
    kind: str
    label: dict[str, Any]
    job_id: str
    attempt_id: str
    site: str
    inputs: list[str]
    wrapped: dict[str, Any]
    sealed_digest: str
    created: str


class CustodianStore:
    """The records at ``path`` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self._db() as con:
            con.executescript(_SCHEMA)
            columns = {r[1] for r in con.execute("PRAGMA table_info(accreditations)")}
            if "sig" not in columns:  # a store from before rows were signed
                con.execute("ALTER TABLE accreditations ADD COLUMN sig TEXT")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        try:
            with closing(sqlite3.connect(self.path, timeout=30,
                                         isolation_level=None)) as con:
                con.execute("PRAGMA journal_mode=WAL")
                con.execute("PRAGMA synchronous=FULL")
                yield con
        except sqlite3.IntegrityError:
            raise
        except sqlite3.Error as exc:
            raise LedgerError(f"custodian store: {exc}",
                              source=str(self.path)) from exc

    # -- datasets ----------------------------------------------------------------
    def add_dataset(self, record: SealedDataset) -> None:
        """Record a dataset.

        Raises
        ------
        AlreadyExists
            If a dataset with that id is recorded.
        """
        try:
            with self._db() as con:
                con.execute("INSERT INTO datasets VALUES (?,?,?,?,?,?,?)", (
                    record.id, record.name, json.dumps(record.label),
                    record.manifest_digest, record.sealed_digest,
                    json.dumps(record.wrapped), record.created))
        except sqlite3.IntegrityError as exc:
            raise AlreadyExists(f"dataset {record.id} is already recorded") from exc

    def dataset(self, dataset_id: str) -> SealedDataset:
        """The dataset ``dataset_id``.

        Raises
        ------
        NotFound
            If this custodian holds no such dataset.
        """
        with self._db() as con:
            row = con.execute("SELECT * FROM datasets WHERE id = ?",
                              (dataset_id,)).fetchone()
        if row is None:
            raise NotFound(f"dataset {dataset_id} is not held by this custodian")
        return SealedDataset(row[0], row[1], json.loads(row[2]), row[3], row[4],
                             json.loads(row[5]), row[6])

    def datasets(self) -> list[SealedDataset]:
        """Every dataset, oldest first."""
        with self._db() as con:
            ids = [r[0] for r in con.execute(
                "SELECT id FROM datasets ORDER BY created, id").fetchall()]
        return [self.dataset(i) for i in ids]

    def rewrap_dataset(self, dataset_id: str, wrapped: dict[str, Any]) -> None:
        """Replace a dataset's wrapped key (after a KEK rotation's rewrap)."""
        with self._db() as con:
            con.execute("UPDATE datasets SET wrapped = ? WHERE id = ?",
                        (json.dumps(wrapped), dataset_id))

    # -- objects -----------------------------------------------------------------
    def add_object(self, record: OwnedObject) -> None:
        """Record (or, for the same id, replace) a model or checkpoint."""
        with self._db() as con:
            con.execute("INSERT OR REPLACE INTO objects VALUES (?,?,?,?,?,?,?,?,?,?)",
                        (record.id, record.kind, json.dumps(record.label),
                         record.job_id, record.attempt_id, record.site,
                         json.dumps(record.inputs), json.dumps(record.wrapped),
                         record.sealed_digest, record.created))

    def object(self, object_id: str) -> OwnedObject:
        """The object ``object_id``.

        Raises
        ------
        NotFound
            If this custodian never wrapped a key for it.
        """
        with self._db() as con:
            row = con.execute("SELECT * FROM objects WHERE id = ?",
                              (object_id,)).fetchone()
        if row is None:
            raise NotFound(f"object {object_id}: this custodian wrapped no key for it")
        return OwnedObject(row[0], row[1], json.loads(row[2]), row[3], row[4],
                           row[5], json.loads(row[6]), json.loads(row[7]), row[8],
                           row[9])

    def objects(self) -> list[OwnedObject]:
        """Every object, oldest first."""
        with self._db() as con:
            ids = [r[0] for r in con.execute(
                "SELECT id FROM objects ORDER BY created, id").fetchall()]
        return [self.object(i) for i in ids]

    def rewrap_object(self, object_id: str, wrapped: dict[str, Any]) -> None:
        """Replace an object's wrapped key (after a KEK rotation's rewrap)."""
        with self._db() as con:
            con.execute("UPDATE objects SET wrapped = ? WHERE id = ?",
                        (json.dumps(wrapped), object_id))

    # -- accreditations ----------------------------------------------------------
    def add_accreditation(self, row: AccreditationRow) -> None:
        """Record a signed accreditation and the custodian's signature of its row."""
        with self._db() as con:
            con.execute("INSERT INTO accreditations VALUES (?,?,?,?,?,?,?)",
                        (row.id, row.site, json.dumps(row.document), row.issued,
                         row.revoked, row.reason, row.sig))

    def accreditation_rows(self, site: str | None = None
                           ) -> list[AccreditationRow]:
        """Every accreditation row (of ``site``), newest first, as stored."""
        sql = ("SELECT id, site, document, issued, revoked, reason, sig "
               "FROM accreditations")
        params: list[str] = []
        if site is not None:
            sql += " WHERE site = ?"
            params.append(site)
        with self._db() as con:
            rows = con.execute(sql + " ORDER BY issued DESC, id DESC",
                               params).fetchall()
        return [AccreditationRow(i, s, json.loads(d), at, r, why, sig)
                for i, s, d, at, r, why, sig in rows]

    def accreditations(self, site: str | None = None, *, live: bool = False
                       ) -> list[tuple[dict[str, Any], str | None, str | None]]:
        """``(document, revoked_at, reason)`` of the accreditations (of ``site``),
        newest first; ``live`` leaves out revoked ones (expiry is the caller's).
        Rows are as stored: the custodian checks them
        (:mod:`orchestrator.nation.accreditation_state`) before relying on them."""
        return [(r.document, r.revoked, r.reason)
                for r in self.accreditation_rows(site)
                if not live or r.revoked is None]

    def put_accreditation_state(self, rows: list[AccreditationRow]) -> None:
        """Replace the revocation state and signature of ``rows`` (one
        transaction)."""
        with self._db() as con:
            con.execute("BEGIN IMMEDIATE")
            for row in rows:
                con.execute("UPDATE accreditations SET revoked = ?, reason = ?, "
                            "sig = ? WHERE id = ?",
                            (row.revoked, row.reason, row.sig, row.id))
            con.execute("COMMIT")

    # -- agreements --------------------------------------------------------------
    def add_agreement(self, agreement_id: str, version: int, document: dict[str, Any],
                      digest: str, added: str) -> bool:
        """Record one agreement version; ``False`` if that exact document was
        already recorded.

        Raises
        ------
        AlreadyExists
            If that id and version hold another document.
        """
        with self._db() as con:
            row = con.execute("SELECT digest FROM agreements WHERE id = ? AND "
                              "version = ?", (agreement_id, version)).fetchone()
            if row is not None:
                if row[0] != digest:
                    raise AlreadyExists(f"agreement {agreement_id!r} version {version}"
                                        " is recorded with another document")
                return False
            con.execute("INSERT INTO agreements VALUES (?,?,?,?,?)", (
                agreement_id, version, json.dumps(document), digest, added))
        return True

    def agreement_documents(self) -> list[dict[str, Any]]:
        """Every version, ordered by id and version: ``{"id", "version",
        "document", "digest"}``."""
        with self._db() as con:
            rows = con.execute("SELECT id, version, document, digest FROM agreements "
                               "ORDER BY id, version").fetchall()
        return [{"id": i, "version": v, "document": json.loads(d), "digest": g}
                for i, v, d, g in rows]
