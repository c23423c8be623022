"""Sovereignty officers' tools over the custody log: checkpoints, witnessing,
verification from a trusted checkpoint, and tracing.

Keys come from the registry (nations' custodian and officer keys, sites' keys, the
orchestrator's key); each may sign only for its own actor name. A nation's
custodian key also serves as its witness key (C2SP cosignature/v1, key name
``witness-<NATION>``); the log operator's key (``<state>/log.key``) signs
checkpoints.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.canonical import b64d, b64e
from orchestrator.crypto import (
    SigningKey,
    atomic_write_bytes,
    key_id_of,
    load_private_key,
    save_private_key,
)
from orchestrator.errors import ConfigError, IntegrityError
from orchestrator.log.selfcheck import verify_log
from orchestrator.log.store import CustodyLog
from orchestrator.log.transparency import TransparencyLog
from orchestrator.nation.identity import NationKeys
from orchestrator.registry import Registry
from orchestrator.state import StateDir
from orchestrator.submit.registration import ORCHESTRATOR_ACTOR, orchestrator_signer
from orchestrator.timeutil import rfc3339, system_clock
from orchestrator.tlog.checkpoint import open_note
from orchestrator.tlog.events import SignedEntry
from orchestrator.tlog.names import witness_key_name
from orchestrator.tlog.note import ALG_COSIGNATURE_V1, NoteVerifier
from orchestrator.tlog.verify import TrustedKey, VerifyReport
from orchestrator.tlog.witness import WitnessState, check_extends


def log_key(state: StateDir) -> SigningKey:
    """The log operator's checkpoint key, created (0600) on first use."""
    path = state.root / "log.key"
    if not path.exists():
        state.ensure()
        save_private_key(path, SigningKey.generate())
    return load_private_key(path)


def open_tlog(state: StateDir) -> TransparencyLog:
    """The custody transparency log of ``state``."""
    return TransparencyLog(CustodyLog(state.custody_db), log_key(state))


def trusted_keys(state: StateDir) -> dict[str, TrustedKey]:
    """Trusted event-signing keys by key id, with the actor each may sign for."""
    registry = Registry(state.registry_db)
    keys: dict[str, TrustedKey] = {}

    def add(public: bytes, actor: str) -> None:
        keys[key_id_of(public)] = TrustedKey(
            key_id=key_id_of(public), public_key=public, actors=frozenset({actor})
        )

    for nation in registry.nations():
        add(b64d(nation.custodian_public), f"custodian:{nation.code}")
        add(b64d(nation.officer_public), f"officer:{nation.code}")
    for site in registry.sites():
        add(b64d(site.signing_public), f"site:{site.name}")
    if state.orchestrator_key.exists():
        add(orchestrator_signer(state).public_bytes(), ORCHESTRATOR_ACTOR)
    return keys


def witness_verifiers(state: StateDir) -> dict[str, NoteVerifier]:
    """Each nation's witness (cosignature/v1) verifier, by nation code."""
    return {
        n.code: NoteVerifier(
            witness_key_name(n.code), b64d(n.custodian_public), ALG_COSIGNATURE_V1
        )
        for n in Registry(state.registry_db).nations()
    }


