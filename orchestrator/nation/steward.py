"""Data-owner operations: sealing a dataset and opening an owned model.

These run on the owner's side (the data steward's or officer's host), next to
the owner's custodian: the plaintext is the owner's own.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO

from orchestrator.canonical import b64e, digest_of, sha256_hex
from orchestrator.crypto import (
    DEFAULT_SEGMENT_SIZE,
    new_dek,
    open_stream,
    seal_stream,
    split_dek,
)
from orchestrator.crypto.fsutil import fsync_dir
from orchestrator.errors import ConfigError, IntegrityError
from orchestrator.labels import Classification, Label, parse_nations
from orchestrator.log.store import CustodyLog
from orchestrator.nation.custodian import LocalCustodian
from orchestrator.nation.identity import NationKeys
from orchestrator.registry import Registry, SealedObjectRecord
from orchestrator.state import StateDir
from orchestrator.tabular import describe, parse_csv
from orchestrator.timeutil import rfc3339, system_clock
from orchestrator.tlog.events import CustodyEvent

ProgressFn = Callable[[int], None]


def _atomic_sealed_write(
    target: Path, write: Callable[[BinaryIO], object]
) -> str:
    """Write via ``write`` to a temp file beside ``target``, fsync, rename; return
    the SHA-256 hex of the bytes written."""
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.")
    try:
        with os.fdopen(fd, "wb") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, target)
        fsync_dir(target.parent)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    h = hashlib.sha256()
    with target.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def seal_dataset(
    state: StateDir,
    path: Path,
    *,
    name: str,
    owners: Iterable[str],
    classification: str,
    releasable_to: Iterable[str],
    label_column: int | str = -1,
    has_header: bool | None = None,
    export_controls: Iterable[str] = (),
    caveats: Iterable[str] = (),
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    progress: ProgressFn | None = None,
) -> SealedObjectRecord:
    """Validate a CSV, seal it under a fresh DEK, give every owner a wrapped share.

    The CSV is parsed first (bad cells or rows fail before anything is written);
    the sealed file is written to a temp file and renamed into place; the registry
    row and the ``dataset.sealed`` event (signed by each owner's custodian) follow.

    Raises
    ------
    ConfigError
        Unreadable file, unknown nation, bad classification or label.
    DataError
        A cell that is not a number, a row of the wrong length, ...
    AlreadyExists
        A dataset of that name exists.
    """
    owners_set = parse_nations(list(owners))
    label = Label.create(
        owners=owners_set,
        classification=Classification.parse(classification),
        releasable_to=parse_nations(list(releasable_to)),
        export_controls=tuple(export_controls),
        caveats=tuple(caveats),
    )
    registry = Registry(state.registry_db)
    for owner in sorted(owners_set):
        registry.nation(owner)  # NotFound if not initialised
    if any(d.name == name for d in registry.datasets()):
        from orchestrator.errors import AlreadyExists

        raise AlreadyExists(f"dataset {name!r} is already sealed", source=str(path))
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read dataset: {exc.strerror}", source=str(path)
        ) from exc
    table = parse_csv(
        data, label_column=label_column, has_header=has_header, source=str(path)
    )
    dataset_id = "ds-" + uuid.uuid4().hex[:16]
    manifest: dict[str, Any] = {
        "name": name,
        "source_file": path.name,
        "plaintext_bytes": len(data),
        "plaintext_sha256": sha256_hex(data),
        "format": "csv",
        **describe(table, label_column=label_column, has_header=has_header),
    }
    del table
    dek = new_dek()
    target = state.datasets_dir / f"{dataset_id}.sealed"
    sealed_digest = _atomic_sealed_write(
        target,
        lambda out: seal_stream(
            io.BytesIO(data),
            out,
            dek,
            object_id=dataset_id,
            label=label.to_json(),
            manifest_digest=digest_of(manifest),
            segment_size=segment_size,
            progress=progress,
        ),
    )
    # A jointly owned dataset's DEK is split n-of-n: each owner wraps only its
    # share, so no job can open the data until every owner has released its share.
    shares = split_dek(dek, len(owners_set))
    wrapped: dict[str, dict[str, Any]] = {}
    for owner, share in zip(sorted(owners_set), shares, strict=True):
        keystore = NationKeys(state.nation_dir(owner), owner).keystore()
        version, blob = keystore.wrap(share)
        wrapped[owner] = {
            "kek_id": keystore.kek_id,
            "kek_version": version,
            "wrapped_dek": b64e(blob),
            "share": f"{len(wrapped) + 1}/{len(shares)}",
        }
    record = SealedObjectRecord(
        id=dataset_id,
        name=name,
        label=label.to_json(),
        manifest=manifest,
        object_path=str(target),
        sealed_digest="sha256:" + sealed_digest,
        wrapped_keys=wrapped,
        created=rfc3339(system_clock()),
    )
    registry.add_dataset(record)
    log = CustodyLog(state.custody_db)
    for owner in sorted(owners_set):
        log.append(
            CustodyEvent.create(
                "dataset.sealed",
                f"custodian:{owner}",
                {
                    "dataset_id": dataset_id,
                    "name": name,
                    "owner": owner,
                    "label": label.to_json(),
                    "manifest_digest": digest_of(manifest),
                    "plaintext_sha256": manifest["plaintext_sha256"],
                    "sealed_digest": record.sealed_digest,
                    "kek_id": wrapped[owner]["kek_id"],
                    "kek_version": wrapped[owner]["kek_version"],
                },
            ),
            NationKeys(state.nation_dir(owner), owner).custodian_signer(),
        )
    return record


def open_model(
    state: StateDir, model_id: str, nation: str, out: Path
) -> dict[str, Any]:
    """Decrypt model ``model_id`` for owner ``nation`` into ``out`` (atomically).

    The custodian logs ``model.opened`` (or ``model.open.denied``) first.

    Raises
    ------
    PolicyDenied
        If ``nation`` is not an owner of the model.
    IntegrityError
        If the sealed file is tampered with, truncated or of another object.
    """
    registry = Registry(state.registry_db)
    record = registry.model(model_id)
    dek = LocalCustodian(state, nation).unwrap_for_owner(record, kind="model")

    def write(dst: BinaryIO) -> None:
        with open(record.object_path, "rb") as src:
            header, segments = open_stream(src, dek)
            if header.object_id != record.id:
                raise IntegrityError(
                    f"sealed file holds {header.object_id}, not {record.id}",
                    source=record.object_path,
                )
            for segment in segments:
                dst.write(segment)

    digest = _atomic_sealed_write(out, write)
    os.chmod(out, 0o600)
    return {"model_id": record.id, "out": str(out), "sha256": digest}
