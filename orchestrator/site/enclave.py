"""The enclave: one task attempt's in-memory trust domain on a site.

An :class:`Enclave` lives for exactly one attempt. It

(1) makes an ephemeral HPKE key pair (RFC 9180; X25519 by default);
(2) measures the workflow code it will execute (:mod:`orchestrator.measurement`);
(3) for each owner of the input, obtains a nonce, site-signed evidence binding
    (job, attempt, site, measurement, enclave key, nonce), and a grant;
(4) opens the grant (HPKE) and the sealed dataset into memory only;
(5) runs the workflow's ``run_task`` on the decoded table;
(6) seals any model it returns under a fresh DEK and the derived label, and has
    every owner's custodian wrap that DEK under its KEK, presenting the grant id
    that custodian released to this attempt (grants are per attempt, 120 s).

During (5) the workflow may seal checkpoints the same way (fresh DEK, wrapped by
every owner), plus a wrap under a key derived from the dataset DEK, so a retried
attempt can resume after fresh attestation and grants
(:mod:`orchestrator.site.checkpoint`).

The HPKE suite of the enclave key (RFC 9180; ``suite``) must be the one the
applicable agreement names (``hpke_suite``, returned by each custodian's
``decide``); custodians refuse a release to a key of another suite.

Nothing in the clear is written to disk: the dataset, DEKs and weights exist as
Python objects of this process and are overwritten (best effort) on exit. Without
TEE hardware the site's root user can still read this process's memory.
"""

from __future__ import annotations

import hashlib
import types
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.canonical import b64d, b64e, canonical_bytes, digest_of
from orchestrator.crypto import (
    HpkeSuite,
    RecipientKey,
    combine_dek_shares,
    hpke_open,
    hpke_seal,
    new_dek,
    open_to_memory,
    seal_bytes,
)
from orchestrator.errors import ConfigError, DataError, IntegrityError
from orchestrator.labels import Label, derive_label
from orchestrator.measurement import code_measurement
from orchestrator.protocol.outputs import OutputRules, screen_metrics
from orchestrator.protocol.release import (
    Custodian,
    ReleaseRequest,
    WrappedKey,
    WrapRequest,
)
from orchestrator.site.api import Table, TaskOutput
from orchestrator.site.attestation import SoftwareAttester
from orchestrator.site.checkpoint import (
    OnEvent,
    SealedCheckpoints,
    checkpoint_dir,
    resume_key,
)
from orchestrator.site.task_context import EnclaveContext, HashingReader
from orchestrator.tabular import parse_csv

CustodianConnector = Callable[[str], Custodian]


@dataclass(frozen=True)
class SealedInput:
    """A sealed dataset as the enclave sees it: envelope path plus public metadata.

    The enclave reads the envelope itself (:meth:`Enclave.open_input`) so that the
    ciphertext is released as soon as it is decrypted: a 1 GB dataset is not held a
    second time while the workflow trains.
    """

    dataset_id: str
    label: dict[str, Any]
    manifest: dict[str, Any]
    path: Path
    #: ``"sha256:<hex>"`` of the envelope as sealed (what the staged copy was
    #: checked against); the custodians release only for that envelope.
    sealed_digest: str


@dataclass(frozen=True)
class SealedOutput:
    """A model sealed inside the enclave, ready to leave it."""

    object_id: str
    label: dict[str, Any]
    manifest: dict[str, Any]
    ciphertext: bytes
    wrapped_keys: dict[str, dict[str, Any]]


