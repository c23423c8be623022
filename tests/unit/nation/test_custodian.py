"""The embedded custodian: job decisions, attested key release, fail-closed logging.

Everything runs for real over a temporary state directory (SQLite registry and
custody log, file KEKs); only the clock is injected.
"""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from testkit import ROOT, World, add_signed_agreement, custodian_of

from orchestrator.canonical import b64d, b64e
from orchestrator.crypto import RecipientKey, hpke_open, load_private_key
from orchestrator.errors import (
    AttestationError,
    DecisionPending,
    IntegrityError,
    LedgerError,
    PolicyDenied,
)
from orchestrator.log.store import CustodyLog
from orchestrator.nation.custodian import LocalCustodian
from orchestrator.protocol.release import JobRequest, ReleaseRequest
from orchestrator.site.attestation import SoftwareAttester
from orchestrator.submit.registry import JobRecord, Registry

MEASUREMENT = "sha256:" + "ab" * 32


def _job(
    world: World,
    *,
    area: str = "undersea-autonomy",
    gpu_hours: float = 0.5,
    job_id: str = "job-1",
    admit: bool = True,
) -> str:
    """Register ``job_id``; with ``admit`` the AUS custodian decides (admits) it,
    as a job's submission does: releases need that permitting decision."""
    Registry(world.state.registry_db).add_job(
        JobRecord(
            id=job_id,
            workflow="sonar",
            site=world.site,
            request={
                "dataset_ids": [world.dataset_id],
                "priority_area": area,
                "gpu_hours": gpu_hours,
            },
            measurement=MEASUREMENT,
            state="submitted",
            summary={},
            created="2026-11-21T00:00:00Z",
            finished=None,
        )
    )
    if admit:
        custodian_of(world.state, "AUS").decide(JobRequest(
            job_id, world.dataset_id, world.site, area, gpu_hours, MEASUREMENT))
    return job_id


def _request(
    world: World,
    custodian: LocalCustodian,
    key: RecipientKey,
    *,
    job_id: str = "job-1",
    attempt: str = "a1",
    attester: SoftwareAttester | None = None,
    measurement: str = MEASUREMENT,
) -> ReleaseRequest:
    site_key = load_private_key(world.state.site_dir(world.site) / "site.key")
    attester = attester or SoftwareAttester(world.site, site_key)
    evidence = attester.attest(
        job_id=job_id,
        attempt_id=attempt,
        code_measurement=measurement,
        enclave_public_key=key.public_bytes(),
        hpke_suite=key.suite.value,
        nonce=custodian.challenge(),
    )
    return ReleaseRequest(
        job_id=job_id,
        attempt_id=attempt,
        task="fold-0",
        dataset_id=world.dataset_id,
        site=world.site,
        evidence=evidence,
        sealed_digest=world.dataset_digest,
    )


def _kinds(world: World) -> list[str]:
    return [e.event.kind for e in CustodyLog(world.state.custody_db).entries()]


def test_release_opens_only_for_the_enclave_and_request(world: World) -> None:
    _job(world)
    aus = custodian_of(world.state, "AUS")
    key = RecipientKey.generate()
    request = _request(world, aus, key)
    grant = aus.release_key(request)
    dek = hpke_open(key, b64d(grant.sealed_dek), request.hpke_info())
    assert len(dek) == 32
    assert grant.tee_mode == "none"
    assert _kinds(world)[-1] == "key.released"
    other = replace(request, task="fold-1")  # another request digest
    with pytest.raises(IntegrityError):
        hpke_open(key, b64d(grant.sealed_dek), other.hpke_info())
    with pytest.raises(IntegrityError):
        hpke_open(RecipientKey.generate(), b64d(grant.sealed_dek), request.hpke_info())


def test_decide_permits_pre_approved_and_holds_case_by_case(world: World) -> None:
    aus = custodian_of(world.state, "AUS")
    ok = JobRequest(
        "job-1", world.dataset_id, world.site, "undersea-autonomy", 1.0, MEASUREMENT
    )
    assert aus.decide(ok)["outcome"] == "permit"
    review = replace(ok, job_id="job-2", priority_area="quantum-sensing")
    with pytest.raises(DecisionPending) as pending:
        aus.decide(review)
    assert pending.value.outcome == "needs-approval"
    assert any("approval" in r for r in pending.value.reasons)
    assert _kinds(world)[-3:] == ["policy.decided", "policy.decided",
                                  "approval.requested"]


