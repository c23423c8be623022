"""Submitting a workflow: the one module that sequences a job, top to bottom.

(1) load and measure the workflow; resolve its dataset and site;
(2) register the job and log ``request.submitted`` (orchestrator-signed);
(3) ask every owner's custodian for its job-level decision (logged by it; a
    denial stops here with every reason; a case-by-case area or an oversight hold
    leaves the job waiting for officers, and :func:`resume` continues it);
(4) render the site into a Parsl ``Config`` and dispatch one enclave task per
    workflow task (:func:`orchestrator.site.runner.enclave_task`);
(5) store each sealed model returned, register it and log ``model.sealed`` with its
    lineage; log ``allocation.recorded`` (GPU-hours used) and ``job.completed``
    (or ``job.failed``, which cancels the job's pending approvals).

Security failures inside tasks are never retried.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.canonical import digest_of
from orchestrator.crypto import atomic_write_bytes
from orchestrator.embedded import custodian_connector
from orchestrator.errors import (
    ConfigError,
    DecisionPending,
    DispatchError,
    SovereignError,
)
from orchestrator.labels import Label
from orchestrator.log.store import CustodyLog
from orchestrator.log.transparency import CheckpointPublisher
from orchestrator.officer import open_tlog
from orchestrator.protocol.provenance import statement_digest
from orchestrator.protocol.release import JobRequest
from orchestrator.registry import JobRecord, Registry, SealedObjectRecord
from orchestrator.state import StateDir
from orchestrator.submit import placement as place
from orchestrator.submit.registration import ORCHESTRATOR_ACTOR, orchestrator_signer
from orchestrator.submit.siteconfig import SiteConfig, to_parsl_config
from orchestrator.submit.workflow import Workflow, load_workflow
from orchestrator.timeutil import rfc3339, system_clock
from orchestrator.tlog.events import CustodyEvent


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


class ProgressSink:
    """Callbacks the CLI implements to show live progress (no-ops by default)."""

    def stage(self, message: str) -> None:
        """A pipeline stage began."""

    def tasks_planned(self, names: list[str]) -> None:
        """The job's tasks are known."""

    def task_done(self, name: str, metrics: dict[str, float]) -> None:
        """One task finished."""


def _summarize(
    workflow: Workflow, results: dict[str, dict[str, float]]
) -> dict[str, Any]:
    module = workflow.module()
    summarize: Callable[[dict[str, dict[str, float]]], dict[str, Any]] | None = getattr(
        module, "summarize", None
    )
    return dict(summarize(results)) if summarize else {}


def submit(
    state: StateDir,
    workflow_path: Path,
    site_name: str | None = None,
    *,
    sites: list[str] | None = None,
    progress: ProgressSink | None = None,
) -> JobResult:
    """Run the workflow at ``workflow_path`` on site ``site_name``; see module doc.

    ``sites``: several (:mod:`~orchestrator.submit.placement`); neither: the best.

    Raises
    ------
    ConfigError
        Malformed workflow (file and field named).
    NotFound
        Unknown site or dataset.
    DecisionPending
        An owner's officer must approve (case-by-case area) or acknowledge an
        oversight notification first: the job is left ``pending-approval`` or
        ``held`` (``job.pending`` logged); :func:`resume` continues it.
    PolicyDenied, AttestationError, IntegrityError
        A custodian refused, or verification failed (logged; never retried).
    DispatchError
        A task failed for another reason.
    """
    import time

    clock0 = time.monotonic()
    registry = Registry(state.registry_db)
    workflow = load_workflow(workflow_path)  # (1)
    wf = workflow.manifest
    names, selection = place.choose_sites(state, workflow_path, site_name, sites)
    site, *_ = [registry.site(n) for n in names]  # NotFound before any logging
    dataset = registry.dataset(wf.workflow.dataset)
    task_names = workflow.tasks()
    job_id = "job-" + uuid.uuid4().hex[:16]
    request = {
        "dataset_ids": [dataset.id],
        "priority_area": wf.workflow.priority_area,
        "gpu_hours": wf.resources.gpu_hours,
        "gpus_per_task": wf.resources.gpus_per_task,
        "workflow": wf.workflow.name,
        "workflow_digest": digest_of(wf.model_dump(mode="json")),
        "workflow_path": str(Path(workflow_path).resolve()),
        "tasks": task_names,
    }
    registry.add_job(
        JobRecord(
            id=job_id,
            workflow=wf.workflow.name,
            site=",".join(names),  # (2)
            request=request,
            measurement=workflow.measurement,
            state="submitted",
            summary={},
            created=rfc3339(system_clock()),
            finished=None,
        )
    )
    CustodyLog(state.custody_db).append(
        CustodyEvent.create(
            "request.submitted",
            ORCHESTRATOR_ACTOR,
            {
                "job_id": job_id,
                "site": site.name,
                "sites": names,
                "code_measurement": workflow.measurement,
                **request,
            },
        ),
        orchestrator_signer(state),
    )
    return _admit_and_run(state, workflow, job_id, names, selection, progress, clock0)


