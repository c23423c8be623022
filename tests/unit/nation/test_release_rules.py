"""Release rules beyond policy: TEE requirement and HPKE suite from agreements,
per-attempt short-lived grants, and evidence mutations (each a specific reason)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from testkit import ROOT, World, custodian_of, make_world, register_job

from orchestrator.canonical import b64d, b64e
from orchestrator.crypto import (
    HpkeSuite,
    RecipientKey,
    SigningKey,
    hpke_open,
    hpke_seal,
    load_private_key,
    new_dek,
)
from orchestrator.errors import (
    AttestationError,
    ConfigError,
    IntegrityError,
    PolicyDenied,
)
from orchestrator.log.store import CustodyLog
from orchestrator.nation.custodian import LocalCustodian
from orchestrator.protocol.agreements import parse_agreement
from orchestrator.protocol.release import JobRequest, ReleaseRequest, WrapRequest
from orchestrator.site.attestation import SoftwareAttester
from orchestrator.submit.registry import Registry

MEASUREMENT = "sha256:" + "ab" * 32
AUS_USA = ROOT / "agreements" / "aus-usa.toml"


def _agreement(root: Path, extra: str) -> Path:
    path = root / "custom.toml"
    path.write_text(AUS_USA.read_text().replace(
        "[[agreement.priority_area]]", extra + "\n\n[[agreement.priority_area]]", 1))
    return path


def _job(world: World, job_id: str = "job-1") -> None:
    register_job(world, job_id, admit=("AUS",))


def _request(world: World, custodian: LocalCustodian, key: RecipientKey, *,
             job_id: str = "job-1", attempt: str = "a1",
             at: datetime | None = None, signer: SigningKey | None = None,
             measurement: str = MEASUREMENT, nonce: str | None = None
             ) -> ReleaseRequest:
    site_key = signer or load_private_key(
        world.state.site_dir(world.site) / "site.key")
    clock = (lambda: at) if at else (lambda: datetime.now(UTC))
    evidence = SoftwareAttester(world.site, site_key, clock=clock).attest(
        job_id=job_id, attempt_id=attempt, code_measurement=measurement,
        enclave_public_key=key.public_bytes(), hpke_suite=key.suite.value,
        nonce=nonce or custodian.challenge())
    return ReleaseRequest(job_id=job_id, attempt_id=attempt, task="fold-0",
                          dataset_id=world.dataset_id, site=world.site,
                          evidence=evidence, sealed_digest=world.dataset_digest)


def _last(world: World) -> dict[str, object]:
    entry = list(CustodyLog(world.state.custody_db).entries())[-1]
    return {"kind": entry.event.kind, **entry.event.body}


# -- agreements: loader ---------------------------------------------------------
def test_agreement_defaults_keep_old_documents_and_digests() -> None:
    old = parse_agreement(AUS_USA.read_text(), source="aus-usa")
    assert (old.tee_required, old.hpke_suite) == (False, "x25519")
    assert "tee_required" not in old.to_json() and "hpke_suite" not in old.to_json()
    new = parse_agreement(AUS_USA.read_text().replace(
        "[[agreement.priority_area]]",
        'tee_required = true\nhpke_suite = "mlkem768-x25519"\n\n'
        "[[agreement.priority_area]]", 1), source="x")
    assert new.tee_required and new.hpke_suite_value == HpkeSuite.MLKEM768_X25519
    assert type(new).from_json(new.to_json()) == new


@pytest.mark.parametrize(("extra", "field"), [
    ('hpke_suite = "rsa"', "hpke_suite"), ('tee_required = "yes"', "tee_required"),
    ("tee_required = 1", "tee_required")])
def test_agreement_bad_new_fields_name_the_field(extra: str, field: str) -> None:
    text = AUS_USA.read_text().replace(
        "[[agreement.priority_area]]", extra + "\n\n[[agreement.priority_area]]", 1)
    with pytest.raises(ConfigError) as err:
        parse_agreement(text, source="bad.toml")
    assert field in str(err.value.field)


# -- TEE requirement and suite ---------------------------------------------------
def test_tee_required_refuses_software_evidence(tmp_path: Path) -> None:
    world = make_world(tmp_path, agreement=_agreement(tmp_path, "tee_required = true"))
    _job(world)
    aus = custodian_of(world.state, "AUS")
    decision = aus.decide(JobRequest("job-1", world.dataset_id, world.site,
                                     "undersea-autonomy", 0.5, MEASUREMENT))
    assert decision["tee_required"] is True
    with pytest.raises(PolicyDenied) as denied:
        aus.release_key(_request(world, aus, RecipientKey.generate()))
    assert any(r.startswith("tee: agreement") for r in denied.value.reasons)
    last = _last(world)
    assert last["kind"] == "key.denied" and "requires a TEE" in str(last["reasons"])


def test_agreement_suite_must_match_the_enclave_key(tmp_path: Path) -> None:
    world = make_world(tmp_path,
                       agreement=_agreement(tmp_path, 'hpke_suite = "mlkem768-x25519"'))
    _job(world)
    aus = custodian_of(world.state, "AUS")
    decision = aus.decide(JobRequest("job-1", world.dataset_id, world.site,
                                     "undersea-autonomy", 0.5, MEASUREMENT))
    assert decision["hpke_suite"] == HpkeSuite.MLKEM768_X25519.value
    with pytest.raises(PolicyDenied, match="hpke_suite"):
        aus.release_key(_request(world, aus, RecipientKey.generate()))
    key = RecipientKey.generate(HpkeSuite(decision["hpke_suite"]))
    request = _request(world, aus, key)
    grant = aus.release_key(request)
    assert grant.hpke_suite == HpkeSuite.MLKEM768_X25519.value
    assert len(hpke_open(key, b64d(grant.sealed_dek), request.hpke_info())) == 32
    assert _last(world)["tee_mode"] == "none"
    assert _last(world)["evidence_kind"] == "software"


def test_default_agreement_uses_x25519(world: World) -> None:
    _job(world)
    aus = custodian_of(world.state, "AUS")
    decision = aus.decide(JobRequest("job-1", world.dataset_id, world.site,
                                     "undersea-autonomy", 0.5, MEASUREMENT))
    assert decision["hpke_suite"] == HpkeSuite.X25519.value
    assert decision["tee_required"] is False
    with pytest.raises(PolicyDenied, match="hpke_suite"):
        aus.release_key(_request(
            world, aus, RecipientKey.generate(HpkeSuite.MLKEM768_X25519)))


# -- evidence mutations ------------------------------------------------------------
@pytest.mark.parametrize("attack", [
    "wrong_measurement", "stale_nonce", "reused_nonce", "unknown_nonce",
    "expired", "foreign_signer", "key_swapped"])
def test_evidence_mutations_have_specific_reasons(world: World, attack: str) -> None:
    _job(world)
    t0 = datetime.now(UTC)
    now = [t0]
    aus = custodian_of(world.state, "AUS", clock=lambda: now[0])
    key = RecipientKey.generate()
    expect = {"wrong_measurement": "code_measurement", "stale_nonce": "nonce expired",
              "reused_nonce": "already used", "unknown_nonce": "not issued",
              "expired": "evidence expired", "foreign_signer": "not by site",
              "key_swapped": "signature is invalid"}[attack]
    if attack == "wrong_measurement":
        request = _request(world, aus, key, measurement="sha256:" + "cd" * 32)
    elif attack == "stale_nonce":
        nonce = aus.challenge()
        now[0] = t0 + timedelta(seconds=400)  # evidence is fresh, nonce is not
        request = _request(world, aus, key, at=now[0], nonce=nonce)
    elif attack == "reused_nonce":
        request = _request(world, aus, key)
        aus.release_key(request)
    elif attack == "unknown_nonce":
        request = _request(world, aus, key, nonce=b64e(bytes(32)))
    elif attack == "expired":
        request = _request(world, aus, key, at=t0)
        now[0] = t0 + timedelta(minutes=10)
    elif attack == "foreign_signer":
        request = _request(world, aus, key, signer=SigningKey.generate())
    else:  # evidence names key A; the request is rewritten to name key B
        request = _request(world, aus, key)
        other = RecipientKey.generate()
        request = replace(request, evidence=replace(
            request.evidence, enclave_public_key=b64e(other.public_bytes())))
    with pytest.raises(AttestationError, match=expect):
        aus.release_key(request)
    assert _last(world)["kind"] == "key.denied"


def test_grant_is_sealed_only_to_the_evidence_key(world: World) -> None:
    _job(world)
    aus = custodian_of(world.state, "AUS")
    key_a, key_b = RecipientKey.generate(), RecipientKey.generate()
    request = _request(world, aus, key_a)
    grant = aus.release_key(request)
    with pytest.raises(IntegrityError):
        hpke_open(key_b, b64d(grant.sealed_dek), request.hpke_info())
    assert hpke_open(key_a, b64d(grant.sealed_dek), request.hpke_info())


# -- grants per attempt ----------------------------------------------------------------
def _wrap(world: World, custodian: LocalCustodian, key: RecipientKey, grant_id: str,
          *, attempt: str = "a1", object_id: str = "model-x",
          at: datetime | None = None) -> WrapRequest:
    label = Registry(world.state.registry_db).dataset(world.dataset_id).label
    req = WrapRequest(job_id="job-1", attempt_id=attempt, site=world.site,
                      object_id=object_id, label=label,
                      input_dataset_ids=(world.dataset_id,),
                      evidence=_request(world, custodian, key, attempt=attempt,
                                        at=at).evidence,
                      grant_id=grant_id)
    registry = Registry(world.state.registry_db)
    public = b64d(registry.nation(custodian.nation).hpke_public)
    return replace(req, sealed_dek=b64e(
        hpke_seal(HpkeSuite.X25519, public, new_dek(), req.hpke_info())))


@pytest.mark.parametrize("misuse", ["replayed", "expired", "other_attempt",
                                    "other_nation", "missing"])
def test_grant_misuse_is_refused(tmp_path: Path, misuse: str) -> None:
    world = make_world(tmp_path, agreement=ROOT / "agreements" / "aus-usa.toml")
    _job(world)
    now = [datetime.now(UTC)]
    aus = custodian_of(world.state, "AUS", clock=lambda: now[0])
    key = RecipientKey.generate()
    grant = aus.release_key(_request(world, aus, key))
    assert (grant.job_id, grant.attempt_id) == ("job-1", "a1")
    expect = {"replayed": "already used", "expired": "expired at",
              "other_attempt": "belongs to job", "other_nation": "not issued",
              "missing": "no grant id"}[misuse]
    if misuse == "replayed":
        aus.wrap_key(_wrap(world, aus, key, grant.grant_id))
        request = _wrap(world, aus, key, grant.grant_id)
    elif misuse == "expired":
        from orchestrator.nation.custodian import ATTEMPT_LEASE_S

        now[0] += timedelta(seconds=ATTEMPT_LEASE_S + 1)
        request = _wrap(world, aus, key, grant.grant_id, at=now[0])
    elif misuse == "other_attempt":
        aus.release_key(_request(world, aus, key, attempt="a2"))
        request = _wrap(world, aus, key, grant.grant_id, attempt="a2")
    elif misuse == "other_nation":
        request = _wrap(world, aus, key, "f" * 32)  # e.g. a GBR grant id
    else:
        request = _wrap(world, aus, key, "")
    with pytest.raises(PolicyDenied, match=expect):
        aus.wrap_key(request)
    if misuse == "replayed":  # another object under the same grant is fine
        aus.wrap_key(_wrap(world, aus, key, grant.grant_id, object_id="model-y"))


# -- the envelope released for ----------------------------------------------------
def test_a_relabelled_envelope_gets_no_key(tmp_path: Path) -> None:
    """A copy whose header label was edited has another digest: the custodian
    refuses before any key is unwrapped, naming the envelope it sealed."""
    import hashlib

    world = make_world(tmp_path)
    _job(world)
    custodian = custodian_of(world.state, "AUS")
    sealed = Path(Registry(world.state.registry_db).dataset(world.dataset_id)
                  .object_path).read_bytes()
    edited = sealed.replace(b'"SECRET"', b'"OFFICIAL"', 1)
    assert edited != sealed
    forged = "sha256:" + hashlib.sha256(edited).hexdigest()
    request = replace(_request(world, custodian, RecipientKey.generate()),
                      sealed_digest=forged)
    with pytest.raises(PolicyDenied) as err:
        custodian.release_key(request)
    assert any(r.startswith("sealed_digest:") and world.dataset_digest in r
               for r in err.value.reasons), err.value.reasons
    released = CustodyLog(world.state.custody_db).find("key.released")
    assert released == []
    assert _last(world)["kind"] == "key.denied"
