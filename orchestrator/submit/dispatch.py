"""Dispatching a job's enclave tasks to its sites through Parsl.

Each task is one ``python_app`` call on the executor labelled with its site
(:func:`orchestrator.submit.placement.site_router`), handed a spec by value (ids,
workflow source and parameters, the dataset's public metadata and registered
digest, the URLs and CA certificates of the log and the owners' custodians, the
site's own directory as its workers see it) and the sealed dataset as a Parsl
``File`` over HTTP, staged into the site's staging directory inside the task
(:mod:`orchestrator.submit.objects`). Nothing secret is serialised: the result
is ciphertext, KEK-wrapped keys and metrics.
"""

from __future__ import annotations

import concurrent.futures
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from orchestrator.errors import DispatchError, JobInterrupted, SovereignError
from orchestrator.labels import Label
from orchestrator.submit import placement as place
from orchestrator.submit.channel import channel_certificates
from orchestrator.submit.context import Orchestrator, TaskEndpoints
from orchestrator.submit.providers import to_parsl_config
from orchestrator.submit.registry import Registry, SealedObjectRecord
from orchestrator.submit.retry import NEVER, classify
from orchestrator.submit.siteconfig import SiteConfig, SiteStartedProviderSection
from orchestrator.submit.workflow import Workflow

__all__ = ["dispatch", "task_spec"]


def task_spec(orch: Orchestrator, workflow: Workflow, job_id: str, name: str,
              site: str, dataset: SealedObjectRecord, endpoints: TaskEndpoints,
              hpke_suite: str, owners_hpke: Mapping[str, str]) -> dict[str, Any]:
    """The spec of task ``name`` at ``site`` (JSON-able, nothing secret)."""
    owners = sorted(Label.from_json(dataset.label).owners)
    return {
        "site_dir": endpoints.site_dirs[site],
        "job_id": job_id,
        "task": name,
        "site": site,
        "workflow_name": workflow.manifest.workflow.name,
        "priority_area": workflow.manifest.workflow.priority_area,
        "workflow_source": workflow.source.decode("utf-8"),
        "params": dict(workflow.manifest.training),
        "dataset": {"id": dataset.id, "sealed_digest": dataset.sealed_digest,
                    "label": dataset.label, "manifest": dataset.manifest},
        "owners_hpke": dict(owners_hpke),
        "log": dict(endpoints.log),
        "custodians": {o: dict(endpoints.custodians[o]) for o in owners},
        "model_object_id": "model-" + uuid.uuid4().hex[:16],
        "torch_threads": workflow.manifest.resources.cpus_per_task,
        "hpke_suite": hpke_suite,
    }


def dispatch(orch: Orchestrator, workflow: Workflow, job_id: str,
             dataset: SealedObjectRecord, task_names: Sequence[str],
             placement: Mapping[str, SiteConfig], hpke_suite: str,
             endpoints: TaskEndpoints, *, on_result: Any,
             retry_handler: Any = None) -> dict[str, dict[str, Any]]:
    """Run every task; return task name -> its result, calling
    ``on_result(name, result)`` as each arrives.

    Raises
    ------
    SovereignError
        A task's security failure (never retried), unchanged, at once.
    DispatchError
        A task failure not known to be transient, at once.
    JobInterrupted
        Once every task has ended, when some failed only for transient reasons
        (a custodian or the log out of reach, a lost worker) after their
        retries; it carries the results of those that finished.
    """
    import parsl
    from parsl.data_provider.files import File

    from orchestrator.protocol.tasks import enclave_app

    registry = Registry(orch.registry_db)
    owners = sorted(Label.from_json(dataset.label).owners)
    owners_hpke = {o: registry.nation(o).hpke_public for o in owners}
    by_site = {c.site.name: c for c in placement.values()}
    first, *others = list(by_site.values())
    # where Parsl's HTTP staging writes at the site: its staging folder, or,
    # where only the site knows its directory, relative to its pool's folder
    working = {s: f"{d}/staging" if d else "staging"
               for s, d in endpoints.site_dirs.items()}
    certs = {name: str(channel_certificates(orch.root, name))
             for name, c in by_site.items()
             if isinstance(c.provider, SiteStartedProviderSection)}
    parsl_config = to_parsl_config(first, orch.runinfo_dir / job_id,
                                   more=tuple(others), working_dirs=working,
                                   cert_dirs=certs)
    if retry_handler is not None:
        parsl_config.retry_handler = retry_handler(parsl_config.retries)
    dfk = parsl.load(parsl_config)
    try:
        res = workflow.manifest.resources
        app = place.site_router(enclave_app, list(by_site.values()), nodes=res.nodes,
                                ranks_per_node=res.ranks_per_node)
        futures = {}
        for name in task_names:
            site = placement[name].site.name
            spec = task_spec(orch, workflow, job_id, name, site, dataset, endpoints,
                             hpke_suite, owners_hpke)
            url = (f"{endpoints.objects}/datasets/{dataset.id}/"
                   f"{job_id}-{name}-{uuid.uuid4().hex[:8]}.sealed")
            futures[app(spec, inputs=[File(url)])] = name
        outputs: dict[str, dict[str, Any]] = {}
        lost: dict[str, BaseException] = {}
        for future in concurrent.futures.as_completed(list(futures)):
            name = futures[future]
            exc = future.exception()
            if exc is not None and classify(exc) != NEVER:
                lost[name] = exc  # transient, retries spent: resumable
                continue
            if exc is not None:
                if isinstance(exc, SovereignError):
                    raise exc
                raise DispatchError(f"task {name} failed: {type(exc).__name__}: {exc}",
                                    source=job_id) from exc
            outputs[name] = future.result()
            on_result(name, outputs[name])
        if lost:
            which = sorted(lost)[0]
            raise JobInterrupted(
                f"{len(lost)} of {len(futures)} tasks could not finish ({which}: "
                f"{type(lost[which]).__name__}: {str(lost[which])[:200]}); resume "
                f"with: sovereign jobs resume {job_id}", completed=outputs,
                failed=sorted(lost), source=job_id)
        _job_done(by_site, endpoints, job_id)
        return outputs
    finally:
        dfk.cleanup()
        parsl.clear()


def _job_done(by_site: Mapping[str, SiteConfig], endpoints: TaskEndpoints,
              job_id: str) -> None:
    """Every task completed: each site removes the job's checkpoints itself."""
    import parsl

    from orchestrator.protocol.tasks import job_done, resource_spec
    from orchestrator.submit.siteconfig import MpiSection

    futures = []
    for name, config in by_site.items():
        app = parsl.python_app(job_done, executors=[name])
        extra = ({"parsl_resource_specification": resource_spec(1, 1)}
                 if isinstance(config.executor, MpiSection) else {})
        futures.append(app(endpoints.site_dirs[name], job_id, **extra))
    for future in futures:
        future.result()
