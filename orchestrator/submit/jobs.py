"""The job view: one state per task attempt, resources used, custody event links.

Every attempt of every task gets one row in the registry's ``tasks`` table
(:class:`orchestrator.submit.registry.TaskRecord`), derived from the custody log by
:func:`sync_tasks`: the pipeline calls it as each result or failure arrives and
when the job ends, and the ``sovereign jobs`` commands call it again (a fallback
for a job whose driver died). States come from one enum, :class:`TaskState`, into
which Parsl's task states (:data:`PARSL_TASK_STATES`) and the batch schedulers' job
states (Parsl ``JobState``, :data:`SCHEDULER_STATES`) are translated:

=============  ==============================================================
PENDING        planned, no attempt started yet (Parsl pending/launched;
               scheduler PENDING/HELD)
RUNNING        ``task.started`` logged, no end yet
COMPLETED      ``task.completed`` logged
FAILED         ``task.failed`` (not a refusal), or the job ended without an end
DENIED         a custodian refused: ``key.denied`` for the attempt, a
               ``PolicyDenied`` failure, or the job-level decision denied it
RETRIED        a failed (or lost) attempt followed by a later attempt of the
               same task (the pipeline's retry handler logs ``task.retried``)
=============  ==============================================================

Resources: ``wall_seconds`` from the attempt's ``task.started`` to its end event;
``gpus`` = 0 on a CPU site (``gpus_per_node`` 0), else the workflow's
``gpus_per_task`` (or 1 when the executor pins one accelerator per worker);
``gpu_hours = gpus * wall_seconds / 3600``.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Any

from orchestrator.protocol.log import LogReader
from orchestrator.submit.context import Orchestrator
from orchestrator.submit.progress import ProgressSink
from orchestrator.submit.registry import JobRecord, Registry, TaskRecord
from orchestrator.timeutil import parse_rfc3339

__all__ = [
    "PARSL_TASK_STATES",
    "SCHEDULER_STATES",
    "RecordingSink",
    "TaskState",
    "from_parsl",
    "job_view",
    "sync_tasks",
]


class TaskState(StrEnum):
    """The one state vocabulary of the job view (see the module doc)."""

    PENDING = "PENDING"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    DENIED = "DENIED"
    RETRIED = "RETRIED"


#: Parsl ``parsl.dataflow.states.States`` names -> :class:`TaskState`.
PARSL_TASK_STATES: dict[str, TaskState] = {
    "unsched": TaskState.PENDING,
    "pending": TaskState.PENDING,
    "launched": TaskState.PENDING,
    "joining": TaskState.PENDING,
    "running": TaskState.RUNNING,
    "running_ended": TaskState.RUNNING,
    "exec_done": TaskState.COMPLETED,
    "memo_done": TaskState.COMPLETED,
    "failed": TaskState.FAILED,
    "dep_fail": TaskState.FAILED,
    "fail_retryable": TaskState.RETRIED,
}

#: Parsl ``parsl.jobs.states.JobState`` (batch scheduler) names -> :class:`TaskState`.
SCHEDULER_STATES: dict[str, TaskState] = {
    "UNKNOWN": TaskState.PENDING,
    "PENDING": TaskState.PENDING,
    "HELD": TaskState.PENDING,
    "RUNNING": TaskState.RUNNING,
    "COMPLETED": TaskState.COMPLETED,
    "SCALED_IN": TaskState.COMPLETED,
    "CANCELLED": TaskState.FAILED,
    "FAILED": TaskState.FAILED,
    "TIMEOUT": TaskState.FAILED,
    "MISSING": TaskState.FAILED,
}

_REFUSALS = frozenset({"PolicyDenied"})
_RANK_SUFFIX = re.compile(r"-r\d+$")


def from_parsl(state: object) -> TaskState:
    """Translate a Parsl task state or scheduler ``JobState`` (enum or name).

    Raises
    ------
    ValueError
        For a name neither table knows.
    """
    name = str(getattr(state, "name", state))
    if name in PARSL_TASK_STATES:
        return PARSL_TASK_STATES[name]
    if name.upper() in SCHEDULER_STATES:
        return SCHEDULER_STATES[name.upper()]
    raise ValueError(f"unknown Parsl state {name!r}")


def _site_gpus(registry: Registry, site: str, gpus_per_task: int) -> int:
    from orchestrator.submit.selection import offer_of
    from orchestrator.submit.siteconfig import HtexSection, SiteConfig

    try:
        rec = registry.site(site)
    except Exception:  # an unknown site counts as CPU-only
        return 0
    config = SiteConfig.model_validate(rec.config)
    offer = offer_of(rec.name, rec.operator_nation, rec.accreditation, config)
    if offer.gpus_per_node == 0:
        return 0
    if gpus_per_task:
        return min(gpus_per_task, offer.gpus_per_node)
    pins = isinstance(config.executor, HtexSection) and bool(
        config.executor.available_accelerators
    )
    return 1 if pins else 0


def _seconds(start: str | None, end: str | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (parse_rfc3339(end) - parse_rfc3339(start)).total_seconds())


def sync_tasks(state: Orchestrator, job_id: str) -> list[TaskRecord]:
    """Derive every attempt of ``job_id`` from the custody log; upsert and return.

    Raises
    ------
    NotFound
        If the job is not registered.
    """
    registry = Registry(state.registry_db)
    job = registry.job(job_id)
    gpus_per_task = int(job.request.get("gpus_per_task", 0))
    attempts: dict[str, dict[str, Any]] = {}
    log = state.log
    sealed = [  # model.sealed names its job inside its lineage
        e
        for e in log.find("model.sealed")
        if e.event.body.get("lineage", {}).get("job_id") == job_id
    ]
    entries = sorted(log.find(None, job_id=job_id) + sealed, key=lambda e: e.seq)
    for entry in entries:
        body, kind = entry.event.body, entry.event.kind
        attempt_id = body.get("attempt_id")
        if kind == "model.sealed":
            attempt_id = body.get("lineage", {}).get("attempt_id")
        if not isinstance(attempt_id, str):
            continue
        # A multi-rank attempt (<attempt>-r<rank>, mpi_runner) is one row: rank 0's.
        attempt_id = _RANK_SUFFIX.sub("-r0", attempt_id)
        row = attempts.setdefault(
            attempt_id,
            {
                "task": body.get("task", ""),
                "site": body.get("site", ""),
                "events": [],
                "detail": {},
                "started": None,
                "finished": None,
                "state": TaskState.RUNNING,
                "seq": entry.seq,
                "denied": False,
            },
        )
        row["events"].append(entry.seq)
        if kind == "task.started":
            row.update(task=body["task"], site=body["site"], started=entry.event.time)
            row["seq"] = entry.seq
            for key in ("slurm_job_id", "pbs_job_id", "pid"):
                if body.get(key) is not None:
                    row["detail"][key] = body[key]
        elif kind == "key.denied":
            row["denied"] = True
        elif kind == "task.completed":
            row.update(state=TaskState.COMPLETED, finished=entry.event.time)
        elif kind == "task.failed":
            refused = row["denied"] or body.get("error") in _REFUSALS
            row.update(
                state=TaskState.DENIED if refused else TaskState.FAILED,
                finished=entry.event.time,
            )
            row["detail"]["error"] = f"{body.get('error')}: {body.get('message', '')}"
    latest: dict[str, int] = {}
    for row in attempts.values():
        latest[row["task"]] = max(latest.get(row["task"], -1), row["seq"])
    gpus_cache: dict[str, int] = {}
    records = []
    for attempt_id, row in attempts.items():
        st: TaskState = row["state"]
        lost = st in (TaskState.FAILED, TaskState.RUNNING)  # failed, or worker lost
        if lost and row["seq"] < latest[row["task"]]:
            st = TaskState.RETRIED
        if st is TaskState.RUNNING and job.state != "submitted":
            st = TaskState.FAILED
            row["detail"]["error"] = f"job {job.state} with no end for this attempt"
        wall = _seconds(row["started"], row["finished"])
        if row["site"] not in gpus_cache:
            gpus_cache[row["site"]] = _site_gpus(registry, row["site"], gpus_per_task)
        gpus = gpus_cache[row["site"]]
        rec = TaskRecord(
            job_id=job_id,
            task=row["task"],
            attempt_id=attempt_id,
            site=row["site"],
            state=st.value,
            started=row["started"],
            finished=row["finished"],
            wall_seconds=wall,
            gpus=gpus,
            gpu_hours=round(gpus * (wall or 0.0) / 3600.0, 6),
            events=sorted(row["events"]),
            detail=row["detail"],
        )
        registry.upsert_task(rec)
        records.append(rec)
    return records


def _planned_state(job: JobRecord, log: LogReader) -> TaskState:
    """The state of a planned task that has no attempt."""
    if job.state == "submitted":
        return TaskState.PENDING
    decided = log.find("policy.decided", job_id=job.id)
    if decided and all(
        e.event.body.get("decision", {}).get("outcome") != "permit" for e in decided
    ):
        return TaskState.DENIED
    return TaskState.FAILED if job.state == "failed" else TaskState.PENDING


def job_view(state: Orchestrator, job_id: str) -> dict[str, Any]:
    """The job with one entry per planned task, each with its attempts (JSON-ready).

    Raises
    ------
    NotFound
        If the job is not registered.
    """
    registry = Registry(state.registry_db)
    records = sync_tasks(state, job_id)
    job = registry.job(job_id)
    log = state.log
    planned = list(job.request.get("tasks", []))
    for rec in records:
        if rec.task not in planned:
            planned.append(rec.task)
    decisions = [
        {
            "seq": e.seq,
            "owner": e.event.body.get("owner"),
            "site": e.event.body.get("site"),
            "outcome": e.event.body.get("decision", {}).get("outcome"),
        }
        for e in log.find("policy.decided", job_id=job_id)
    ]
    tasks = []
    for name in planned:
        mine = [r for r in records if r.task == name]
        last = mine[-1] if mine else None
        tasks.append(
            {
                "task": name,
                "state": last.state if last else _planned_state(job, log).value,
                "site": last.site if last else None,
                "attempts": [
                    {
                        "attempt_id": r.attempt_id,
                        "site": r.site,
                        "state": r.state,
                        "started": r.started,
                        "finished": r.finished,
                        "wall_seconds": r.wall_seconds,
                        "gpus": r.gpus,
                        "gpu_hours": r.gpu_hours,
                        "custody_events": r.events,
                        **r.detail,
                    }
                    for r in mine
                ],
            }
        )
    counts: dict[str, int] = {}
    for t in tasks:
        counts[t["state"]] = counts.get(t["state"], 0) + 1
    return {
        "job_id": job.id,
        "workflow": job.workflow,
        "sites": job.site.split(","),
        "state": job.state,
        "created": job.created,
        "finished": job.finished,
        "task_states": counts,
        "wall_seconds": round(sum(r.wall_seconds or 0.0 for r in records), 3),
        "gpu_hours": round(sum(r.gpu_hours for r in records), 6),
        "policy_decisions": decisions,
        "tasks": tasks,
    }


class RecordingSink(ProgressSink):
    """Forwards progress and refreshes the job's ``tasks`` rows as results arrive.

    A refresh re-derives the job's attempts from its custody events, so it runs at
    most once every ``every_s`` seconds (the pipeline refreshes once more at the end):
    a job of N tasks costs O(N) refreshes of O(N) events otherwise.
    """

    def __init__(self, inner: ProgressSink, state: Orchestrator, job_id: str,
                 every_s: float = 5.0) -> None:
        self.inner, self.state, self.job_id = inner, state, job_id
        self.every_s = every_s
        self._last = float("-inf")

    def stage(self, message: str) -> None:
        """Forward a stage message."""
        self.inner.stage(message)

    def tasks_planned(self, names: list[str]) -> None:
        """Forward the planned task names."""
        self.inner.tasks_planned(names)

    def task_done(self, name: str, metrics: dict[str, float]) -> None:
        """Record the job's attempts so far (throttled), then forward."""
        import time

        if time.monotonic() - self._last >= self.every_s:
            sync_tasks(self.state, self.job_id)
            self._last = time.monotonic()
        self.inner.task_done(name, metrics)
