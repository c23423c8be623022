"""The embedded custodian: one nation's policy decision point and key holder.

A :class:`LocalCustodian` runs in-process (the embedded default) over the nation's
directory in the state dir; it implements :class:`orchestrator.release.Custodian`,
the interface a network custodian service implements too. It is the only code
that touches the nation's KEK, and it records every decision *before* acting:

(1) verify the attestation evidence and consume its nonce;
(2) evaluate the nation's policy (pure, :mod:`orchestrator.nation.policy`);
(3) durably append ``key.denied`` or ``key.released`` to the custody log;
(4) only after (3) succeeds, unwrap the DEK and seal it to the enclave (HPKE).

A failure at (3) raises :class:`~orchestrator.errors.LedgerError` and releases
nothing (fail closed).
"""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from orchestrator.agreements import Agreement, agreement_state_lock
from orchestrator.canonical import b64d, b64e, digest_of
from orchestrator.crypto import HpkeSuite, hpke_open, hpke_seal
from orchestrator.errors import AttestationError, NotFound, PolicyDenied
from orchestrator.labels import Classification, Label
from orchestrator.ledger import CustodyEvent, CustodyLog
from orchestrator.nation.grants import GrantStore
from orchestrator.nation.identity import NationKeys
from orchestrator.nation.nonces import NonceStore
from orchestrator.nation.policy import AccessRequest, Decision, SiteFacts, evaluate
from orchestrator.nation.verifier import (
    AttestationResult,
    EvidenceVerifier,
    ExpectedBinding,
    SoftwareEvidenceVerifier,
)
from orchestrator.registry import Registry, SealedObjectRecord
from orchestrator.release import (
    Evidence,
    Grant,
    JobRequest,
    ReleaseRequest,
    WrappedKey,
    WrapRequest,
)
from orchestrator.state import StateDir
from orchestrator.timeutil import Clock, rfc3339, system_clock

#: Lifetime of a grant (seconds): the enclave must open it at once.
GRANT_LIFETIME_S = 120
#: How long an attempt may keep using its grant to have output and checkpoint keys
#: wrapped (seconds): 48 h, beyond typical maximum walltimes. Every such use still
#: needs fresh evidence answering a new single-use nonce, so a lease outlives
#: neither the enclave's key nor its attestation.
ATTEMPT_LEASE_S = 48 * 3600


