"""The function every Parsl worker runs at a site: one enclave attempt of one task.

The task is handed everything by value or reference, never another party's
directory (:func:`enclave_task`'s ``spec``): job, task and attempt ids; the
workflow's source and parameters; the dataset's id, label, manifest and
registered SHA-256, with the sealed file staged in by Parsl (HTTP staging from
the orchestrator's object store, :class:`parsl.data_provider.http.
HTTPInTaskStaging`); the custody log's URL and CA; each owner custodian's URL and
CA. The worker reads only the site's own directory (:func:`site_root`): its
signing key, its client certificates, its checkpoints.

The staged file is checked against the registered SHA-256 before any key is
asked for. The result is ciphertext, KEK-wrapped keys, metrics and the
site-signed provenance, returned through Parsl's result channel (Parsl's HTTP
and FTP staging providers stage inputs only). Security failures
(:class:`~orchestrator.errors.PolicyDenied`,
:class:`~orchestrator.errors.AttestationError`,
:class:`~orchestrator.errors.IntegrityError`) propagate unchanged so the driver
never retries them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from orchestrator.canonical import b64d
from orchestrator.crypto import HpkeSuite
from orchestrator.errors import IntegrityError
from orchestrator.net.custodian_client import HttpCustodian
from orchestrator.net.log_client import HttpLog
from orchestrator.protocol.provenance import build_statement, dsse_sign
from orchestrator.protocol.release import Custodian
from orchestrator.site.attestation import SoftwareAttester
from orchestrator.site.checkpoint import remove_task_checkpoints
from orchestrator.site.enclave import Enclave, SealedInput
from orchestrator.site.identity import SiteState
from orchestrator.tlog.events import CustodyEvent, utc_now

__all__ = ["SITE_DIR_ENV", "enclave_app", "enclave_task", "job_done", "site_root",
           "staged_spec", "verify_staged"]


def staged_spec(spec: dict[str, Any], inputs: Sequence[Any]) -> dict[str, Any]:
    """``spec`` with ``dataset.path`` set to the file Parsl staged in (the first
    of ``inputs``: a :class:`parsl.data_provider.files.File`, or a path)."""
    if not inputs:
        return spec
    staged = inputs[0]
    path = getattr(staged, "filepath", staged)
    return {**spec, "dataset": {**spec["dataset"], "path": str(path)}}


def verify_staged(path: Path, expected: str) -> None:
    """Check that the staged file's SHA-256 is the registered ``expected``.

    Raises
    ------
    IntegrityError
        If it differs (or the file cannot be read): no key is asked for.
    """
    sha = hashlib.sha256()
    try:
        with path.open("rb") as src:
            for block in iter(lambda: src.read(1 << 20), b""):
                sha.update(block)
    except OSError as exc:
        raise IntegrityError(f"cannot read the staged dataset: {exc.strerror}",
                             source=str(path)) from exc
    if "sha256:" + sha.hexdigest() != expected:
        raise IntegrityError(f"staged dataset has SHA-256 {sha.hexdigest()}, not the "
                             f"registered {expected}", source=str(path))


def enclave_app(spec: dict[str, Any], inputs: Sequence[Any] = ()) -> dict[str, Any]:
    """Parsl app body: run the task on the staged dataset, then delete the staged
    copy (ciphertext)."""
    ready = staged_spec(spec, inputs)
    try:
        return enclave_task(ready)
    finally:
        if inputs:
            with contextlib.suppress(OSError):
                Path(ready["dataset"]["path"]).unlink()


#: Set by the site's own worker service (``sovereign site workers``): the
#: site's directory, which the site alone knows and which overrides the
#: orchestrator's idea of it.
SITE_DIR_ENV = "SOVEREIGN_SITE_DIR"


def site_root(named: str | None) -> Path:
    """The site's directory on this worker: :data:`SITE_DIR_ENV` when the site
    started this worker itself, else the one the orchestrator ``named``.

    Raises
    ------
    IntegrityError
        If neither is known.
    """
    chosen = os.environ.get(SITE_DIR_ENV) or named
    if not chosen:
        raise IntegrityError(f"this worker knows no site directory (${SITE_DIR_ENV} "
                             "is unset and the task names none)")
    return Path(chosen)


def job_done(site_dir: str, job_id: str,
             parsl_resource_specification: dict[str, Any] | None = None) -> str:
    """Parsl app body, run at the site once the orchestrator knows the job is
    over (every task completed): remove the job's checkpoint folder (issue 11:
    never a task's doing). Returns the job id."""
    from orchestrator.site.checkpoint import remove_job_checkpoints

    del parsl_resource_specification  # accepted so MPI sites can run it too
    remove_job_checkpoints(SiteState(site_root(site_dir)).checkpoints_root, job_id)
    return job_id


def _connector(site: SiteState, spec: dict[str, Any]) -> Any:
    clients: dict[str, Custodian] = {}

    def connect(nation: str) -> Custodian:
        if nation not in clients:
            entry = spec["custodians"][nation]
            clients[nation] = HttpCustodian(
                nation, entry["url"], ca=entry["ca_pem"].encode("ascii"),
                cert=site.client_cert(nation), key=site.tls_key)
        return clients[nation]

    return connect


