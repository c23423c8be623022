"""The officers' console over mutual TLS: only the nation's own officer's
client certificate gets a page; another nation's officer (certificate from the
same CA), another role, or no certificate at all is refused."""

from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from testkit import ROOT, Sovereign, World, make_world

from orchestrator.net.ca import LocalCa
from orchestrator.net.service import ServiceThread, free_port
from orchestrator.net.tls import server_context
from orchestrator.officer.console import create_app
from orchestrator.officer.console.mtls import OfficerOnly


@dataclass
class Served:
    world: World
    url: str
    server_ca: Path


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    base = tmp_path_factory.mktemp("console-mtls")
    world = make_world(base)
    tls = LocalCa(base / "console-tls", "AUS console").init(("127.0.0.1",))
    port = free_port()
    app = create_app(world.custodian("AUS"), world.deployment.log(), "AUS",
                     origin=f"https://127.0.0.1:{port}")
    app.add_middleware(OfficerOnly, nation="AUS")
    aus_ca = world.state.nation_dir("AUS") / "pki" / "ca.pem"
    thread = ServiceThread(app, server_context(tls.server_cert, tls.server_key,
                                               aus_ca), port=port).start()
    try:
        yield Served(world, thread.url, tls.ca_cert)
    finally:
        thread.stop()


def _get(served: Served, tls: Path | None) -> httpx.Response:
    context = ssl.create_default_context(cafile=str(served.server_ca))
    if tls is not None:
        context.load_cert_chain(str(tls / "AUS.pem"), str(tls / "client.key"))
    return httpx.get(served.url + "/", verify=context, trust_env=False, timeout=10,
                     follow_redirects=True)


def test_the_nations_own_officer_gets_the_console(served: Served) -> None:
    answer = _get(served, served.world.state.officer_dir("AUS") / "tls")
    assert answer.status_code == 200 and "AUS" in answer.text


@pytest.mark.parametrize("who", ["officer-GBR", "officer-USA", "site", "orchestrator"])
def test_any_other_certificate_is_refused(served: Served, who: str) -> None:
    state = served.world.state
    tls = {"site": state.site_dir("local") / "tls",
           "orchestrator": state.orchestrator_dir / "tls"}.get(
        who, state.officer_dir(who.split("-")[-1]) / "tls")
    answer = _get(served, tls)
    assert answer.status_code == 403
    assert "admits only spiffe://aus/officer/aus" in answer.text


def test_no_client_certificate_fails_the_handshake(served: Served) -> None:
    with pytest.raises(httpx.HTTPError):
        _get(served, None).raise_for_status()


def test_the_cli_serves_mutual_tls_and_refuses_it_without_https(
        served: Served, tmp_path: Path) -> None:
    cli = Sovereign(served.world.state.root)
    aus_ca = served.world.state.nation_dir("AUS") / "pki" / "ca.pem"
    refused = cli("console", "serve", "--as", "AUS", "--client-ca", str(aus_ca),
                  ok=False)
    assert refused.code == 2 and "--client-ca" in refused.err
    tls = LocalCa(tmp_path / "tls", "AUS console").init(("127.0.0.1",))
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "console", "serve", "--as", "AUS",
         "--port", str(port), "--tls-cert", str(tls.server_cert), "--tls-key",
         str(tls.server_key), "--client-ca", str(aus_ca)],
        cwd=ROOT, env=cli.env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        local = Served(served.world, f"https://127.0.0.1:{port}", tls.ca_cert)
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = _get(local, served.world.state.officer_dir("AUS") / "tls")
                break
            except httpx.ConnectError:
                assert time.monotonic() < deadline and proc.poll() is None, (
                    proc.stderr.read() if proc.stderr else b"")
                time.sleep(0.3)
        assert answer.status_code == 200
        assert _get(local, served.world.state.officer_dir("GBR") / "tls"
                    ).status_code == 403
    finally:
        proc.terminate()
        proc.wait(10)
