"""The embedded registry: nations, sites, datasets, agreements, jobs and models.

One SQLite file (WAL, ``synchronous=FULL``) holding *metadata only*: public keys,
labels, manifests, KEK-wrapped data keys and paths of sealed objects. Nothing in it
lets its reader decrypt anything: wrapped DEKs need the owner's KEK, which stays
with the owner's custodian.

Every method opens its own short-lived connection, so one :class:`Registry` may be
used from several processes (the driver and Parsl workers).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator.errors import AlreadyExists, LedgerError, NotFound
from orchestrator.submit.records import (
    SCHEMA,
    TRANSFERS_SCHEMA,
    JobRecord,
    NationRecord,
    SealedObjectRecord,
    SiteRecord,
    TaskRecord,
    TransferRecord,
    as_json,
    row_to_dict,
    transfer_of,
)

__all__ = ["JobRecord", "NationRecord", "Registry", "SealedObjectRecord", "SiteRecord",
           "TaskRecord", "TransferRecord", "as_json"]

class Registry:
    """SQLite-backed registry at ``path`` (created on first write)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        try:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        except sqlite3.Error as exc:
            raise LedgerError(
                f"cannot open registry: {exc}", source=str(self.path)
            ) from exc
        try:
            con.row_factory = sqlite3.Row
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            con.executescript(SCHEMA)
            yield con
        except sqlite3.Error as exc:
            raise LedgerError(f"registry error: {exc}", source=str(self.path)) from exc
        finally:
            con.close()

    def _insert(
        self,
        table: str,
        values: tuple[Any, ...],
        clash: str,
        *,
        source: str | None = None,
    ) -> None:
        """Insert one row into ``table``.

        Raises
        ------
        AlreadyExists
            With message ``clash`` if the row's key is already present.
        """
        marks = ",".join("?" * len(values))
        with self._connect() as con:
            try:
                con.execute(f"INSERT INTO {table} VALUES ({marks})", values)
            except sqlite3.IntegrityError as exc:
                raise AlreadyExists(clash, source=source or str(self.path)) from exc

    # -- nations -------------------------------------------------------------
    def add_nation(self, rec: NationRecord) -> None:
        """Register a nation; raises :class:`AlreadyExists` if it is registered."""
        self._insert(
            "nations",
            (
                rec.code,
                rec.kek_id,
                rec.custodian_key_id,
                rec.custodian_public,
                rec.officer_key_id,
                rec.officer_public,
                rec.hpke_public,
                rec.created,
            ),
            f"nation {rec.code} is already initialised",
            source=str(self.path),
        )

    def nation(self, code: str) -> NationRecord:
        """Return nation ``code``; raises :class:`NotFound`."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM nations WHERE code=?", (code,)).fetchone()
        if row is None:
            raise NotFound(
                f"nation {code} is not initialised (run: sovereign nation init {code})"
            )
        return NationRecord(**row_to_dict(row))

    def nations(self) -> list[NationRecord]:
        """All registered nations, by code."""
        with self._connect() as con:
            rows = con.execute("SELECT * FROM nations ORDER BY code").fetchall()
        return [NationRecord(**row_to_dict(r)) for r in rows]

    # -- sites ---------------------------------------------------------------
    def add_site(self, rec: SiteRecord) -> None:
        """Register a site; raises :class:`AlreadyExists` if the name is taken."""
        self._insert(
            "sites",
            (
                rec.name,
                rec.operator_nation,
                rec.accreditation,
                json.dumps(rec.config),
                rec.config_digest,
                rec.signing_key_id,
                rec.signing_public,
                rec.registered,
            ),
            f"site {rec.name!r} is already registered",
            source=str(self.path),
        )

    def site(self, name: str) -> SiteRecord:
        """Return site ``name``; raises :class:`NotFound`."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM sites WHERE name=?", (name,)).fetchone()
        if row is None:
            raise NotFound(
                f"site {name!r} is not registered (run: sovereign site register FILE)"
            )
        data = row_to_dict(row)
        data["config"] = json.loads(data["config"])
        return SiteRecord(**data)

    def sites(self) -> list[SiteRecord]:
        """All registered sites, by name."""
        with self._connect() as con:
            names = [
                r["name"] for r in con.execute("SELECT name FROM sites ORDER BY name")
            ]
        return [self.site(n) for n in names]

    # -- datasets and models -------------------------------------------------
    def add_dataset(self, rec: SealedObjectRecord) -> None:
        """Register a sealed dataset; raises :class:`AlreadyExists` on a name clash."""
        self._insert(
            "datasets",
            (
                rec.id,
                rec.name,
                json.dumps(rec.label),
                json.dumps(rec.manifest),
                rec.object_path,
                rec.sealed_digest,
                json.dumps(rec.wrapped_keys),
                rec.created,
            ),
            f"dataset {rec.name!r} is already sealed",
            source=str(self.path),
        )

    def dataset(self, ref: str) -> SealedObjectRecord:
        """Return the dataset whose id or name is ``ref``; raises :class:`NotFound`."""
        with self._connect() as con:
            row = con.execute(
                "SELECT * FROM datasets WHERE id=? OR name=?", (ref, ref)
            ).fetchone()
        if row is None:
            raise NotFound(f"dataset {ref!r} is not registered")
        return self._object(row)

    def datasets(self) -> list[SealedObjectRecord]:
        """All sealed datasets, oldest first."""
        with self._connect() as con:
            rows = con.execute("SELECT * FROM datasets ORDER BY created").fetchall()
        return [self._object(r) for r in rows]

    def add_model(self, rec: SealedObjectRecord) -> None:
        """Register a sealed model."""
        with self._connect() as con:
            con.execute(
                "INSERT INTO models VALUES (?,?,?,?,?,?,?,?,?,?)",
                (
                    rec.id,
                    rec.job_id,
                    json.dumps(rec.label),
                    json.dumps(rec.manifest),
                    rec.object_path,
                    rec.sealed_digest,
                    json.dumps(rec.wrapped_keys),
                    json.dumps(rec.metrics or {}),
                    json.dumps(rec.lineage or {}),
                    rec.created,
                ),
            )

    def model(self, model_id: str) -> SealedObjectRecord:
        """Return model ``model_id``; raises :class:`NotFound`."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM models WHERE id=?", (model_id,)).fetchone()
        if row is None:
            raise NotFound(f"model {model_id!r} is not registered")
        return self._object(row)

    def models(self) -> list[SealedObjectRecord]:
        """All sealed models, oldest first."""
        with self._connect() as con:
            rows = con.execute("SELECT * FROM models ORDER BY created").fetchall()
        return [self._object(r) for r in rows]

    @staticmethod
    def _object(row: sqlite3.Row) -> SealedObjectRecord:
        data = row_to_dict(row)
        extra: dict[str, Any] = {}
        if "job_id" in data:
            extra = {
                "job_id": data["job_id"],
                "metrics": json.loads(data["metrics"]),
                "lineage": json.loads(data["lineage"]),
            }
        manifest = json.loads(data["manifest"])
        return SealedObjectRecord(
            id=data["id"],
            name=data.get("name") or manifest.get("name", data["id"]),
            label=json.loads(data["label"]),
            manifest=manifest,
            object_path=data["object_path"],
            sealed_digest=data["sealed_digest"],
            wrapped_keys=json.loads(data["wrapped_keys"]),
            created=data["created"],
            **extra,
        )

    # -- agreements ----------------------------------------------------------
    def add_agreement(
        self,
        agreement_id: str,
        document: dict[str, Any],
        digest: str,
        source: str,
        added: str,
        version: int = 1,
    ) -> None:
        """Store one version of an agreement document.

        Raises
        ------
        AlreadyExists
            If that id and version are already recorded.
        """
        self._insert(
            "agreement_versions",
            (agreement_id, version, json.dumps(document), digest, source, added),
            f"agreement {agreement_id!r} version {version} is already recorded",
            source=source,
        )

    def agreement_documents(self) -> list[dict[str, Any]]:
        """Every recorded version: ``id``, ``version``, ``document``, ``digest``,
        ``source``, ``added``; by id, then version."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM agreement_versions ORDER BY id, version"
            ).fetchall()
        return [
            {
                "id": r["id"],
                "version": r["version"],
                "document": json.loads(r["document"]),
                "digest": r["digest"],
                "source": r["source"],
                "added": r["added"],
            }
            for r in rows
        ]

    # -- jobs ----------------------------------------------------------------
    def add_job(self, rec: JobRecord) -> None:
        """Record a submitted job."""
        with self._connect() as con:
            con.execute(
                "INSERT INTO jobs VALUES (?,?,?,?,?,?,?,?,?)",
                (
                    rec.id,
                    rec.workflow,
                    rec.site,
                    json.dumps(rec.request),
                    rec.measurement,
                    rec.state,
                    json.dumps(rec.summary),
                    rec.created,
                    rec.finished,
                ),
            )

    def finish_job(
        self, job_id: str, state: str, summary: dict[str, Any], finished: str
    ) -> None:
        """Mark a job finished with ``state`` and its metrics ``summary``."""
        with self._connect() as con:
            con.execute(
                "UPDATE jobs SET state=?, summary=?, finished=? WHERE id=?",
                (state, json.dumps(summary), finished, job_id),
            )

    def set_job_state(self, job_id: str, state: str) -> None:
        """Set a job's state while it is not finished (``pending-approval``,
        ``held``, ``submitted``)."""
        with self._connect() as con:
            con.execute("UPDATE jobs SET state=? WHERE id=?", (state, job_id))

    def set_job_site(self, job_id: str, site: str) -> None:
        """Record the site(s) a job runs on (comma-separated for several)."""
        with self._connect() as con:
            con.execute("UPDATE jobs SET site=? WHERE id=?", (site, job_id))

    def job(self, job_id: str) -> JobRecord:
        """Return job ``job_id``; raises :class:`NotFound`."""
        with self._connect() as con:
            row = con.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        if row is None:
            raise NotFound(f"job {job_id!r} is not registered")
        data = row_to_dict(row)
        data["request"] = json.loads(data["request"])
        data["summary"] = json.loads(data["summary"])
        return JobRecord(**data)

    def jobs(self) -> list[JobRecord]:
        """All jobs, oldest first."""
        with self._connect() as con:
            ids = [r["id"] for r in con.execute("SELECT id FROM jobs ORDER BY created")]
        return [self.job(i) for i in ids]

    # -- tasks (one row per attempt) -------------------------------------------
    def upsert_task(self, rec: TaskRecord) -> None:
        """Insert or replace the row of attempt ``(rec.job_id, rec.attempt_id)``."""
        with self._connect() as con:
            con.execute(
                "INSERT OR REPLACE INTO tasks VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (
                    rec.job_id,
                    rec.task,
                    rec.attempt_id,
                    rec.site,
                    rec.state,
                    rec.started,
                    rec.finished,
                    rec.wall_seconds,
                    rec.gpus,
                    rec.gpu_hours,
                    json.dumps(rec.events),
                    json.dumps(rec.detail),
                ),
            )

    def tasks(self, job_id: str) -> list[TaskRecord]:
        """The attempts of job ``job_id``, by start time then task name."""
        with self._connect() as con:
            rows = con.execute(
                "SELECT * FROM tasks WHERE job_id=? ORDER BY started, task",
                (job_id,),
            ).fetchall()
        out = []
        for row in rows:
            data = row_to_dict(row)
            data["events"] = json.loads(data["events"])
            data["detail"] = json.loads(data["detail"])
            out.append(TaskRecord(**data))
        return out

    # -- model transfers (orchestrator.submit.transfer) ------------------------------
    def _ensure_transfers(self) -> None:
        with self._connect() as con:
            con.executescript(TRANSFERS_SCHEMA)

    def add_transfer(self, rec: TransferRecord) -> None:
        """Record a completed model transfer.

        Raises
        ------
        AlreadyExists
            If a transfer of that id is already recorded.
        """
        self._ensure_transfers()
        self._insert(
            "transfers",
            (
                rec.id,
                rec.model_id,
                rec.model_digest,
                rec.recipient,
                rec.sender,
                rec.exporter,
                rec.end_use,
                json.dumps(rec.wrapped_key),
                rec.consents_digest,
                json.dumps(rec.decision),
                rec.created,
            ),
            f"transfer {rec.id!r} is already recorded",
            source=str(self.path),
        )

    def transfer(self, transfer_id: str) -> TransferRecord:
        """Return transfer ``transfer_id``; raises :class:`NotFound`."""
        self._ensure_transfers()
        with self._connect() as con:
            row = con.execute(
                "SELECT * FROM transfers WHERE id=?", (transfer_id,)
            ).fetchone()
        if row is None:
            raise NotFound(f"transfer {transfer_id!r} is not recorded")
        return transfer_of(row)

    def transfers(self, model_id: str | None = None) -> list[TransferRecord]:
        """Completed transfers (of ``model_id`` if given), oldest first."""
        self._ensure_transfers()
        with self._connect() as con:
            if model_id is None:
                rows = con.execute(
                    "SELECT * FROM transfers ORDER BY created, id"
                ).fetchall()
            else:
                rows = con.execute(
                    "SELECT * FROM transfers WHERE model_id=? ORDER BY created, id",
                    (model_id,),
                ).fetchall()
        return [transfer_of(r) for r in rows]
