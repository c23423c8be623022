"""Tracing a model to its data through the custody log's public entries."""

from __future__ import annotations

from typing import Any

from orchestrator.errors import NotFound
from orchestrator.protocol.log import LogReader
from orchestrator.tlog.events import SignedEntry

__all__ = ["trace_model"]


def _summary(entry: SignedEntry) -> dict[str, Any]:
    return {
        "index": entry.seq,
        "kind": entry.event.kind,
        "actor": entry.event.actor,
        "time": entry.event.time,
        "body": dict(entry.event.body),
    }


def trace_model(log: LogReader, model_id: str) -> dict[str, Any]:
    """Return the lineage of a model from the custody log (its read API).

    Returns
    -------
    dict
        ``model`` (its ``model.sealed`` event), ``job`` (the job's events in log
        order: request, decisions, releases, tasks, completion) and ``datasets``
        (each input's ``dataset.sealed`` events).

    Raises
    ------
    NotFound
        If the log has no such model.
    """
    sealed = log.find("model.sealed", model_id=model_id)
    if not sealed:
        raise NotFound(f"the custody log has no model {model_id}")
    body = sealed[-1].event.body
    lineage = body.get("lineage") or {}
    job_id = str(lineage.get("job_id", ""))
    datasets = []
    for item in lineage.get("datasets", []):
        ds_id = item["dataset_id"]
        found = log.find("dataset.sealed", dataset_id=ds_id)
        datasets.append({
            "dataset_id": ds_id,
            "name": str(found[0].event.body.get("name")) if found else ds_id,
            "events": [_summary(e) for e in found],
        })
    return {
        "model": {
            "id": model_id,
            "label": body.get("label"),
            "sealed_digest": body.get("sealed_digest"),
            "events": [
                _summary(e) for e in log.find("model.sealed", model_id=model_id)
            ],
        },
        "job": {"id": job_id, "events": [_summary(e) for e in log.find(job_id=job_id)]},
        "datasets": datasets,
    }