class LocalCustodian:
    """Custodian of nation ``nation`` over state directory ``state``."""

    def __init__(
        self,
        state: StateDir,
        nation: str,
        *,
        clock: Clock = system_clock,
        verifier: EvidenceVerifier | None = None,
    ) -> None:
        self._state = state
        self._nation = nation
        self._clock = clock
        self._verifier = verifier or SoftwareEvidenceVerifier()
        self._keys = NationKeys(state.nation_dir(nation), nation)
        self._registry = Registry(state.registry_db)
        self._log = CustodyLog(state.custody_db)
        self._nonces = NonceStore(state.nation_dir(nation) / "nonces.db")

    @property
    def nation(self) -> str:
        """ISO 3166-1 alpha-3 code of this custodian's nation."""
        return self._nation

    @property
    def actor(self) -> str:
        """This custodian's actor name in the custody log."""
        return f"custodian:{self._nation}"

    def _record(self, kind: str, body: dict[str, Any]) -> int:
        entry = self._log.append(
            CustodyEvent.create(kind, self.actor, body), self._keys.custodian_signer()
        )
        return entry.seq

    # -- policy ----------------------------------------------------------------
    def _agreements(self) -> list[Agreement]:
        """Live agreements: re-read on every call, those revoked in the log left out."""
        revoked = {
            e.event.body["agreement_id"] for e in self._log.find("agreement.revoked")
        }
        return [
            agreement
            for agreement in (
                Agreement.from_json(doc["document"])
                for doc in self._registry.agreement_documents()
            )
            if agreement.id not in revoked
        ]

    def _evaluate(
        self,
        dataset: SealedObjectRecord,
        site_name: str,
        priority_area: str,
        gpu_hours: float,
    ) -> Decision:
        site = self._registry.site(site_name)
        request = AccessRequest(
            dataset_id=dataset.id,
            label=Label.from_json(dataset.label),
            site=SiteFacts(
                name=site.name,
                operator_nation=site.operator_nation,
                accreditation=Classification.parse(site.accreditation),
            ),
            priority_area=priority_area,
            gpu_hours=gpu_hours,
            on=self._clock().date(),
        )
        return evaluate(self._nation, request, self._agreements())

    def decide(self, request: JobRequest) -> dict[str, Any]:
        """Evaluate and log the job-level decision; see :class:`Custodian`.

        Raises
        ------
        PolicyDenied
            Unless the decision is a permit; ``reasons`` holds every failed rule.
        NotFound
            If the dataset or site is not registered.
        """
        dataset = self._registry.dataset(request.dataset_id)
        decision = self._evaluate(
            dataset, request.site, request.priority_area, request.gpu_hours
        )
        body = {
            "job_id": request.job_id,
            "dataset_id": dataset.id,
            "site": request.site,
            "owner": self._nation,
            "request_digest": digest_of(request.to_json()),
            "decision": decision.to_json(),
        }
        self._record("policy.decided", body)
        if decision.notify and decision.permit:
            agreement = next(
                a for a in self._agreements() if a.id == decision.agreement_id
            )
            self._record(
                "notification.recorded",
                {
                    "job_id": request.job_id,
                    "agreement_id": agreement.id,
                    "oversight_body": agreement.oversight_body,
                    "gpu_hours": request.gpu_hours,
                    "threshold_gpu_hours": agreement.notification_threshold_gpu_hours,
                },
            )
        if not decision.permit:
            raise PolicyDenied(
                f"{self._nation} custodian: {decision.outcome.value}",
                reasons=decision.denial_reasons(),
            )
        live = next(
            (a for a in self._agreements() if a.id == decision.agreement_id), None
        )
        return {
            **decision.to_json(),
            "hpke_suite": live.hpke_suite_value if live else HpkeSuite.X25519.value,
            "tee_required": bool(live and live.tee_required),
        }

    # -- release ---------------------------------------------------------------
    def challenge(self) -> str:
        """Issue a single-use nonce (base64 of 32 bytes, valid 300 s)."""
        return self._nonces.issue(self._clock())

    def _deny(self, request: ReleaseRequest, reasons: list[str]) -> None:
        self._record(
            "key.denied",
            {
                "job_id": request.job_id,
                "attempt_id": request.attempt_id,
                "task": request.task,
                "dataset_id": request.dataset_id,
                "site": request.site,
                "owner": self._nation,
                "request_digest": request.digest(),
                "reasons": reasons,
            },
        )

    def _verify_evidence(
        self,
        evidence: Evidence,
        job_id: str,
        measurement: str,
        attempt_id: str,
        site: str,
        site_public: str,
    ) -> AttestationResult:
        now = self._clock()
        result = self._verifier.verify(
            evidence,
            ExpectedBinding(
                site=site,
                job_id=job_id,
                attempt_id=attempt_id,
                code_measurement=measurement,
                site_public_key=b64d(site_public),
            ),
            now,
        )
        self._nonces.consume(evidence.nonce, now)
        return result

    def release_key(self, request: ReleaseRequest) -> Grant:
        """Verify, decide, log, then release; see :class:`Custodian`.

        The whole release runs under :func:`agreement_state_lock`, which
        :func:`~orchestrator.submit.registration.revoke_agreement` also holds while
        it appends ``agreement.revoked``. Inside it the live agreements (revocations
        read from the custody log itself) are re-read, policy is evaluated and
        ``key.released`` is appended, so a release is either ordered before a
        revocation in the log or evaluated after it (and then denied): no
        ``key.released`` relying on an agreement follows its revocation.
        """
        with agreement_state_lock(self._state.root / "agreements.lock"):
            return self._release_key_serialised(request)

    def _release_key_serialised(self, request: ReleaseRequest) -> Grant:
        now = self._clock()
        evidence = request.evidence
        try:
            job = self._registry.job(request.job_id)
            site = self._registry.site(request.site)
            dataset = self._registry.dataset(request.dataset_id)
        except NotFound as exc:
            self._deny(request, [exc.message])
            raise PolicyDenied("release refused", reasons=[exc.message]) from exc
        sites = job.site.split(",")  # a multi-site job: the sites its owners permit
        if request.site not in sites or dataset.id not in job.request["dataset_ids"]:
            reason = "request does not match the registered job (site or dataset)"
            self._deny(request, [reason])
            raise PolicyDenied("release refused", reasons=[reason])
        try:
            result = self._verify_evidence(
                evidence,
                job.id,
                job.measurement,
                request.attempt_id,
                site.name,
                site.signing_public,
            )
        except AttestationError as exc:
            self._deny(request, [f"attestation: {exc.message}"])
            raise
        decision = self._evaluate(
            dataset,
            site.name,
            str(job.request["priority_area"]),
            float(job.request["gpu_hours"]),
        )
        if not decision.permit:
            self._deny(request, decision.denial_reasons())
            raise PolicyDenied(
                f"{self._nation} custodian: {decision.outcome.value}",
                reasons=decision.denial_reasons(),
            )
        agreement = next(
            (a for a in self._agreements() if a.id == decision.agreement_id), None
        )
        want_suite = agreement.hpke_suite_value if agreement else HpkeSuite.X25519
        refusals = []
        if agreement is not None and agreement.tee_required and (
            result.tee_mode == "none"
        ):
            refusals.append(
                f"tee: agreement {agreement.id} requires a TEE; software evidence "
                "(tee_mode none) is refused"
            )
        if evidence.hpke_suite != want_suite:
            refusals.append(
                f"hpke_suite: {agreement.id if agreement else 'domestic use'} "
                f"requires {want_suite}, the enclave key uses {evidence.hpke_suite}"
            )
        if refusals:
            self._deny(request, refusals)
            raise PolicyDenied(f"{self._nation} custodian: deny", reasons=refusals)
        wrapped = dataset.wrapped_keys[self._nation]
        keystore = self._keys.keystore(clock=self._clock, audit=self._record)
        try:
            keystore.check_unwrap(wrapped["kek_id"], int(wrapped["kek_version"]))
        except PolicyDenied as exc:  # KeyUnavailable: disabled, pending, ...
            self._deny(request, [f"KEK: {exc.message}"])
            raise
        grant_id = uuid.uuid4().hex
        expiry = now + timedelta(seconds=GRANT_LIFETIME_S)
        expires = rfc3339(expiry)
        suite = HpkeSuite(evidence.hpke_suite)
        seq = self._record(
            "key.released",
            {
                "grant_id": grant_id,
                "job_id": job.id,
                "attempt_id": request.attempt_id,
                "task": request.task,
                "dataset_id": dataset.id,
                "site": site.name,
                "owner": self._nation,
                "request_digest": request.digest(),
                "kek_id": wrapped["kek_id"],
                "kek_version": wrapped["kek_version"],
                "tee_mode": result.tee_mode,
                "evidence_kind": result.evidence_kind,
                "tee_measurements": result.measurements,
                "evidence_format": result.evidence_format,
                "hpke_suite": suite.value,
                "agreement_id": decision.agreement_id,
                "expires_at": expires,
                "lease_expires_at": rfc3339(now + timedelta(seconds=ATTEMPT_LEASE_S)),
            },
        )
        GrantStore(self._state.nation_dir(self._nation) / "grants.db").issue(
            grant_id,
            job_id=job.id,
            attempt_id=request.attempt_id,
            dataset_id=dataset.id,
            request_digest=request.digest(),
            expires=now + timedelta(seconds=ATTEMPT_LEASE_S),
        )
        dek = keystore.unwrap(
            wrapped["kek_id"], int(wrapped["kek_version"]), b64d(wrapped["wrapped_dek"])
        )
        sealed = hpke_seal(suite, result.enclave_public_key, dek, request.hpke_info())
        return Grant(
            grant_id=grant_id,
            owner=self._nation,
            dataset_id=dataset.id,
            request_digest=request.digest(),
            kek_id=wrapped["kek_id"],
            kek_version=int(wrapped["kek_version"]),
            hpke_suite=suite.value,
            sealed_dek=b64e(sealed),
            tee_mode=result.tee_mode,
            expires_at=expires,
            log_index=seq,
            job_id=job.id,
            attempt_id=request.attempt_id,
            evidence_kind=result.evidence_kind,
        )

    def wrap_key(self, request: WrapRequest) -> WrappedKey:
        """Wrap an enclave's fresh output DEK under this nation's KEK.

        The attempt must present its ``key.released`` grant id from this custodian
        (so only an attested attempt of a permitted job can create objects owned by
        this nation) and the output label must name this nation as an owner.

        Raises
        ------
        AttestationError
            If the evidence does not verify for this job, attempt and site.
        PolicyDenied
            If this nation is not an owner of the output, or ``grant_id`` is not
            this attempt's live grant from this custodian (missing, foreign,
            expired, or already used for this object: see
            :class:`~orchestrator.nation.grants.GrantStore`).
        IntegrityError
            If the sealed DEK does not open for this request.
        """
        job = self._registry.job(request.job_id)
        site = self._registry.site(request.site)
        self._verify_evidence(
            request.evidence,
            job.id,
            job.measurement,
            request.attempt_id,
            site.name,
            site.signing_public,
        )
        owners = Label.from_json(request.label, derived=True).owners
        if self._nation not in owners:
            raise PolicyDenied(
                "wrap refused",
                reasons=[f"{self._nation} is not an owner of the output label"],
            )
        GrantStore(self._state.nation_dir(self._nation) / "grants.db").use(
            request.grant_id,
            job_id=job.id,
            attempt_id=request.attempt_id,
            object_id=request.object_id,
            now=self._clock(),
        )
        dek = hpke_open(
            self._keys.hpke_key(), b64d(request.sealed_dek), request.hpke_info()
        )
        keystore = self._keys.keystore(clock=self._clock, audit=self._record)
        version, wrapped = keystore.wrap(dek)
        return WrappedKey(
            owner=self._nation,
            kek_id=keystore.kek_id,
            kek_version=version,
            wrapped_dek=b64e(wrapped),
        )

    # -- owner-side use --------------------------------------------------------
    def unwrap_for_owner(self, record: SealedObjectRecord, *, kind: str) -> bytes:
        """Unwrap the DEK of an object this nation owns, for its own officer.

        Logs ``model.opened`` (or ``model.open.denied``) first.

        Raises
        ------
        PolicyDenied
            If this nation is not an owner of ``record``.
        """
        owners = Label.from_json(record.label, derived=True).owners
        body = {"object_id": record.id, "kind": kind, "nation": self._nation}
        if self._nation not in owners or self._nation not in record.wrapped_keys:
            self._record(
                "model.open.denied",
                {**body, "reason": f"{self._nation} is not an owner"},
            )
            raise PolicyDenied(
                f"{self._nation} may not open {record.id}",
                reasons=[f"owners are {', '.join(sorted(owners))}"],
            )
        wrapped = record.wrapped_keys[self._nation]
        keystore = self._keys.keystore(clock=self._clock, audit=self._record)
        try:
            keystore.check_unwrap(wrapped["kek_id"], int(wrapped["kek_version"]))
        except PolicyDenied as exc:  # KeyUnavailable: disabled, pending, ...
            self._record("model.open.denied", {**body, "reason": exc.message})
            raise
        self._record("model.opened", body)
        return keystore.unwrap(
            wrapped["kek_id"], int(wrapped["kek_version"]), b64d(wrapped["wrapped_dek"])
        )
