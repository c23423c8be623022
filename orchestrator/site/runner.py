"""The function every Parsl worker runs: one enclave attempt of one task.

:func:`enclave_task` takes and returns plain JSON-able dicts (plus the sealed
model's bytes), so Parsl serialises nothing secret: the task's arguments are paths,
ids and public metadata; its result is ciphertext, KEK-wrapped keys and metrics.
Security failures (:class:`~orchestrator.errors.PolicyDenied`,
:class:`~orchestrator.errors.AttestationError`,
:class:`~orchestrator.errors.IntegrityError`) propagate unchanged so the driver
never retries them.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from orchestrator.canonical import b64d
from orchestrator.crypto import HpkeSuite, load_private_key
from orchestrator.embedded import custodian_connector
from orchestrator.log.store import CustodyLog
from orchestrator.protocol.provenance import build_statement, dsse_sign
from orchestrator.site.attestation import SoftwareAttester
from orchestrator.site.checkpoint import remove_task_checkpoints
from orchestrator.site.enclave import Enclave, SealedInput
from orchestrator.state import StateDir
from orchestrator.tlog.events import CustodyEvent, utc_now


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
        ``state_dir``, ``job_id``, ``task``, ``site``, ``workflow_name``,
        ``workflow_source`` (text), ``params``, ``dataset`` (``id``, ``path``,
        ``label``, ``manifest``), ``owners_hpke`` (nation -> base64 public key),
        ``model_object_id``, ``torch_threads``.

    Returns
    -------
    dict
        ``task``, ``attempt_id``, ``pid``, ``metrics``, ``grants`` and, when the task
        produced a model, ``model`` (``object_id``, ``label``, ``manifest``,
        ``ciphertext`` bytes, ``wrapped_keys``, ``provenance``: the site-signed
        DSSE envelope of its in-toto/SLSA provenance, see
        :mod:`orchestrator.protocol.provenance`).
    """
    try:
        import torch

        torch.set_num_threads(int(spec.get("torch_threads", 1)))
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    state = StateDir(Path(spec["state_dir"]))
    site = spec["site"]
    site_key = load_private_key(state.site_dir(site) / "site.key")
    log = CustodyLog(state.custody_db)
    actor = f"site:{site}"
    enclave = Enclave(
        job_id=spec["job_id"],
        task=spec["task"],
        site=site,
        attester=SoftwareAttester(site, site_key),
        connect=custodian_connector(state),
        suite=HpkeSuite(spec.get("hpke_suite", HpkeSuite.X25519.value)),
        attempt_id=attempt_id,
    )
    started = {
        "job_id": spec["job_id"],
        "task": spec["task"],
        "attempt_id": enclave.attempt_id,
        "site": site,
        "pid": os.getpid(),
        "slurm_job_id": os.environ.get("SLURM_JOB_ID"),  # batch job holding the block
        "pbs_job_id": os.environ.get("PBS_JOBID"),
    }
    if world_size > 1:
        started.update(rank=rank, world_size=world_size)
    if rank == 0:
        log.append(CustodyEvent.create("task.started", actor, started), site_key)
    dataset = spec["dataset"]
    started_on = utc_now()

    def on_event(kind: str, body: dict[str, Any]) -> None:  # checkpoint.*
        log.append(CustodyEvent.create(kind, actor, body), site_key)
    try:
        metrics, model = enclave.run(
            workflow_source=spec["workflow_source"].encode(),
            workflow_name=spec["workflow_name"],
            params=spec["params"],
            sealed=SealedInput(
                dataset_id=dataset["id"],
                label=dataset["label"],
                manifest=dataset["manifest"],
                path=Path(dataset["path"]),
            ),
            owners_hpke={n: b64d(k) for n, k in spec["owners_hpke"].items()},
            model_object_id=spec["model_object_id"],
            state_root=state.root,
            on_event=on_event,
            rank=rank,
            world_size=world_size,
            distributed=distributed,
        )
    except Exception as exc:
        log.append(
            CustodyEvent.create(
                "task.failed",
                actor,
                {**started, "error": type(exc).__name__, "message": str(exc)[:500]},
            ),
            site_key,
        )
        raise
    result: dict[str, Any] = {
        "task": spec["task"],
        "attempt_id": enclave.attempt_id,
        "pid": os.getpid(),
        "metrics": metrics,
        "grants": enclave.grants,
        "code_measurement": enclave.measurement,
    }
    completed: dict[str, Any] = {
        **started,
        "metrics": metrics,
        "grants": enclave.grants,
    }
    if model is not None:
        statement = build_statement(
            model_id=model.object_id,
            model_digest=hashlib.sha256(model.ciphertext).hexdigest(),
            workflow=spec["workflow_name"],
            task=spec["task"],
            priority_area=str(spec.get("priority_area", "")),
            site=site,
            datasets=[(dataset["id"], enclave.input_digest)],
            code_measurement=enclave.measurement,
            job_id=spec["job_id"],
            attempt_id=enclave.attempt_id,
            started_on=started_on,
            finished_on=utc_now(),
        )
        result["model"] = {
            "object_id": model.object_id,
            "label": model.label,
            "manifest": model.manifest,
            "ciphertext": model.ciphertext,
            "wrapped_keys": model.wrapped_keys,
            "provenance": dsse_sign(statement, site_key),
        }
        completed["model_object_id"] = model.object_id
    if rank == 0:
        log.append(CustodyEvent.create("task.completed", actor, completed), site_key)
        remove_task_checkpoints(state.root, spec["job_id"], spec["task"])
    return result
