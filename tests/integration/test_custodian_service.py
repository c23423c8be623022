"""The custodian as a separate mTLS service: real ``custodian serve`` processes.

Each fixture builds a real world (``testkit.make_world``: every nation's CA,
the orchestrator's and the site's client certificates issued as the parties
were introduced), starts ``python -m orchestrator custodian serve --nation AUS``
on a free loopback port over the AUS nation directory, waits for
``/v1/health`` and registers it in the orchestrator's directory with
``sovereign custodian register``. The service is terminated at teardown.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
from services import ServiceProcess, custodian_service
from testkit import ROOT, Sovereign, World, custodian_of, make_world, register_job

from orchestrator.canonical import b64d, b64e
from orchestrator.crypto import (
    HpkeSuite,
    RecipientKey,
    hpke_open,
    hpke_seal,
    load_private_key,
    new_dek,
)
from orchestrator.embedded import Deployment
from orchestrator.errors import AttestationError, DecisionPending, PolicyDenied
from orchestrator.log.store import CustodyLog
from orchestrator.nation.custodian import LocalCustodian
from orchestrator.net.custodian_client import CustodianUnavailable, HttpCustodian
from orchestrator.net.service import free_port
from orchestrator.protocol.parties import NationCard
from orchestrator.protocol.release import JobRequest, ReleaseRequest, WrapRequest
from orchestrator.site.attestation import SoftwareAttester
from orchestrator.submit.registry import Registry

MEASUREMENT = "sha256:" + "ab" * 32


@dataclass
class Served:
    world: World
    cli: Sovereign
    service: ServiceProcess

    @property
    def ca(self) -> Path:
        return self.world.state.nation_dir("AUS") / "pki" / "ca.pem"

    def cert(self, party: str, nation: str = "AUS") -> tuple[Path, Path]:
        """``party``'s (``site``/``orchestrator``) certificate from ``nation``."""
        tls = (self.world.state.site_dir(self.world.site) if party == "site"
               else self.world.state.orchestrator_dir) / "tls"
        return tls / f"{nation}.pem", tls / "client.key"

    def client(self, party: str = "site", **kwargs: object) -> HttpCustodian:
        cert, key = self.cert(party)
        args: dict[str, object] = {
            "ca": self.ca, "cert": cert, "key": key,
            "connect_timeout": 3.0, "read_timeout": 10.0,
        }
        args.update(kwargs)
        return HttpCustodian("AUS", self.service.url, **args)  # type: ignore[arg-type]


def _serve(root: Path) -> Iterator[Served]:
    world = make_world(root)
    cli = Sovereign(world.state.root)
    service = custodian_service(world.state, "AUS")
    try:
        cli("custodian", "register", "AUS", "--url", service.url,
            "--ca", str(world.state.nation_dir("AUS") / "pki" / "ca.pem"))
        yield Served(world, cli, service)
    finally:
        service.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _serve(tmp_path_factory.mktemp("custodian-service"))


def _job(world: World, job_id: str) -> str:
    register_job(world, job_id, admit=("AUS",))
    return job_id


def _release_request(
    world: World, custodian: HttpCustodian, key: RecipientKey, job_id: str, attempt: str
) -> ReleaseRequest:
    site_key = load_private_key(world.state.site_dir(world.site) / "site.key")
    evidence = SoftwareAttester(world.site, site_key).attest(
        job_id=job_id,
        attempt_id=attempt,
        code_measurement=MEASUREMENT,
        enclave_public_key=key.public_bytes(),
        hpke_suite=key.suite.value,
        nonce=custodian.challenge(),
    )
    return ReleaseRequest(
        job_id, attempt, "fold-0", world.dataset_id, world.site, evidence,
        world.dataset_digest,
    )