def test_notification_above_threshold_is_logged(world: World) -> None:
    aus = custodian_of(world.state, "AUS")
    aus.decide(
        JobRequest(
            "job-9",
            world.dataset_id,
            world.site,
            "undersea-autonomy",
            900.0,
            MEASUREMENT,
        )
    )
    assert _kinds(world)[-2:] == ["policy.decided", "notification.recorded"]


def test_site_not_cleared_is_denied(tmp_path: object) -> None:
    from pathlib import Path

    from testkit import make_world

    low = make_world(Path(str(tmp_path)), accreditation="OFFICIAL")
    aus = custodian_of(low.state, "AUS")
    with pytest.raises(PolicyDenied) as denied:
        aus.decide(
            JobRequest(
                "job-1", low.dataset_id, low.site, "undersea-autonomy", 0.5, MEASUREMENT
            )
        )
    assert any("accredit" in r for r in denied.value.reasons)


def test_expired_agreement_is_denied(tmp_path: object) -> None:
    from pathlib import Path

    from testkit import make_world

    root = Path(str(tmp_path))
    expired = root / "expired.toml"
    expired.write_text(
        (ROOT / "agreements" / "aus-usa.toml")
        .read_text()
        .replace("valid_from = 2026-01-01", "valid_from = 2023-01-01")
        .replace("valid_until = 2028-12-31", "valid_until = 2025-12-31")
    )
    old = make_world(root, agreement=expired)
    with pytest.raises(PolicyDenied) as denied:
        custodian_of(old.state, "AUS").decide(
            JobRequest(
                "job-1", old.dataset_id, old.site, "undersea-autonomy", 0.5, MEASUREMENT
            )
        )
    assert any("expired" in r for r in denied.value.reasons)


@pytest.mark.parametrize(
    "attack",
    [
        "wrong_measurement",
        "reused_nonce",
        "expired",
        "foreign_signer",
        "wrong_attempt",
        "wrong_job",
    ],
)
def test_evidence_mutations_are_refused_and_logged(world: World, attack: str) -> None:
    _job(world)
    _job(world, job_id="job-2")
    now = [datetime.now(UTC)]
    aus = custodian_of(world.state, "AUS", clock=lambda: now[0])
    key = RecipientKey.generate()
    if attack == "wrong_measurement":
        request = _request(world, aus, key, measurement="sha256:" + "cd" * 32)
        expect = "code_measurement"
    elif attack == "reused_nonce":
        request = _request(world, aus, key)
        aus.release_key(request)
        expect = "already used"
    elif attack == "expired":
        request = _request(world, aus, key)
        now[0] += timedelta(minutes=10)
        expect = "expired"
    elif attack == "foreign_signer":
        from orchestrator.crypto import SigningKey

        request = _request(
            world,
            aus,
            key,
            attester=SoftwareAttester(world.site, SigningKey.generate()),
        )
        expect = "not by site"
    elif attack == "wrong_attempt":
        request = replace(_request(world, aus, key), attempt_id="a2")
        expect = "attempt_id"
    else:
        request = replace(_request(world, aus, key), job_id="job-2")
        expect = "job_id"
    with pytest.raises(AttestationError, match=expect):
        aus.release_key(request)
    assert _kinds(world)[-1] == "key.denied"


def test_no_release_when_the_log_cannot_record(world: World) -> None:
    _job(world)
    aus = custodian_of(world.state, "AUS")
    key = RecipientKey.generate()
    request = _request(world, aus, key)
    db = world.state.custody_db
    shutil.move(db, db.with_suffix(".bak"))
    for suffix in ("-wal", "-shm"):
        db.with_name(db.name + suffix).unlink(missing_ok=True)
    db.mkdir()  # the log path is now unusable: appends must fail
    with pytest.raises(LedgerError):
        aus.release_key(request)


