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
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from orchestrator.errors import AlreadyExists, LedgerError, NotFound

_SCHEMA = """
CREATE TABLE IF NOT EXISTS nations (
    code TEXT PRIMARY KEY, kek_id TEXT NOT NULL,
    custodian_key_id TEXT NOT NULL, custodian_public TEXT NOT NULL,
    officer_key_id TEXT NOT NULL, officer_public TEXT NOT NULL,
    hpke_public TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS sites (
    name TEXT PRIMARY KEY, operator_nation TEXT NOT NULL, accreditation TEXT NOT NULL,
    config TEXT NOT NULL, config_digest TEXT NOT NULL, signing_key_id TEXT NOT NULL,
    signing_public TEXT NOT NULL, registered TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS datasets (
    id TEXT PRIMARY KEY, name TEXT UNIQUE NOT NULL, label TEXT NOT NULL,
    manifest TEXT NOT NULL, object_path TEXT NOT NULL, sealed_digest TEXT NOT NULL,
    wrapped_keys TEXT NOT NULL, created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS agreement_versions (
    id TEXT NOT NULL, version INTEGER NOT NULL, document TEXT NOT NULL,
    digest TEXT NOT NULL, source TEXT NOT NULL, added TEXT NOT NULL,
    PRIMARY KEY (id, version));
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, workflow TEXT NOT NULL, site TEXT NOT NULL,
    request TEXT NOT NULL, measurement TEXT NOT NULL, state TEXT NOT NULL,
    summary TEXT NOT NULL DEFAULT '{}', created TEXT NOT NULL, finished TEXT);
CREATE TABLE IF NOT EXISTS models (
    id TEXT PRIMARY KEY, job_id TEXT NOT NULL, label TEXT NOT NULL,
    manifest TEXT NOT NULL, object_path TEXT NOT NULL, sealed_digest TEXT NOT NULL,
    wrapped_keys TEXT NOT NULL, metrics TEXT NOT NULL, lineage TEXT NOT NULL,
    created TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tasks (
    job_id TEXT NOT NULL, task TEXT NOT NULL, attempt_id TEXT NOT NULL,
    site TEXT NOT NULL, state TEXT NOT NULL, started TEXT, finished TEXT,
    wall_seconds REAL, gpus INTEGER NOT NULL DEFAULT 0,
    gpu_hours REAL NOT NULL DEFAULT 0, events TEXT NOT NULL DEFAULT '[]',
    detail TEXT NOT NULL DEFAULT '{}', PRIMARY KEY (job_id, attempt_id));
"""


@dataclass(frozen=True)
class NationRecord:
    """A nation's public identity: custodian and officer Ed25519 keys, HPKE key."""

    code: str
    kek_id: str
    custodian_key_id: str
    custodian_public: str  # base64, 32 raw bytes
    officer_key_id: str
    officer_public: str  # base64, 32 raw bytes
    hpke_public: str  # base64 X25519 public key of the custodian (wrap requests)
    created: str


@dataclass(frozen=True)
class SiteRecord:
    """A registered facility and its sovereignty attributes."""

    name: str
    operator_nation: str
    accreditation: str
    config: dict[str, Any]
    config_digest: str
    signing_key_id: str
    signing_public: str  # base64, 32 raw bytes
    registered: str


@dataclass(frozen=True)
class SealedObjectRecord:
    """A sealed dataset or model: label, manifest, ciphertext path, wrapped DEKs.

    ``wrapped_keys`` maps each owner nation to ``{"kek_id", "kek_version",
    "wrapped_dek"}`` (base64 RFC 5649 output, 40 bytes for a 32-byte DEK).
    """

    id: str
    name: str
    label: dict[str, Any]
    manifest: dict[str, Any]
    object_path: str
    sealed_digest: str
    wrapped_keys: dict[str, dict[str, Any]]
    created: str
    job_id: str = ""
    metrics: dict[str, Any] | None = None
    lineage: dict[str, Any] | None = None


