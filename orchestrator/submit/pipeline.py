"""Submitting a workflow: the one module that sequences a job, top to bottom.

(1) load and measure the workflow; resolve its dataset and site;
(2) register the job and log ``request.submitted`` (orchestrator-signed);
(3) ask every owner's custodian for its job-level decision (recorded by it; a
    denial stops here with every reason; a case-by-case area or an oversight hold
    leaves the job waiting for officers, and :func:`resume` continues it);
(4) dispatch one enclave task per workflow task through Parsl
    (:mod:`orchestrator.submit.dispatch`), the tasks reaching the log and the
    custodians themselves with what they are handed;
(5) store each sealed model returned, register it and log ``model.sealed`` with
    its lineage and the site-signed provenance; log ``allocation.recorded`` (the
    GPU-hours used) and hand it to every owner's custodian; log
    ``job.completed`` (or ``job.failed``, and every owner's custodian cancels
    the job's pending approvals); the site's checkpoints of the job are removed.

Security failures inside tasks are never retried.
"""

from __future__ import annotations

import hashlib
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.canonical import digest_of
from orchestrator.crypto import atomic_write_bytes
from orchestrator.errors import (
    ConfigError,
    DecisionPending,
    IntegrityError,
    JobInterrupted,
    SovereignError,
)
from orchestrator.labels import Label
from orchestrator.protocol.provenance import statement_digest
from orchestrator.protocol.release import JobRequest
from orchestrator.submit import placement as place
from orchestrator.submit.context import Orchestrator
from orchestrator.submit.progress import ProgressSink
from orchestrator.submit.registry import JobRecord, Registry, SealedObjectRecord
from orchestrator.submit.siteconfig import SiteConfig
from orchestrator.submit.workflow import Workflow, load_workflow
from orchestrator.timeutil import rfc3339, system_clock

__all__ = ["JobResult", "ProgressSink", "resume", "submit"]


@dataclass
class JobResult:
    """What a finished job reports back to the researcher."""

    job_id: str
    tasks: dict[str, dict[str, float]] = field(default_factory=dict)
    summary: dict[str, float] = field(default_factory=dict)
    model_ids: list[str] = field(default_factory=list)
    first_result_s: float = 0.0
    elapsed_s: float = 0.0
    sites: list[str] = field(default_factory=list)
    excluded: dict[str, list[str]] = field(default_factory=dict)
    selection: str = ""


def _summarize(workflow: Workflow, results: dict[str, dict[str, float]]
               ) -> dict[str, Any]:
    module = workflow.module()
    summarize: Callable[[dict[str, dict[str, float]]], dict[str, Any]] | None = getattr(
        module, "summarize", None)
    return dict(summarize(results)) if summarize else {}


def submit(orch: Orchestrator, workflow_path: Path, site_name: str | None = None, *,
           sites: list[str] | None = None,
           progress: ProgressSink | None = None) -> JobResult:
    """Run the workflow at ``workflow_path`` on site ``site_name``; see module doc.

    ``sites``: several (:mod:`~orchestrator.submit.placement`); neither: the best.

    Raises
    ------
    ConfigError
        Malformed workflow (file and field named).
    NotFound
        Unknown site or dataset.
    DecisionPending
        An owner's officer must approve or acknowledge first: the job is left
        ``pending-approval`` or ``held`` (``job.pending`` logged).
    PolicyDenied, AttestationError, IntegrityError
        A custodian refused, or verification failed (never retried).
    DispatchError
        A task failed for another reason.
    """
    clock0 = time.monotonic()
    registry = Registry(orch.registry_db)
    workflow = load_workflow(workflow_path)  # (1)
    wf = workflow.manifest
    names, selection = place.choose_sites(orch, workflow_path, site_name, sites)
    site, *_ = [registry.site(n) for n in names]  # NotFound before any logging
    dataset = registry.dataset(wf.workflow.dataset)
    task_names = workflow.tasks()
    job_id = "job-" + uuid.uuid4().hex[:16]
    request = {
        "dataset_ids": [dataset.id], "priority_area": wf.workflow.priority_area,
        "gpu_hours": wf.resources.gpu_hours,
        "gpus_per_task": wf.resources.gpus_per_task, "workflow": wf.workflow.name,
        "workflow_digest": digest_of(wf.model_dump(mode="json")),
        "workflow_path": str(Path(workflow_path).resolve()), "tasks": task_names}
    registry.add_job(JobRecord(
        id=job_id, workflow=wf.workflow.name, site=",".join(names), request=request,
        measurement=workflow.measurement, state="submitted", summary={},
        created=rfc3339(system_clock()), finished=None))  # (2)
    orch.record("request.submitted", {
        "job_id": job_id, "site": site.name, "sites": names,
        "code_measurement": workflow.measurement, **request})
    return _admit_and_run(orch, workflow, job_id, names, selection, progress, clock0)