def test_round_trip_challenge_decide_release_wrap(served: Served) -> None:
    world = served.world
    job_id = "job-rt"
    register_job(world, job_id)
    with served.client() as aus, served.client("orchestrator") as orch:
        health = aus.health()
        assert health["nation"] == "AUS" and health["pid"] != os.getpid()
        before = health["served"]
        with pytest.raises(PolicyDenied):  # a site may not ask for decisions
            aus.decide(JobRequest(job_id, world.dataset_id, world.site,
                                  "undersea-autonomy", 0.5, MEASUREMENT))
        decision = orch.decide(
            JobRequest(
                job_id,
                world.dataset_id,
                world.site,
                "undersea-autonomy",
                0.5,
                MEASUREMENT,
            )
        )
        assert decision["outcome"] == "permit"
        key = RecipientKey.generate()
        request = _release_request(world, aus, key, job_id, "attempt-rt")
        grant = aus.release_key(request)
        dek = hpke_open(key, b64d(grant.sealed_dek), request.hpke_info())
        assert len(dek) == 32 and grant.owner == "AUS"
        entry = CustodyLog(world.state.custody_db).get(grant.log_index)
        assert entry.event.kind == "key.released"
        assert entry.event.actor == "custodian:AUS"
        label = Registry(world.state.registry_db).dataset(world.dataset_id).label
        wrap = WrapRequest(
            job_id=job_id,
            attempt_id="attempt-rt",
            site=world.site,
            object_id="model-rt",
            label=label,
            input_dataset_ids=(world.dataset_id,),
            evidence=_release_request(world, aus, key, job_id, "attempt-rt").evidence,
            grant_id=grant.grant_id,
        )
        public = NationCard.verify(aus.card(), expect="AUS").hpke_public
        wrap = replace(
            wrap,
            sealed_dek=b64e(
                hpke_seal(HpkeSuite.X25519, public, new_dek(), wrap.hpke_info())
            ),
        )
        wrapped = aus.wrap_key(wrap)
        assert wrapped.owner == "AUS" and len(b64d(wrapped.wrapped_dek)) == 40
        after = aus.health()["served"]
        delta = {k: after[k] - before.get(k, 0) for k in after}
        assert delta == {"challenge": 2, "decide": 1, "release": 1, "wrap": 1,
                         "card": 1}


def test_connector_picks_http_for_registered_nations(served: Served) -> None:
    deployment = Deployment(served.world.state)
    assert isinstance(deployment.connect("AUS"), HttpCustodian)
    assert isinstance(deployment.connect("GBR"), LocalCustodian)
    listed = served.cli("custodian", "list", "--json").json()
    assert listed["AUS"]["url"] == served.service.url


def test_refusals_keep_their_class_and_reasons(served: Served) -> None:
    world = served.world
    local = custodian_of(world.state, "AUS")
    review = JobRequest(
        "job-review", world.dataset_id, world.site, "quantum-sensing", 0.5, MEASUREMENT
    )
    with pytest.raises(PolicyDenied) as expected:
        local.decide(review)
    with served.client() as aus, served.client("orchestrator") as orch:
        with pytest.raises(PolicyDenied) as denied:
            orch.decide(replace(review, job_id="job-review-2"))
        assert denied.value.reasons == expected.value.reasons
        assert denied.value.reasons and any(
            "approval" in r for r in denied.value.reasons
        )
        # The class and the outcome cross the wire; the message names each job's
        # own approval request (apr-<job>-AUS-local).
        assert type(denied.value) is type(expected.value) is DecisionPending
        assert isinstance(denied.value, DecisionPending)
        assert denied.value.outcome == "needs-approval"
        assert "apr-job-review-2-AUS-local" in denied.value.message
        key = RecipientKey.generate()
        with pytest.raises(PolicyDenied) as unknown:
            aus.release_key(_release_request(world, aus, key, "job-none", "a-x"))
        assert unknown.value.reasons  # "job-none" was never admitted
        job_id = _job(world, "job-replay")
        request = _release_request(world, aus, key, job_id, "a-replay")
        aus.release_key(request)
        with pytest.raises(AttestationError):
            aus.release_key(request)  # the nonce is single-use