def resume(
    state: StateDir, job_id: str, *, progress: ProgressSink | None = None
) -> JobResult:
    """Continue a job left ``pending-approval`` or ``held`` (logs ``job.resumed``).

    Every owner's custodian decides again, now finding the officers' recorded
    approvals or acknowledgements (each approval is consumed: single use).

    Raises
    ------
    NotFound
        Unknown job.
    ConfigError
        The job is not waiting, or its workflow file changed since submission
        (measurement or manifest digest differ: submit it again).
    DecisionPending, PolicyDenied, ...
        As :func:`submit`.
    """
    import time

    clock0 = time.monotonic()
    registry = Registry(state.registry_db)
    job = registry.job(job_id)
    if job.state not in ("pending-approval", "held"):
        raise ConfigError(f"job {job_id} is {job.state}, not waiting for officers",
                          source=job_id)
    path = Path(str(job.request.get("workflow_path", "")))
    workflow = load_workflow(path)
    digest = digest_of(workflow.manifest.model_dump(mode="json"))
    if (workflow.measurement != job.measurement
            or digest != job.request.get("workflow_digest")):
        raise ConfigError(
            f"workflow {path} changed since job {job_id} was submitted (code "
            "measurement or manifest differ); submit it again", source=str(path))
    registry.set_job_state(job_id, "submitted")
    CustodyLog(state.custody_db).append(
        CustodyEvent.create("job.resumed", ORCHESTRATOR_ACTOR, {"job_id": job_id}),
        orchestrator_signer(state),
    )
    names = [n for n in job.site.split(",") if n]
    return _admit_and_run(state, workflow, job_id, names, "", progress, clock0)