def resume(orch: Orchestrator, job_id: str, *,
           progress: ProgressSink | None = None) -> JobResult:
    """Continue a job left ``pending-approval`` or ``held`` (logs ``job.resumed``).

    Every owner's custodian decides again, now finding the officers' delivered
    approvals or acknowledgements (each approval is consumed: single use).

    Raises
    ------
    NotFound
        Unknown job.
    ConfigError
        The job is not waiting, or its workflow file changed since submission.
    DecisionPending, PolicyDenied, ...
        As :func:`submit`.
    """
    clock0 = time.monotonic()
    registry = Registry(orch.registry_db)
    job = registry.job(job_id)
    if job.state not in ("pending-approval", "held", "interrupted"):
        raise ConfigError(f"job {job_id} is {job.state}, not waiting for officers "
                          "or interrupted", source=job_id)
    path = Path(str(job.request.get("workflow_path", "")))
    workflow = load_workflow(path)
    digest = digest_of(workflow.manifest.model_dump(mode="json"))
    if (workflow.measurement != job.measurement
            or digest != job.request.get("workflow_digest")):
        raise ConfigError(
            f"workflow {path} changed since job {job_id} was submitted (code "
            "measurement or manifest differ); submit it again", source=str(path))
    done = dict(job.summary.get("tasks", {})) if job.state == "interrupted" else {}
    models = list(job.summary.get("models", [])) if job.state == "interrupted" else []
    registry.set_job_state(job_id, "submitted")
    orch.record("job.resumed", {"job_id": job_id, "tasks_done": sorted(done)})
    names = [n for n in job.site.split(",") if n]
    return _admit_and_run(orch, workflow, job_id, names, "", progress, clock0,
                          done=done, done_models=models)


def _fail(orch: Orchestrator, job_id: str, owners: list[str],
          exc: BaseException) -> None:
    from orchestrator.submit.jobs import sync_tasks

    Registry(orch.registry_db).finish_job(job_id, "failed", {"error": str(exc)},
                                          rfc3339(system_clock()))
    orch.record("job.failed", {"job_id": job_id, "error": type(exc).__name__,
                               "message": str(exc)[:500]})
    for owner in owners:  # each owner's custodian cancels its open requests
        try:
            orch.connect(owner).cancel_job(job_id, f"job {job_id} failed")
        except SovereignError:
            continue  # the request stays open; the officer sees the failed job
    sync_tasks(orch, job_id)


def _admit(orch: Orchestrator, workflow: Workflow, job_id: str,
           names: list[str], dataset: SealedObjectRecord, owners: list[str]
           ) -> tuple[list[str], dict[str, list[str]], str]:
    """Step (3): every owner decides for every site."""
    wf = workflow.manifest
    permitted, excluded, suites = place.gate_sites(
        lambda owner, name: orch.connect(owner).decide(JobRequest(
            job_id=job_id, dataset_id=dataset.id, site=name,
            priority_area=wf.workflow.priority_area,
            gpu_hours=wf.resources.gpu_hours,
            code_measurement=workflow.measurement)),
        names, owners)
    if len(suites) != 1:  # each owner names the HPKE suite of its agreement
        raise ConfigError(
            f"owners' agreements require different HPKE suites: {sorted(suites)}",
            source=job_id)
    return permitted, excluded, suites.pop()


