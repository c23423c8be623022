"""The custodian's C2SP tlog-witness endpoint, read as an outside client reads
it: raw HTTP status, exact Content-Type and body (c2sp.org/tlog-witness, the
text at C2SP/C2SP commit 8d77562; signed-note at 0552876)."""

from __future__ import annotations

import hashlib
import ssl
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from testkit import World, make_world

from orchestrator.nation.pki import server_context
from orchestrator.nation.service import create_app
from orchestrator.net.service import ServiceThread
from orchestrator.tlog.checkpoint import Checkpoint, parse_note, sign
from orchestrator.tlog.witness_api import format_add_checkpoint


@dataclass
class Served:
    world: World
    client: httpx.Client


@pytest.fixture
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    world = make_world(tmp_path_factory.mktemp("witness-http"))
    thread = ServiceThread(create_app(world.custodian("AUS")),
                           server_context(world.deployment.nation("AUS"))).start()
    tls = world.state.log_dir / "client"
    context = ssl.create_default_context(
        cafile=str(world.state.nation_dir("AUS") / "pki" / "ca.pem"))
    context.load_cert_chain(str(tls / "AUS.pem"), str(tls / "client.key"))
    client = httpx.Client(base_url=thread.url, verify=context, trust_env=False)
    try:
        yield Served(world, client)
    finally:
        client.close()
        thread.stop()


def _post(served: Served, old: int, proof: list[bytes], note: bytes) -> httpx.Response:
    return served.client.post("/add-checkpoint",
                              content=format_add_checkpoint(old, proof, note))


def _honest(served: Served) -> tuple[bytes, int]:
    log = served.world.deployment.log()
    note = log.publish()
    return note, parse_note(note).checkpoint.size


def test_409_is_exactly_text_x_tlog_size_with_the_size(served: Served) -> None:
    note, size = _honest(served)
    assert _post(served, 0, [], note).status_code == 200
    again = _post(served, 0, [], note)
    assert again.status_code == 409
    assert again.headers["content-type"] == "text/x.tlog.size"
    assert again.content == f"{size}\n".encode()


def test_a_size_0_checkpoint_with_another_root_is_422_and_wedges_nothing(
        served: Served) -> None:
    log = served.world.deployment.log()
    bogus = sign(Checkpoint(log.origin, 0, hashlib.sha256(b"x").digest()), log.signer)
    answer = _post(served, 0, [], bogus)
    assert answer.status_code == 422
    assert answer.headers["content-type"] != "text/x.tlog.size"
    empty = sign(Checkpoint(log.origin, 0, hashlib.sha256(b"").digest()), log.signer)
    assert _post(served, 0, [], empty).status_code == 200
    note, size = _honest(served)  # the honest log is still witnessed
    assert size > 0
    assert _post(served, 0, [], note).status_code == 200


def test_a_split_view_never_looks_like_a_stale_size(served: Served) -> None:
    log = served.world.deployment.log()
    note, size = _honest(served)
    assert _post(served, 0, [], note).status_code == 200
    fork = sign(Checkpoint(log.origin, size, hashlib.sha256(b"fork").digest()),
                log.signer)
    answer = _post(served, size, [], fork)
    assert answer.status_code == 409
    assert answer.headers["content-type"] != "text/x.tlog.size"
    assert not answer.text.strip().isdigit()


def test_a_failing_duplicate_log_signature_is_403(served: Served) -> None:
    note, _ = _honest(served)
    line = next(x for x in note.split(b"\n") if x.startswith("\u2014".encode()))
    bad = line[:-8] + (b"AAAAAAA=" if not line.endswith(b"AAAAAAA=") else b"BBBBBBB=")
    answer = _post(served, 0, [], note + bad + b"\n")
    assert answer.status_code == 403