def test_no_client_certificate_is_refused(served: Served) -> None:
    with served.client(cert=None, key=None) as anonymous:
        with pytest.raises(CustodianUnavailable):
            anonymous.challenge()
    # Raw TLS 1.3 without a certificate: the client's side of the handshake ends
    # before the server checks the (missing) certificate, so the refusal shows as
    # an alert or a closed connection on the first read, never as an HTTP answer.
    context = ssl.create_default_context(cafile=str(served.ca))
    with socket.create_connection(("127.0.0.1", served.service.port), 5) as raw:
        try:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                tls.sendall(b"GET /v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
                answer = tls.recv(100)
        except (ssl.SSLError, ConnectionError):
            answer = b""
    assert answer == b""
    with served.client() as aus:
        assert aus.health()["status"] == "ok"  # still serving others


def test_client_certificate_of_another_nation_is_refused(served: Served) -> None:
    cert, key = served.cert("orchestrator", "GBR")
    foreign = served.client(cert=cert, key=key)
    with foreign, pytest.raises(CustodianUnavailable):
        foreign.challenge()


def test_server_not_matching_the_pinned_ca_is_refused(served: Served) -> None:
    wrong_pin = served.client(
        ca=served.world.state.nation_dir("GBR") / "pki" / "ca.pem")
    with wrong_pin, pytest.raises(CustodianUnavailable, match="CERTIFICATE_VERIFY"):
        wrong_pin.challenge()


def test_transport_failures_fail_closed(served: Served) -> None:
    cert, key = served.cert("site")
    nobody = HttpCustodian("AUS", f"https://127.0.0.1:{free_port()}", ca=served.ca,
                           cert=cert, key=key, connect_timeout=1.0)
    with nobody, pytest.raises(CustodianUnavailable, match="unreachable"):
        nobody.challenge()
    impostor = HttpCustodian("GBR", served.service.url, ca=served.ca, cert=cert,
                             key=key)
    with impostor, pytest.raises(CustodianUnavailable, match="serves 'AUS'"):
        impostor.health()


def test_register_checks_the_client_certificate_against_the_ca(served: Served) -> None:
    result = served.cli(
        "custodian",
        "register",
        "AUS",
        "--url",
        served.service.url,
        "--ca",
        str(served.ca),
        "--cert",
        str(served.cert("orchestrator", "GBR")[0]),
        "--key",
        str(served.cert("orchestrator", "GBR")[1]),
        ok=False,
    )
    assert result.code == 3 and "was not issued by" in result.err
    bad_url = served.cli(
        "custodian",
        "register",
        "AUS",
        "--url",
        "http://127.0.0.1:1",
        "--ca",
        str(served.ca),
        ok=False,
    )
    assert bad_url.code == 2 and "https://" in bad_url.err


@pytest.mark.slow
def test_sonar_workflow_end_to_end_with_aus_as_a_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from orchestrator.embedded import submit

    monkeypatch.setenv(
        "PATH", str(Path(sys.executable).parent) + os.pathsep + os.environ["PATH"]
    )
    for served in _serve(tmp_path):
        world = served.world
        result = submit(
            world.state, ROOT / "workflows" / "sonar_classification.toml", "local"
        )
        assert len(result.tasks) == 14 and result.model_ids
        log = CustodyLog(world.state.custody_db)
        released = [
            e
            for e in log.entries()
            if e.event.kind == "key.released"
            and e.event.body["job_id"] == result.job_id
        ]
        assert len(released) == 14
        assert {e.event.actor for e in released} == {"custodian:AUS"}
        with served.client() as aus:
            health = aus.health()
        # Every release, the job decision and the model's wrap went through the
        # service process (its own counters), none through an in-process custodian.
        assert health["pid"] == served.service.proc.pid  # type: ignore[union-attr]
        assert health["served"]["release"] == 14
        assert health["served"]["decide"] == 1
        checkpoints = log.find("checkpoint.sealed", job_id=result.job_id)
        # One wrap per sealed model and per sealed checkpoint (AUS is the only owner).
        assert health["served"]["wrap"] == len(result.model_ids) + len(checkpoints)
        access = served.service.log.read_text()
        assert access.count('"POST /v1/release HTTP/1.1" 200') == 14


@pytest.mark.slow
def test_bench_release_quick_smoke(tmp_path: Path) -> None:
    """``benchmarks/bench_release.py --quick`` runs and writes sane JSON."""
    import json
    import subprocess

    out = tmp_path / "release.json"
    script = ROOT / "benchmarks" / "bench_release.py"
    proc = subprocess.run(
        [sys.executable, str(script), "--quick", "--json", str(out)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "| mode | enclaves |" in proc.stdout
    doc = json.loads(out.read_text())
    assert doc["benchmark"] == "release" and doc["config"]["quick"] is True
    rows = {(r["mode"], r["enclaves"]): r for r in doc["results"]}
    assert set(rows) == {
        (mode, n) for mode in ("inproc", "mtls_fresh", "mtls_reuse") for n in (1, 8)
    }
    for row in rows.values():
        assert row["releases"] == 3 * row["enclaves"]
        assert 0 < row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]
        assert row["throughput_per_s"] > 0