def _interrupt(orch: Orchestrator, registry: Registry, job_id: str,
               exc: JobInterrupted, result: JobResult) -> None:
    """Keep what the finished tasks gave (their metrics, their sealed models
    already stored) and leave the job resumable; the owners' admission stands."""
    from orchestrator.submit.jobs import sync_tasks

    registry.finish_job(job_id, "interrupted", {
        "tasks": result.tasks, "models": result.model_ids, "failed": exc.failed,
        "error": exc.message[:500]}, rfc3339(system_clock()))
    orch.record("job.interrupted", {"job_id": job_id, "failed": exc.failed,
                                    "tasks_done": sorted(result.tasks),
                                    "message": exc.message[:500]})
    sync_tasks(orch, job_id)


def _admit_and_run(orch: Orchestrator, workflow: Workflow, job_id: str,
                   names: list[str], selection: str, progress: ProgressSink | None,
                   clock0: float, *, done: dict[str, dict[str, float]] | None = None,
                   done_models: list[str] | None = None) -> JobResult:
    """Steps (3)-(5) for a registered job; ``done`` (task -> metrics) and
    ``done_models`` are what an interrupted job's finished tasks gave, which a
    resumed run does not run again."""
    from orchestrator.submit.allocation import record_allocation
    from orchestrator.submit.dispatch import dispatch
    from orchestrator.submit.jobs import RecordingSink, sync_tasks
    from orchestrator.submit.retry import logged_retry_handler

    sink = progress or ProgressSink()
    registry = Registry(orch.registry_db)
    dataset = registry.dataset(workflow.manifest.workflow.dataset)
    owners = sorted(Label.from_json(dataset.label).owners)
    sink.stage(selection or "policy decisions by each owner's custodian")
    try:
        permitted, excluded, hpke_suite = _admit(orch, workflow, job_id, names,
                                                 dataset, owners)
    except DecisionPending as exc:
        exc.source = job_id  # the CLI names the job to resume
        waiting = "held" if exc.outcome == "held" else "pending-approval"
        registry.set_job_state(job_id, waiting)
        orch.record("job.pending", {"job_id": job_id, "state": waiting,
                                    "message": exc.message[:500],
                                    "reasons": exc.reasons})
        raise
    except SovereignError as exc:
        _fail(orch, job_id, owners, exc)
        raise
    registry.set_job_site(job_id, ",".join(permitted))
    result = JobResult(job_id, sites=permitted, excluded=excluded, selection=selection)
    result.tasks.update(done or {})
    result.model_ids.extend(done_models or [])
    task_names = [t for t in workflow.tasks() if t not in result.tasks]
    placed = place.assign(task_names, permitted)  # task -> site, round-robin
    configs = {n: SiteConfig.model_validate(registry.site(n).config)
               for n in permitted}
    sink = RecordingSink(sink, orch, job_id)  # the tasks table, as results arrive
    sink.stage(f"dispatching {len(task_names)} enclave tasks to {', '.join(permitted)}")
    sink.tasks_planned(task_names)

    def arrived(name: str, out: dict[str, Any]) -> None:
        if not result.first_result_s:
            result.first_result_s = time.monotonic() - clock0
        sink.task_done(name, out["metrics"])

    try:
        with orch.task_endpoints() as endpoints:
            outputs = {} if not task_names else dispatch(  # (4)
                orch, workflow, job_id, dataset, task_names,
                {t: configs[s] for t, s in placed.items()}, hpke_suite, endpoints,
                on_result=arrived,
                retry_handler=lambda retries: logged_retry_handler(orch, retries))
        _keep(orch, registry, job_id, placed, dataset, workflow, outputs, result)
    except JobInterrupted as exc:
        _keep(orch, registry, job_id, placed, dataset, workflow, exc.completed, result)
        _interrupt(orch, registry, job_id, exc, result)
        raise
    except BaseException as exc:
        _fail(orch, job_id, owners, exc)
        raise
    result.summary = _summarize(workflow, result.tasks)
    registry.finish_job(job_id, "completed", result.summary, rfc3339(system_clock()))
    sync_tasks(orch, job_id)
    record_allocation(orch, job_id, owners)  # GPU-hours per agreement and quarter
    orch.record("job.completed", {"job_id": job_id, "summary": result.summary,
                                  "models": result.model_ids})
    orch.log.publish()  # a checkpoint covering job.completed
    result.elapsed_s = time.monotonic() - clock0
    return result


