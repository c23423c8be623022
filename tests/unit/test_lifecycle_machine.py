"""A stateful property test of the whole sovereignty lifecycle.

A hypothesis :class:`RuleBasedStateMachine` drives one real embedded state
directory per example (nations AUS, GBR and USA, each custodian with its own
store and journal; the US-operated ``local`` site, accredited SECRET by every
nation; the custody log; file KEKs) through the
lifecycle: seal datasets (AUS, GBR, USA, joint AUS+GBR and AUS+USA owners,
several labels), add agreement versions (AUS-USA, GBR-USA, AUS-GBR; pre-approved,
case-by-case and unlisted areas, oversight holds, with or without every
signature), sign them, submit jobs (every owner's custodian decides), approve or
deny pending (or expired) case-by-case requests, acknowledge oversight
notifications, release keys (to owners that admitted the job and to owners that
did not; proper attestation evidence, and replayed nonces), train (open the
dataset from the released shares and have every owner wrap a model DEK), consent
to and transfer models, rotate / rewrap / disable / enable KEKs, revoke and
terminate agreements, and advance the custodians' clock (approval, consent and
grant expiry). Every party acts as in the embedded default, except that the
officers and the orchestrator reach the machine's own custodians, which run on
the machine's clock.

A plain-Python model of the agreements, approvals (with their rounds),
notifications, KEKs and consents predicts the outcome of every decision, release,
wrap and transfer, and each rule asserts the code agrees. The intended behaviour
it encodes:

* a custodian releases a key only for a job it *admitted* (a permitting
  ``policy.decided`` of its own for the job, site and dataset, at any earlier
  point); any other release is refused (``key.denied``, "not admitted by the X
  custodian") before the evidence is verified, so its nonce is not consumed;
* terminating an agreement once its clause is met cancels the
  open requests under it (``approval.cancelled``): pending ones and approved,
  unused ones, expired or not;
* approvals are bound to the agreement they were reviewed under: the officer's
  ``approval/v1`` names the agreement of the request's round, and the tier rule
  counts it (approve or deny) only under that agreement. A decision that needs
  approval logs a new ``approval.requested`` with the same id (a new *round*,
  under the agreement now chosen) when the request has no round yet, or its
  latest round was cancelled or is for another agreement (a successor with a
  later ``valid_from`` taking over, or a used round under an agreement since
  ended: revocation cancels only open rounds); otherwise it does not log
  again. Decisions of earlier rounds no longer count, and the officer decides
  the new round (a round is decidable while pending, or approved but expired
  unused);
  :func:`~orchestrator.nation.approvals.approval_requests` reports the latest round;
* a permit consumes an approval (``approval.used``, single use) only where it
  counted: a case-by-case area with a valid, unexpired approval for this request
  given under the agreement chosen now. A permit in a pre-approved area (or
  domestic use) leaves a granted approval unused. Deciding the *same* job again
  after its approval was used re-uses that admission: the approval is checked as
  of the instant it was used (it does not expire for this job) and under the
  agreement now chosen, and nothing is consumed or refused again (an approval
  presented for another job would be refused, ``approval.refused``; the machine
  cannot present one: an approval is bound to its job);
* a release in a case-by-case area counts the approval the job used at its
  admission, as of that instant, only under the agreement it was given under:
  after a revocation and a successor the job's releases are refused until it is
  admitted again under the successor (reviewed under it);
* a consent is spent by the permitting ``transfer.decided`` that counts it.

After every step the invariants check the custody log itself:

(a) every ``key.released`` follows a permitting ``policy.decided`` for the same
    job, owner and dataset and, when the job's area is case-by-case under the
    agreement it relies on (the version in force at that point of the log), an
    ``approval.used`` for the job by that owner in a round under that agreement;
(b) no ``key.released``, permitting or pending ``policy.decided`` or permitting
    ``transfer.decided`` relies on an agreement that had not taken effect, or
    whose (clause-satisfying) termination precedes it in the log;
(c) every grant returned to the caller has its ``key.released`` entry at
    ``Grant.log_index`` (logged before the key left the custodian), and the log
    holds no release the caller did not get;
(d) (in the rules) after a termination no decision or release
    relies on the agreement: they are refused or rely on another one;
(e) the custody log verifies as an officer checks it (chain, signatures by
    the keys the actors enrolled, each nation's custodian key the pinned one,
    kinds each role may write);
(f) an approval is used at most once, only after it was granted in the
    request's current round (never one of an earlier round, nor after the round
    was cancelled), and only right after a permitting ``policy.decided`` whose
    ``tier`` reason is the approval ("approved by ...") under the round's
    agreement; a request is asked again only when it has no round yet, or its
    latest round was cancelled or is for another agreement; no
    ``approval.refused`` is logged (the machine presents no approval of another
    job, nor an altered one); a consent counts for the permits of at most one
    transfer (each owner's custodian decides it; a permit spends it, even if
    the transfer then fails), and a transfer completes only after a
    permitting ``transfer.decided``;
(g) every custodian's ``approval_requests()`` lists exactly the model's
    requests, each with the status (``expired`` included) and agreement of its
    latest round.

Officers' approvals are signed on the custodians' clock (controlled), so that
approval, consent and grant expiry depend only on the generated steps.

The production bugs this machine found earlier (release without admission; a
revocation leaving the approvals requested under it usable under a successor; a
cancelled request never asked again; approvals consumed where they did not
count; a resumed joint job refusing the approval it had used, so never admitted)
are fixed; the tests at the end of this file pin them.

Also fixed: a job admitted again under a successor agreement was refused its
keys because releases counted its *first* used approval (given under the earlier
agreement); ``_release_context`` now takes the use under the agreement chosen now
(:func:`test_a_job_admitted_again_under_a_successor_gets_its_keys`). Approval ids
are random (they were the request id plus the microsecond of signing, which two
decisions at one clock reading could share).

The machine's clock stands still within a step; ``_officer_decides`` still moves
it on by 1 ms when an officer decides a request again at the same instant (needed
while approval ids were time-based; harmless now).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import Counter
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from testkit import ROOT, SONAR, custodian_of

from orchestrator.canonical import b64d, b64e, digest_of, sha256_hex
from orchestrator.crypto import (
    HpkeSuite,
    RecipientKey,
    combine_dek_shares,
    hpke_open,
    hpke_seal,
    load_private_key,
    new_dek,
    open_bytes,
    seal_bytes,
)
from orchestrator.embedded import (
    Deployment,
    accredit_site,
    acknowledge,
    decide_request,
    init_nation,
    register_site,
    seal_dataset,
    terminate_agreement,
)
from orchestrator.embedded.layout import StateDir
from orchestrator.errors import (
    AlreadyExists,
    AttestationError,
    ConfigError,
    DecisionPending,
    PolicyDenied,
)
from orchestrator.labels import Label, derive_label
from orchestrator.log.store import CustodyLog
from orchestrator.nation.approvals import approval_requests
from orchestrator.nation.custodian import ATTEMPT_LEASE_S, LocalCustodian
from orchestrator.nation.kek_admin import nation_keystore, rewrap_all
from orchestrator.nation.usage import notification_id_for
from orchestrator.officer import statements as officer_statements
from orchestrator.officer.trust import TrustConfig
from orchestrator.policy.standing import AgreementStatus, effective_in
from orchestrator.policy.transfer import TransferDenied
from orchestrator.protocol.agreements import AccessTier, Agreement
from orchestrator.protocol.approvals import request_id_for
from orchestrator.protocol.release import Grant, JobRequest, ReleaseRequest, WrapRequest
from orchestrator.protocol.statements import SignedStatement
from orchestrator.site.attestation import SoftwareAttester
from orchestrator.submit import registration
from orchestrator.submit import transfer as relay
from orchestrator.submit.registry import JobRecord, Registry, SealedObjectRecord
from orchestrator.timeutil import parse_rfc3339, rfc3339
from orchestrator.tlog.verify import EnrollingVerifier

MEASUREMENT = "sha256:" + "ab" * 32
SITE = "local"
OPERATOR = "USA"  # operator nation of the local site (site_configs/local.toml)
NATIONS = ("AUS", "GBR", "USA")
PAIRS = (("AUS", "USA"), ("GBR", "USA"), ("AUS", "GBR"))
AREAS = ("undersea-autonomy", "quantum-sensing", "hypersonics")
#: Two agreement ids per pair: a first one and a later "successor" (its later
#: ``valid_from`` makes it the one chosen when both are in force).
SUFFIXES = {"A": date(2026, 1, 1), "B": date(2026, 6, 1)}
VALID_UNTIL = date(2028, 12, 31)
THRESHOLD = 500.0  # notification_threshold_gpu_hours of every generated agreement
OWNER_SETS = (("AUS",), ("GBR",), ("USA",), ("AUS", "GBR"), ("AUS", "USA"))
GPU_HOURS = (0.5, 4.0, 600.0)  # 600 crosses THRESHOLD: a notification (or hold)
ADVANCES = (  # odd seconds keep sums off the exact expiry instants
    timedelta(seconds=61),
    timedelta(seconds=601),
    timedelta(hours=2, seconds=7),
    timedelta(days=1, seconds=13),
    timedelta(days=3, seconds=17),
)
APPROVAL_EXPIRY_S = (3600, 86400, 7 * 86400)
CONSENT_EXPIRY = (timedelta(hours=1), timedelta(days=7))
END_USES = ("research", "weapons-targeting")
LEASE = timedelta(seconds=ATTEMPT_LEASE_S)  # wraps allowed after a release

PERMIT, DENY, NEEDS, HELD = "permit", "deny", "needs-approval", "held"
#: submit_job's "area" meaning: one that is case-by-case for an owner (if any)
REVIEWED = "a case-by-case area"

# Strategies, biased towards states where jobs get through (most areas listed and
# pre-approved, few holds, data releasable to the site's nation).
TIER = st.sampled_from(("pre-approved", "pre-approved", "case-by-case", None))
VERSION = st.tuples(st.tuples(*[TIER] * len(AREAS)),
                    st.sampled_from((False, False, True)))
TERMS = st.tuples(st.sampled_from(("any-party", "all-parties")),
                  st.sampled_from(("prohibited", "with-consent")), st.booleans())


# -- the model ------------------------------------------------------------------
@dataclass(frozen=True)
class VersionSpec:
    """What one agreement version says about areas and holds."""

    areas: dict[str, str]
    hold: bool


@dataclass
class AgreementModel:
    """One agreement id: terms fixed across versions, versions, signatures, ends."""

    id: str
    parties: frozenset[str]
    valid_from: date
    termination: str
    third_party: str
    prohibited: tuple[str, ...]
    versions: dict[int, VersionSpec] = field(default_factory=dict)
    signed: dict[int, set[str]] = field(default_factory=dict)
    terminated_by: set[str] = field(default_factory=set)
    revoked: bool = False

    def terminated(self) -> bool:
        if self.termination == "all-parties":
            return self.terminated_by == set(self.parties)
        return bool(self.terminated_by)

    def ended(self) -> bool:
        return self.revoked or self.terminated()

    def complete(self) -> list[int]:
        return sorted(v for v, who in self.signed.items() if who == set(self.parties))

    def effective_version(self) -> int | None:
        complete = self.complete()
        if self.ended() or not complete:
            return None
        return complete[-1]

    def status(self, version: int) -> AgreementStatus:
        """What :func:`orchestrator.agreement_state.standings` should say."""
        complete = self.complete()
        if self.revoked:
            return AgreementStatus.REVOKED
        if self.terminated():
            return AgreementStatus.TERMINATED
        if self.signed[version] != set(self.parties):
            return AgreementStatus.AWAITING_SIGNATURES
        if version < complete[-1]:
            return AgreementStatus.SUPERSEDED
        return AgreementStatus.EFFECTIVE

    def toml(self, version: int) -> str:
        spec = self.versions[version]
        a, b = sorted(self.parties)
        lines = [
            "[agreement]",
            f'id = "{self.id}"',
            f'title = "lifecycle machine {self.id} v{version}"',
            f'parties = ["{a}", "{b}"]',
            f"valid_from = {self.valid_from.isoformat()}",
            f"valid_until = {VALID_UNTIL.isoformat()}",
            f"notification_threshold_gpu_hours = {THRESHOLD}",
            'oversight_body = "AUKUS Joint Steering Group"',
            f"version = {version}",
            f"hold_until_acknowledged = {'true' if spec.hold else 'false'}",
            f'third_party_transfer = "{self.third_party}"',
            f'termination = "{self.termination}"',
            "prohibited_end_uses = ["
            + ", ".join(f'"{u}"' for u in self.prohibited) + "]",
        ]
        for name, tier in spec.areas.items():
            lines += ["", "[[agreement.priority_area]]", f'name = "{name}"',
                      f'tier = "{tier}"']
        return "\n".join(lines) + "\n"


@dataclass(frozen=True)
class DatasetModel:
    id: str
    owners: tuple[str, ...]
    releasable: frozenset[str]
    classification: str
    label: dict[str, Any]
    object_path: str
    sealed_digest: str


@dataclass
class JobModel:
    id: str
    dataset_id: str
    area: str
    gpu_hours: float
    digest: str
    admitted: set[str] = field(default_factory=set)
    derived: set[str] = field(default_factory=set)
    #: owner -> the agreements its own permitting decisions relied on (what its
    #: custodian knows the model was derived under)
    derived_by: dict[str, set[str]] = field(default_factory=dict)
    #: owner -> the agreements of the approvals this job used (each while it was
    #: unexpired), in order of use; at release the code counts only the first
    #: one, "as of the instant it was used" (see the module docstring, Open)
    used_approval: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class ApprovalModel:
    """One request id's latest round (asked again after a cancellation)."""

    request_id: str
    job_id: str
    owner: str
    agreement_id: str  # the agreement of the latest round
    status: str = "pending"  # approved (expired: see expired()), denied, used,
    # cancelled
    approval_id: str = ""
    expires_at: datetime | None = None
    round: int = 1

    def expired(self, now: datetime) -> bool:
        """An approval the officer gave that expired unused."""
        return (self.status == "approved" and self.expires_at is not None
                and self.expires_at <= now)

    def listed(self, now: datetime) -> str:
        """The status :func:`~orchestrator.nation.approvals.approval_requests`
        reports."""
        return "expired" if self.expired(now) else self.status

    def ask_again(self, agreement_id: str) -> None:
        """A new round: pending, under the agreement now chosen."""
        self.agreement_id, self.status = agreement_id, "pending"
        self.approval_id, self.expires_at = "", None
        self.round += 1