class Enclave:
    """One attempt of ``task`` in ``job_id`` at ``site``."""

    def __init__(
        self,
        *,
        job_id: str,
        task: str,
        site: str,
        attester: SoftwareAttester,
        connect: CustodianConnector,
        suite: HpkeSuite = HpkeSuite.X25519,
        attempt_id: str | None = None,
    ) -> None:
        self.job_id = job_id
        self.task = task
        self.site = site
        self.attempt_id = attempt_id or uuid.uuid4().hex
        self._attester = attester
        self._connect = connect
        self._suite = suite
        self._key = RecipientKey.generate(suite)  # (1)
        self.grants: list[str] = []
        self._grant_of: dict[str, str] = {}  # owner -> this attempt's grant id
        self._rules: list[OutputRules] = []  # each owner's, from its grant
        #: Rule -> how many items of the task's output were withheld (no values).
        self.refused: dict[str, int] = {}
        self.measurement = ""
        self._resume_key = b""  # derived from the dataset DEK (checkpoints)
        self.input_digest = ""  # SHA-256 hex of the envelope that was opened

    def _evidence_for(self, custodian: Custodian) -> Any:
        return self._attester.attest(
            job_id=self.job_id,
            attempt_id=self.attempt_id,
            code_measurement=self.measurement,
            enclave_public_key=self._key.public_bytes(),
            hpke_suite=self._suite.value,
            nonce=custodian.challenge(),
        )

    def open_input(self, sealed: SealedInput) -> Table:
        """Steps (3)-(4): obtain every owner's DEK share and decode the table.

        A dataset of ``n`` owners has its DEK split n-of-n (``split_dek``): the
        enclave can decrypt only after every owner has released its share.

        Raises
        ------
        PolicyDenied, AttestationError
            If any owner's custodian refuses (every owner must release).
        IntegrityError
            If the ciphertext, its label or its manifest digest do not verify.
        DataError
            If the envelope cannot be read from ``sealed.path`` or the plaintext is
            not a valid CSV.

        The envelope is streamed from ``sealed.path`` and decrypted segment by
        segment into one buffer (it is never held whole in memory); after parsing,
        that plaintext buffer is overwritten with zeros. :attr:`input_digest` is
        then the SHA-256 (hex) of exactly the envelope bytes that were decrypted.
        """
        owners = sorted(Label.from_json(sealed.label).owners)
        deks: list[bytes] = []
        for owner in owners:
            custodian = self._connect(owner)
            request = ReleaseRequest(
                job_id=self.job_id,
                attempt_id=self.attempt_id,
                task=self.task,
                dataset_id=sealed.dataset_id,
                site=self.site,
                evidence=self._evidence_for(custodian),
                sealed_digest=sealed.sealed_digest,
            )
            grant = custodian.release_key(request)
            deks.append(
                hpke_open(self._key, b64d(grant.sealed_dek), request.hpke_info())
            )
            self.grants.append(grant.grant_id)
            self._grant_of[owner] = grant.grant_id
            self._rules.append(grant.output_rules)
        dataset_dek = combine_dek_shares(deks)
        try:
            src = open(sealed.path, "rb")
        except OSError as exc:
            raise DataError(f"cannot read the sealed dataset: {exc.strerror}",
                            source=str(sealed.path)) from exc
        with src:
            reader = HashingReader(src)
            # Decrypted straight into one buffer while the ciphertext streams past
            # (1 MiB segments): the envelope is never held in memory.
            header, plaintext = open_to_memory(reader, dataset_dek)
        self.input_digest = reader.hexdigest()
        if "sha256:" + self.input_digest != sealed.sealed_digest:
            plaintext[:] = bytes(len(plaintext))
            raise IntegrityError("the envelope decrypted is not the one the keys were "
                                 f"released for ({sealed.sealed_digest})",
                                 source=str(sealed.path))
        if header.object_id != sealed.dataset_id:
            raise IntegrityError(f"sealed file holds {header.object_id}, not "
                                 f"{sealed.dataset_id}", source=str(sealed.path))
        self._resume_key = resume_key(
            dataset_dek, dataset_id=sealed.dataset_id, job_id=self.job_id,
            task=self.task,
        )
        del dataset_dek, deks
        if header.label != sealed.label or header.manifest_digest != digest_of(
            sealed.manifest
        ):
            raise IntegrityError(
                "sealed header does not match the registered label or manifest",
                source=sealed.dataset_id,
            )
        try:
            return parse_csv(  # reads the buffer in place
                plaintext,
                label_column=sealed.manifest["label_column"],
                has_header=sealed.manifest["has_header"],
                source=sealed.dataset_id,
            )
        finally:
            plaintext[:] = bytes(len(plaintext))  # wipe the decrypted CSV

    def run(
        self,
        *,
        workflow_source: bytes,
        workflow_name: str,
        params: dict[str, Any],
        sealed: SealedInput,
        owners_hpke: dict[str, bytes],
        model_object_id: str,
        state_root: Path | None = None,
        on_event: OnEvent | None = None,
        rank: int = 0,
        world_size: int = 1,
        distributed: bool = False,
    ) -> tuple[dict[str, float], SealedOutput | None]:
        """Run the whole attempt; return its metrics and sealed model (if any).

        In a multi-rank task (:mod:`orchestrator.site.mpi_runner`) every rank is an
        enclave of its own; the context exposes ``rank``, ``world_size`` and
        ``distributed``, only rank 0 saves checkpoints, and only rank 0 seals the
        model (the others return ``None``).

        With ``state_root`` and ``on_event`` the workflow may save and load sealed
        checkpoints (:mod:`orchestrator.site.checkpoint`) under
        ``<state_root>/objects/checkpoints/<job>/<task>.*``.
        """
        self.measurement = code_measurement(workflow_source)  # (2)
        table = self.open_input(sealed)
        store = None
        if state_root is not None and on_event is not None:
            store = self.checkpoint_store(state_root, sealed, owners_hpke, on_event)
        module = types.ModuleType(f"sovereign_workflow_{workflow_name}")
        try:
            exec(compile(workflow_source, workflow_name, "exec"), module.__dict__)
        except SyntaxError as exc:
            raise ConfigError(
                f"workflow code does not compile: {exc}", source=workflow_name
            ) from exc
        context = EnclaveContext(
            self.task, params, table, checkpoints=store, rank=rank,
            world_size=world_size, distributed=distributed,
        )
        output = module.run_task(context)  # (5)
        if not isinstance(output, TaskOutput) or not (
                output.model_state is None or isinstance(output.model_state, bytes)):
            self.refused = {"not-a-task-output": 1}  # nothing of it leaves
            return {}, None
        screened = screen_metrics(output.metrics, OutputRules.combine(self._rules))
        self.refused = dict(screened.refused)
        if output.model_state is None or rank != 0:
            return screened.released, None
        return screened.released, self._seal_model(  # (6)
            output, screened.released, sealed, owners_hpke, model_object_id
        )

    def checkpoint_store(
        self,
        state_root: Path,
        sealed: SealedInput,
        owners_hpke: dict[str, bytes],
        on_event: OnEvent,
    ) -> SealedCheckpoints:
        """This attempt's view of the task's sealed checkpoints (after open_input)."""
        if not self._resume_key:
            raise ConfigError("checkpoints need the input opened first")
        return SealedCheckpoints(
            checkpoint_dir(state_root, self.job_id),
            job_id=self.job_id,
            task=self.task,
            site=self.site,
            attempt_id=self.attempt_id,
            code_measurement=self.measurement,
            label=derive_label([Label.from_json(sealed.label)]).to_json(),
            inputs=[
                {
                    "dataset_id": sealed.dataset_id,
                    "manifest_digest": digest_of(sealed.manifest),
                }
            ],
            key=self._resume_key,
            wrap_for_owners=lambda dek, object_id, label: self._wrap_for_owners(
                dek, object_id, label, sealed, owners_hpke
            ),
            on_event=on_event,
        )

    def _seal_model(
        self,
        output: TaskOutput,
        metrics: dict[str, float],
        sealed: SealedInput,
        owners_hpke: dict[str, bytes],
        object_id: str,
    ) -> SealedOutput:
        label = derive_label([Label.from_json(sealed.label)]).to_json()
        dek = new_dek()
        try:  # the card is the code's to write: sealed for the owners like the model
            card = canonical_bytes(output.model_card)
        except (TypeError, ValueError):
            self.refused["model-card-not-json"] = 1
            card = canonical_bytes({})
        sealed_card = seal_bytes(card, dek, object_id=f"{object_id}#model-card",
                                 label=label, manifest_digest=digest_of(
                                     {"object_id": object_id, "part": "model_card"}))
        manifest = {
            "object_id": object_id,
            "kind": "model",
            "job_id": self.job_id,
            "task": self.task,
            "site": self.site,
            "code_measurement": self.measurement,
            "inputs": [
                {
                    "dataset_id": sealed.dataset_id,
                    "manifest_digest": digest_of(sealed.manifest),
                }
            ],
            "model_card_sealed": b64e(sealed_card),
            "metrics": metrics,
            "bytes": len(output.model_state or b""),
        }
        ciphertext = seal_bytes(
            output.model_state or b"",
            dek,
            object_id=object_id,
            label=label,
            manifest_digest=digest_of(manifest),
        )
        return SealedOutput(
            object_id=object_id,
            label=label,
            manifest=manifest,
            ciphertext=ciphertext,
            wrapped_keys=self._wrap_for_owners(
                dek, object_id, label, sealed, owners_hpke,
                sealed_digest="sha256:" + hashlib.sha256(ciphertext).hexdigest(),
            ),
        )

    def _wrap_for_owners(
        self,
        dek: bytes,
        object_id: str,
        label: dict[str, Any],
        sealed: SealedInput,
        owners_hpke: dict[str, bytes],
        sealed_digest: str = "",
    ) -> dict[str, dict[str, Any]]:
        """Have every owner's custodian wrap ``dek`` (of a model or checkpoint);
        ``sealed_digest`` names the object's ciphertext when it is known."""
        wrapped: dict[str, dict[str, Any]] = {}
        for owner in sorted(Label.from_json(label, derived=True).owners):
            custodian = self._connect(owner)
            request = WrapRequest(
                job_id=self.job_id,
                attempt_id=self.attempt_id,
                site=self.site,
                object_id=object_id,
                label=label,
                input_dataset_ids=(sealed.dataset_id,),
                evidence=self._evidence_for(custodian),
                grant_id=self._grant_of.get(owner, ""),
                sealed_digest=sealed_digest,
            )
            request = WrapRequest(
                **{
                    **request.__dict__,
                    "sealed_dek": b64e(
                        hpke_seal(
                            HpkeSuite.X25519,
                            owners_hpke[owner],
                            dek,
                            request.hpke_info(),
                        )
                    ),
                }
            )
            key: WrappedKey = custodian.wrap_key(request)
            wrapped[owner] = key.to_json()
        return wrapped