def test_wrap_requires_a_prior_release_and_ownership(world: World) -> None:
    from orchestrator.crypto import HpkeSuite, hpke_seal, new_dek
    from orchestrator.labels import Label
    from orchestrator.protocol.release import WrapRequest

    _job(world)
    aus = custodian_of(world.state, "AUS")
    gbr = custodian_of(world.state, "GBR")
    key = RecipientKey.generate()
    label = Label.from_json(
        Registry(world.state.registry_db).dataset(world.dataset_id).label
    ).to_json()
    request = _request(world, aus, key)

    def wrap_request(custodian: LocalCustodian, grant_id: str = "") -> WrapRequest:
        fresh = _request(world, custodian, key)
        req = WrapRequest(
            job_id="job-1",
            attempt_id="a1",
            site=world.site,
            object_id="model-x",
            label=label,
            input_dataset_ids=(world.dataset_id,),
            evidence=fresh.evidence,
            grant_id=grant_id,
        )
        public = b64d(
            Registry(world.state.registry_db).nation(custodian.nation).hpke_public
        )
        return replace(
            req,
            sealed_dek=b64e(
                hpke_seal(HpkeSuite.X25519, public, new_dek(), req.hpke_info())
            ),
        )

    with pytest.raises(PolicyDenied, match="wrap refused"):
        aus.wrap_key(wrap_request(aus))  # no release yet
    grant = aus.release_key(request)
    wrapped = aus.wrap_key(wrap_request(aus, grant.grant_id))
    assert wrapped.owner == "AUS" and len(b64d(wrapped.wrapped_dek)) == 40
    with pytest.raises(PolicyDenied):
        gbr.wrap_key(wrap_request(gbr))  # GBR owns nothing here


def test_every_owner_must_permit(world: World) -> None:
    """A dataset owned by AUS and GBR at a US site: AUS has an agreement with the
    USA, GBR does not (yet), so GBR denies and the enclave gets no key."""
    from testkit import SONAR

    from orchestrator.embedded import seal_dataset
    from orchestrator.site.enclave import Enclave, SealedInput

    joint = seal_dataset(world.state, SONAR, name="joint", owners=["AUS", "GBR"],
                         classification="SECRET", releasable_to=["AUS", "GBR", "USA"])
    add_signed_agreement(world.state, ROOT / "agreements" / "aus-gbr.toml")
    Registry(world.state.registry_db).add_job(JobRecord(
        id="job-j", workflow="sonar", site=world.site,
        request={"dataset_ids": [joint.id], "priority_area": "undersea-autonomy",
                 "gpu_hours": 1.0},
        measurement=MEASUREMENT, state="submitted", summary={},
        created="2026-11-21T00:00:00Z", finished=None))
    request = JobRequest("job-j", joint.id, world.site, "undersea-autonomy", 1.0,
                         MEASUREMENT)
    assert custodian_of(world.state, "AUS").decide(request)["outcome"] == "permit"
    with pytest.raises(PolicyDenied) as denied:
        custodian_of(world.state, "GBR").decide(request)
    assert any("agreement" in r for r in denied.value.reasons)

    site_key = load_private_key(world.state.site_dir(world.site) / "site.key")
    enclave = Enclave(job_id="job-j", task="fold-0", site=world.site,
                      attester=SoftwareAttester(world.site, site_key),
                      connect=lambda nation: custodian_of(world.state, nation))
    enclave.measurement = MEASUREMENT
    sealed = SealedInput(dataset_id=joint.id, label=joint.label,
                         manifest=joint.manifest,
                         path=Path(joint.object_path),
                         sealed_digest=joint.sealed_digest)
    with pytest.raises(PolicyDenied):
        enclave.open_input(sealed)
    released = CustodyLog(world.state.custody_db).find("key.released", job_id="job-j")
    denied_events = CustodyLog(world.state.custody_db).find("key.denied",
                                                             job_id="job-j")
    assert [e.event.body["owner"] for e in released] == ["AUS"]
    assert [e.event.body["owner"] for e in denied_events] == ["GBR"]

    add_signed_agreement(world.state, ROOT / "agreements" / "gbr-usa.toml")
    with pytest.raises(PolicyDenied, match="release refused") as unadmitted:
        enclave.open_input(sealed)  # GBR has not admitted the job yet
    assert any("not admitted by the GBR custodian" in r
               for r in unadmitted.value.reasons)
    custodian_of(world.state, "GBR").decide(request)  # GBR now admits it
    table = enclave.open_input(sealed)  # both owners now release the same DEK
    assert table.n_rows == 208
    assert len(enclave.grants) == 4  # AUS on each of 3 tries, GBR once
