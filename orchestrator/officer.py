"""Sovereignty officers' tools over the custody log: verify and trace.

Keys come from the registry (nations' custodian and officer keys, sites' keys,
the orchestrator's key); each may sign only for its own actor name.
"""

from __future__ import annotations

from typing import Any

from orchestrator.canonical import b64d
from orchestrator.crypto import key_id_of
from orchestrator.ledger import (
    CustodyLog,
    SignedEntry,
    TrustedKey,
    VerifyReport,
    verify_log,
)
from orchestrator.registry import Registry
from orchestrator.state import StateDir
from orchestrator.submit.registration import ORCHESTRATOR_ACTOR, orchestrator_signer


def trusted_keys(state: StateDir) -> dict[str, TrustedKey]:
    """Trusted signing keys by key id, with the actor each may sign for."""
    registry = Registry(state.registry_db)
    keys: dict[str, TrustedKey] = {}

    def add(public_b64: str, actor: str) -> None:
        public = b64d(public_b64, what=f"public key of {actor}")
        keys[key_id_of(public)] = TrustedKey(
            key_id=key_id_of(public), public_key=public, actors=frozenset({actor})
        )

    for nation in registry.nations():
        add(nation.custodian_public, f"custodian:{nation.code}")
        add(nation.officer_public, f"officer:{nation.code}")
    for site in registry.sites():
        add(site.signing_public, f"site:{site.name}")
    if state.orchestrator_key.exists():
        orch = orchestrator_signer(state)
        keys[orch.key_id] = TrustedKey(
            key_id=orch.key_id,
            public_key=orch.public_bytes(),
            actors=frozenset({ORCHESTRATOR_ACTOR}),
        )
    return keys


def verify_custody(state: StateDir) -> VerifyReport:
    """Verify the whole custody log (signatures, chain, raw rows).

    Raises
    ------
    LedgerVerificationError
        Naming the first bad entry's index.
    """
    return verify_log(CustodyLog(state.custody_db), trusted_keys(state))


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
    sealed = log.find("model.sealed", model_id=model_id)
    job_events = [e for e in log.find(job_id=job_id)]
    datasets = []
    for item in lineage.get("datasets", []):
        ds_id = item["dataset_id"]
        events = log.find("dataset.sealed", dataset_id=ds_id)
        datasets.append(
            {
                "dataset_id": ds_id,
                "name": registry.dataset(ds_id).name,
                "events": [_summary(e) for e in events],
            }
        )
    return {
        "model": {
            "id": model_id,
            "label": record.label,
            "sealed_digest": record.sealed_digest,
            "events": [_summary(e) for e in sealed],
        },
        "job": {"id": job_id, "events": [_summary(e) for e in job_events]},
        "datasets": datasets,
    }