def _keep(orch: Orchestrator, registry: Registry, job_id: str, placed: dict[str, str],
          dataset: SealedObjectRecord, workflow: Workflow,
          outputs: dict[str, dict[str, Any]], result: JobResult) -> None:
    """Step (5) for the tasks in ``outputs``, in workflow order."""
    for name in [t for t in workflow.tasks() if t in outputs]:
        out = outputs[name]
        result.tasks[name] = out["metrics"]
        if "model" in out:
            result.model_ids.append(_store_model(
                orch, registry, job_id, placed[name], dataset, out,
                workflow.measurement))


def _store_model(orch: Orchestrator, registry: Registry, job_id: str, site: str,
                 dataset: SealedObjectRecord, out: dict[str, Any],
                 measurement: str) -> str:
    model = out["model"]
    object_id = model["object_id"]
    provenance = model.get("provenance")
    sealed_digest = "sha256:" + hashlib.sha256(model["ciphertext"]).hexdigest()
    if provenance is None:
        raise IntegrityError(f"model {object_id} came back without provenance",
                             source=job_id)
    from orchestrator.protocol.provenance import subject_digest

    if "sha256:" + subject_digest(_statement(provenance), object_id) != sealed_digest:
        raise IntegrityError(f"model {object_id}'s ciphertext is not the one its "
                             "site-signed provenance names", source=job_id)
    target = orch.models_dir / f"{object_id}.sealed"
    atomic_write_bytes(target, model["ciphertext"], mode=0o600)
    lineage = {
        "job_id": job_id, "site": site, "task": out["task"],
        "attempt_id": out["attempt_id"], "code_measurement": measurement,
        "grants": out["grants"],
        "datasets": [{"dataset_id": dataset.id, "sealed_digest": dataset.sealed_digest,
                      "manifest_digest": digest_of(dataset.manifest)}],
    }
    registry.add_model(SealedObjectRecord(
        id=object_id, name=object_id, label=model["label"],
        manifest=model["manifest"], object_path=str(target),
        sealed_digest=sealed_digest, wrapped_keys=model["wrapped_keys"],
        created=rfc3339(system_clock()), job_id=job_id, metrics=out["metrics"],
        lineage={**lineage, "provenance": provenance}))
    orch.record("model.sealed", {
        "model_id": object_id, "label": model["label"],
        "sealed_digest": sealed_digest,
        "manifest_digest": digest_of(model["manifest"]),
        "wrapped_for": sorted(model["wrapped_keys"]), "lineage": lineage,
        "ciphertext_bytes": len(model["ciphertext"]),
        "provenance_digest": statement_digest(provenance),
        "provenance": provenance})
    return str(object_id)


def _statement(envelope: dict[str, Any]) -> dict[str, Any]:
    """The in-toto statement inside a DSSE envelope (not verified here: the
    officer verifies it against the site's enrolled key)."""
    import base64
    import json

    statement: dict[str, Any] = json.loads(base64.b64decode(envelope["payload"]))
    return statement