def _admit_and_run(
    state: StateDir,
    workflow: Workflow,
    job_id: str,
    names: list[str],
    selection: str,
    progress: ProgressSink | None,
    clock0: float,
) -> JobResult:
    """Steps (3)-(5) for a registered job."""
    import time

    from orchestrator.allocation import record_allocation
    from orchestrator.approvals import cancel_pending
    from orchestrator.submit.jobs import RecordingSink, sync_tasks

    sink = progress or ProgressSink()
    registry = Registry(state.registry_db)
    log = CustodyLog(state.custody_db)
    signer = orchestrator_signer(state)
    wf = workflow.manifest
    dataset = registry.dataset(wf.workflow.dataset)
    task_names = workflow.tasks()

    def fail(exc: BaseException) -> None:
        registry.finish_job(
            job_id, "failed", {"error": str(exc)}, rfc3339(system_clock())
        )
        log.append(
            CustodyEvent.create(
                "job.failed",
                ORCHESTRATOR_ACTOR,
                {
                    "job_id": job_id,
                    "error": type(exc).__name__,
                    "message": str(exc)[:500],
                },
            ),
            signer,
        )
        cancel_pending(state, job_id=job_id, reason=f"job {job_id} failed")
        sync_tasks(state, job_id)

    sink.stage(selection or "policy decisions by each owner's custodian")
    connect = custodian_connector(state)
    try:
        permitted, excluded, suites = place.gate_sites(  # (3) every owner, every site
            lambda owner, name: connect(owner).decide(
                JobRequest(
                    job_id=job_id,
                    dataset_id=dataset.id,
                    site=name,
                    priority_area=wf.workflow.priority_area,
                    gpu_hours=wf.resources.gpu_hours,
                    code_measurement=workflow.measurement,
                )
            ),
            names,
            sorted(Label.from_json(dataset.label).owners),
        )
        if len(suites) != 1:  # each owner names the HPKE suite of its agreement
            raise ConfigError(
                f"owners' agreements require different HPKE suites: {sorted(suites)}",
                source=job_id,
            )
    except DecisionPending as exc:
        exc.source = job_id  # the CLI names the job to resume
        waiting = "held" if exc.outcome == "held" else "pending-approval"
        registry.set_job_state(job_id, waiting)
        log.append(
            CustodyEvent.create(
                "job.pending",
                ORCHESTRATOR_ACTOR,
                {"job_id": job_id, "state": waiting, "message": exc.message[:500],
                 "reasons": exc.reasons},
            ),
            signer,
        )
        raise
    except SovereignError as exc:
        fail(exc)
        raise
    hpke_suite = suites.pop()
    registry.set_job_site(job_id, ",".join(permitted))  # releases: these sites only
    result = JobResult(job_id, sites=permitted, excluded=excluded, selection=selection)
    placed = place.assign(task_names, permitted)  # task -> site, round-robin
    configs = {n: SiteConfig.model_validate(registry.site(n).config) for n in permitted}
    sink = RecordingSink(sink, state, job_id)  # the tasks table, as results arrive
    sink.stage(f"dispatching {len(task_names)} enclave tasks to {', '.join(permitted)}")
    sink.tasks_planned(task_names)
    try:
        # Checkpoints every 64 entries or 5 s while the job runs, and at its end.
        with CheckpointPublisher(open_tlog(state), every_events=64, every_s=5.0):
            outputs = _dispatch(
                state,
                workflow,
                permitted[0],
                configs[permitted[0]],
                job_id,
                dataset,
                task_names,
                sink,
                result,
                clock0,
                hpke_suite,
                placement={t: configs[s] for t, s in placed.items()},
            )  # (4)
        for name in task_names:  # (5)
            out = outputs[name]
            result.tasks[name] = out["metrics"]
            if "model" in out:
                result.model_ids.append(
                    _store_model(
                        state,
                        registry,
                        log,
                        signer,
                        job_id,
                        placed[name],
                        dataset,
                        out,
                        workflow.measurement,
                    )
                )
    except BaseException as exc:
        fail(exc)
        raise
    # Every task completed: the job's checkpoints are no longer needed. Removed
    # here, once, never by a task (another task may still be writing; issue 11).
    from orchestrator.site.checkpoint import remove_job_checkpoints

    remove_job_checkpoints(state.root, job_id)
    result.summary = _summarize(workflow, result.tasks)
    registry.finish_job(job_id, "completed", result.summary, rfc3339(system_clock()))
    sync_tasks(state, job_id)
    record_allocation(state, job_id)  # actual GPU-hours per agreement and quarter
    log.append(
        CustodyEvent.create(
            "job.completed",
            ORCHESTRATOR_ACTOR,
            {"job_id": job_id, "summary": result.summary, "models": result.model_ids},
        ),
        signer,
    )
    open_tlog(state).publish(rfc3339(system_clock()))  # covers job.completed
    result.elapsed_s = time.monotonic() - clock0
    return result


