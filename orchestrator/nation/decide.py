"""A custodian's job-level decision: may this job, at this site, use our data?

:func:`decide` evaluates the nation's policy (:mod:`orchestrator.policy.access`,
pure) on facts the custodian holds itself:

* the dataset's label: its own record of the dataset it sealed or co-owns
  (:class:`~orchestrator.nation.store.SealedDataset`);
* the site's operator nation and ceiling: its own signed, live accreditation of
  the site (:meth:`CustodianContext.accreditation`); a site it never
  accredited, or whose accreditation it revoked, is refused with that reason;
* the agreements in force: documents it holds, signed by every party's officer
  (signatures re-verified against the pinned officer keys);
* approvals and acknowledgements its officers delivered, and the quarter's use
  reported to it.

Every decision is recorded (``policy.decided``) before it is answered; a
permit is the job's *admission*, which every later key release needs.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from typing import Any

from orchestrator.canonical import digest_of
from orchestrator.crypto import HpkeSuite
from orchestrator.errors import DecisionPending, IntegrityError, PolicyDenied
from orchestrator.labels import Label
from orchestrator.nation.approvals import find_decision, request_approval
from orchestrator.nation.context import CustodianContext
from orchestrator.nation.store import SealedDataset
from orchestrator.nation.usage import (
    is_acknowledged,
    notification_id_for,
    quarter_usage,
    record_notification,
)
from orchestrator.policy.access import (
    AccessRequest,
    ApprovalFacts,
    Decision,
    Outcome,
    PolicyContext,
    Reason,
    SiteFacts,
    evaluate,
)
from orchestrator.protocol.agreements import Agreement, quarter_of
from orchestrator.protocol.approvals import request_id_for
from orchestrator.protocol.release import JobRequest
from orchestrator.protocol.statements import verify_statement
from orchestrator.timeutil import parse_rfc3339

__all__ = ["admission_of", "decide", "evaluate_for", "release_context"]


def evaluate_for(ctx: CustodianContext, dataset: SealedDataset, site: str,
                 priority_area: str, gpu_hours: float, *,
                 context: PolicyContext | None = None) -> Decision:
    """The nation's policy on one request, from the custodian's own facts.

    A site with no live accreditation by this nation is denied by rule
    ``accreditation`` without evaluating the rest.
    """
    try:
        accreditation = ctx.accreditation(site)
    except PolicyDenied as exc:
        return Decision(owner=ctx.code, outcome=Outcome.DENY, reasons=(Reason(
            "accreditation", False, exc.reasons[0].split(": ", 1)[-1]
            if exc.reasons else exc.message),), agreement_id=None, notify=False)
    now = ctx.clock()
    request = AccessRequest(
        dataset_id=dataset.id, label=Label.from_json(dataset.label),
        site=SiteFacts(name=site, operator_nation=accreditation.operator_nation,
                       accreditation=accreditation.ceiling),
        priority_area=priority_area, gpu_hours=gpu_hours, on=now.date())
    effective, ended = ctx.agreements()
    base = context or PolicyContext()
    return evaluate(ctx.code, request, effective, context=replace(
        base, ended=ended, at=base.at or now,
        quarter_usage_gpu_hours=quarter_usage(ctx.journal, quarter_of(now.date()))))


def _presented_approval(ctx: CustodianContext, request_id: str, digest: str,
                        job_id: str
                        ) -> tuple[ApprovalFacts | None, str | None, datetime | None]:
    """The officer's recorded decision on ``request_id``, verified, or ``None``;
    why a recorded decision was refused (``None`` when none was); and, when this
    very job (same request digest) already used the approval, the instant it did
    (its admission, re-decided when a co-owner's officer approves later: checked
    as of that instant and not consumed again).

    A statement that does not verify (foreign signer, altered), is bound to
    another request, or was used by another job is refused: ``approval.refused``
    is recorded with the reason and it does not count (fail closed).
    """
    signed, seq = find_decision(ctx.journal, request_id)
    if signed is None:
        return None, None, None
    refusal = None
    used_at: datetime | None = None
    try:
        statement = verify_statement(
            signed, public_key=ctx.officer_key(ctx.code), expected_type="approval/v1",
            expected_nation=ctx.code, source=request_id)
        if statement["request_digest"] != digest or statement["job_id"] != job_id:
            refusal = "approval is bound to another request"
        expires_at = parse_rfc3339(str(statement["expires_at"]))
    except (IntegrityError, ValueError) as exc:
        refusal = getattr(exc, "message", str(exc))
    if refusal is None:
        for used_job, when in ctx.approval_uses.used_for_approval(
                str(statement["approval_id"])):
            if used_job == job_id:
                used_at = parse_rfc3339(when)  # this job's own admission
            else:
                refusal = (f"approval {statement['approval_id']} was already "
                           f"used by job {used_job} at {when} (single use)")
    if refusal is not None:
        ctx.record("approval.refused", {
            "request_id": request_id, "job_id": job_id, "owner": ctx.code,
            "entry": seq, "reason": refusal})
        return None, refusal, None
    return ApprovalFacts(
        approval_id=str(statement["approval_id"]),
        decision=str(statement["decision"]), owner=ctx.code,
        request_digest=str(statement["request_digest"]), expires_at=expires_at,
        agreement_id=str(statement["agreement_id"]),
    ), None, used_at


def _agreement(ctx: CustodianContext, agreement_id: str | None) -> Agreement | None:
    return next((a for a in ctx.agreements()[0] if a.id == agreement_id), None)


def decide(ctx: CustodianContext, request: JobRequest) -> dict[str, Any]:
    """Evaluate and record the job-level decision; see
    :meth:`orchestrator.protocol.release.Custodian.decide`.

    Case-by-case areas: the officer's recorded approval for this request
    (``apr-<job>-<owner>-<site>``) is verified and, on a permit, consumed (single
    use); without one, ``approval.requested`` is recorded. Thresholds: a crossing
    records ``notification.recorded``; an agreement that holds until acknowledged
    holds the request.

    Raises
    ------
    DecisionPending
        ``needs-approval`` or ``held``; the request is recorded.
    PolicyDenied
        On a denial; ``reasons`` holds every failed rule.
    NotFound
        If this custodian holds no such dataset.
    """
    dataset = ctx.store.dataset(request.dataset_id)
    digest = digest_of(request.to_json())
    request_id = request_id_for(request.job_id, ctx.code, request.site)
    now = ctx.clock()
    with ctx.lock():
        approval, refusal, used_at = _presented_approval(ctx, request_id, digest,
                                                         request.job_id)
        at = used_at or now  # an approval this job used counts as of its use
        decision = first = evaluate_for(
            ctx, dataset, request.site, request.priority_area, request.gpu_hours,
            context=PolicyContext(request_digest=digest, at=at, approval=approval))
        if first.notify:
            agreement = _agreement(ctx, first.agreement_id)
            acknowledged = agreement is not None and is_acknowledged(
                ctx.journal, notification_id_for(digest, agreement.id), agreement,
                ctx.officer_keys())
            decision = evaluate_for(
                ctx, dataset, request.site, request.priority_area, request.gpu_hours,
                context=PolicyContext(request_digest=digest, at=at, approval=approval,
                                      acknowledged=acknowledged))
        ctx.record("policy.decided", {
            "job_id": request.job_id, "dataset_id": dataset.id, "site": request.site,
            "owner": ctx.code, "request_digest": digest,
            "request": request.to_json(), "decision": decision.to_json()})
        outcome = decision.outcome
        agreement = _agreement(ctx, decision.agreement_id)
        if decision.notify and agreement is not None and outcome in (
                Outcome.PERMIT, Outcome.HELD):
            quarter = quarter_of(now.date())
            record_notification(
                ctx, job_id=request.job_id, request_digest=digest,
                agreement=agreement, kinds=list(decision.notices),
                gpu_hours=request.gpu_hours,
                used_gpu_hours=quarter_usage(ctx.journal, quarter).get(agreement.id,
                                                                       0.0),
                quarter=quarter, hold=outcome is Outcome.HELD)
        if outcome is Outcome.NEEDS_APPROVAL:
            request_approval(
                ctx, request_id=request_id, owner=ctx.code, job_id=request.job_id,
                request_digest=digest, dataset_id=dataset.id, site=request.site,
                priority_area=request.priority_area, gpu_hours=request.gpu_hours,
                agreement_id=decision.agreement_id or "",
                reasons=decision.denial_reasons())
            raise DecisionPending(
                f"{ctx.code} custodian: needs approval by the {ctx.code} officer "
                f"(request {request_id})", outcome=outcome.value,
                reasons=decision.denial_reasons()
                + ([f"approval: refused: {refusal}"] if refusal else []))
        if outcome is Outcome.HELD:
            assert agreement is not None  # a hold needs an agreement
            raise DecisionPending(
                f"{ctx.code} custodian: held until {agreement.oversight_body} is "
                f"notified and an officer acknowledges "
                f"{notification_id_for(digest, agreement.id)}",
                outcome=outcome.value, reasons=decision.denial_reasons())
        if not decision.permit:
            raise PolicyDenied(f"{ctx.code} custodian: {outcome.value}",
                               reasons=decision.denial_reasons())
        if approval is not None and used_at is None and any(
                r.rule == "tier" and r.passed and r.detail.startswith("approved by")
                for r in decision.reasons):  # consumed once, and only where it counted
            ctx.approval_uses.use(
                approval.approval_id, job_id=request.job_id, request_digest=digest,
                expires_at=approval.expires_at, now=now,
                agreement_id=approval.agreement_id)
            ctx.record("approval.used", {
                "request_id": request_id, "job_id": request.job_id,
                "owner": ctx.code, "approval_id": approval.approval_id})
    return {**decision.to_json(),
            "hpke_suite": agreement.hpke_suite_value if agreement
            else HpkeSuite.X25519.value,
            "tee_required": bool(agreement and agreement.tee_required)}


def admission_of(ctx: CustodianContext, job_id: str, site: str,
                 dataset_id: str) -> JobRequest | None:
    """The job request this custodian admitted (its latest permitting
    ``policy.decided`` for the job at ``site`` over ``dataset_id``), or ``None``:
    never decided, refused, pending approval or held."""
    admitted = None
    for entry in ctx.journal.find("policy.decided", job_id=job_id):
        body = entry.event.body
        if (entry.event.actor == ctx.actor and body.get("owner") == ctx.code
                and body.get("site") == site and body.get("dataset_id") == dataset_id
                and body.get("decision", {}).get("outcome") == Outcome.PERMIT.value
                and isinstance(body.get("request"), dict)):
            admitted = JobRequest.from_json(body["request"])
    return admitted


def release_context(ctx: CustodianContext, job_id: str, digest: str,
                    chosen: str | None) -> PolicyContext:
    """The policy context of a release: the approval this job used at its
    admission (under the agreement ``chosen`` now, first), as of its use."""
    uses = [u for u in ctx.approval_uses.used_for(job_id) if u[1] == digest]
    uses.sort(key=lambda u: u[4] != chosen)
    for approval_id, used_digest, used_at, expires_at, agreement_id in uses:
        if used_digest == digest:
            return PolicyContext(
                request_digest=digest, at=parse_rfc3339(used_at), acknowledged=True,
                approval=ApprovalFacts(
                    approval_id=approval_id, decision="approve", owner=ctx.code,
                    request_digest=digest, expires_at=parse_rfc3339(expires_at),
                    agreement_id=agreement_id))
    return PolicyContext(request_digest=digest, acknowledged=True)