@dataclass(frozen=True)
class JobRecord:
    """One submitted workflow run."""

    id: str
    workflow: str
    site: str
    request: dict[str, Any]
    measurement: str
    state: str
    summary: dict[str, Any]
    created: str
    finished: str | None


@dataclass(frozen=True)
class TaskRecord:
    """One attempt of one task of a job (see :mod:`orchestrator.submit.jobs`).

    ``state`` is a :class:`orchestrator.submit.jobs.TaskState` value; ``started``
    and ``finished`` RFC 3339; ``gpu_hours`` = ``gpus * wall_seconds / 3600``;
    ``events`` the custody log indices of the attempt's events; ``detail`` e.g.
    ``slurm_job_id`` and an error.
    """

    job_id: str
    task: str
    attempt_id: str
    site: str
    state: str
    started: str | None
    finished: str | None
    wall_seconds: float | None
    gpus: int
    gpu_hours: float
    events: list[int]
    detail: dict[str, Any]


def _row_to_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {key: row[key] for key in row.keys()}


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
            con.executescript(_SCHEMA)
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
        return NationRecord(**_row_to_dict(row))

    def nations(self) -> list[NationRecord]:
        """All registered nations, by code."""
        with self._connect() as con:
            rows = con.execute("SELECT * FROM nations ORDER BY code").fetchall()
        return [NationRecord(**_row_to_dict(r)) for r in rows]

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
        data = _row_to_dict(row)
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
        data = _row_to_dict(row)
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
        data = _row_to_dict(row)
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
            data = _row_to_dict(row)
            data["events"] = json.loads(data["events"])
            data["detail"] = json.loads(data["detail"])
            out.append(TaskRecord(**data))
        return out

    # -- model transfers (orchestrator.transfer) -------------------------------------
    def _ensure_transfers(self) -> None:
        with self._connect() as con:
            con.executescript(_TRANSFERS_SCHEMA)

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
        return _transfer(row)

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
        return [_transfer(r) for r in rows]


def as_json(record: object) -> dict[str, Any]:
    """Return a registry record dataclass as a JSON-able dict."""
    return asdict(record)  # type: ignore[call-overload, no-any-return]


# -- model transfers (orchestrator.transfer) -----------------------------------------
_TRANSFERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY, model_id TEXT NOT NULL, model_digest TEXT NOT NULL,
    recipient TEXT NOT NULL, sender TEXT NOT NULL, exporter TEXT NOT NULL,
    end_use TEXT NOT NULL, wrapped_key TEXT NOT NULL, consents_digest TEXT NOT NULL,
    decision TEXT NOT NULL, created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transfers_model ON transfers (model_id);
"""


@dataclass(frozen=True)
class TransferRecord:
    """A completed model transfer (:mod:`orchestrator.transfer`).

    ``wrapped_key`` is ``{"kek_id", "kek_version", "wrapped_dek"}``: the model DEK
    wrapped under the *recipient's* KEK (base64 RFC 5649 output), usable only by
    the recipient's custodian. ``sender`` is ``""`` unless the transfer was a
    re-transfer by a non-owner; ``exporter`` is the owner whose custodian decided
    and sealed the key; ``consents_digest`` is ``"sha256:<hex>"`` over the sorted
    digests of the counted consent statements; ``decision`` the exporter's
    :meth:`~orchestrator.transfer.TransferDecision.to_json`; ``created`` RFC 3339.
    """

    id: str
    model_id: str
    model_digest: str
    recipient: str
    sender: str
    exporter: str
    end_use: str
    wrapped_key: dict[str, Any]
    consents_digest: str
    decision: dict[str, Any]
    created: str


def _transfer(row: sqlite3.Row) -> TransferRecord:
    data = _row_to_dict(row)
    data["wrapped_key"] = json.loads(data["wrapped_key"])
    data["decision"] = json.loads(data["decision"])
    return TransferRecord(**data)
