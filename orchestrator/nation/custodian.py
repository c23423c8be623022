"""The embedded custodian: one nation's policy decision point and key holder.

A :class:`LocalCustodian` runs in-process (the embedded default) over the nation's
directory in the state dir; it implements
:class:`orchestrator.protocol.release.Custodian`,
the interface a network custodian service implements too. It is the only code
that touches the nation's KEK, and it records every decision *before* acting:

(1) verify the attestation evidence and consume its nonce;
(2) evaluate the nation's policy (pure, :mod:`orchestrator.policy.access`);
(3) durably append ``key.denied`` or ``key.released`` to the custody log;
(4) only after (3) succeeds, unwrap the DEK and seal it to the enclave (HPKE).

A failure at (3) raises :class:`~orchestrator.errors.LedgerError` and releases
nothing (fail closed).
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from orchestrator.agreement_state import effective_agreements
from orchestrator.allocation import (
    is_acknowledged,
    notification_id_for,
    quarter_usage,
    record_notification,
)
from orchestrator.approvals import (
    ApprovalUses,
    find_decision,
    request_approval,
    request_id_for,
)
from orchestrator.canonical import b64d, b64e, digest_of
from orchestrator.crypto import HpkeSuite, hpke_open, hpke_seal
from orchestrator.errors import (
    AttestationError,
    DecisionPending,
    IntegrityError,
    NotFound,
    PolicyDenied,
)
from orchestrator.labels import Classification, Label
from orchestrator.log.store import CustodyLog
from orchestrator.nation.grants import GrantStore
from orchestrator.nation.identity import NationKeys
from orchestrator.nation.locks import agreement_state_lock
from orchestrator.nation.nonces import NonceStore
from orchestrator.nation.verifier import (
    AttestationResult,
    EvidenceVerifier,
    ExpectedBinding,
    SoftwareEvidenceVerifier,
)
from orchestrator.policy.access import (
    AccessRequest,
    ApprovalFacts,
    Decision,
    Outcome,
    PolicyContext,
    SiteFacts,
    evaluate,
)
from orchestrator.protocol.agreements import Agreement, quarter_of
from orchestrator.protocol.release import (
    Evidence,
    Grant,
    JobRequest,
    ReleaseRequest,
    WrappedKey,
    WrapRequest,
)
from orchestrator.protocol.statements import verify_statement
from orchestrator.registry import Registry, SealedObjectRecord
from orchestrator.state import StateDir
from orchestrator.timeutil import Clock, parse_rfc3339, rfc3339, system_clock
from orchestrator.tlog.events import CustodyEvent

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
        self._approval_uses = ApprovalUses(state.nation_dir(nation) / "approvals.db")

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
        """Agreements in force, re-read on every call: signed by every party, the
        highest version, not terminated or revoked (see
        :mod:`orchestrator.agreement_state`).
        """
        return effective_agreements(self._state)[0]

    def _officer_keys(self) -> dict[str, str]:
        return {n.code: n.officer_public for n in self._registry.nations()}

    def _evaluate(
        self,
        dataset: SealedObjectRecord,
        site_name: str,
        priority_area: str,
        gpu_hours: float,
        *,
        context: PolicyContext | None = None,
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
        effective, ended = effective_agreements(self._state)
        base = context or PolicyContext()
        return evaluate(
            self._nation, request, effective,
            context=replace(
                base, ended=ended, at=base.at or self._clock(),
                quarter_usage_gpu_hours=quarter_usage(
                    self._log, quarter_of(self._clock().date())),
            ),
        )

    def _presented_approval(
        self, request_id: str, digest: str, job_id: str
    ) -> tuple[ApprovalFacts | None, str | None, datetime | None]:
        """The officer's recorded decision on ``request_id``, verified, or ``None``;
        why a recorded decision was refused (``None`` when none was); and, when
        this very job (same request digest) already used the approval, the instant
        it did (its admission, re-decided when a co-owner's officer approves later:
        the approval is checked as of that instant and not consumed again).

        A statement that does not verify (foreign signer, altered), is bound to
        another request, or was used by another job is refused: ``approval.refused``
        is logged with the reason and it does not count (fail closed).
        """
        signed, seq = find_decision(self._log, request_id)
        if signed is None:
            return None, None, None
        refusal = None
        used_at: datetime | None = None
        try:
            statement = verify_statement(
                signed, public_key=b64d(self._registry.nation(self._nation)
                                        .officer_public),
                expected_type="approval/v1", expected_nation=self._nation,
                source=request_id)
            if statement["request_digest"] != digest or statement["job_id"] != job_id:
                refusal = "approval is bound to another request"
            expires_at = parse_rfc3339(str(statement["expires_at"]))
        except (IntegrityError, ValueError) as exc:
            refusal = getattr(exc, "message", str(exc))
        if refusal is None:
            for used_job, when in self._approval_uses.used_for_approval(
                str(statement["approval_id"])
            ):
                if used_job == job_id:
                    used_at = parse_rfc3339(when)  # this job's own admission
                else:
                    refusal = (f"approval {statement['approval_id']} was already "
                               f"used by job {used_job} at {when} (single use)")
        if refusal is not None:
            self._record("approval.refused", {
                "request_id": request_id, "job_id": job_id, "owner": self._nation,
                "entry": seq, "reason": refusal})
            return None, refusal, None
        return ApprovalFacts(
            approval_id=str(statement["approval_id"]),
            decision=str(statement["decision"]), owner=self._nation,
            request_digest=str(statement["request_digest"]), expires_at=expires_at,
            agreement_id=str(statement["agreement_id"]),
        ), None, used_at

    def _acknowledged(self, digest: str, agreement_id: str | None) -> bool:
        agreement = next((a for a in self._agreements() if a.id == agreement_id), None)
        if agreement is None:
            return False
        return is_acknowledged(self._log, notification_id_for(digest, agreement.id),
                               agreement, self._officer_keys())

    def decide(self, request: JobRequest) -> dict[str, Any]:
        """Evaluate and log the job-level decision; see :class:`Custodian`.

        Case-by-case areas: the owner's officer's recorded approval for this
        request (``apr-<job>-<owner>-<site>``) is verified and, on a permit,
        consumed (single use, :class:`~orchestrator.approvals.ApprovalUses`);
        without one, ``approval.requested`` is logged. Thresholds: a crossing logs
        ``notification.recorded`` to the oversight body; an agreement that holds
        until acknowledged holds the request.

        Raises
        ------
        DecisionPending
            ``needs-approval`` (an officer must approve) or ``held`` (an officer
            must acknowledge the notification); the request is logged.
        PolicyDenied
            On a denial; ``reasons`` holds every failed rule.
        NotFound
            If the dataset or site is not registered.
        """
        dataset = self._registry.dataset(request.dataset_id)
        digest = digest_of(request.to_json())
        request_id = request_id_for(request.job_id, self._nation, request.site)
        now = self._clock()
        with agreement_state_lock(self._state.root / "agreements.lock"):
            approval, refusal, used_at = self._presented_approval(
                request_id, digest, request.job_id)
            at = used_at or now  # an approval this job used counts as of its use
            first = self._evaluate(
                dataset, request.site, request.priority_area, request.gpu_hours,
                context=PolicyContext(request_digest=digest, at=at,
                                      approval=approval))
            decision = first
            if first.notify:
                decision = self._evaluate(
                    dataset, request.site, request.priority_area, request.gpu_hours,
                    context=PolicyContext(
                        request_digest=digest, at=at, approval=approval,
                        acknowledged=self._acknowledged(digest, first.agreement_id)))
            body = {
                "job_id": request.job_id,
                "dataset_id": dataset.id,
                "site": request.site,
                "owner": self._nation,
                "request_digest": digest,
                "decision": decision.to_json(),
            }
            self._record("policy.decided", body)
            outcome = decision.outcome
            agreement = next(
                (a for a in self._agreements() if a.id == decision.agreement_id), None
            )
            if decision.notify and agreement is not None and outcome in (
                Outcome.PERMIT, Outcome.HELD
            ):
                quarter = quarter_of(now.date())
                record_notification(
                    self._log, self._keys.custodian_signer(), self.actor,
                    job_id=request.job_id, request_digest=digest,
                    agreement=agreement, kinds=list(decision.notices),
                    gpu_hours=request.gpu_hours,
                    used_gpu_hours=quarter_usage(self._log, quarter).get(
                        agreement.id, 0.0),
                    quarter=quarter, hold=outcome is Outcome.HELD)
            if outcome is Outcome.NEEDS_APPROVAL:
                request_approval(
                    self._log, self._keys.custodian_signer(), self.actor,
                    request_id=request_id, owner=self._nation,
                    job_id=request.job_id, request_digest=digest,
                    dataset_id=dataset.id, site=request.site,
                    priority_area=request.priority_area,
                    gpu_hours=request.gpu_hours,
                    agreement_id=decision.agreement_id or "",
                    reasons=decision.denial_reasons())
                raise DecisionPending(
                    f"{self._nation} custodian: needs approval by the {self._nation} "
                    f"officer (request {request_id})", outcome=outcome.value,
                    reasons=decision.denial_reasons()
                    + ([f"approval: refused: {refusal}"] if refusal else []))
            if outcome is Outcome.HELD:
                assert agreement is not None  # a hold needs an agreement
                raise DecisionPending(
                    f"{self._nation} custodian: held until "
                    f"{agreement.oversight_body} is notified and an officer "
                    f"acknowledges {notification_id_for(digest, agreement.id)}",
                    outcome=outcome.value, reasons=decision.denial_reasons())
            if not decision.permit:
                raise PolicyDenied(
                    f"{self._nation} custodian: {outcome.value}",
                    reasons=decision.denial_reasons(),
                )
            if approval is not None and used_at is None and any(
                r.rule == "tier" and r.passed and r.detail.startswith("approved by")
                for r in decision.reasons
            ):  # consumed once, and only where it counted
                self._approval_uses.use(
                    approval.approval_id, job_id=request.job_id,
                    request_digest=digest, expires_at=approval.expires_at, now=now,
                    agreement_id=approval.agreement_id)
                self._record("approval.used", {
                    "request_id": request_id, "job_id": request.job_id,
                    "owner": self._nation, "approval_id": approval.approval_id})
        return {
            **decision.to_json(),
            "hpke_suite": agreement.hpke_suite_value if agreement
            else HpkeSuite.X25519.value,
            "tee_required": bool(agreement and agreement.tee_required),
        }

    def _admitted(self, job_id: str, site: str, dataset_id: str) -> bool:
        """Whether this custodian logged a permitting ``policy.decided`` for the job
        at ``site`` over ``dataset_id`` (its admission): releases need one."""
        return any(
            e.event.actor == self.actor and e.event.body.get("owner") == self._nation
            and e.event.body.get("site") == site
            and e.event.body.get("dataset_id") == dataset_id
            and e.event.body.get("decision", {}).get("outcome") == Outcome.PERMIT.value
            for e in self._log.find("policy.decided", job_id=job_id)
        )

    def _release_context(self, job_id: str, digest: str,
                         chosen: str | None) -> PolicyContext:
        uses = [u for u in self._approval_uses.used_for(job_id) if u[1] == digest]
        uses.sort(key=lambda u: u[4] != chosen)  # the use under ``chosen`` first
        for approval_id, used_digest, used_at, expires_at, agreement_id in uses:
            if used_digest == digest:  # counts only under the agreement it was for
                return PolicyContext(
                    request_digest=digest, at=parse_rfc3339(used_at),
                    acknowledged=True,
                    approval=ApprovalFacts(
                        approval_id=approval_id, decision="approve",
                        owner=self._nation, request_digest=digest,
                        expires_at=parse_rfc3339(expires_at),
                        agreement_id=agreement_id))
        return PolicyContext(request_digest=digest, acknowledged=True)

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

        A release also needs the job's *admission*: a permitting ``policy.decided``
        by this custodian for the job, site and dataset (:meth:`decide`), so a job
        never decided, refused, pending approval or held gets no key.
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
        if not self._admitted(job.id, site.name, dataset.id):
            reason = (f"job {job.id} was not admitted by the {self._nation} custodian "
                      f"at site {site.name} (no permitting policy decision: never "
                      "decided, refused, pending approval or held)")
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
        job_request = JobRequest(
            job_id=job.id, dataset_id=dataset.id, site=site.name,
            priority_area=str(job.request["priority_area"]),
            gpu_hours=float(job.request["gpu_hours"]),
            code_measurement=job.measurement,
        )
        digest = digest_of(job_request.to_json())
        chosen = self._evaluate(  # which agreement applies now (no approval needed)
            dataset, site.name, job_request.priority_area, job_request.gpu_hours,
            context=PolicyContext(request_digest=digest, acknowledged=True),
        ).agreement_id
        decision = self._evaluate(
            dataset,
            site.name,
            job_request.priority_area,
            job_request.gpu_hours,
            # Approvals were consumed at the job's admission (decide): the
            # approval this job used under the agreement chosen now counts, as
            # of the instant it was used. Oversight holds are admission checks.
            context=self._release_context(job.id, digest, chosen),
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

    # -- model transfer (orchestrator.transfer; keys: .transfer_keys) ----------
    def export_model_key(self, request: dict[str, Any]) -> dict[str, Any]:
        """As an owner: decide a model transfer, log it, seal the DEK to the
        recipient custodian's HPKE key.

        See :meth:`orchestrator.nation.transfer_keys.TransferKeys.export_model_key`
        (request and result formats, and raised errors: ``PolicyDenied`` on any
        refusal, logged first).
        """
        from orchestrator.nation.transfer_keys import TransferKeys

        keys = TransferKeys(self._state, self._nation, clock=self._clock)
        return keys.export_model_key(request)

    def import_model_key(self, sealed: dict[str, Any]) -> dict[str, Any]:
        """As the recipient: open a transferred DEK, wrap it under this KEK, log
        ``transfer.completed``.

        See :meth:`orchestrator.nation.transfer_keys.TransferKeys.import_model_key`
        (raises ``PolicyDenied``, ``AlreadyExists`` or ``IntegrityError``).
        """
        from orchestrator.nation.transfer_keys import TransferKeys

        keys = TransferKeys(self._state, self._nation, clock=self._clock)
        return keys.import_model_key(sealed)

    def open_transferred_key(self, transfer: dict[str, Any]) -> bytes:
        """As the recipient: unwrap a transferred model's DEK for this nation's
        officer, logging ``transfer.opened`` (or ``model.open.denied``) first.

        See
        :meth:`orchestrator.nation.transfer_keys.TransferKeys.open_transferred_key`
        (raises ``PolicyDenied`` unless this nation completed the transfer).
        """
        from orchestrator.nation.transfer_keys import TransferKeys

        keys = TransferKeys(self._state, self._nation, clock=self._clock)
        return keys.open_transferred_key(transfer)
