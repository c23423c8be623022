"""What a custody bundle's entries must say, once their signatures verified.

The checks :func:`orchestrator.officer.bundle.verify_bundle` runs on the
verified entries: the model's lineage is complete (its ``model.sealed``, the
job's request, every task's start and completion, every input's
``dataset.sealed``), every owner's custodian released a key of every input
only after it permitted the job, and the model's DSSE provenance is the site's
and agrees with the logged digests. Pure logic; a failure raises
:class:`BundleError` naming the part.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from orchestrator.crypto import key_id_of
from orchestrator.errors import IntegrityError, SovereignError
from orchestrator.protocol.provenance import (
    dsse_verify,
    statement_digest,
    subject_digest,
)
from orchestrator.tlog.events import SignedEntry

__all__ = ["BundleError", "check_lineage", "check_provenance", "check_releases"]


class BundleError(IntegrityError):
    """A custody bundle is malformed or fails verification; ``part`` names where."""

    def __init__(self, part: str, message: str) -> None:
        super().__init__(message, source="bundle", field=part)
        self.part = part


def _require(ok: bool, part: str, message: str) -> None:
    if not ok:
        raise BundleError(part, message)


def _guard(part: str, check: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """Run ``check(*args, **kw)``; re-raise a project error as :class:`BundleError`."""
    try:
        return check(*args, **kw)
    except BundleError:
        raise
    except SovereignError as exc:
        raise BundleError(part, exc.message) from exc


def _one(entries: Iterable[SignedEntry], what: str) -> SignedEntry:
    found = list(entries)
    _require(len(found) == 1, "entries", f"{len(found)} {what} events, expected one")
    return found[0]


def check_releases(evs: list[SignedEntry], job_id: str, dataset_id: str,
                    owner: str) -> None:
    """Owner ``owner``'s custodian released a key of the dataset to the job, and
    only after it permitted the job for that dataset and site."""
    custodian = f"custodian:{owner}"

    def by_owner(k: str) -> list[SignedEntry]:
        return [e for e in evs if e.event.kind == k and e.event.actor == custodian
                and e.event.body.get("job_id") == job_id
                and e.event.body.get("dataset_id") == dataset_id]

    releases = by_owner("key.released")
    _require(bool(releases), "entries", f"{custodian} released no key of dataset "
             f"{dataset_id} to job {job_id}: the model cannot come from it")
    permits = [e for e in by_owner("policy.decided")
               if (e.event.body.get("decision") or {}).get("outcome") == "permit"]
    for release in releases:
        _require(any(p.seq < release.seq and p.event.body.get("site")
                     == release.event.body.get("site") for p in permits),
                 f"entry {release.seq}", f"key.released by {custodian} follows no "
                 f"permit of {custodian} for job {job_id}, dataset {dataset_id} "
                 f"and site {release.event.body.get('site')}")


def check_lineage(model_id: str, entries: dict[int, SignedEntry],
                   keys: Mapping[str, bytes]) -> dict[str, Any]:
    """Completeness of the job and the key bindings; return facts for the report."""
    evs = list(entries.values())

    def kind(k: str, **m: Any) -> list[SignedEntry]:
        return [e for e in evs if e.event.kind == k
                and all(e.event.body.get(a) == b for a, b in m.items())]

    sealed = _one(kind("model.sealed", model_id=model_id), f"model.sealed {model_id}")
    lineage = sealed.event.body.get("lineage") or {}
    job_id, site = str(lineage.get("job_id")), str(lineage.get("site"))
    request = _one(kind("request.submitted", job_id=job_id), f"request for {job_id}")
    _one(kind("job.completed", job_id=job_id) + kind("job.failed", job_id=job_id),
         f"job.completed/job.failed for {job_id}")
    datasets = {}
    for item in lineage.get("datasets", []):
        ds = _one(kind("dataset.sealed", dataset_id=item["dataset_id"]),
                  f"dataset.sealed {item['dataset_id']}")
        _require(ds.event.body.get("sealed_digest") == item.get("sealed_digest"),
                 f"entry {ds.seq}", "dataset digest differs from the model's lineage")
        datasets[item["dataset_id"]] = ds
        for owner in ds.event.body.get("label", {}).get("ownerProducer", []):
            check_releases(evs, job_id, item["dataset_id"], str(owner))
    for task in request.event.body.get("tasks", []):
        for k in ("task.started", "task.completed"):
            done = kind(k, job_id=job_id, task=task)
            _require(bool(done), "entries", f"task {task} has no {k} event")
            grants = done[-1].event.body.get("grants", [])
            for grant in grants if k == "task.completed" else []:
                released = _one(kind("key.released", grant_id=grant),
                                f"key.released {grant}")
                _require(released.event.actor == "custodian:"
                         f"{released.event.body.get('owner')}",
                         f"entry {released.seq}", "key.released is not by the "
                         "custodian of the owner it names")
    bound = len({e.event.actor for e in evs})
    return {"sealed": sealed, "job_id": job_id, "site": site, "request": request,
            "datasets": datasets, "bound": bound}


def check_provenance(facts: dict[str, Any], keys: Mapping[str, bytes]) -> None:
    site, p = facts["site"], "provenance"
    body = facts["sealed"].event.body
    envelope = body.get("provenance")
    _require(isinstance(envelope, dict), p, "model.sealed carries no provenance")
    pub = keys.get(f"site:{site}")
    _require(pub is not None, p, f"site:{site} has no enrollment in the bundle")
    assert pub is not None
    st = _guard(p, dsse_verify, envelope, {key_id_of(pub): pub})
    digest = "sha256:" + _guard(p, subject_digest, st, body["model_id"])
    _require(digest == body.get("sealed_digest"), p, f"subject digest {digest} is "
             f"not the sealed digest {body.get('sealed_digest')} of the model")
    pred = st.get("predicate", {})
    bd, rd = pred.get("buildDefinition", {}), pred.get("runDetails", {})
    _require(rd.get("builder", {}).get("id") == f"site:{site}", p,
             f"builder is not site:{site}")
    deps = {d.get("uri"): d.get("digest", {}).get("sha256")
            for d in bd.get("resolvedDependencies", []) if isinstance(d, dict)}
    for ds_id, ds in facts["datasets"].items():
        want = str(ds.event.body.get("sealed_digest", "")).removeprefix("sha256:")
        got = deps.get(f"dataset:{ds_id}")
        _require(got == want, p, f"input dataset {ds_id} digest {got} is not the "
                 f"sealed digest {want} of its dataset.sealed event")
    req = facts["request"].event.body
    _require(deps.get(f"workflow:{req.get('workflow')}")
             == str(req.get("code_measurement", "")).removeprefix("sha256:"), p,
             "workflow code digest is not the job's code measurement")
    _require(body.get("provenance_digest") in (None, statement_digest(envelope)), p,
             "statement is not the one model.sealed commits to (provenance_digest)")
