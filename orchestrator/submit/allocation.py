"""Allocation accounting at the orchestrator: what a finished job used.

When a job ends, the orchestrator totals the GPU-hours its tasks actually used
(``gpus x wall seconds / 3600`` per attempt, from the executor's task records:
:mod:`orchestrator.submit.jobs`), logs ``allocation.recorded`` with the agreements
each owner relied on (from the owners' own ``policy.decided`` entries) and the
calendar quarter, and hands the entry's index to every owner's custodian, which
reads it back from the log and counts it against its agreements' quarterly
thresholds (:func:`orchestrator.nation.usage.accept_allocation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from orchestrator.errors import SovereignError
from orchestrator.protocol.agreements import quarter_of
from orchestrator.submit.context import Orchestrator
from orchestrator.timeutil import system_clock

__all__ = ["record_allocation"]


def record_allocation(orch: Orchestrator, job_id: str, owners: Sequence[str], *,
                      day: date | None = None) -> dict[str, Any]:
    """Log ``allocation.recorded`` for a finished job, report it to ``owners``'
    custodians, and return its body (with ``reported_to``: the owners whose
    custodian journaled it).

    GPU-hours are the job's actual use from its task records (every attempt,
    retries included); the agreements are those named by the owners' permitting
    ``policy.decided`` entries for the job (joint agreements included).
    """
    from orchestrator.submit.jobs import job_view

    view = job_view(orch, job_id)
    agreements: set[str] = set()
    for entry in orch.log.find("policy.decided", job_id=job_id):
        if not entry.event.actor.startswith("custodian:"):
            continue
        decision = entry.event.body.get("decision", {})
        if decision.get("outcome") == "permit":
            if decision.get("agreement_id"):
                agreements.add(str(decision["agreement_id"]))
            agreements.update(str(a) for a in decision.get("joint_agreement_ids", []))
    body = {"job_id": job_id, "gpu_hours": float(view["gpu_hours"]),
            "quarter": quarter_of(day or system_clock().date()),
            "agreement_ids": sorted(agreements), "tasks": len(view["tasks"])}
    entry = orch.record("allocation.recorded", body)
    reported = []
    for owner in owners:
        try:
            orch.connect(owner).accept_allocation(entry.seq)
            reported.append(owner)
        except SovereignError:
            continue  # that custodian counts less use: logged, it can re-read
    return {**body, "reported_to": reported}