def _load_state(path: Path) -> WitnessState | None:
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
        return WitnessState(
            doc["origin"], int(doc["size"]), b64d(doc["root"]), b64d(doc["note"])
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError("malformed checkpoint state", source=str(path)) from exc


def _save_state(path: Path, st: WitnessState) -> None:
    atomic_write_bytes(
        path,
        json.dumps(
            {
                "origin": st.origin,
                "size": st.size,
                "root": b64e(st.root),
                "note": b64e(st.note),
            },
            indent=1,
        ).encode(),
        mode=0o600,
    )


def publish_checkpoint(state: StateDir) -> bytes:
    """Sign and store a checkpoint over every durable entry (on demand)."""
    return open_tlog(state).publish(rfc3339(system_clock()))


def witness(state: StateDir, nation: str) -> bytes:
    """Nation ``nation``'s custodian cosigns the latest checkpoint (tlog-witness).

    The witness state (last cosigned checkpoint) lives in the nation's directory
    and is replaced only after a successful cosignature.

    Raises
    ------
    RollbackError, SplitViewError, ConsistencyError
        The log does not extend what this witness cosigned before.
    """
    tlog = open_tlog(state)
    note = tlog.latest() or tlog.publish(rfc3339(system_clock()))
    path = state.nation_dir(nation) / "witness.json"
    keys = NationKeys(state.nation_dir(nation), nation)
    new_state, cosigned = tlog.cosign(
        note, _load_state(path), keys.custodian_signer(), nation, int(time.time())
    )
    _save_state(path, new_state)
    return cosigned


@dataclass(frozen=True)
class CustodyVerification:
    """Outcome of :func:`verify_custody`."""

    report: VerifyReport
    checkpoint_size: int
    cosigners: tuple[str, ...]
    previous_size: int | None


def verify_custody(
    state: StateDir,
    *,
    officer: str | None = None,
    require_cosigners: tuple[str, ...] = (),
) -> CustodyVerification:
    """Verify the custody log from the officer's trusted checkpoint; then trust it.

    (0) load the officer's trusted checkpoint (none: trust on first use);
    (1) take the latest published checkpoint and verify the log's signature and
        the cosignatures of every nation in ``require_cosigners``;
    (2) verify every entry's signature, chain link and stored columns (damage is
        reported at the first bad index);
    (3) recompute the Merkle tree over the stored entries: it must hold at least the
        checkpoint's entries and its root must match the checkpoint;
    (4) check the checkpoint extends the trusted one (rollback, split view and
        inconsistent pairs are refused with both signed notes as evidence);
    (5) store the checkpoint as the officer's new trusted one.

    Raises
    ------
    CheckpointError
        No checkpoint, a bad signature, or a required cosignature missing.
    RollbackError, SplitViewError, ConsistencyError
        Step (4); the trusted state is unchanged.
    LedgerVerificationError
        Step (2) or (3), naming the first bad entry.
    """
    trusted_path = (
        state.nation_dir(officer) / "officer-checkpoint.json"
        if officer
        else state.root / "officer-checkpoint.json"
    )
    trusted = _load_state(trusted_path)  # (0)
    tlog = open_tlog(state)
    note = tlog.latest()
    if note is None:
        raise ConfigError(
            "the log has no checkpoint yet (run: sovereign custody checkpoint)"
        )
    witnesses = witness_verifiers(state)
    unknown = [n for n in require_cosigners if n not in witnesses]
    if unknown:
        raise ConfigError(
            f"unknown cosigner nation(s) {', '.join(unknown)}",
            field="--require-cosigners",
        )
    verified = open_note(
        note,
        [tlog.verifier(), *witnesses.values()],  # (1)
        required=[
            tlog.verifier().name,
            *(witness_key_name(n) for n in require_cosigners),
        ],
        origin=trusted.origin if trusted else tlog.origin,
    )
    cp = verified.checkpoint
    report = verify_log(CustodyLog(state.custody_db), trusted_keys(state))  # (2)
    tree = tlog.tree()  # (3)
    if tree.size < cp.size:
        from orchestrator.errors import LedgerVerificationError

        raise LedgerVerificationError(
            f"log holds {tree.size} entries but its checkpoint covers {cp.size}",
            index=tree.size,
            source=str(state.custody_db),
        )
    if tree.root(cp.size) != cp.root:
        raise IntegrityError(
            f"stored entries do not hash to the checkpoint root at size {cp.size}",
            source=str(state.custody_db),
        )
    if trusted is not None:  # (4)
        proof = (
            tree.consistency_proof(trusted.size, cp.size)
            if 0 < trusted.size < cp.size <= tree.size
            else []
        )
        check_extends(trusted, cp, note, proof)
    _save_state(trusted_path, WitnessState(cp.origin, cp.size, cp.root, note))  # (5)
    cosigners = tuple(
        sorted(code for code, v in witnesses.items() if v.name in verified.verified)
    )
    return CustodyVerification(
        report=report,
        checkpoint_size=cp.size,
        cosigners=cosigners,
        previous_size=trusted.size if trusted else None,
    )


def _summary(entry: SignedEntry) -> dict[str, Any]:
    return {
        "index": entry.seq,
        "kind": entry.event.kind,
        "actor": entry.event.actor,
        "time": entry.event.time,
        "body": dict(entry.event.body),
    }


def trace_model(state: StateDir, model_id: str) -> dict[str, Any]:
    """Return the lineage of a model from the custody log.

    Returns
    -------
    dict
        ``model`` (its ``model.sealed`` event), ``job`` (the job's events in log
        order: request, decisions, releases, tasks, completion) and ``datasets``
        (each input's ``dataset.sealed`` events).

    Raises
    ------
    NotFound
        If no such model is registered.
    """
    registry = Registry(state.registry_db)
    record = registry.model(model_id)
    log = CustodyLog(state.custody_db)
    lineage = record.lineage or {}
    job_id = str(lineage.get("job_id", record.job_id))
    datasets = []
    for item in lineage.get("datasets", []):
        ds_id = item["dataset_id"]
        datasets.append(
            {
                "dataset_id": ds_id,
                "name": registry.dataset(ds_id).name,
                "events": [
                    _summary(e) for e in log.find("dataset.sealed", dataset_id=ds_id)
                ],
            }
        )
    return {
        "model": {
            "id": model_id,
            "label": record.label,
            "sealed_digest": record.sealed_digest,
            "events": [
                _summary(e) for e in log.find("model.sealed", model_id=model_id)
            ],
        },
        "job": {"id": job_id, "events": [_summary(e) for e in log.find(job_id=job_id)]},
        "datasets": datasets,
    }
