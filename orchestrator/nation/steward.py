"""Data-owner operations at the nation: sealing a dataset, opening an owned model.

These run on the owner's side, next to the owner's custodian: the plaintext is
the owner's own. :func:`seal_dataset` seals a CSV under a fresh DEK into a file
the owner hands to the orchestrator with a public descriptor
(:class:`~orchestrator.protocol.datasets.DatasetDescriptor`); the custodian keeps
its own record of the dataset (label, digests, its wrapped DEK) in its store. A
jointly owned dataset's DEK is split n-of-n: this nation wraps its own share; each
co-owner's share travels HPKE-sealed to that co-owner's pinned custodian key in
a ``dataset-share/v1`` statement this custodian signs, and the co-owner's
custodian accepts it (:func:`accept_dataset_share`): no job can open the data
until every owner released its share.
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

from orchestrator.canonical import b64d, b64e, digest_of
from orchestrator.crypto import (
    DEFAULT_SEGMENT_SIZE,
    DEK_SIZE,
    HpkeSuite,
    commit_plaintext,
    hpke_open,
    hpke_seal,
    new_dek,
    open_stream,
    seal_stream,
    split_dek,
)
from orchestrator.crypto.fsutil import fsync_dir
from orchestrator.errors import ConfigError, IntegrityError, PolicyDenied
from orchestrator.labels import Classification, Label, parse_nations
from orchestrator.nation.context import CustodianContext
from orchestrator.nation.store import SealedDataset
from orchestrator.protocol.datasets import DatasetDescriptor, share_hpke_info
from orchestrator.protocol.statements import (
    SignedStatement,
    sign_statement,
    verify_statement,
)
from orchestrator.tabular import describe, parse_csv
from orchestrator.timeutil import rfc3339

__all__ = ["accept_dataset_share", "open_owned", "seal_dataset"]

ProgressFn = Callable[[int], None]


def atomic_sealed_write(target: Path, write: Callable[[BinaryIO], object]) -> str:
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


def _keep(ctx: CustodianContext, descriptor: DatasetDescriptor,
          wrapped: dict[str, Any]) -> None:
    ctx.store.add_dataset(SealedDataset(
        id=descriptor.id, name=descriptor.name, label=descriptor.label,
        manifest_digest=digest_of(descriptor.manifest),
        sealed_digest=descriptor.sealed_digest, wrapped=wrapped,
        created=rfc3339(ctx.clock())))
    ctx.record("dataset.sealed", {
        "dataset_id": descriptor.id, "name": descriptor.name, "owner": ctx.code,
        "label": descriptor.label, "manifest_digest": digest_of(descriptor.manifest),
        "plaintext_commitment": descriptor.manifest.get("plaintext_commitment"),
        "sealed_digest": descriptor.sealed_digest, "kek_id": wrapped["kek_id"],
        "kek_version": wrapped["kek_version"]})


def seal_dataset(ctx: CustodianContext, path: Path, out_dir: Path, *, name: str,
                 owners: Iterable[str], classification: str,
                 releasable_to: Iterable[str], label_column: int | str = -1,
                 has_header: bool | None = None, export_controls: Iterable[str] = (),
                 caveats: Iterable[str] = (),
                 segment_size: int = DEFAULT_SEGMENT_SIZE,
                 progress: ProgressFn | None = None) -> DatasetDescriptor:
    """Validate a CSV, seal it into ``out_dir/<id>.sealed``, keep this nation's
    record and wrapped share, and sign each co-owner's sealed share.

    The CSV is parsed first (bad cells or rows fail before anything is written);
    the sealed file is written to a temp file and renamed into place.

    Raises
    ------
    ConfigError
        Unreadable file, unknown nation, bad classification or label, this
        nation is not an owner, or a co-owner's card is not pinned here.
    DataError
        A cell that is not a number, a row of the wrong length, ...
    """
    owners_set = parse_nations(list(owners))
    if ctx.code not in owners_set:
        raise ConfigError(f"{ctx.code} seals only datasets it owns", field="--owner")
    label = Label.create(
        owners=owners_set, classification=Classification.parse(classification),
        releasable_to=parse_nations(list(releasable_to)),
        export_controls=tuple(export_controls), caveats=tuple(caveats))
    peers = ctx.nation.peers()
    missing = sorted(o for o in owners_set if o != ctx.code and o not in peers)
    if missing:
        raise ConfigError(f"{ctx.code} has no pinned card of co-owner(s) "
                          f"{', '.join(missing)}", field="--owner")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read dataset: {exc.strerror}",
                          source=str(path)) from exc
    table = parse_csv(data, label_column=label_column, has_header=has_header,
                      source=str(path))
    dataset_id = "ds-" + uuid.uuid4().hex[:16]
    dek = new_dek()
    manifest: dict[str, Any] = {  # no plaintext hash: a keyed commitment
        "name": name, "source_file": path.name, "plaintext_bytes": len(data),
        "plaintext_commitment": commit_plaintext(dek, data), "format": "csv",
        **describe(table, label_column=label_column, has_header=has_header)}
    del table
    target = out_dir / f"{dataset_id}.sealed"
    sealed_digest = "sha256:" + atomic_sealed_write(target, lambda out: seal_stream(
        io.BytesIO(data), out, dek, object_id=dataset_id, label=label.to_json(),
        manifest_digest=digest_of(manifest), segment_size=segment_size,
        progress=progress))
    base = DatasetDescriptor(id=dataset_id, name=name, label=label.to_json(),
                             manifest=manifest, sealed_digest=sealed_digest,
                             shares={})
    shares = split_dek(dek, len(owners_set))
    signed: dict[str, dict[str, Any]] = {}
    for index, (owner, share) in enumerate(zip(sorted(owners_set), shares,
                                               strict=True), start=1):
        tag = f"{index}/{len(shares)}"
        if owner == ctx.code:
            keystore = ctx.keys.keystore(clock=ctx.clock, audit=ctx.record)
            version, blob = keystore.wrap(share)
            own = {"kek_id": keystore.kek_id, "kek_version": version,
                   "wrapped_dek": b64e(blob), "share": tag}
            continue
        sealed = hpke_seal(HpkeSuite.X25519, peers[owner].hpke_public, share,
                           share_hpke_info(base, owner))
        signed[owner] = sign_statement({
            "type": "dataset-share/v1", "nation": ctx.code,
            "issued_at": rfc3339(ctx.clock()), "dataset_id": dataset_id,
            "recipient": owner, "descriptor": base.public_json(),
            "sealed_share": b64e(sealed), "share": tag}, ctx.signer).to_json()
    _keep(ctx, base, own)
    return DatasetDescriptor(id=dataset_id, name=name, label=label.to_json(),
                             manifest=manifest, sealed_digest=sealed_digest,
                             shares=signed)


def accept_dataset_share(ctx: CustodianContext, doc: dict[str, Any]) -> str:
    """As a co-owner: open a dataset DEK share sealed to this custodian, wrap it
    under this nation's KEK and keep the dataset's record; return its id.

    Raises
    ------
    IntegrityError
        Not signed by the pinned custodian key of the sealing nation, for
        another recipient, or the share does not open for this descriptor.
    PolicyDenied
        The label does not name this nation as an owner.
    """
    signed = SignedStatement.from_json(doc, source="dataset share")
    sealer = signed.nation
    statement = verify_statement(signed, public_key=ctx.peer_custodian_key(sealer),
                                 expected_type="dataset-share/v1",
                                 expected_nation=sealer, source="dataset share",
                                 signer="custodian")
    if statement["recipient"] != ctx.code:
        raise IntegrityError(f"share is for {statement['recipient']}, not {ctx.code}")
    descriptor = DatasetDescriptor.from_json(dict(statement["descriptor"]))
    if ctx.code not in Label.from_json(descriptor.label).owners:
        raise PolicyDenied(f"{ctx.code} is not an owner of {descriptor.id}")
    share = hpke_open(ctx.keys.hpke_key(), b64d(str(statement["sealed_share"])),
                      share_hpke_info(descriptor, ctx.code))
    if len(share) != DEK_SIZE:
        raise IntegrityError("a DEK share is 32 bytes")
    keystore = ctx.keys.keystore(clock=ctx.clock, audit=ctx.record)
    version, blob = keystore.wrap(share)
    _keep(ctx, descriptor, {"kek_id": keystore.kek_id, "kek_version": version,
                            "wrapped_dek": b64e(blob),
                            "share": str(statement["share"])})
    return descriptor.id


def unwrap_for_owner(ctx: CustodianContext, object_id: str, *, kind: str,
                     requester: str | None = None) -> bytes:
    """Unwrap the DEK of a model this nation owns, for its own officer or the
    officer of a co-owner (``requester``: the asking officer's nation, when it
    came over the network); records ``model.opened`` (or ``model.open.denied``)
    first.

    Raises
    ------
    PolicyDenied
        If this nation keyed no such object, this nation or the requester is not
        among its owners (whatever the model's REL TO: a model moves on its
        owners' decision only, a transfer otherwise).
    """
    body = {"object_id": object_id, "kind": kind, "nation": ctx.code,
            "requester": requester or ctx.code}
    try:
        record = ctx.store.object(object_id)
    except Exception as exc:
        ctx.record("model.open.denied", {**body, "reason": f"{ctx.code} is not an "
                                         "owner (no key wrapped here)"})
        raise PolicyDenied(f"{ctx.code} may not open {object_id}",
                           reasons=[f"{ctx.code} holds no key for it"]) from exc
    owners = Label.from_json(record.label, derived=True).owners
    for nation in (ctx.code, requester or ctx.code):
        if nation not in owners:
            ctx.record("model.open.denied", {**body, "reason": f"{nation} is not an "
                                             "owner"})
            raise PolicyDenied(f"{nation} may not open {object_id}",
                               reasons=[f"owner: {nation} is not an owner; owners are "
                                        f"{', '.join(sorted(owners))}"])
    wrapped = record.wrapped
    keystore = ctx.keys.keystore(clock=ctx.clock, audit=ctx.record)
    try:
        keystore.check_unwrap(wrapped["kek_id"], int(wrapped["kek_version"]))
    except PolicyDenied as exc:  # KeyUnavailable: disabled, pending, ...
        ctx.record("model.open.denied", {**body, "reason": exc.message})
        raise
    ctx.record("model.opened", body)
    return keystore.unwrap(wrapped["kek_id"], int(wrapped["kek_version"]),
                           b64d(wrapped["wrapped_dek"]))


def open_owned(dek: bytes, sealed_path: Path, object_id: str, out: Path
               ) -> dict[str, Any]:
    """Decrypt the sealed object at ``sealed_path`` with ``dek`` into ``out``
    (atomically, 0600).

    Raises
    ------
    IntegrityError
        If the file is tampered with, truncated or of another object.
    """
    def write(dst: BinaryIO) -> None:
        with open(sealed_path, "rb") as src:
            header, segments = open_stream(src, dek)
            if header.object_id != object_id:
                raise IntegrityError(f"sealed file holds {header.object_id}, not "
                                     f"{object_id}", source=str(sealed_path))
            for segment in segments:
                dst.write(segment)

    digest = atomic_sealed_write(out, write)
    os.chmod(out, 0o600)
    return {"model_id": object_id, "out": str(out), "sha256": digest}
