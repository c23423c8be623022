"""Sealed training checkpoints: resume a lost attempt without plaintext on disk.

A task's training state (model, optimiser, RNG: bytes serialised in memory by the
workflow) is sealed inside the enclave and written to

    <state>/objects/checkpoints/<job>/<task>.sealed     envelope (ciphertext only)
    <state>/objects/checkpoints/<job>/<task>.keys.json  its wrapped DEK, manifest

Each checkpoint has a fresh DEK and the job's derived label, sealed with the
envelope (:func:`orchestrator.crypto.seal_bytes`, AES-256-GCM segments bound to the
object id, label and manifest digest). Its DEK is wrapped twice:

* for every owner, under that nation's KEK by its custodian (``wrap_key``, the path
  the enclave uses for the final model, presenting this attempt's grant), so an
  owner can always open its checkpoints like its models;
* for resumption, with AES key wrap (RFC 5649) under a *resume key*
  ``HKDF-SHA256(dataset DEK, info = "sovereign-orchestrator/checkpoint-resume/v1"
  || canonical({dataset_id, job_id, task}))``.

A new attempt of the task obtains the dataset DEK exactly as the lost one did: it
attests again with a fresh key pair, every owner's custodian re-evaluates its policy,
logs ``key.released`` and issues a new grant (bound to the new attempt id). Only
then can it derive the resume key and open the checkpoint. No custodian operation
is added, and no custodian is asked to unwrap a key chosen by the site (a site
could otherwise substitute another object's wrapped DEK: a confused deputy). The
resume key is bound to the job and task, so a checkpoint cannot be moved to another
task or job; whoever holds the dataset's plaintext key already holds more than the
checkpoint reveals.

Writes are crash-safe in two atomic steps (temp file in the same directory, fsync,
rename, fsync of the directory: :func:`orchestrator.crypto.atomic_write_bytes`):
the keys document, listing the new generation *and* the one on disk, first; then
the envelope. After a kill at any point the envelope on disk matches exactly one
generation of the keys document and opens, or there is no envelope yet. The
plaintext state never leaves memory.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import re
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from orchestrator.canonical import b64d, b64e, canonical_bytes, digest_of
from orchestrator.crypto import (
    atomic_write_bytes,
    hkdf_sha256,
    new_dek,
    open_bytes,
    seal_bytes,
    unwrap_dek,
    wrap_dek,
)
from orchestrator.errors import ConfigError, IntegrityError

__all__ = [
    "RESUME_KDF_INFO",
    "SealedCheckpoints",
    "checkpoint_dir",
    "remove_job_checkpoints",
    "remove_task_checkpoints",
    "resume_key",
]

#: HKDF ``info`` prefix of the resume key (followed by canonical JSON of the binding).
RESUME_KDF_INFO = b"sovereign-orchestrator/checkpoint-resume/v1"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")

#: ``(dek, object_id, label) -> {owner: WrappedKey JSON}`` (custodians' KEK wraps).
WrapForOwners = Callable[[bytes, str, dict[str, Any]], dict[str, dict[str, Any]]]
#: ``(kind, body)``: records a custody event (site-signed by the runner).
OnEvent = Callable[[str, dict[str, Any]], None]


def _safe(name: str, what: str) -> str:
    if not _NAME.match(name):
        raise ConfigError(f"{what} {name!r} is not a safe file name", field=what)
    return name


def checkpoint_dir(state_root: Path, job_id: str) -> Path:
    """Return ``<state>/objects/checkpoints/<job_id>`` (not created)."""
    return Path(state_root) / "objects" / "checkpoints" / _safe(job_id, "job_id")


def resume_key(dataset_dek: bytes, *, dataset_id: str, job_id: str, task: str) -> bytes:
    """Derive the 32-byte key that wraps a task's checkpoint DEKs for resumption.

    Parameters
    ----------
    dataset_dek
        The dataset's DEK, combined from every owner's released share.
    dataset_id, job_id, task
        The binding: another dataset, job or task derives another key.

    Returns
    -------
    bytes
        ``HKDF-SHA256(ikm=dataset_dek, salt=None, info=RESUME_KDF_INFO ||
        canonical({"dataset_id", "job_id", "task"}), L=32)``.
    """
    binding = {"dataset_id": dataset_id, "job_id": job_id, "task": task}
    return hkdf_sha256(
        dataset_dek, salt=None, info=RESUME_KDF_INFO + canonical_bytes(binding),
        length=32,
    )


class SealedCheckpoints:
    """The sealed checkpoints of one task, as seen by one enclave attempt.

    Parameters
    ----------
    directory
        ``checkpoint_dir(state, job_id)``; created (0700) on the first save.
    job_id, task, site, attempt_id, code_measurement
        This attempt; recorded in each checkpoint's manifest.
    label
        The derived label of the task's outputs (checked on load).
    inputs
        ``[{"dataset_id", "manifest_digest"}]`` of the task's inputs.
    key
        The resume key (:func:`resume_key`) of this dataset, job and task.
    wrap_for_owners
        Has every owner's custodian wrap a fresh DEK (the model's path).
    on_event
        Records ``checkpoint.sealed`` and ``checkpoint.restored``.
    """

    def __init__(
        self,
        directory: Path,
        *,
        job_id: str,
        task: str,
        site: str,
        attempt_id: str,
        code_measurement: str,
        label: dict[str, Any],
        inputs: list[dict[str, Any]],
        key: bytes,
        wrap_for_owners: WrapForOwners,
        on_event: OnEvent,
    ) -> None:
        self.directory = Path(directory)
        self.job_id = job_id
        self.task = _safe(task, "task")
        self.site = site
        self.attempt_id = attempt_id
        self.code_measurement = code_measurement
        self.label = label
        self.inputs = inputs
        self._key = key
        self._wrap = wrap_for_owners
        self._on_event = on_event
        self.sealed_path = self.directory / f"{self.task}.sealed"
        self.keys_path = self.directory / f"{self.task}.keys.json"

    # -- writing ---------------------------------------------------------------
    def save(self, state: bytes, epoch: int) -> dict[str, Any]:
        """Seal ``state`` (training state after ``epoch``) and write it atomically.

        Returns
        -------
        dict
            The body of the ``checkpoint.sealed`` event recorded for it.

        Raises
        ------
        PolicyDenied, AttestationError
            If an owner's custodian refuses to wrap the DEK (e.g. the grant
            expired); nothing is written.
        OSError
            If the directory cannot be written; the previous checkpoint stays.
        """
        if epoch < 0:
            raise ConfigError(f"checkpoint epoch must be >= 0, not {epoch}")
        object_id = "ckpt-" + uuid.uuid4().hex[:16]
        manifest = {
            "object_id": object_id,
            "kind": "checkpoint",
            "job_id": self.job_id,
            "task": self.task,
            "site": self.site,
            "attempt_id": self.attempt_id,
            "epoch": int(epoch),
            "code_measurement": self.code_measurement,
            "inputs": self.inputs,
            "bytes": len(state),
        }
        dek = new_dek()
        ciphertext = seal_bytes(
            state, dek, object_id=object_id, label=self.label,
            manifest_digest=digest_of(manifest),
        )
        wrapped = self._wrap(dek, object_id, self.label)
        sealed_digest = "sha256:" + hashlib.sha256(ciphertext).hexdigest()
        generation = {
            "object_id": object_id,
            "epoch": int(epoch),
            "manifest": manifest,
            "sealed_digest": sealed_digest,
            "wrapped_keys": wrapped,
            "resume_wrapped_dek": b64e(wrap_dek(self._key, dek)),
        }
        del dek
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        on_disk = self._current_generation()
        doc = {
            "v": 1,
            "job_id": self.job_id,
            "task": self.task,
            "label": self.label,
            "generations": [generation, *([on_disk] if on_disk else [])],
        }
        atomic_write_bytes(self.keys_path, canonical_bytes(doc), mode=0o600)  # 1
        atomic_write_bytes(self.sealed_path, ciphertext, mode=0o600)  # 2: commit
        body = {
            "job_id": self.job_id,
            "task": self.task,
            "attempt_id": self.attempt_id,
            "site": self.site,
            "epoch": int(epoch),
            "object_id": object_id,
            "sealed_digest": sealed_digest,
            "manifest_digest": digest_of(manifest),
            "wrapped_for": sorted(wrapped),
            "ciphertext_bytes": len(ciphertext),
        }
        self._on_event("checkpoint.sealed", body)
        return body

    # -- reading ---------------------------------------------------------------
    def _read_doc(self) -> dict[str, Any] | None:
        try:
            raw = self.keys_path.read_bytes()
        except FileNotFoundError:
            return None
        try:
            doc = json.loads(raw)
        except ValueError as exc:
            raise IntegrityError(
                "checkpoint keys document is not JSON", source=str(self.keys_path)
            ) from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("generations"), list):
            raise IntegrityError(
                "malformed checkpoint keys document", source=str(self.keys_path)
            )
        return doc

    def _current_generation(self) -> dict[str, Any] | None:
        """The generation of the envelope on disk (None when there is none)."""
        try:
            blob = self.sealed_path.read_bytes()
        except FileNotFoundError:
            return None
        doc = self._read_doc()
        digest = "sha256:" + hashlib.sha256(blob).hexdigest()
        for generation in (doc or {}).get("generations", []):
            if isinstance(generation, dict) and (
                generation.get("sealed_digest") == digest
            ):
                return generation
        raise IntegrityError(
            "sealed checkpoint matches no generation of its keys document",
            source=str(self.sealed_path),
        )

    def _sweep_temporaries(self) -> None:
        """Remove temp files a killed writer left (ciphertext or public JSON only)."""
        for prefix in (f".{self.sealed_path.name}.", f".{self.keys_path.name}."):
            for leftover in self.directory.glob(f"{prefix}*.tmp"):
                with contextlib.suppress(OSError):
                    leftover.unlink()

    def load(self) -> tuple[bytes, int] | None:
        """Open the task's last sealed checkpoint, or return ``None`` if none.

        Returns
        -------
        tuple of (bytes, int) or None
            The training state and the epoch it was saved after (from the
            authenticated manifest).

        Raises
        ------
        IntegrityError
            If the envelope, its keys document or its binding (object id, label,
            manifest, job, task) do not verify: never retried, never skipped.
        """
        if not self.directory.is_dir():
            return None
        self._sweep_temporaries()
        generation = self._current_generation()
        if generation is None:
            return None
        blob = self.sealed_path.read_bytes()
        manifest = generation.get("manifest")
        try:
            dek = unwrap_dek(self._key, b64d(str(generation["resume_wrapped_dek"])))
            object_id = str(generation["object_id"])
        except (KeyError, ValueError) as exc:
            raise IntegrityError(
                "malformed checkpoint generation", source=str(self.keys_path)
            ) from exc
        header, state = open_bytes(blob, dek, expected_object_id=object_id)
        del dek
        if (
            not isinstance(manifest, dict)
            or header.label != self.label
            or header.manifest_digest != digest_of(manifest)
            or manifest.get("job_id") != self.job_id
            or manifest.get("task") != self.task
            or manifest.get("kind") != "checkpoint"
        ):
            raise IntegrityError(
                "sealed checkpoint is not bound to this job, task and label",
                source=str(self.sealed_path),
            )
        epoch = int(manifest["epoch"])
        self._on_event(
            "checkpoint.restored",
            {
                "job_id": self.job_id,
                "task": self.task,
                "attempt_id": self.attempt_id,
                "site": self.site,
                "epoch": epoch,
                "object_id": object_id,
                "sealed_digest": generation["sealed_digest"],
                "sealed_by_attempt_id": manifest.get("attempt_id"),
            },
        )
        return state, epoch


def remove_task_checkpoints(state_root: Path, job_id: str, task: str) -> None:
    """Delete a completed task's own checkpoint files (ciphertext and keys).

    Only files named after ``task`` are removed: the job's directory is shared
    by every task of the job, and another task may be between creating it and
    writing its first checkpoint, so a task never removes it (that race failed
    a whole job: issue 11). The job's directory goes with
    :func:`remove_job_checkpoints`, once the job is over.
    """
    directory = checkpoint_dir(state_root, job_id)
    name = _safe(task, "task")
    for path in (directory / f"{name}.sealed", directory / f"{name}.keys.json"):
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    for prefix in (f".{name}.sealed.", f".{name}.keys.json."):
        for leftover in directory.glob(f"{prefix}*.tmp"):
            with contextlib.suppress(OSError):
                leftover.unlink()


def remove_job_checkpoints(state_root: Path, job_id: str) -> None:
    """Delete a finished job's checkpoint directory and everything in it.

    Called once, by the party that knows the job is over (after its last task
    completed), never by a task: a failed or killed job keeps its checkpoints
    for :func:`SealedCheckpoints.load` of a later attempt. The files are
    ciphertext and KEK-wrapped keys only. Absent directory: nothing to do.

    Raises
    ------
    ConfigError
        If ``job_id`` is not a safe file name.
    OSError
        If a file cannot be removed (the rest stays for a later call).
    """
    directory = checkpoint_dir(state_root, job_id)
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
    with contextlib.suppress(FileNotFoundError):
        directory.rmdir()