def enclave_task(
    spec: dict[str, Any],
    *,
    rank: int = 0,
    world_size: int = 1,
    distributed: bool = False,
    attempt_id: str | None = None,
) -> dict[str, Any]:
    """Run one attempt of ``spec["task"]`` inside a fresh enclave.

    In a multi-rank task (:mod:`orchestrator.site.mpi_runner`) each rank calls this
    with its ``rank``, the ``world_size``, whether torch.distributed is up, and its
    own ``attempt_id``: every rank attests and receives its own DEK release. Only
    rank 0 logs ``task.started``/``task.completed`` (with ``world_size``), seals
    the model and removes the task's checkpoints; any rank logs ``task.failed``.

    Parameters
    ----------
    spec
        ``site_dir`` (the site's own directory), ``site``, ``job_id``, ``task``,
        ``workflow_name``, ``workflow_source`` (text), ``params``, ``dataset``
        (``id``, ``path`` of the staged file, ``sealed_digest``, ``label``,
        ``manifest``), ``owners_hpke`` (nation -> base64 public key), ``log``
        (``url``, ``ca_pem``), ``custodians`` (nation -> ``url``, ``ca_pem``),
        ``model_object_id``, ``torch_threads``, ``hpke_suite``.

    Returns
    -------
    dict
        ``task``, ``attempt_id``, ``pid``, ``metrics``, ``grants`` and, when the task
        produced a model, ``model`` (``object_id``, ``label``, ``manifest``,
        ``ciphertext`` bytes, ``wrapped_keys``, ``provenance``: the site-signed
        DSSE envelope of its in-toto/SLSA provenance).

    Raises
    ------
    IntegrityError
        If the staged dataset is not the registered one, or anything fails to
        verify.
    PolicyDenied, AttestationError
        If an owner's custodian refuses.
    """
    try:
        import torch

        torch.set_num_threads(int(spec.get("torch_threads", 1)))
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    site_state = SiteState(site_root(spec.get("site_dir")))
    site_key = site_state.signing_key()
    site = spec["site"]
    if site_state.name != site:
        raise IntegrityError(f"this worker's site directory is {site_state.name!r}, "
                             f"not {site!r}", source=str(site_state.root))
    dataset = spec["dataset"]
    log = HttpLog(spec["log"]["url"], ca=spec["log"]["ca_pem"].encode("ascii"))
    actor = f"site:{site}"
    enclave = Enclave(
        job_id=spec["job_id"], task=spec["task"], site=site,
        attester=SoftwareAttester(site, site_key),
        connect=_connector(site_state, spec),
        suite=HpkeSuite(spec.get("hpke_suite", HpkeSuite.X25519.value)),
        attempt_id=attempt_id,
    )
    started = {
        "job_id": spec["job_id"], "task": spec["task"],
        "attempt_id": enclave.attempt_id, "site": site, "pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),  # batch job holding the block
        "pbs_job_id": os.environ.get("PBS_JOBID"),
    }
    if world_size > 1:
        started.update(rank=rank, world_size=world_size)
    if rank == 0:
        log.append(CustodyEvent.create("task.started", actor, started), site_key)
    started_on = utc_now()

    def on_event(kind: str, body: dict[str, Any]) -> None:  # checkpoint.*
        log.append(CustodyEvent.create(kind, actor, body), site_key)

    try:  # the staged copy is checked before any key is asked for
        verify_staged(Path(dataset["path"]), dataset["sealed_digest"])
        metrics, model = enclave.run(
            workflow_source=spec["workflow_source"].encode(),
            workflow_name=spec["workflow_name"], params=spec["params"],
            sealed=SealedInput(dataset_id=dataset["id"], label=dataset["label"],
                               manifest=dataset["manifest"],
                               path=Path(dataset["path"]),
                               sealed_digest=dataset["sealed_digest"]),
            owners_hpke={n: b64d(k) for n, k in spec["owners_hpke"].items()},
            model_object_id=spec["model_object_id"],
            state_root=site_state.checkpoints_root, on_event=on_event, rank=rank,
            world_size=world_size, distributed=distributed,
        )
    except Exception as exc:
        log.append(CustodyEvent.create("task.failed", actor, {
            **started, "error": type(exc).__name__, "message": str(exc)[:500]}),
            site_key)
        raise
    result: dict[str, Any] = {
        "task": spec["task"], "attempt_id": enclave.attempt_id, "pid": os.getpid(),
        "metrics": metrics, "grants": enclave.grants,
        "code_measurement": enclave.measurement,
    }
    completed: dict[str, Any] = {**started, "metrics": metrics,
                                 "grants": enclave.grants}
    if model is not None:
        statement = build_statement(
            model_id=model.object_id,
            model_digest=hashlib.sha256(model.ciphertext).hexdigest(),
            workflow=spec["workflow_name"], task=spec["task"],
            priority_area=str(spec.get("priority_area", "")), site=site,
            datasets=[(dataset["id"], enclave.input_digest)],
            code_measurement=enclave.measurement, job_id=spec["job_id"],
            attempt_id=enclave.attempt_id, started_on=started_on,
            finished_on=utc_now())
        result["model"] = {
            "object_id": model.object_id, "label": model.label,
            "manifest": model.manifest, "ciphertext": model.ciphertext,
            "wrapped_keys": model.wrapped_keys,
            "provenance": dsse_sign(statement, site_key)}
        completed["model_object_id"] = model.object_id
    if rank == 0 and enclave.refused:  # counts per rule only: no name, no value
        log.append(CustodyEvent.create("task.refused", actor, {
            **started, "refused": enclave.refused}), site_key)
    if rank == 0:
        log.append(CustodyEvent.create("task.completed", actor, completed), site_key)
        remove_task_checkpoints(site_state.checkpoints_root, spec["job_id"],
                                spec["task"])
    log.close()
    return result
