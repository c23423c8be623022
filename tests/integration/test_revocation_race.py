"""Ending an agreement, or a nation's accreditation of the site, stops new releases
at once (reliability plan, test 29).

200 release requests race, on 16 threads, against a thread that, once some
releases have happened, either has the AUS officer terminate the AUS-USA agreement
(any-party termination; it reaches the AUS custodian first) or has AUS revoke its
accreditation of the site. In custody-log order no ``key.released`` may follow the
``agreement.terminated`` / ``site.accreditation.revoked`` entry; every request
after it is denied (policy: no agreement, or no live accreditation) and logged.
"""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from testkit import ROOT, custodian_of, make_world, register_job

from orchestrator.crypto import RecipientKey, load_private_key
from orchestrator.embedded import revoke_accreditation, terminate_agreement
from orchestrator.errors import PolicyDenied
from orchestrator.log.store import CustodyLog
from orchestrator.protocol.agreements import load_agreement
from orchestrator.protocol.release import ReleaseRequest
from orchestrator.site.attestation import SoftwareAttester

MEASUREMENT = "sha256:" + "ab" * 32
N = 200


@pytest.mark.parametrize("end", ["termination", "accreditation-revoked"])
def test_no_release_is_ordered_after_the_end(tmp_path: Path, end: str) -> None:
    world = make_world(tmp_path)
    agreement = load_agreement(ROOT / "agreements" / "aus-usa.toml").id
    register_job(world, "job-r", admit=("AUS",))
    site_key = load_private_key(world.state.site_dir(world.site) / "site.key")
    attester = SoftwareAttester(world.site, site_key)
    setup = custodian_of(world.state, "AUS")
    key = RecipientKey.generate()
    requests = [
        ReleaseRequest(
            job_id="job-r", attempt_id=f"a{i}", task="fold-0",
            dataset_id=world.dataset_id, site=world.site,
            evidence=attester.attest(
                job_id="job-r", attempt_id=f"a{i}", code_measurement=MEASUREMENT,
                enclave_public_key=key.public_bytes(), hpke_suite=key.suite.value,
                nonce=setup.challenge()), sealed_digest=world.dataset_digest)
        for i in range(N)
    ]
    released = threading.Semaphore(0)

    def release(request: ReleaseRequest) -> str:
        try:
            custodian_of(world.state, "AUS").release_key(request)
        except PolicyDenied:
            return "denied"
        released.release()
        return "released"

    def revoke() -> None:
        for _ in range(20):  # let some releases through first
            released.acquire(timeout=30)
        if end == "termination":
            terminate_agreement(world.state, agreement, "AUS", reason="test 29")
        else:
            revoke_accreditation(world.state, world.site, "AUS", reason="test 29")

    revoker = threading.Thread(target=revoke)
    revoker.start()
    with ThreadPoolExecutor(max_workers=16) as pool:
        outcomes = list(pool.map(release, requests))
    revoker.join()

    entries = list(CustodyLog(world.state.custody_db).entries())
    kind = ("agreement.terminated" if end == "termination"
            else "site.accreditation.revoked")
    revoked_at = [e.seq for e in entries if e.event.kind == kind]
    assert len(revoked_at) == 1
    after = [e for e in entries if e.seq > revoked_at[0]
             and e.event.kind == "key.released"]
    assert after == []
    n_released = outcomes.count("released")
    assert 20 <= n_released < N and outcomes.count("denied") == N - n_released
    releases = [e for e in entries if e.event.kind == "key.released"]
    denials = [e for e in entries if e.event.kind == "key.denied"]
    assert len(releases) == n_released and len(denials) == N - n_released
    assert all(e.seq > revoked_at[0] for e in denials)
    why = "agreement" if end == "termination" else "accreditation"
    assert all(why in " ".join(e.event.body["reasons"]) for e in denials)