@dataclass
class NotificationModel:
    agreement_id: str
    parties: frozenset[str]
    job_id: str
    owner: str
    acknowledged: bool = False


@dataclass
class Released:
    grant: Grant
    share: bytes
    lease_until: datetime  # the custodian's attempt lease (wraps allowed until)


@dataclass
class AttemptModel:
    job_id: str
    attempt_id: str
    key: RecipientKey
    grants: dict[str, Released] = field(default_factory=dict)
    last_request: dict[str, ReleaseRequest] = field(default_factory=dict)


@dataclass(frozen=True)
class ModelObject:
    id: str
    job_id: str
    owners: tuple[str, ...]
    releasable: frozenset[str]


@dataclass
class ConsentModel:
    id: str
    owner: str
    model_id: str
    recipient: str
    end_use: str
    expires_at: datetime
    used: bool = False


@dataclass(frozen=True)
class Expect:
    """The predicted decision of one owner on one job."""

    outcome: str
    agreement_id: str | None
    joint_ids: tuple[str, ...]
    notify: bool
    hold: bool
    consumes: bool


# -- the machine ----------------------------------------------------------------
class LifecycleMachine(RuleBasedStateMachine):
    """One state dir per example; see the module docstring."""

    def __init__(self) -> None:
        super().__init__()
        shm = Path("/dev/shm")  # tmpfs where there is one: fsync is the cost here
        self.tmp = Path(tempfile.mkdtemp(prefix="lifecycle-",
                                         dir=shm if shm.is_dir() else None))
        self.base = datetime.now(UTC).replace(microsecond=0)
        self.offset = timedelta(0)
        self.custodians: dict[str, LocalCustodian] = {}
        self.agreements: dict[str, AgreementModel] = {}
        self.datasets: dict[str, DatasetModel] = {}
        self.jobs: dict[str, JobModel] = {}
        self.approvals: dict[str, ApprovalModel] = {}
        self.notifications: dict[str, NotificationModel] = {}
        self.attempts: list[AttemptModel] = []
        self.models: dict[str, ModelObject] = {}
        self.consents: list[ConsentModel] = []
        self.kek_enabled = dict.fromkeys(NATIONS, True)
        self.grants: list[Grant] = []
        self.checked_grants = 0
        self.replay = LogReplay(self)
        self.counter = 0
        #: request id -> the instant its officer last decided it (approval ids
        #: are the request id and the issuing microsecond: see _officer_decides)
        self.officer_instants: dict[str, datetime] = {}

    def teardown(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- helpers --
    def clock(self) -> datetime:
        return self.base + self.offset

    def _next(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}-{self.counter}"

    def _custodian(self, nation: str) -> LocalCustodian:
        if nation not in self.custodians:
            self.custodians[nation] = custodian_of(self.state, nation,
                                                     clock=self.clock)
        return self.custodians[nation]

    def _connect(self, nation: str) -> LocalCustodian:
        return self._custodian(nation)

    def _attester(self) -> SoftwareAttester:
        return SoftwareAttester(SITE, self.site_key, clock=self.clock)

    def _log(self) -> CustodyLog:
        return CustodyLog(self.state.custody_db)

    def _choose(self, a: str, b: str) -> tuple[AgreementModel, VersionSpec] | None:
        """The agreement policy rule (5)/(8) picks for the pair, as the code does."""
        day = self.clock().date()
        found = []
        for m in self.agreements.values():
            version = m.effective_version()
            if (m.parties == frozenset((a, b)) and version is not None
                    and m.valid_from <= day <= VALID_UNTIL):
                found.append((m, m.versions[version]))
        found.sort(key=lambda item: (-item[0].valid_from.toordinal(), item[0].id))
        return found[0] if found else None

    def _presented(self, job: JobModel, owner: str,
                   agreement_id: str | None) -> tuple[str | None, bool]:
        """The officer decision a custodian finds in the request's latest round
        (``None``: none yet, or cancelled), and whether it counts under the
        agreement chosen now: only under the agreement of its round; an approval
        only until it expires, one this job used as of its use (always)."""
        found = self.approvals.get(request_id_for(job.id, owner, SITE))
        if found is None or found.status in ("pending", "cancelled"):
            return None, False
        under = found.agreement_id == agreement_id
        if found.status == "denied":
            return "deny", under
        if found.status == "used":  # this job's own admission, re-used
            return "approve", under
        return "approve", under and not found.expired(self.clock())

    def _expect(self, job: JobModel, owner: str, *, release: bool) -> Expect:
        """Predict ``owner``'s decision (admission, or at release time)."""
        ds = self.datasets[job.dataset_id]
        hard = OPERATOR not in ds.releasable or ds.classification != "SECRET"
        needs = held = notify = hold = consumes = False
        agreement_id: str | None = None
        if owner != OPERATOR:
            chosen = self._choose(owner, OPERATOR)
            if chosen is None:
                hard = True
            else:
                agreement, spec = chosen
                agreement_id, hold = agreement.id, spec.hold
                tier = spec.areas.get(job.area)
                if tier is None:
                    hard = True
                elif tier == "case-by-case":
                    if release:  # the (first) approval this job used counts, if
                        # given under the agreement chosen now
                        used = job.used_approval.get(owner, [])
                        needs = agreement.id not in used
                    else:
                        verdict, counts = self._presented(job, owner, agreement.id)
                        hard = hard or (verdict == "deny" and counts)
                        needs = verdict is None or not counts
                        # a permit consumes the approval only where it counted,
                        # and only once (a used one is this job's admission)
                        consumes = (verdict == "approve" and counts
                                    and self.approvals[request_id_for(
                                        job.id, owner, SITE)].status == "approved")
                if job.gpu_hours > THRESHOLD:
                    notify = True
                    nid = notification_id_for(job.digest, agreement.id)
                    note = self.notifications.get(nid)
                    acked = note is not None and note.acknowledged
                    held = spec.hold and not release and not acked
        joint = []
        for other in sorted(set(ds.owners) - {owner}):
            chosen = self._choose(owner, other)
            if chosen is None:
                hard = True
            else:
                joint.append(chosen[0].id)
        outcome = DENY if hard else NEEDS if needs else HELD if held else PERMIT
        return Expect(outcome, agreement_id, tuple(joint), notify and outcome != DENY,
                      hold, consumes and outcome == PERMIT)

    # -- setup --
    @initialize(initial=st.tuples(
        st.tuples(VERSION, TERMS),  # AUS-USA: the AUS sonar data's own
        *[st.one_of(st.none(), st.tuples(VERSION, TERMS))] * (len(PAIRS) - 1)))
    def world(self, initial: tuple[Any, ...]) -> None:
        """Nations, the local site, the AUS sonar dataset and, for some pairs, a
        first agreement signed by both parties."""
        self.state = StateDir(self.tmp / "state").ensure()
        for code in NATIONS:
            init_nation(self.state, code)
        site_file = self.tmp / "site.toml"
        site_file.write_text((ROOT / "site_configs" / "local.toml").read_text())
        register_site(self.state, site_file)
        for code in NATIONS:
            accredit_site(self.state, SITE, code)
        self.site_key = load_private_key(self.state.site_dir(SITE) / "site.key")
        # The orchestrator reaches the machine's custodians (on its clock).
        self.orch = replace(Deployment(self.state).orchestrator(),
                            connect=self._connect)
        trust = TrustConfig.load(self.state.officer_dir("AUS") / "trust.json")
        self.checker = EnrollingVerifier(
            {f"custodian:{n}": v.public_key
             for n, v in trust.witness_verifiers().items()}, source="custody log")
        self._seal(("AUS",), frozenset(NATIONS), "SECRET")
        for pair, drawn in zip(PAIRS, initial, strict=True):
            if drawn is not None:
                (tiers, hold), terms = drawn
                self._add_version(pair, "A", tiers, hold, terms, signers=pair)
        self._check_agreement_state()

    def _seal(self, owners: tuple[str, ...], releasable: frozenset[str],
              classification: str) -> None:
        name = self._next("ds")
        if not all(self.kek_enabled[o] for o in owners):
            with pytest.raises(PolicyDenied):  # KeyUnavailable: no share wrapped
                seal_dataset(self.state, SONAR, name=name, owners=list(owners),
                             classification=classification,
                             releasable_to=sorted(releasable))
            return
        record = seal_dataset(self.state, SONAR, name=name, owners=list(owners),
                              classification=classification,
                              releasable_to=sorted(releasable))
        assert sorted(record.wrapped_keys) == sorted(owners)
        self.datasets[record.id] = DatasetModel(
            record.id, tuple(sorted(owners)), releasable, classification,
            record.label, record.object_path, record.sealed_digest)

    # -- datasets and agreements --
    @precondition(lambda self: len(self.datasets) < 5)
    @rule(owners=st.sampled_from(OWNER_SETS),
          extra=st.sampled_from((frozenset(NATIONS),) * 3 + (frozenset(("AUS",)),)),
          classification=st.sampled_from(["SECRET", "SECRET", "TOP SECRET"]))
    def register_dataset(self, owners: tuple[str, ...], extra: frozenset[str],
                         classification: str) -> None:
        self._seal(owners, frozenset(owners) | extra, classification)

    @precondition(lambda self: sum(len(m.versions) for m in self.agreements.values())
                  < 10)
    @rule(pair=st.sampled_from(PAIRS), suffix=st.sampled_from(sorted(SUFFIXES)),
          version=VERSION, terms=TERMS,
          sign_as=st.sampled_from(((0, 1), (0, 1), (0,), (1,), ())),
          aim=st.one_of(st.none(), st.tuples(
              st.integers(0, 100),
              st.sampled_from(("case-by-case", "case-by-case", "pre-approved")))))
    def add_agreement_version(self, pair: tuple[str, str], suffix: str,
                              version: tuple[tuple[str | None, ...], bool],
                              terms: tuple[str, str, bool],
                              sign_as: tuple[int, ...],
                              aim: tuple[int, str] | None) -> None:
        """A new agreement, or a new version of one (signed by some parties);
        the id's other terms stay as first drawn. ``aim``: aimed at an
        approval request's job: a superseding version of the request's agreement
        (or, once that ended, its successor for the pair) with the job's area in
        the drawn tier."""
        tiers = version[0]
        if aim is not None and self.approvals:
            index, tier = aim
            approval = self.approvals[sorted(self.approvals)[index % len(
                self.approvals)]]
            aid = approval.agreement_id
            a, b, suffix = aid.split("-")
            pair = (a, b)
            if self.agreements[aid].ended():
                suffix = "B" if suffix == "A" else "A"
            area = self.jobs[approval.job_id].area
            tiers = tuple(tier if name == area else t
                          for name, t in zip(AREAS, tiers, strict=True))
            event(f"agreement version aimed at a {approval.status} request")
        self._add_version(pair, suffix, tiers, version[1], terms,
                          signers=tuple(pair[i] for i in sign_as))

    def _add_version(self, pair: tuple[str, str], suffix: str,
                     tiers: tuple[str | None, ...], hold: bool,
                     terms: tuple[str, str, bool], *,
                     signers: tuple[str, ...]) -> None:
        aid = f"{pair[0]}-{pair[1]}-{suffix}"
        termination, third_party, prohibit = terms
        model = self.agreements.get(aid) or AgreementModel(
            aid, frozenset(pair), SUFFIXES[suffix], termination, third_party,
            ("weapons-targeting",) if prohibit else ())
        areas = {a: t for a, t in zip(AREAS, tiers, strict=True) if t is not None}
        if not areas:
            areas = {AREAS[0]: "pre-approved"}
        version = max(model.versions, default=0) + 1
        model.versions[version] = VersionSpec(areas, hold)
        path = self.tmp / f"{aid}-v{version}.toml"
        path.write_text(model.toml(version))
        added = registration.add_agreement(self.orch, path)
        for nation in signers:
            self._sign(aid, nation, version)
        assert added.id == aid and added.version == version
        self.agreements[aid] = model
        model.signed[version] = set(signers)
        if version > 1:  # a version not above the recorded ones is refused
            stale = self.tmp / f"{aid}-stale.toml"
            stale.write_text(model.toml(version).replace(
                f"version = {version}", f"version = {version - 1}"))
            with pytest.raises((AlreadyExists, ConfigError)):
                registration.add_agreement(self.orch, stale)
        self._check_agreement_state()

    @precondition(lambda self: bool(self.agreements))
    @rule(index=st.integers(0, 100), party=st.integers(0, 1))
    def sign(self, index: int, party: int) -> None:
        versions = sorted((aid, v) for aid, m in self.agreements.items()
                          for v in m.versions)
        aid, version = versions[index % len(versions)]
        model = self.agreements[aid]
        nation = sorted(model.parties)[party]
        if nation in model.signed[version]:
            with pytest.raises(AlreadyExists):
                self._sign(aid, nation, version)
            return
        standing = self._sign(aid, nation, version)
        model.signed[version].add(nation)
        assert standing.status is model.status(version), (standing.detail, model)
        self._check_agreement_state()

    @precondition(lambda self: bool(self.agreements))
    @rule(index=st.integers(0, 100), how=st.sampled_from((0, 1)),
          aim=st.booleans())
    def end_agreement(self, index: int, how: int, aim: bool) -> None:
        """A party's officer signs a termination (it ends the agreement once its
        clause is met; ``aim``: preferably one with open approval requests
        under it). Only officers end agreements: the orchestrator cannot."""
        aids = sorted(self.agreements)
        if aim:
            aids = sorted({a.agreement_id for a in self.approvals.values()
                           if a.status in ("pending", "approved")}) or aids
        self._terminate(aids[index % len(aids)], how)

    def _terminate(self, aid: str, party: int) -> None:
        model = self.agreements[aid]
        nation = sorted(model.parties)[party]
        officer = Deployment(self.state).officer(nation)
        if nation in model.terminated_by:
            with pytest.raises(AlreadyExists):
                officer_statements.terminate_agreement(
                    officer, self._connect, aid, reason="again", clock=self.clock)
            return
        officer_statements.terminate_agreement(officer, self._connect, aid,
                                               reason="exercise over",
                                               clock=self.clock)
        model.terminated_by.add(nation)
        latest = max(model.versions)
        standing = self._standing(nation, aid, latest)
        assert standing.status is model.status(latest)
        event(f"terminate: {standing.status.value}")
        if model.terminated() and not model.revoked:  # the clause is met
            self._cancel_open(aid)
        self._check_agreement_state()
        self._assert_no_reliance(aid)

    def _sign(self, aid: str, nation: str, version: int) -> Any:
        """``nation``'s officer signs ``aid`` v``version`` (delivered to every
        party's custodian); return the version's standing at ``nation``."""
        officer_statements.sign_agreement(Deployment(self.state).officer(nation),
                                          self._connect, aid, version=version,
                                          clock=self.clock)
        return self._standing(nation, aid, version)

    def _standing(self, nation: str, aid: str, version: int) -> Any:
        return next(s for s in self._custodian(nation).ctx.standings()
                    if s.agreement.id == aid and s.agreement.version == version)

    def _cancel_open(self, aid: str) -> None:
        """``cancel_pending``: the requests whose latest round is under ``aid`` and
        open (pending, or approved and unused, expired or not) are cancelled."""
        for approval in self.approvals.values():
            if (approval.agreement_id == aid
                    and approval.status in ("pending", "approved")):
                event("an open request cancelled"
                      + (" (expired)" if approval.expired(self.clock()) else ""))
                approval.status = "cancelled"

    def _assert_no_reliance(self, aid: str) -> None:
        """(d): right after an agreement ends, a job admitted under it asks every
        owner for its key again and is decided again. The model never relies on
        an ended agreement, and ``_release`` / ``_decide`` assert the code agrees
        (refused, or relying on another agreement); (b) checks the log."""
        if not self.agreements[aid].ended():
            return
        job = next((j for j in sorted(self.jobs.values(), key=lambda j: j.id)
                    if aid in j.derived), None)
        if job is None:
            return
        event("an ended agreement's job retried")
        attempt = self._attempt(job, None)
        for owner in sorted(job.admitted):
            self._release(job, owner, attempt)
            self._decide(job, owner)

    # -- jobs, decisions, approvals --
    @precondition(lambda self: bool(self.datasets) and len(self.jobs) < 8)
    @rule(index=st.integers(0, 100),
          area=st.sampled_from((AREAS[0], *AREAS, REVIEWED)),
          gpu_hours=st.sampled_from(GPU_HOURS), run=st.booleans(),
          train=st.booleans())
    def submit_job(self, index: int, area: str, gpu_hours: float, run: bool,
                   train: bool) -> None:
        """Submit a job: every owner decides; then (``run``) an attempt asks
        every owner of the dataset for its key (refused by those that did not
        admit it) and (``train``) trains."""
        # in insertion order: dataset ids are random, their order is not
        ds = list(self.datasets.values())[index % len(self.datasets)]
        if area == REVIEWED:  # steer towards approval requests
            reviewed = sorted({name for owner in ds.owners if owner != OPERATOR
                               for chosen in [self._choose(owner, OPERATOR)]
                               if chosen is not None
                               for name, tier in chosen[1].areas.items()
                               if tier == "case-by-case"})
            area = reviewed[index % len(reviewed)] if reviewed else AREAS[0]
        job_id = self._next("job")
        Registry(self.state.registry_db).add_job(JobRecord(
            id=job_id, workflow="sonar", site=SITE,
            request={"dataset_ids": [ds.id], "priority_area": area,
                     "gpu_hours": gpu_hours},
            measurement=MEASUREMENT, state="submitted", summary={},
            created=rfc3339(self.clock()), finished=None))
        request = JobRequest(job_id, ds.id, SITE, area, gpu_hours, MEASUREMENT)
        job = JobModel(job_id, ds.id, area, gpu_hours, digest_of(request.to_json()))
        self.jobs[job_id] = job
        for owner in ds.owners:
            self._decide(job, owner)
        if run and job.admitted:  # every owner is asked, admitted or not
            attempt = self._attempt(job, None)
            for owner in ds.owners:
                self._release(job, owner, attempt)
            if train and attempt in self._trainable() and len(self.models) < 4:
                self._train(attempt)

    @precondition(lambda self: bool(self.jobs))
    @rule(index=st.integers(0, 100), owner=st.integers(0, 1), waiting=st.booleans())
    def decide_again(self, index: int, owner: int, waiting: bool) -> None:
        """A job resumes: the owner decides again (consuming an approval,
        re-using the admission an approval it used gave, or asking a cancelled
        request, or one for another agreement, again).
        ``waiting``: preferably an owner with an unused request for the job."""
        waits = sorted((a.job_id, a.owner) for a in self.approvals.values()
                       if a.status not in ("used", "denied"))
        if waiting and waits:
            job_id, name = waits[index % len(waits)]
            self._decide(self.jobs[job_id], name)
            return
        job = self.jobs[sorted(self.jobs)[index % len(self.jobs)]]
        owners = self.datasets[job.dataset_id].owners
        self._decide(job, owners[owner % len(owners)])

    def _decide(self, job: JobModel, owner: str) -> None:
        expect = self._expect(job, owner, release=False)
        rid = request_id_for(job.id, owner, SITE)
        approval = self.approvals.get(rid)
        chosen = self._choose(owner, OPERATOR) if owner != OPERATOR else None
        reused = (expect.outcome == PERMIT and approval is not None
                  and approval.status == "used" and chosen is not None
                  and chosen[1].areas.get(job.area) == "case-by-case")
        if (expect.outcome == PERMIT and not expect.consumes and not reused
                and self._presented(job, owner, expect.agreement_id)[0]
                == "approve"):
            event("decide: permit leaves a granted approval unused")
        request = JobRequest(job.id, job.dataset_id, SITE, job.area, job.gpu_hours,
                             MEASUREMENT)
        custodian = self._custodian(owner)
        log = self._log()
        before = log.size()
        if expect.outcome == PERMIT:
            decision = custodian.decide(request)
            assert decision["outcome"] == PERMIT
        else:
            with pytest.raises(PolicyDenied) as refused:
                custodian.decide(request)
            pending = isinstance(refused.value, DecisionPending)
            assert pending == (expect.outcome in (NEEDS, HELD)), (
                expect, refused.value.reasons)
            if pending:
                assert isinstance(refused.value, DecisionPending)
                assert refused.value.outcome == expect.outcome
        event(f"decide: {expect.outcome}"
              + (" (approval used)" if expect.consumes else ""))
        new = list(log.entries(before))
        decided = [e for e in new if e.event.kind == "policy.decided"]
        assert len(decided) == 1
        body = decided[0].event.body["decision"]
        assert body["outcome"] == expect.outcome, (expect, body["reasons"])
        assert body["agreement_id"] == expect.agreement_id
        assert tuple(body["joint_agreement_ids"]) == expect.joint_ids
        assert body["notify"] == expect.notify
        kinds = [e.event.kind for e in new]
        assert "approval.refused" not in kinds, new  # (f)
        if reused:  # counted as of its use, not consumed again
            assert approval is not None
            assert any(r["rule"] == "tier" and r["passed"]
                       and r["detail"].startswith("approved by")
                       and approval.approval_id in r["detail"]
                       for r in body["reasons"]), body["reasons"]
            event("decide: a used approval re-used (this job's admission)")
        if expect.outcome == PERMIT:
            job.admitted.add(owner)
            relied = {a for a in (expect.agreement_id, *expect.joint_ids) if a}
            job.derived |= relied
            job.derived_by.setdefault(owner, set()).update(relied)
        if expect.consumes:
            assert approval is not None and expect.agreement_id is not None
            assert kinds.count("approval.used") == 1
            job.used_approval.setdefault(owner, []).append(expect.agreement_id)
            approval.status = "used"
        else:
            assert "approval.used" not in kinds
        if expect.outcome == NEEDS and (
                approval is None or approval.status == "cancelled"
                or approval.agreement_id != expect.agreement_id):
            assert kinds.count("approval.requested") == 1
            assert expect.agreement_id is not None
            if approval is None:
                self.approvals[rid] = ApprovalModel(rid, job.id, owner,
                                                    expect.agreement_id)
            else:  # a new round, under the agreement now chosen
                event(f"decide: a {approval.status} request asked again"
                      + ("" if approval.status == "cancelled"
                         else " (another agreement)"))
                approval.ask_again(expect.agreement_id)
        else:
            assert "approval.requested" not in kinds
        if expect.notify and expect.outcome in (PERMIT, HELD):
            assert expect.agreement_id is not None
            nid = notification_id_for(job.digest, expect.agreement_id)
            if nid not in self.notifications:
                assert kinds.count("notification.recorded") == 1
                self.notifications[nid] = NotificationModel(
                    expect.agreement_id, self.agreements[expect.agreement_id].parties,
                    job.id, owner)

    @precondition(lambda self: bool(self.approvals))
    @rule(index=st.integers(0, 100),
          verdict=st.sampled_from(["approve", "approve", "deny"]),
          expires_in_s=st.sampled_from(APPROVAL_EXPIRY_S),
          resume=st.sampled_from((True, True, False)), pending=st.booleans(),
          run=st.booleans())
    def officer_decides(self, index: int, verdict: str, expires_in_s: int,
                        resume: bool, pending: bool, run: bool) -> None:
        """The owner's officer approves or denies a request (``pending``: one
        still pending, or approved but expired unused; else any: only those can
        be decided); ``resume``: the job's owner then decides again and
        (``run``) is asked for its key by a new attempt (if it admitted the
        job)."""
        choices = sorted(r for r, a in self.approvals.items()
                         if a.status == "pending" or not pending
                         or a.expired(self.clock())) or sorted(self.approvals)
        approval = self.approvals[choices[index % len(choices)]]
        self._officer_decides(approval, verdict, expires_in_s, resume=resume)
        job = self.jobs[approval.job_id]
        if resume and run and approval.owner in job.admitted:
            self._release(job, approval.owner, self._attempt(job, None))

    def _officer_decides(self, approval: ApprovalModel, verdict: str,
                         expires_in_s: int, *, resume: bool) -> None:
        decidable = approval.status == "pending" or approval.expired(self.clock())
        event(f"officer decides a {approval.status} request"
              + (" (expired)" if approval.expired(self.clock()) else ""))
        officer = Deployment(self.state).officer(approval.owner)
        if not decidable:
            with pytest.raises(PolicyDenied):
                officer_statements.decide_approval(
                    officer, self._connect, approval.request_id, verdict,
                    expires_in_s=expires_in_s, clock=self.clock)
            return
        if self.officer_instants.get(approval.request_id) == self.clock():
            # Two decisions on one request at one instant would get the same
            # approval id, and the second would pass for the first, used one
            # (not consumed again, its use recorded under the first's agreement):
            # a real clock does not stand still; see the report.
            self.offset += timedelta(milliseconds=1)
        self.officer_instants[approval.request_id] = self.clock()
        recorded = officer_statements.decide_approval(
            officer, self._connect, approval.request_id, verdict,
            expires_in_s=expires_in_s, clock=self.clock)
        assert recorded.decision is not None
        approval.status = "approved" if verdict == "approve" else "denied"
        assert recorded.status == approval.status
        approval.approval_id = str(recorded.decision["approval_id"])
        approval.expires_at = parse_rfc3339(str(recorded.decision["expires_at"]))
        if resume:
            self._decide(self.jobs[approval.job_id], approval.owner)

    @precondition(lambda self: bool(self.approvals) and sum(
        len(m.versions) for m in self.agreements.values()) < 10)
    @rule(index=st.integers(0, 100),
          end=st.sampled_from(("terminate", "terminate", "supersede", "succeed")),
          tier=st.sampled_from(("case-by-case", "case-by-case", "pre-approved")),
          verdict=st.sampled_from((None, "approve", "approve", "deny")),
          first=st.sampled_from((False, True, "admit")),
          expires_in_s=st.sampled_from(APPROVAL_EXPIRY_S),
          run=st.booleans(), used=st.booleans())
    def review_again(self, index: int, end: str, tier: str, verdict: str | None,
                     first: bool | str, expires_in_s: int, run: bool,
                     used: bool) -> None:
        """Steer to a request's later life: its agreement is terminated (by
        every party) and a successor for the pair takes effect,
        or a superseding version of it does, or (``succeed``) a successor with a
        later ``valid_from`` takes effect beside it (chosen over it), with the
        job's area in ``tier``; the job's owner decides again (a cancelled
        request, or one reviewed or used under another agreement, is asked again
        under the one now chosen; a granted or used approval counts under a
        superseding version, or not). The officer decides the request
        (``verdict``) before the agreement changes (``first``: and the owner
        decides only after it; ``"admit"``: and the owner decides right away,
        admitting the job with it, and the officer decides the request again
        if it is pending after the change, and the owner decides once more) or
        after the owner's decision (and the owner decides once more). ``run``:
        then the owner is asked for its key by a new attempt (if it admitted
        the job). ``used``: preferably a request whose approval the job used
        (its admission)."""
        rids = sorted(r for r, a in self.approvals.items()
                      if a.status == "used" or not used) or sorted(self.approvals)
        approval = self.approvals[rids[index % len(rids)]]
        job, owner = self.jobs[approval.job_id], approval.owner
        if verdict is not None and first:
            self._officer_decides(approval, verdict, expires_in_s,
                                  resume=first == "admit")
        before = approval.status
        aid = approval.agreement_id
        model = self.agreements[aid]
        a, b, suffix = aid.split("-")
        other = "B" if suffix == "A" else "A"
        successor = self.agreements.get(f"{a}-{b}-{other}")
        if end == "succeed" and (suffix != "A" or model.ended() or (
                successor is not None and successor.ended())):
            end = "supersede"  # only a later valid_from ("B") takes over
        if end == "succeed":
            target = other  # in force beside the request's, chosen over it
        elif end == "supersede" and not model.ended():
            target = suffix
        else:
            end = "terminate"
            for party in (0, 1):
                if not model.ended():
                    self._terminate(aid, party)
            target = other
            if successor is not None and successor.ended():
                return  # no successor left for the pair
        event(f"review again: {end} ({before} request), area {tier}")
        drawn = self.agreements.get(f"{a}-{b}-{target}", model)
        spec = drawn.versions[max(drawn.versions)]
        tiers = tuple(tier if name == job.area else spec.areas.get(name)
                      for name in AREAS)
        self._add_version((a, b), target, tiers, spec.hold,
                          (drawn.termination, drawn.third_party,
                           bool(drawn.prohibited)),
                          signers=(a, b))
        self._decide(job, owner)
        if verdict is not None and (not first or (
                first == "admit" and approval.status == "pending")):
            self._officer_decides(approval, verdict, expires_in_s, resume=True)
        if run and owner in job.admitted:
            self._release(job, owner, self._attempt(job, None))

    @precondition(lambda self: bool(self.notifications))
    @rule(index=st.integers(0, 100), party=st.integers(0, 1), resume=st.booleans())
    def acknowledge_notification(self, index: int, party: int, resume: bool) -> None:
        """A party's officer acknowledges an oversight notification (once);
        ``resume``: the job's owner then decides again (a hold lifts)."""
        nid = sorted(self.notifications)[index % len(self.notifications)]
        note = self.notifications[nid]
        nation = sorted(note.parties)[party]
        if note.acknowledged:
            with pytest.raises(ConfigError):
                acknowledge(self.state, nid, nation)
            return
        assert acknowledge(self.state, nid, nation).acknowledged_by == nation
        note.acknowledged = True
        if resume:
            self._decide(self.jobs[note.job_id], note.owner)

    # -- releases --
    def _pairs(self, admitted: bool) -> list[tuple[JobModel, str]]:
        """(job, owner) pairs where the owner admitted the job (or did not)."""
        return [(job, o) for _, job in sorted(self.jobs.items())
                for o in self.datasets[job.dataset_id].owners
                if (o in job.admitted) == admitted]

    @precondition(lambda self: bool(self.jobs))
    @rule(index=st.integers(0, 100), attempt=st.integers(0, 3),
          replay=st.booleans(), admitted=st.sampled_from((True, True, True, False)))
    def release(self, index: int, attempt: int, replay: bool,
                admitted: bool) -> None:
        """Ask a job's owner for its key (one that admitted the job, or, less
        often, one that did not) for a new or an earlier attempt, with fresh
        evidence or by replaying that attempt's last request."""
        pairs = self._pairs(admitted) or self._pairs(not admitted)
        job, owner = pairs[index % len(pairs)]
        self._release(job, owner, self._attempt(job, attempt), replay=replay)

    def _attempt(self, job: JobModel, which: int | None) -> AttemptModel:
        mine = [a for a in self.attempts if a.job_id == job.id]
        if which is not None and which < len(mine):
            return mine[which]
        current = AttemptModel(job.id, self._next("attempt"), RecipientKey.generate())
        self.attempts.append(current)
        return current

    def _release(self, job: JobModel, owner: str, current: AttemptModel, *,
                 replay: bool = False) -> None:
        custodian = self._custodian(owner)
        log = self._log()
        before = log.size()
        # only requests that reached the evidence check (the owner had admitted
        # the job) are kept: their nonce was consumed
        previous = current.last_request.get(owner)
        if replay and previous is not None:
            event("release: replayed nonce")
            with pytest.raises(AttestationError):  # the nonce was consumed
                custodian.release_key(previous)
            assert [e.event.kind for e in log.entries(before)] == ["key.denied"]
            return
        evidence = self._attester().attest(
            job_id=job.id, attempt_id=current.attempt_id,
            code_measurement=MEASUREMENT,
            enclave_public_key=current.key.public_bytes(),
            hpke_suite=current.key.suite.value, nonce=custodian.challenge())
        request = ReleaseRequest(job_id=job.id, attempt_id=current.attempt_id,
                                 task="fold-0", dataset_id=job.dataset_id, site=SITE,
                                 evidence=evidence,
                                 sealed_digest=self.datasets[
                                     job.dataset_id].sealed_digest)
        if owner not in job.admitted:  # refused before the evidence is checked
            event("release: not admitted")
            with pytest.raises(PolicyDenied) as refused:
                custodian.release_key(request)
            assert not isinstance(refused.value, DecisionPending)
            kinds = [e.event.kind for e in log.entries(before)]
            assert kinds == ["key.denied"], (kinds, refused.value.reasons)
            assert any(f"not admitted by the {owner} custodian" in r
                       for r in refused.value.reasons), refused.value.reasons
            return
        current.last_request[owner] = request
        expect = self._expect(job, owner, release=True)
        event(f"release: {expect.outcome}, KEK enabled {self.kek_enabled[owner]}")
        if expect.outcome != PERMIT or not self.kek_enabled[owner]:
            with pytest.raises(PolicyDenied) as refused:
                custodian.release_key(request)
            assert not isinstance(refused.value, DecisionPending)
            kinds = [e.event.kind for e in log.entries(before)]
            assert kinds == ["key.denied"], (kinds, refused.value.reasons)
            # policy first: a disabled KEK refuses only what policy permits
            kek = [r.startswith("KEK:") for r in refused.value.reasons]
            assert all(kek) if expect.outcome == PERMIT else not any(kek), (
                expect, refused.value.reasons)
            return
        grant = custodian.release_key(request)
        assert (grant.owner, grant.job_id, grant.dataset_id) == (
            owner, job.id, job.dataset_id)
        assert grant.log_index >= before
        share = hpke_open(current.key, b64d(grant.sealed_dek), request.hpke_info())
        current.grants[owner] = Released(grant, share, self.clock() + LEASE)
        self.grants.append(grant)
        entry = log.get(grant.log_index)
        assert entry.event.body["agreement_id"] == expect.agreement_id

    # -- training and transfer --
    def _trainable(self) -> list[AttemptModel]:
        return [a for a in self.attempts if set(a.grants) == set(
            self.datasets[self.jobs[a.job_id].dataset_id].owners)]

    @precondition(lambda self: bool(self._trainable()) and len(self.models) < 4)
    @rule(index=st.integers(0, 100))
    def train(self, index: int) -> None:
        trainable = self._trainable()
        self._train(trainable[index % len(trainable)])

    def _train(self, attempt: AttemptModel) -> None:
        """Open the dataset from the released shares, then have every owner wrap
        the model's DEK (each presenting its grant, within the attempt lease)."""
        job = self.jobs[attempt.job_id]
        ds = self.datasets[job.dataset_id]
        dek = combine_dek_shares([attempt.grants[o].share for o in ds.owners])
        header, plaintext = open_bytes(Path(ds.object_path).read_bytes(), dek,
                                       expected_object_id=ds.id)
        assert header.label == ds.label and plaintext == SONAR.read_bytes()
        object_id = self._next("model")
        label = derive_label([Label.from_json(ds.label)]).to_json()
        manifest = {"object_id": object_id, "kind": "model", "job_id": job.id}
        model_dek = new_dek()
        ciphertext = seal_bytes(b"weights of " + object_id.encode(), model_dek,
                                object_id=object_id, label=label,
                                manifest_digest=digest_of(manifest))
        now = self.clock()
        ok = all(self.kek_enabled[o] and now <= attempt.grants[o].lease_until
                 for o in ds.owners)
        registry = Registry(self.state.registry_db)
        wrapped: dict[str, dict[str, Any]] = {}
        try:
            for owner in ds.owners:
                custodian = self._custodian(owner)
                evidence = self._attester().attest(
                    job_id=job.id, attempt_id=attempt.attempt_id,
                    code_measurement=MEASUREMENT,
                    enclave_public_key=attempt.key.public_bytes(),
                    hpke_suite=attempt.key.suite.value, nonce=custodian.challenge())
                request = WrapRequest(
                    job_id=job.id, attempt_id=attempt.attempt_id, site=SITE,
                    object_id=object_id, label=label, input_dataset_ids=(ds.id,),
                    evidence=evidence, grant_id=attempt.grants[owner].grant.grant_id,
                    sealed_digest="sha256:" + sha256_hex(ciphertext))
                public = b64d(registry.nation(owner).hpke_public)
                request = replace(request, sealed_dek=b64e(hpke_seal(
                    HpkeSuite.X25519, public, model_dek, request.hpke_info())))
                wrapped[owner] = custodian.wrap_key(request).to_json()
        except PolicyDenied:
            event("train: wrap refused")
            assert not ok, "a live grant with an enabled KEK was refused a wrap"
            return
        event("train: model sealed")
        assert ok, "a wrap succeeded past the lease or under a disabled KEK"
        target = self.state.models_dir / f"{object_id}.sealed"
        target.write_bytes(ciphertext)
        registry.add_model(SealedObjectRecord(
            id=object_id, name=object_id, label=label, manifest=manifest,
            object_path=str(target), sealed_digest="sha256:" + sha256_hex(ciphertext),
            wrapped_keys=wrapped, created=rfc3339(now), job_id=job.id))
        self.models[object_id] = ModelObject(object_id, job.id, ds.owners,
                                             ds.releasable)

    def _recipients(self, model: ModelObject) -> list[str]:
        return [n for n in NATIONS if n not in model.owners]

    def _consent(self, model: ModelObject, nation: str, to: str, end_use: str,
                 expires_in: timedelta) -> None:
        record = Registry(self.state.registry_db).model(model.id)
        entry = officer_statements.consent_to_transfer(
            Deployment(self.state).officer(nation), self._connect, model_id=model.id,
            model_digest=record.sealed_digest, recipient=to, end_use=end_use,
            expires_in=expires_in, clock=self.clock)
        signed = SignedStatement.from_json(entry.event.body)
        self.consents.append(ConsentModel(
            str(signed.statement["consent_id"]), nation, model.id, to, end_use,
            parse_rfc3339(str(signed.statement["expires_at"]))))

    def _expect_transfer(self, model: ModelObject, recipient: str, end_use: str
                         ) -> tuple[list[tuple[str, bool]], dict[str, ConsentModel]]:
        """Each owner's custodian's decision (in the order the orchestrator asks
        them), and the consents they count. Every owner decides for its own
        agreements with the recipient and what it knows the model was derived
        under; consents and releasability are the same for all."""
        now = self.clock()
        common = recipient in model.releasable
        counted: dict[str, ConsentModel] = {}
        for owner in model.owners:
            valid = sorted((c for c in self.consents
                            if (c.owner, c.model_id, c.recipient, c.end_use)
                            == (owner, model.id, recipient, end_use)
                            and now < c.expires_at and not c.used),
                           key=lambda c: c.id)
            if valid:
                counted[owner] = valid[0]
            else:
                common = False
        job = self.jobs[model.job_id]
        decisions = []
        for owner in sorted(model.owners):
            derived = sorted(job.derived_by.get(owner, set()))
            relied = [self.agreements[a] for a in derived]
            ok = common
            chosen = self._choose(owner, recipient)
            if chosen is not None:
                relied.append(chosen[0])
            # a third party: only under agreements that all allow it, in force
            elif not derived or any(
                    self.agreements[a].effective_version() is None
                    or self.agreements[a].third_party != "with-consent"
                    for a in derived):
                ok = False
            if any(end_use in a.prohibited for a in relied):
                ok = False
            decisions.append((owner, ok))
        return decisions, counted

    @precondition(lambda self: bool(self.models))
    @rule(index=st.integers(0, 100), recipient=st.integers(0, 2),
          end_use=st.sampled_from((END_USES[0], *END_USES)),
          consent_by=st.sampled_from(((0, 1), (0, 1), (0,), (1,), ())),
          expires_in=st.sampled_from(CONSENT_EXPIRY))
    def transfer(self, index: int, recipient: int, end_use: str,
                 consent_by: tuple[int, ...], expires_in: timedelta) -> None:
        """Some owners' officers consent, then the model is transferred (the
        owners' custodians decide; consents given earlier count too)."""
        model = self.models[sorted(self.models)[index % len(self.models)]]
        to = self._recipients(model)[recipient % len(self._recipients(model))]
        for nation in sorted({model.owners[i % len(model.owners)]
                              for i in consent_by}):
            self._consent(model, nation, to, end_use, expires_in)
        decisions, counted = self._expect_transfer(model, to, end_use)
        permit = all(ok for _, ok in decisions)
        event(f"transfer: expected {'permit' if permit else 'deny'}")
        # The orchestrator asks the owners in order and stops at the first
        # refusal, by policy or by a disabled KEK (after its permit was logged).
        spent, refused = False, None
        for owner, ok in decisions:
            if not ok:
                refused = "policy"
                break
            spent = True  # a logged permit spends the consents, whatever follows
            if not self.kek_enabled[owner]:
                refused = "kek"
                break
        if spent:
            if not permit:
                event("transfer: one owner permitted, another refused")
            for consent in counted.values():
                consent.used = True
        if refused is not None:
            with pytest.raises(TransferDenied) as denied:
                relay.transfer_model(self.orch, model.id, to, end_use)
            assert denied.value.decision is not None
            assert denied.value.decision.permit == (refused == "kek"), (
                denied.value.reasons)
            if len(counted) < len(model.owners):
                assert any(r.startswith("consent:") for r in denied.value.reasons)
            return
        if not self.kek_enabled[to]:
            with pytest.raises(PolicyDenied):  # the recipient cannot wrap it
                relay.transfer_model(self.orch, model.id, to, end_use)
            return
        result = relay.transfer_model(self.orch, model.id, to, end_use)
        assert result.decision.permit
        assert list(result.decision.consent_ids) == [
            counted[o].id for o in sorted(counted)]

    # -- keys and time --
    @rule(nation=st.sampled_from(NATIONS),
          op=st.sampled_from(["rotate", "rewrap", "disable", "enable"]))
    def kek(self, nation: str, op: str) -> None:
        keystore = nation_keystore(self._custodian(nation).ctx)
        if op == "enable":
            if not self.kek_enabled[nation]:
                keystore.enable()
                self.kek_enabled[nation] = True
        elif not self.kek_enabled[nation]:
            return
        elif op == "disable":
            keystore.disable()
            self.kek_enabled[nation] = False
        else:
            keystore.rotate()
            if op == "rewrap":
                outcomes = rewrap_all(self._custodian(nation).ctx)
                assert {o.status for o in outcomes} <= {"rewrapped", "current"}

    @rule(step=st.sampled_from(ADVANCES))
    def advance_clock(self, step: timedelta) -> None:
        if self.offset + step <= timedelta(days=45):  # stay in the agreements' window
            self.offset += step

    # -- invariants --
    def _check_agreement_state(self) -> None:
        """The agreements in force at each custodian are the model's for its
        nation (after every rule that adds, signs or ends one: nothing else
        changes them)."""
        for nation in NATIONS:
            effective, _ = effective_in(self._custodian(nation).ctx.standings())
            assert {(a.id, a.version) for a in effective} == {
                (m.id, m.effective_version()) for m in self.agreements.values()
                if m.effective_version() is not None and nation in m.parties}

    @invariant()
    def approval_requests_match_the_model(self) -> None:  # (g)
        if not hasattr(self, "state"):
            return
        now = self.clock()
        listed = [r for n in NATIONS
                  for r in approval_requests(self._custodian(n).ctx.journal, at=now)]
        assert {r.request_id: (r.status, r.agreement_id) for r in listed} == {
            rid: (a.listed(now), a.agreement_id)
            for rid, a in self.approvals.items()}

    @invariant()
    def custody_log_invariants(self) -> None:
        if not hasattr(self, "state"):
            return
        log = self._log()
        for entry in log.entries(self.replay.size):
            self.checker.check(entry)  # (e), as an officer checks it
            self.replay.feed(entry)  # (a), (b), (f)
        # (c): log before release, and no release the caller did not get
        assert self.replay.released == {g.grant_id: g.log_index for g in self.grants}
        for grant in self.grants[self.checked_grants:]:
            body = log.get(grant.log_index).event.body
            assert (body["grant_id"], body["owner"], body["job_id"],
                    body["dataset_id"]) == (grant.grant_id, grant.owner,
                                            grant.job_id, grant.dataset_id)
        self.checked_grants = len(self.grants)


@dataclass
class LogReplay:
    """The custody log replayed entry by entry (each step feeds only the new
    ones), asserting invariants (a), (b) and (f) of the module docstring."""

    machine: LifecycleMachine
    size: int = 0
    docs: dict[tuple[str, int], Agreement] = field(default_factory=dict)
    effective: dict[str, int] = field(default_factory=dict)
    revoked: set[str] = field(default_factory=set)
    ended_by: dict[str, set[str]] = field(default_factory=dict)
    permits: set[tuple[str, str, str]] = field(default_factory=set)
    last_decided: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    #: (job, owner) -> the agreements of the rounds whose approval it used
    used: dict[tuple[str, str], set[str]] = field(default_factory=dict)
    uses: Counter[str] = field(default_factory=Counter)
    granted: dict[str, tuple[str, str, str]] = field(default_factory=dict)
    #: request id -> its latest round: status, approvals decided in it, and the
    #: round's agreement and request digest
    rounds: dict[str, tuple[str, set[str], str, str]] = field(default_factory=dict)
    decided: set[str] = field(default_factory=set)
    #: consent id -> the transfer whose permits counted it
    consents_used: dict[str, str] = field(default_factory=dict)
    released: dict[str, int] = field(default_factory=dict)

    def in_force(self, aid: str) -> bool:
        model = self.machine.agreements[aid]
        enders = self.ended_by.get(aid, set())
        terminated = (enders == set(model.parties)
                      if model.termination == "all-parties" else bool(enders))
        return aid in self.effective and aid not in self.revoked and not terminated

    def doc(self, aid: str, version: int) -> Agreement:
        if (aid, version) not in self.docs:
            registry = Registry(self.machine.state.registry_db)
            self.docs.update({(d["id"], int(d["version"])):
                              Agreement.from_json(d["document"])
                              for d in registry.agreement_documents()})
        return self.docs[(aid, version)]

    def feed(self, entry: Any) -> None:
        kind, body, seq = entry.event.kind, entry.event.body, entry.seq
        assert seq == self.size, (seq, self.size)
        self.size += 1
        if kind == "agreement.effective":
            self.effective[body["agreement_id"]] = int(body["version"])
        elif kind == "agreement.revoked":
            self.revoked.add(body["agreement_id"])
        elif kind == "agreement.terminated":
            self.ended_by.setdefault(body["agreement_id"], set()).add(
                body["statement"]["nation"])
        elif kind == "policy.decided":
            decision = body["decision"]
            if decision["outcome"] != DENY:  # (b)
                for aid in (decision["agreement_id"],
                            *decision["joint_agreement_ids"]):
                    assert aid is None or self.in_force(aid), (seq, aid, decision)
            if decision["outcome"] == PERMIT:
                self.permits.add((body["job_id"], body["owner"], body["dataset_id"]))
            self.last_decided[(body["job_id"], body["owner"])] = decision
        elif kind.startswith("approval.") or kind == "key.released":
            self._approval_or_release(kind, body, seq)
        elif kind == "transfer.decided":
            decision = body["decision"]
            if decision["permit"]:
                for aid in decision["relied_agreement_ids"]:
                    assert self.in_force(aid), (seq, aid)  # (b)
                for cid in decision["consent_ids"]:  # (f) one transfer each
                    spent = self.consents_used.setdefault(cid, body["transfer_id"])
                    assert spent == body["transfer_id"], (seq, cid)
                self.decided.add(body["transfer_id"])
        elif kind == "transfer.completed":  # (f)
            assert body["transfer_id"] in self.decided, (seq, body)

    def _approval_or_release(self, kind: str, body: dict[str, Any], seq: int) -> None:
        rid = body.get("request_id", "")
        if kind == "approval.requested":
            # (f) asked again only once cancelled, or for another agreement/digest
            agreement, digest = body["agreement_id"], body["request_digest"]
            previous = self.rounds.get(rid)
            assert previous is None or previous[0] == "cancelled" or (
                previous[2:] != (agreement, digest)), (seq, rid, previous)
            self.rounds[rid] = ("pending", set(), agreement, digest)
        elif kind in ("approval.granted", "approval.denied"):
            status, ids, agreement, digest = self.rounds[rid]
            assert status in ("pending", "granted"), (seq, body)  # or expired
            # the officer reviewed it under the round's agreement
            assert body["statement"]["agreement_id"] == agreement, (seq, body)
            ids.add(body["approval_id"])
            self.rounds[rid] = (kind.removeprefix("approval."), ids, agreement,
                                digest)
            if kind == "approval.granted":
                self.granted[body["approval_id"]] = (rid, body["job_id"],
                                                     body["owner"])
        elif kind == "approval.cancelled":
            status, _, agreement, digest = self.rounds[rid]
            assert status in ("pending", "granted"), (seq, body)
            self.rounds[rid] = ("cancelled", set(), agreement, digest)
        elif kind == "approval.used":  # (f)
            aid = body["approval_id"]
            self.uses[aid] += 1
            assert self.uses[aid] == 1, (seq, body)
            assert self.granted.get(aid) == (
                rid, body["job_id"], body["owner"]), (seq, body)
            # granted in this round, not cancelled
            status, ids, agreement, digest = self.rounds[rid]
            assert status == "granted" and aid in ids, (seq, body, status)
            self.rounds[rid] = ("used", ids, agreement, digest)
            # after the permit it counted for: consumed only where it counted,
            # under the agreement it was given under
            decision = self.last_decided[(body["job_id"], body["owner"])]
            assert decision["outcome"] == PERMIT, (seq, body)
            assert decision["agreement_id"] == agreement, (seq, decision)
            assert any(r["rule"] == "tier" and r["passed"]
                       and r["detail"].startswith("approved by") and aid in r["detail"]
                       for r in decision["reasons"]), (seq, decision)
            self.used.setdefault((body["job_id"], body["owner"]), set()).add(
                agreement)
        elif kind == "approval.refused":  # (f) nothing the machine presents
            raise AssertionError((seq, body))
        elif kind == "key.released":
            job, owner = body["job_id"], body["owner"]
            assert (job, owner, body["dataset_id"]) in self.permits, (seq, body)  # (a)
            aid = body["agreement_id"]
            if aid is None:
                assert owner == OPERATOR, (seq, body)
            else:
                assert self.in_force(aid), (seq, aid)  # (b)
                area_name = self.machine.jobs[job].area
                area = self.doc(aid, self.effective[aid]).area(area_name)
                assert area is not None, (seq, aid, area_name)
                if area.tier is AccessTier.CASE_BY_CASE:  # (a) reviewed under aid
                    assert aid in self.used.get((job, owner), set()), (seq, body)
            self.released[body["grant_id"]] = seq


LifecycleMachine.TestCase.settings = settings(
    # a deeper search: LIFECYCLE_MACHINE_EXAMPLES=500 pytest <this file>
    max_examples=int(os.environ.get("LIFECYCLE_MACHINE_EXAMPLES", "30")),
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
TestLifecycle = pytest.mark.slow(LifecycleMachine.TestCase)


# -- production bugs the machine steers around (strict xfail: fix, then delete) ----
def _job(world: Any, area: str, gpu_hours: float) -> JobRequest:
    Registry(world.state.registry_db).add_job(JobRecord(
        id="job-1", workflow="sonar", site=SITE,
        request={"dataset_ids": [world.dataset_id], "priority_area": area,
                 "gpu_hours": gpu_hours},
        measurement=MEASUREMENT, state="submitted", summary={},
        created="2026-11-21T00:00:00Z", finished=None))
    return JobRequest("job-1", world.dataset_id, SITE, area, gpu_hours, MEASUREMENT)


@pytest.mark.parametrize("admission", ["held", "never-decided"])
def test_release_requires_admission(tmp_path: Path, admission: str) -> None:
    """Invariant (a) for a direct caller: no ``key.released`` without a prior
    permitting ``policy.decided`` for the job by that owner."""
    from testkit import make_world

    held = tmp_path / "held.toml"
    held.write_text((ROOT / "agreements" / "aus-usa.toml").read_text().replace(
        'oversight_body = "AUKUS Joint Steering Group"',
        'oversight_body = "AUKUS Joint Steering Group"\n'
        "hold_until_acknowledged = true"))
    world = make_world(tmp_path, agreement=held)
    request = _job(world, "undersea-autonomy", 600.0)  # above the 500 threshold
    aus = custodian_of(world.state, "AUS")
    if admission == "held":
        with pytest.raises(DecisionPending) as pending:
            aus.decide(request)
        assert pending.value.outcome == HELD
    key = RecipientKey.generate()
    site_key = load_private_key(world.state.site_dir(SITE) / "site.key")
    evidence = SoftwareAttester(SITE, site_key).attest(
        job_id="job-1", attempt_id="a1", code_measurement=MEASUREMENT,
        enclave_public_key=key.public_bytes(), hpke_suite=key.suite.value,
        nonce=aus.challenge())
    with pytest.raises(PolicyDenied):
        aus.release_key(ReleaseRequest(job_id="job-1", attempt_id="a1",
                                       task="fold-0", dataset_id=world.dataset_id,
                                       site=SITE, evidence=evidence,
                                       sealed_digest=world.dataset_digest))


def _successor(tmp_path: Path) -> Path:
    path = tmp_path / "successor.toml"
    path.write_text((ROOT / "agreements" / "aus-usa.toml").read_text().replace(
        'id = "AUS-USA-SONAR-2026"', 'id = "AUS-USA-SONAR-2027"'))
    return path


def test_termination_voids_the_approvals_requested_under_it(tmp_path: Path) -> None:
    from testkit import add_signed_agreement, make_world

    world = make_world(tmp_path)  # AUS-USA-SONAR-2026: quantum-sensing case-by-case
    request = _job(world, "quantum-sensing", 1.0)
    aus = custodian_of(world.state, "AUS")
    with pytest.raises(DecisionPending):
        aus.decide(request)
    decide_request(world.state, request_id_for("job-1", "AUS", SITE), "AUS",
                   "approve")
    terminate_agreement(world.state, "AUS-USA-SONAR-2026", "USA", reason="breach")
    add_signed_agreement(world.state, _successor(tmp_path))
    with pytest.raises(DecisionPending):  # the successor needs its own review
        aus.decide(request)


def test_a_cancelled_request_can_be_asked_again(tmp_path: Path) -> None:
    from testkit import add_signed_agreement, make_world

    world = make_world(tmp_path)
    request = _job(world, "quantum-sensing", 1.0)
    aus = custodian_of(world.state, "AUS")
    with pytest.raises(DecisionPending):
        aus.decide(request)
    terminate_agreement(world.state, "AUS-USA-SONAR-2026", "AUS", reason="over")
    add_signed_agreement(world.state, _successor(tmp_path))
    with pytest.raises(DecisionPending):
        aus.decide(request)
    decide_request(world.state, request_id_for("job-1", "AUS", SITE), "AUS",
                   "approve")  # PolicyDenied: "... is cancelled, not pending"
    assert aus.decide(request)["outcome"] == PERMIT


def _joint_case_by_case(tmp_path: Path) -> tuple[Any, JobRequest]:
    """AUS+GBR data; quantum-sensing is case-by-case under AUS-USA and GBR-USA."""
    from testkit import add_signed_agreement, make_world

    world = make_world(tmp_path)  # AUS-USA-SONAR-2026: quantum-sensing case-by-case
    gbr_usa = tmp_path / "gbr-usa.toml"
    gbr_usa.write_text((ROOT / "agreements" / "gbr-usa.toml").read_text().replace(
        'name = "hypersonics"', 'name = "quantum-sensing"'))
    add_signed_agreement(world.state, gbr_usa)
    add_signed_agreement(world.state, ROOT / "agreements" / "aus-gbr.toml")
    joint = seal_dataset(world.state, SONAR, name="joint", owners=["AUS", "GBR"],
                         classification="SECRET", releasable_to=list(NATIONS))
    Registry(world.state.registry_db).add_job(JobRecord(
        id="job-1", workflow="sonar", site=SITE,
        request={"dataset_ids": [joint.id], "priority_area": "quantum-sensing",
                 "gpu_hours": 1.0},
        measurement=MEASUREMENT, state="submitted", summary={},
        created="2026-11-21T00:00:00Z", finished=None))
    return world, JobRequest("job-1", joint.id, SITE, "quantum-sensing", 1.0,
                             MEASUREMENT)


def test_a_joint_job_is_admitted_once_every_officer_approved(tmp_path: Path) -> None:
    """Every resume has every owner decide again (``pipeline.resume`` ->
    ``placement.gate_sites``); the owner whose approval the previous resume
    consumed must still permit (the approval was used by this very job)."""
    from orchestrator.submit.placement import gate_sites

    world, request = _joint_case_by_case(tmp_path)
    custodians = {n: custodian_of(world.state, n) for n in ("AUS", "GBR")}

    def admit() -> list[str]:  # the admission step of a submission or resume
        return gate_sites(lambda owner, site: custodians[owner].decide(
            replace(request, site=site)), [SITE], ["AUS", "GBR"])[0]

    with pytest.raises(DecisionPending):  # submitted: both officers must review
        admit()
    decide_request(world.state, request_id_for("job-1", "AUS", SITE), "AUS",
                   "approve")
    with pytest.raises(DecisionPending):  # resumed: AUS permits, GBR still waits
        admit()
    decide_request(world.state, request_id_for("job-1", "GBR", SITE), "GBR",
                   "approve")
    # resumed again: GBR permits, and AUS re-uses the admission its (used)
    # approval gave this very job, consuming nothing
    assert admit() == [SITE]
    log = CustodyLog(world.state.custody_db)
    assert [e.event.body["owner"] for e in log.find("approval.used")] == [
        "AUS", "GBR"]
    assert not list(log.find("approval.refused"))


def test_a_job_admitted_again_under_a_successor_gets_its_keys(tmp_path: Path
                                                               ) -> None:
    """A job admitted with an approval under AUS-USA-SONAR-2026; the agreement is
    terminated and a successor takes effect; the AUS officer reviews the job under
    the successor and it is admitted again: its releases rely on the successor
    and count the approval it used under it. (The agreement is ended by the USA
    officer's termination.)"""
    from testkit import add_signed_agreement, make_world

    world = make_world(tmp_path)  # AUS-USA-SONAR-2026: quantum-sensing case-by-case
    request = _job(world, "quantum-sensing", 1.0)
    aus = custodian_of(world.state, "AUS")
    rid = request_id_for("job-1", "AUS", SITE)
    with pytest.raises(DecisionPending):
        aus.decide(request)
    decide_request(world.state, rid, "AUS", "approve")
    assert aus.decide(request)["outcome"] == PERMIT  # approval used under 2026
    terminate_agreement(world.state, "AUS-USA-SONAR-2026", "USA", reason="breach")
    add_signed_agreement(world.state, _successor(tmp_path))
    with pytest.raises(DecisionPending):  # a new round, under 2027
        aus.decide(request)
    decide_request(world.state, rid, "AUS", "approve")
    assert aus.decide(request)["outcome"] == PERMIT  # approval used under 2027
    key = RecipientKey.generate()
    site_key = load_private_key(world.state.site_dir(SITE) / "site.key")
    evidence = SoftwareAttester(SITE, site_key).attest(
        job_id="job-1", attempt_id="a1", code_measurement=MEASUREMENT,
        enclave_public_key=key.public_bytes(), hpke_suite=key.suite.value,
        nonce=aus.challenge())
    # PolicyDenied: "approval ... was given under agreement AUS-USA-SONAR-2026,
    # not AUS-USA-SONAR-2027"
    grant = aus.release_key(ReleaseRequest(
        job_id="job-1", attempt_id="a1", task="fold-0", dataset_id=world.dataset_id,
        site=SITE, evidence=evidence, sealed_digest=world.dataset_digest))
    entry = CustodyLog(world.state.custody_db).get(grant.log_index)
    assert entry.event.body["agreement_id"] == "AUS-USA-SONAR-2027"
