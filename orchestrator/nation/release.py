"""Key release to an attested enclave, and wrapping of its outputs' keys.

:func:`release_key`, under the custodian's lock (which terminations and
accreditation revocations also take), so that no ``key.released`` relying on an
agreement or accreditation follows its end in the custodian's order:

(1) the job's *admission* (this custodian's permitting decision for the job,
    site and dataset) must exist: it fixes the measurement and the request;
(2) the site must hold a live accreditation by this nation; the evidence must be
    signed by the accredited site key, bind this job, attempt and measurement,
    answer a fresh nonce, and be of a TEE kind the accreditation accepts;
(3) the policy is evaluated again on the custodian's facts now;
(4) ``key.released`` is recorded durably (the log acknowledged it);
(5) only then is the DEK unwrapped and HPKE-sealed to the enclave key.

Any refusal records ``key.denied`` with every reason; a failure at (4) raises
and releases nothing.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

from orchestrator.canonical import b64d, b64e, digest_of
from orchestrator.crypto import HpkeSuite, hpke_open, hpke_seal
from orchestrator.errors import AttestationError, PolicyDenied
from orchestrator.labels import Label
from orchestrator.nation.code_approvals import approval_for
from orchestrator.nation.context import CustodianContext
from orchestrator.nation.decide import admission_of, evaluate_for, release_context
from orchestrator.nation.store import OwnedObject
from orchestrator.nation.verifier import AttestationResult, ExpectedBinding
from orchestrator.policy.access import PolicyContext
from orchestrator.protocol.outputs import OutputRules
from orchestrator.protocol.parties import Accreditation
from orchestrator.protocol.release import (
    Evidence,
    Grant,
    ReleaseRequest,
    WrappedKey,
    WrapRequest,
)
from orchestrator.timeutil import rfc3339

__all__ = ["ATTEMPT_LEASE_S", "GRANT_LIFETIME_S", "release_key", "wrap_key"]

#: Lifetime of a grant (seconds): the enclave must open it at once.
GRANT_LIFETIME_S = 120
#: How long an attempt may keep using its grant to have output and checkpoint keys
#: wrapped (seconds): 48 h, beyond typical maximum walltimes. Every such use still
#: needs fresh evidence answering a new single-use nonce.
ATTEMPT_LEASE_S = 48 * 3600


def _deny(ctx: CustodianContext, request: ReleaseRequest, reasons: list[str]) -> None:
    ctx.record("key.denied", {
        "job_id": request.job_id, "attempt_id": request.attempt_id,
        "task": request.task, "dataset_id": request.dataset_id,
        "site": request.site, "owner": ctx.code,
        "request_digest": request.digest(), "reasons": reasons})


def verify_evidence(ctx: CustodianContext, evidence: Evidence, *, job_id: str,
                    measurement: str, attempt_id: str,
                    accreditation: Accreditation) -> AttestationResult:
    """Check ``evidence`` against the accredited site key and binding, consume
    its nonce, and check its TEE kind (the CPU TEE, with or without confidential
    GPUs) is one the accreditation accepts.

    Raises
    ------
    AttestationError
        On any mismatch.
    """
    now = ctx.clock()
    result = ctx.verifier.verify(evidence, ExpectedBinding(
        site=accreditation.site, job_id=job_id, attempt_id=attempt_id,
        code_measurement=measurement,
        site_public_key=accreditation.site_public_key), now)
    ctx.nonces.consume(evidence.nonce, now)
    # The CPU TEE is what is accredited; "+gpu_cc" adds confidential GPUs to it.
    if result.tee_mode.split("+", 1)[0] not in accreditation.tee_kinds:
        raise AttestationError(
            f"evidence of TEE kind {result.tee_mode!r} is not accredited for site "
            f"{accreditation.site} by {ctx.code} (accredited: "
            f"{', '.join(accreditation.tee_kinds)})")
    return result


def release_key(ctx: CustodianContext, request: ReleaseRequest) -> Grant:
    """Verify, decide, record, then release; see the module docstring.

    Raises
    ------
    PolicyDenied, AttestationError
        On any refusal (``key.denied`` recorded first).
    LedgerError
        If ``key.released`` could not be recorded (nothing released).
    """
    with ctx.lock():
        return _release(ctx, request)


def _release(ctx: CustodianContext, request: ReleaseRequest) -> Grant:
    now = ctx.clock()
    admitted = admission_of(ctx, request.job_id, request.site, request.dataset_id)
    if admitted is None:
        reason = (f"job {request.job_id} was not admitted by the {ctx.code} custodian "
                  f"at site {request.site} for dataset {request.dataset_id} (no "
                  "permitting policy decision: never decided, refused, pending "
                  "approval or held)")
        _deny(ctx, request, [reason])
        raise PolicyDenied("release refused", reasons=[reason])
    dataset = ctx.store.dataset(request.dataset_id)
    if request.sealed_digest != dataset.sealed_digest:
        reason = (f"sealed_digest: the staged envelope {request.sealed_digest!r} is "
                  f"not the one {ctx.code} sealed ({dataset.sealed_digest}): its "
                  "header (label, manifest) or ciphertext was changed")
        _deny(ctx, request, [reason])
        raise PolicyDenied("release refused", reasons=[reason])
    try:
        accreditation = ctx.accreditation(request.site, now)
    except PolicyDenied as exc:
        _deny(ctx, request, exc.reasons)
        raise
    try:
        result = verify_evidence(ctx, request.evidence, job_id=request.job_id,
                                 measurement=admitted.code_measurement,
                                 attempt_id=request.attempt_id,
                                 accreditation=accreditation)
    except AttestationError as exc:
        _deny(ctx, request, [f"attestation: {exc.message}"])
        raise
    digest = digest_of(admitted.to_json())
    chosen = evaluate_for(  # which agreement applies now (no approval needed)
        ctx, dataset, request.site, admitted.priority_area, admitted.gpu_hours,
        context=PolicyContext(request_digest=digest, acknowledged=True)).agreement_id
    decision = evaluate_for(
        ctx, dataset, request.site, admitted.priority_area, admitted.gpu_hours,
        # Approvals were consumed at the job's admission: the approval this job
        # used under the agreement chosen now counts, as of the instant of use.
        context=release_context(ctx, request.job_id, digest, chosen))
    if not decision.permit:
        _deny(ctx, request, decision.denial_reasons())
        raise PolicyDenied(f"{ctx.code} custodian: {decision.outcome.value}",
                           reasons=decision.denial_reasons())
    agreement = next((a for a in ctx.agreements()[0]
                      if a.id == decision.agreement_id), None)
    want_suite = agreement.hpke_suite_value if agreement else HpkeSuite.X25519
    refusals = []
    if agreement is not None and agreement.tee_required and result.tee_mode == "none":
        refusals.append(f"tee: agreement {agreement.id} requires a TEE; software "
                        "evidence (tee_mode none) is refused")
    if request.evidence.hpke_suite != want_suite:
        refusals.append(f"hpke_suite: {agreement.id if agreement else 'domestic use'}"
                        f" requires {want_suite}, the enclave key uses "
                        f"{request.evidence.hpke_suite}")
    if agreement is not None and agreement.code_approval == "required" and (
            approval_for(ctx, admitted.code_measurement, agreement.id,
                         admitted.priority_area, now) is None):
        refusals.append(f"code: measurement {admitted.code_measurement} is not "
                        f"approved by the {ctx.code} officer for agreement "
                        f"{agreement.id}, area {admitted.priority_area} (unapproved, "
                        "expired or revoked; sovereign code approve)")
    if refusals:
        _deny(ctx, request, refusals)
        raise PolicyDenied(f"{ctx.code} custodian: deny", reasons=refusals)
    wrapped = dataset.wrapped
    keystore = ctx.keys.keystore(clock=ctx.clock, audit=ctx.record)
    try:
        keystore.check_unwrap(wrapped["kek_id"], int(wrapped["kek_version"]))
    except PolicyDenied as exc:  # KeyUnavailable: disabled, pending, ...
        _deny(ctx, request, [f"KEK: {exc.message}"])
        raise
    grant_id = uuid.uuid4().hex
    expires = rfc3339(now + timedelta(seconds=GRANT_LIFETIME_S))
    rules = agreement.output_rules() if agreement is not None else OutputRules()
    suite = HpkeSuite(request.evidence.hpke_suite)
    seq = ctx.record("key.released", {
        "grant_id": grant_id, "job_id": request.job_id,
        "attempt_id": request.attempt_id, "task": request.task,
        "dataset_id": dataset.id, "site": request.site, "owner": ctx.code,
        "request_digest": request.digest(), "kek_id": wrapped["kek_id"],
        "kek_version": wrapped["kek_version"], "tee_mode": result.tee_mode,
        "evidence_kind": result.evidence_kind,
        "tee_measurements": result.measurements,
        "evidence_format": result.evidence_format, "hpke_suite": suite.value,
        "agreement_id": decision.agreement_id,
        "accreditation_id": accreditation.accreditation_id, "expires_at": expires,
        "lease_expires_at": rfc3339(now + timedelta(seconds=ATTEMPT_LEASE_S)),
        "output_rules": rules.to_json()})
    ctx.grants.issue(grant_id, job_id=request.job_id, attempt_id=request.attempt_id,
                     dataset_id=dataset.id, request_digest=request.digest(),
                     expires=now + timedelta(seconds=ATTEMPT_LEASE_S))
    dek = keystore.unwrap(wrapped["kek_id"], int(wrapped["kek_version"]),
                          b64d(wrapped["wrapped_dek"]))
    sealed = hpke_seal(suite, result.enclave_public_key, dek, request.hpke_info())
    return Grant(
        grant_id=grant_id, owner=ctx.code, dataset_id=dataset.id,
        request_digest=request.digest(), kek_id=wrapped["kek_id"],
        kek_version=int(wrapped["kek_version"]), hpke_suite=suite.value,
        sealed_dek=b64e(sealed), tee_mode=result.tee_mode, expires_at=expires,
        log_index=seq, job_id=request.job_id, attempt_id=request.attempt_id,
        evidence_kind=result.evidence_kind, output_rules=rules)


def wrap_key(ctx: CustodianContext, request: WrapRequest) -> WrappedKey:
    """Wrap an enclave's fresh output DEK under this nation's KEK, and keep the
    object's record (label, job, attempt, inputs, wrapped DEK).

    The attempt must present its grant id from this custodian (so only an
    attested attempt of an admitted job creates objects owned by this nation),
    with fresh evidence signed by the accredited site key, and the output label
    must name this nation as an owner.

    Raises
    ------
    AttestationError
        The evidence does not verify for this job, attempt and site.
    PolicyDenied
        Not an owner of the output, no admission or live accreditation, or
        ``grant_id`` is not this attempt's live grant (see
        :class:`~orchestrator.nation.grants.GrantStore`).
    IntegrityError
        The sealed DEK does not open for this request.
    """
    admitted = None
    for dataset_id in request.input_dataset_ids:
        admitted = admission_of(ctx, request.job_id, request.site, dataset_id)
        if admitted is not None:
            break
    if admitted is None:
        raise PolicyDenied("wrap refused", reasons=[
            f"job {request.job_id} was not admitted by {ctx.code} at site "
            f"{request.site}"])
    accreditation = ctx.accreditation(request.site)
    verify_evidence(ctx, request.evidence, job_id=request.job_id,
                    measurement=admitted.code_measurement,
                    attempt_id=request.attempt_id, accreditation=accreditation)
    owners = Label.from_json(request.label, derived=True).owners
    if ctx.code not in owners:
        raise PolicyDenied("wrap refused", reasons=[
            f"{ctx.code} is not an owner of the output label"])
    now = ctx.clock()
    ctx.grants.use(request.grant_id, job_id=request.job_id,
                   attempt_id=request.attempt_id, object_id=request.object_id, now=now)
    dek = hpke_open(ctx.keys.hpke_key(), b64d(request.sealed_dek), request.hpke_info())
    keystore = ctx.keys.keystore(clock=ctx.clock, audit=ctx.record)
    version, wrapped = keystore.wrap(dek)
    key = WrappedKey(owner=ctx.code, kek_id=keystore.kek_id, kek_version=version,
                     wrapped_dek=b64e(wrapped))
    kind = "checkpoint" if request.object_id.startswith("ckpt-") else "model"
    ctx.store.add_object(OwnedObject(
        id=request.object_id, kind=kind, label=dict(request.label),
        job_id=request.job_id, attempt_id=request.attempt_id, site=request.site,
        inputs=list(request.input_dataset_ids),
        wrapped={"kek_id": key.kek_id, "kek_version": key.kek_version,
                 "wrapped_dek": key.wrapped_dek},
        sealed_digest=request.sealed_digest, created=rfc3339(now)))
    return key
