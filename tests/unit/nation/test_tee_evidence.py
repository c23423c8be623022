"""TEE evidence adapters on SYNTHETIC TEST evidence (no TEE hardware here).

Intel TDX quote v4, AMD SEV-SNP report and NVIDIA NRAS EAT, built by
``tee_synthetic`` and signed by a test-only root: these tests prove parsing,
binding and policy logic only, never that genuine hardware evidence verifies.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import tee_synthetic as syn
from testkit import World, custodian_of, register_job

from orchestrator.canonical import b64d
from orchestrator.crypto import RecipientKey, hpke_open, load_private_key
from orchestrator.errors import AttestationError, ConfigError
from orchestrator.log.store import CustodyLog
from orchestrator.nation.custodian import LocalCustodian
from orchestrator.nation.tee import TeeEvidenceVerifier, TeeVerifierConfig, TrustRoot
from orchestrator.nation.verifier import DispatchingVerifier, ExpectedBinding
from orchestrator.protocol.release import ReleaseRequest
from orchestrator.site.attestation import SoftwareAttester
from orchestrator.submit.registry import Registry

MEASUREMENT = "sha256:" + "ab" * 32


def _job(world: World, job_id: str = "job-1") -> None:
    from orchestrator.embedded import accredit_site

    # AUS accepts TEE evidence from this site (a newer accreditation).
    accredit_site(world.state, world.site, "AUS", tee_kinds=("none", "tdx", "sgx",
    "snp"))
    register_job(world, job_id, admit=("AUS",))


def _tee_request(world: World, custodian: LocalCustodian, key: RecipientKey,
                 now: datetime, **kw: object) -> ReleaseRequest:
    site_key = load_private_key(world.state.site_dir(world.site) / "site.key")
    base = SoftwareAttester(world.site, site_key, clock=lambda: now).attest(
        job_id="job-1", attempt_id="a1", code_measurement=MEASUREMENT,
        enclave_public_key=key.public_bytes(), hpke_suite=key.suite.value,
        nonce=custodian.challenge())
    evidence = syn.tee_evidence(base, site_key, now, **kw)  # type: ignore[arg-type]
    return ReleaseRequest(job_id="job-1", attempt_id="a1", task="fold-0",
                          dataset_id=world.dataset_id, site=world.site,
                          evidence=evidence, sealed_digest=world.dataset_digest)


def _custodian(world: World, now: datetime,
               cfg: TeeVerifierConfig | None = None) -> LocalCustodian:
    verifier = DispatchingVerifier(TeeEvidenceVerifier(cfg or syn.config()))
    return custodian_of(world.state, "AUS", clock=lambda: now, verifier=verifier)


@pytest.mark.parametrize(("cpu", "gpu", "mode"), [
    ("tdx", False, "tdx"), ("snp", False, "snp"), ("tdx", True, "tdx+gpu_cc")])
def test_synthetic_tee_release_records_mode_and_kind(
        world: World, cpu: str, gpu: bool, mode: str) -> None:
    _job(world)
    now = datetime.now(UTC)
    aus = _custodian(world, now)
    key = RecipientKey.generate()
    request = _tee_request(world, aus, key, now, cpu=cpu, gpu=gpu)
    grant = aus.release_key(request)
    assert len(hpke_open(key, b64d(grant.sealed_dek), request.hpke_info())) == 32
    assert (grant.tee_mode, grant.evidence_kind) == (mode, "synthetic-test")
    body = CustodyLog(world.state.custody_db).get(grant.log_index).event.body
    assert body["tee_mode"] == mode and body["evidence_kind"] == "synthetic-test"
    assert body["tee_measurements"]


@pytest.mark.parametrize(("cpu", "gpu", "mutate", "expect"), [
    ("tdx", False, "debug", "DEBUG set"),
    ("snp", False, "debug", "allows debugging"),
    ("tdx", False, "measurement", "MRTD .* not an accepted"),
    ("snp", False, "measurement", "MEASUREMENT .* not an accepted"),
    ("tdx", False, "report_data", "REPORTDATA does not bind"),
    ("snp", False, "report_data", "REPORT_DATA does not bind"),
    ("tdx", False, "foreign_root", "untrusted root"),
    ("snp", False, "foreign_root", "untrusted root"),
    ("tdx", False, "expired_endorsement", "endorsement expired"),
    ("snp", False, "tcb", "below the minimum"),
    ("tdx", True, "sim", "not 'PROD'"),
    ("tdx", True, "devtools", "DevTools"),
    ("tdx", True, "gpu_nonce", "eat_nonce"),
])
def test_tee_mutations_are_refused_and_logged(
        world: World, cpu: str, gpu: bool, mutate: str, expect: str) -> None:
    _job(world)
    now = datetime.now(UTC)
    aus = _custodian(world, now, syn.config(min_snp_tcb=(3, 0, 14, 100)))
    request = _tee_request(world, aus, RecipientKey.generate(), now, cpu=cpu,
                           gpu=gpu, mutate=mutate)
    with pytest.raises(AttestationError, match=expect):
        aus.release_key(request)
    last = list(CustodyLog(world.state.custody_db).entries())[-1].event
    assert last.kind == "key.denied" and expect.split()[0] in last.body["reasons"][0]


def test_tampered_quote_and_mode_mismatch_are_refused(world: World) -> None:
    _job(world)
    now = datetime.now(UTC)
    verifier = TeeEvidenceVerifier(syn.config())
    site_key = load_private_key(world.state.site_dir(world.site) / "site.key")
    registry = Registry(world.state.registry_db)
    site_public = b64d(registry.site(world.site).signing_public)
    expected = ExpectedBinding(world.site, "job-1", "a1", MEASUREMENT, site_public)
    aus = _custodian(world, now)
    request = _tee_request(world, aus, RecipientKey.generate(), now)
    tee = dict(request.evidence.tee_evidence or {})
    assert verifier.verify(request.evidence, expected, now).tee_mode == "tdx"
    quote = bytearray(b64d(tee["cpu"]["report"]))
    quote[48 + 136] ^= 1  # flip one MRTD bit after signing
    from orchestrator.canonical import b64e
    from orchestrator.protocol.release import Evidence

    def resign(ev: Evidence) -> Evidence:
        return ev.with_signature(b64e(site_key.sign(ev.signed_bytes())))

    forged = resign(Evidence(**{**request.evidence.to_json(), "tee_evidence": {
        **tee, "cpu": {**tee["cpu"], "report": b64e(bytes(quote))}}}))
    with pytest.raises(AttestationError, match="quote signature is invalid"):
        verifier.verify(forged, expected, now)
    lying = resign(Evidence(**{**request.evidence.to_json(), "tee_mode": "snp"}))
    with pytest.raises(AttestationError, match="claims tee_mode"):
        verifier.verify(lying, expected, now)


def test_production_config_rejects_the_test_root_and_synthetic_kind(
        world: World) -> None:
    with pytest.raises(ConfigError, match="synthetic-test root"):
        TeeVerifierConfig.production((syn.TEST_ROOT,))
    _job(world)
    now = datetime.now(UTC)
    prod = TeeVerifierConfig.production(tdx_mrtd=frozenset({syn.MRTD.hex()}))
    aus = _custodian(world, now, prod)
    with pytest.raises(AttestationError, match="refused by a production verifier"):
        aus.release_key(_tee_request(world, aus, RecipientKey.generate(), now))
    # Mislabelled as hardware, it chains to a root production does not pin.
    with pytest.raises(AttestationError, match="untrusted root"):
        aus.release_key(_tee_request(world, aus, RecipientKey.generate(), now,
                                     kind="hardware"))
    # Even a config that pins the test root as "hardware" is refused by kind
    # only if declared honestly; a hardware root never vouches for synthetic.
    hw = TrustRoot("hw", syn.TEST_ROOT_KEY.public_xy(), "hardware")
    cfg = TeeVerifierConfig.synthetic_for_tests((hw,), tdx_mrtd=frozenset(
        {syn.MRTD.hex()}))
    aus2 = _custodian(world, now, cfg)
    with pytest.raises(AttestationError, match="endorsed by hardware root"):
        aus2.release_key(_tee_request(world, aus2, RecipientKey.generate(), now))


def test_software_verifier_refuses_tee_evidence_and_default_custodian_too(
        world: World) -> None:
    _job(world)
    now = datetime.now(UTC)
    aus = custodian_of(world.state, "AUS", clock=lambda: now)
    with pytest.raises(AttestationError, match="unsupported evidence format"):
        aus.release_key(_tee_request(world, aus, RecipientKey.generate(), now))