def _dispatch(
    state: StateDir,
    workflow: Workflow,
    site: str,
    config: SiteConfig,
    job_id: str,
    dataset: SealedObjectRecord,
    task_names: list[str],
    sink: ProgressSink,
    result: JobResult,
    clock0: float,
    hpke_suite: str,
    placement: dict[str, SiteConfig] | None = None,
) -> dict[str, dict[str, Any]]:
    import concurrent.futures
    import time

    import parsl

    from orchestrator.site.runner import enclave_task
    from orchestrator.submit.retry import logged_retry_handler

    registry = Registry(state.registry_db)
    owners = sorted(Label.from_json(dataset.label).owners)
    owners_hpke = {o: registry.nation(o).hpke_public for o in owners}
    run_dir = state.runinfo_dir / job_id
    more = place.further_sites(site, placement)  # multi-site: one executor per site
    parsl_config = to_parsl_config(config, run_dir, more=more)
    parsl_config.retry_handler = logged_retry_handler(state, parsl_config.retries)
    dfk = parsl.load(parsl_config)
    try:
        res = workflow.manifest.resources
        app = place.site_router(  # by spec["site"]; mpi sites: nodes x ranks
            enclave_task, (config, *more), nodes=res.nodes,
            ranks_per_node=res.ranks_per_node,
        )
        futures = {}
        for name in task_names:
            spec = {
                "state_dir": str(state.root),
                "job_id": job_id,
                "task": name,
                "site": placement[name].site.name if placement else site,
                "workflow_name": workflow.manifest.workflow.name,
                "priority_area": workflow.manifest.workflow.priority_area,
                "workflow_source": workflow.source.decode("utf-8"),
                "params": dict(workflow.manifest.training),
                "dataset": {
                    "id": dataset.id,
                    "path": dataset.object_path,
                    "label": dataset.label,
                    "manifest": dataset.manifest,
                },
                "owners_hpke": owners_hpke,
                "model_object_id": "model-" + uuid.uuid4().hex[:16],
                "torch_threads": workflow.manifest.resources.cpus_per_task,
                "hpke_suite": hpke_suite,
            }
            futures[app(spec)] = name
        outputs: dict[str, dict[str, Any]] = {}
        for future in concurrent.futures.as_completed(list(futures)):
            name = futures[future]
            exc = future.exception()
            if exc is not None:
                if isinstance(exc, SovereignError):
                    raise exc
                raise DispatchError(
                    f"task {name} failed: {type(exc).__name__}: {exc}", source=job_id
                ) from exc
            outputs[name] = future.result()
            if not result.first_result_s:
                result.first_result_s = time.monotonic() - clock0
            sink.task_done(name, outputs[name]["metrics"])
        return outputs
    finally:
        dfk.cleanup()
        parsl.clear()


def _store_model(
    state: StateDir,
    registry: Registry,
    log: CustodyLog,
    signer: Any,
    job_id: str,
    site: str,
    dataset: SealedObjectRecord,
    out: dict[str, Any],
    measurement: str,
) -> str:
    model = out["model"]
    object_id = model["object_id"]
    target = state.models_dir / f"{object_id}.sealed"
    atomic_write_bytes(target, model["ciphertext"], mode=0o600)
    sealed_digest = "sha256:" + hashlib.sha256(model["ciphertext"]).hexdigest()
    lineage = {
        "job_id": job_id,
        "site": site,
        "task": out["task"],
        "attempt_id": out["attempt_id"],
        "code_measurement": measurement,
        "grants": out["grants"],
        "datasets": [
            {
                "dataset_id": dataset.id,
                "sealed_digest": dataset.sealed_digest,
                "manifest_digest": digest_of(dataset.manifest),
            }
        ],
    }
    provenance = model.get("provenance")
    event_extra: dict[str, Any] = {}
    if provenance is not None:
        # The full envelope stays in the registry; the signed event commits to it.
        event_extra["provenance_digest"] = statement_digest(provenance)
    record = SealedObjectRecord(
        id=object_id,
        name=object_id,
        label=model["label"],
        manifest=model["manifest"],
        object_path=str(target),
        sealed_digest=sealed_digest,
        wrapped_keys=model["wrapped_keys"],
        created=rfc3339(system_clock()),
        job_id=job_id,
        metrics=out["metrics"],
        lineage={**lineage, "provenance": provenance} if provenance else lineage,
    )
    registry.add_model(record)
    log.append(
        CustodyEvent.create(
            "model.sealed",
            ORCHESTRATOR_ACTOR,
            {
                "model_id": object_id,
                "label": model["label"],
                "sealed_digest": sealed_digest,
                "manifest_digest": digest_of(model["manifest"]),
                "wrapped_for": sorted(model["wrapped_keys"]),
                "lineage": lineage,
                "ciphertext_bytes": len(model["ciphertext"]),
                **event_extra,
            },
        ),
        signer,
    )
    return str(object_id)
