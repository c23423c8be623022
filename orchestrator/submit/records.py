"""The orchestrator registry's schema and records: one frozen dataclass per
table row (nations, sites, sealed datasets and models, jobs, tasks, model
transfers), read and written by :class:`orchestrator.submit.registry.Registry`.
Metadata only: public keys, labels, manifests, KEK-wrapped data keys and paths.
"""

from __future__ import annotations

import json
import sqlite3
from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["JobRecord", "NationRecord", "SealedObjectRecord", "SiteRecord",
           "TaskRecord", "TransferRecord", "as_json"]

SCHEMA = """
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


def row_to_dict(row: sqlite3.Row) -> dict[str, Any]:
    return {key: row[key] for key in row.keys()}


def as_json(record: object) -> dict[str, Any]:
    """Return a registry record dataclass as a JSON-able dict."""
    return asdict(record)  # type: ignore[call-overload, no-any-return]


# -- model transfers (orchestrator.submit.transfer) ----------------------------------
TRANSFERS_SCHEMA = """
CREATE TABLE IF NOT EXISTS transfers (
    id TEXT PRIMARY KEY, model_id TEXT NOT NULL, model_digest TEXT NOT NULL,
    recipient TEXT NOT NULL, sender TEXT NOT NULL, exporter TEXT NOT NULL,
    end_use TEXT NOT NULL, wrapped_key TEXT NOT NULL, consents_digest TEXT NOT NULL,
    decision TEXT NOT NULL, created TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS transfers_model ON transfers (model_id);
"""


@dataclass(frozen=True)
class TransferRecord:
    """A completed model transfer (:mod:`orchestrator.submit.transfer`).

    ``wrapped_key`` is ``{"kek_id", "kek_version", "wrapped_dek"}``: the model DEK
    wrapped under the *recipient's* KEK (base64 RFC 5649 output), usable only by
    the recipient's custodian. ``sender`` is ``""`` unless the transfer was a
    re-transfer by a non-owner; ``exporter`` is the owner whose custodian decided
    and sealed the key; ``consents_digest`` is ``"sha256:<hex>"`` over the sorted
    digests of the counted consent statements; ``decision`` the exporter's
    :meth:`~orchestrator.policy.transfer_facts.TransferDecision.to_json`;
    ``created`` RFC 3339.
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


def transfer_of(row: sqlite3.Row) -> TransferRecord:
    data = row_to_dict(row)
    data["wrapped_key"] = json.loads(data["wrapped_key"])
    data["decision"] = json.loads(data["decision"])
    return TransferRecord(**data)
