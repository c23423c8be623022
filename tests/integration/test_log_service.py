"""The custody log as a service: signed writes only by enrolled actors in their own
name, C2SP tlog-tiles reads, proofs, bad input, and a SIGKILL mid-append."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from orchestrator.canonical import b64e
from orchestrator.crypto import SigningKey
from orchestrator.errors import ConfigError, LedgerError, PolicyDenied
from orchestrator.log.operator import LogOperator, LogState
from orchestrator.log.service import create_app
from orchestrator.net.log_client import HttpLog
from orchestrator.net.service import ServiceThread, free_port
from orchestrator.net.tls import client_context, server_context
from orchestrator.protocol.log import SignedEvent
from orchestrator.tlog.checkpoint import parse_note, verify_note
from orchestrator.tlog.events import CustodyEvent, SignedEntry, leaf_hash
from orchestrator.tlog.merkle import (
    MerkleTree,
    verify_consistency,
    verify_inclusion,
)
from orchestrator.tlog.tiles import TilePath, split_hashes

ROOT = Path(__file__).resolve().parents[2]


def enrollment(actor: str, key: SigningKey) -> SignedEvent:
    body = {"actor": actor, "key_id": key.key_id,
            "public_key": b64e(key.public_bytes())}
    return SignedEvent.create(CustodyEvent.create("actor.enrolled", actor, body), key)


class Served:
    def __init__(self, root: Path) -> None:
        self.state = LogState(root / "log")
        self.operator = LogOperator(self.state)
        self.state.tls.init()
        self.site = SigningKey.generate()
        self.custodian = SigningKey.generate()
        self.operator.enroll(enrollment("site:local", self.site))
        self.operator.enroll(enrollment("custodian:AUS", self.custodian))
        self.thread = ServiceThread(create_app(self.operator), server_context(
            self.state.tls.server_cert, self.state.tls.server_key, None)).start()
        self.client = HttpLog(self.thread.url, ca=self.state.tls.ca_cert)
        self.raw = httpx.Client(base_url=self.thread.url, trust_env=False,
                                verify=client_context(self.state.tls.ca_cert, None,
                                                      None))


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    s = Served(tmp_path)
    try:
        yield s
    finally:
        s.thread.stop()


def test_enrolled_actors_append_in_their_own_name(served: Served) -> None:
    entry = served.client.append(
        CustodyEvent.create("task.started", "site:local", {"job_id": "j1"}),
        served.site)
    assert entry.seq == 2 and served.client.get(2) == entry
    assert served.client.find("task.started", job_id="j1") == [entry]
    assert served.client.health()["size"] == 3


@pytest.mark.parametrize("case", ["unknown-actor", "other-key", "bad-signature",
                                  "foreign-name", "wrong-role", "enroll"])
def test_refused_writes_change_nothing(served: Served, case: str) -> None:
    before = served.operator.size()
    event = CustodyEvent.create("task.started", "site:local", {"job_id": "j"})
    signed = SignedEvent.create(event, served.site)
    if case == "unknown-actor":
        signed = SignedEvent.create(CustodyEvent.create(
            "task.started", "site:rogue", {}), SigningKey.generate())
    elif case == "other-key":
        signed = SignedEvent.create(event, SigningKey.generate())
    elif case == "bad-signature":
        signed = SignedEvent(event, signed.signer, bytes(64))
    elif case == "foreign-name":  # the custodian's key writing as the site
        signed = SignedEvent.create(event, served.custodian)
    elif case == "wrong-role":  # a site cannot record a key release
        signed = SignedEvent.create(CustodyEvent.create(
            "key.released", "site:local", {}), served.site)
    else:  # enrollment over HTTP is not accepted
        signed = enrollment("site:other", SigningKey.generate())
    with pytest.raises(PolicyDenied):
        served.client.submit(signed)
    assert served.operator.size() == before


@pytest.mark.parametrize(("time", "fragment"), [
    ("2001-01-01T00:00:00.000000Z", "behind the log's clock"),
    ("2999-01-01T00:00:00.000000Z", "ahead of the log's clock"),
])
def test_an_event_out_of_the_stated_skew_is_refused(served: Served, time: str,
                                                   fragment: str) -> None:
    before = served.operator.size()
    signed = SignedEvent.create(CustodyEvent.create(
        "task.started", "site:local", {"job_id": "old"}, time=time), served.site)
    answer = served.raw.post("/v1/entries", json=signed.to_json())
    assert answer.status_code == 400
    assert answer.json()["field"] == "event.time" and fragment in answer.json()[
        "message"]
    assert served.operator.size() == before
    # within the skew (here four minutes behind) it is taken
    from datetime import timedelta

    from orchestrator.timeutil import system_clock

    recent = (system_clock() - timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    served.client.submit(SignedEvent.create(CustodyEvent.create(
        "task.started", "site:local", {"job_id": "recent"}, time=recent), served.site))
    assert served.operator.size() == before + 1


def test_a_replay_is_409_and_changes_nothing(served: Served) -> None:
    signed = SignedEvent.create(CustodyEvent.create(
        "task.started", "site:local", {"n": 1}), served.site)
    first = served.client.submit(signed)
    answer = served.raw.post("/v1/entries", json=signed.to_json())
    assert answer.status_code == 409 and answer.json()["seq"] == first.seq
    assert served.client.submit(signed) == first  # a client retry: the same entry
    assert served.operator.size() == first.seq + 1


@pytest.mark.parametrize("body", [
    b"not json", b"[]", b'{"event": {}, "signer": "k", "sig": "AA=="}',
    b'{"event": 1}', b'{"event": {}, "signer": "k", "sig": "AA==", "x": 1}',
])
def test_malformed_bodies_are_400(served: Served, body: bytes) -> None:
    before = served.operator.size()
    answer = served.raw.post("/v1/entries", content=body,
                             headers={"content-type": "application/json"})
    assert answer.status_code == 400, answer.text
    assert served.operator.size() == before


def test_oversized_bodies_are_413(served: Served) -> None:
    answer = served.raw.post("/v1/entries", content=b"{" + b" " * (2 << 20) + b"}",
                             headers={"content-type": "application/json"})
    assert answer.status_code == 413
    event = CustodyEvent.create("task.started", "site:local", {"x": "y" * 70_000})
    with pytest.raises(LedgerError, match="entry bundle"):
        served.client.append(event, served.site)


def test_only_the_operator_publishes_checkpoints_on_its_schedule(
        served: Served) -> None:
    first = parse_note(served.client.publish()).checkpoint.size
    assert served.raw.post("/v1/checkpoint").status_code in (404, 405)
    assert parse_note(served.raw.get("/checkpoint").content).checkpoint.size == first
    served.client.append(CustodyEvent.create("task.started", "site:local", {}),
                         served.site)
    started = time.monotonic()
    later = served.client.publish()  # waits for the operator's next round
    assert parse_note(later).checkpoint.size == first + 1
    assert time.monotonic() - started < 10


def test_tiles_entries_and_proofs_rebuild_the_checkpointed_tree(
        served: Served) -> None:
    for i in range(600):
        served.client.append(CustodyEvent.create(
            "task.started", "site:local", {"i": i}), served.site)
    note = served.client.publish()
    cp = verify_note(note, [served.operator.verifier()],
                     required=[served.operator.origin])
    assert cp.origin == served.operator.origin == served.operator.verifier().name
    leaves = list(served.client.leaves(0, cp.size))
    tree = MerkleTree([bytes.fromhex(leaf_hash(leaf)) for leaf in leaves])
    assert tree.root() == cp.root and tree.size == 602
    assert [SignedEntry.from_leaf(x).seq for x in leaves] == list(range(602))
    tile = served.client.tile(TilePath(0, 1, 256))
    assert split_hashes(tile, 256) == [tree.leaf(i) for i in range(256, 512)]
    level1 = split_hashes(served.client.tile(TilePath(1, 0, 2)), 2)
    assert level1 == [tree.subtree_root(8, 0), tree.subtree_root(8, 1)]
    verify_consistency(100, 602, served.client.consistency_proof(100, 602),
                       tree.root(100), cp.root)
    verify_inclusion(tree.leaf(555), 555, 602, served.client.inclusion_proof(555, 602),
                     cp.root)
    assert served.raw.get("/tile/0/003").status_code == 404  # beyond the tree
    assert served.raw.get("/tile/0/0003").status_code == 404  # not canonical
    assert parse_note(served.raw.get("/checkpoint").content).checkpoint.size == 602


def test_unavailable_log_fails_closed(tmp_path: Path) -> None:
    state = LogState(tmp_path / "log")
    state.ensure()
    state.tls.init()
    client = HttpLog(f"https://127.0.0.1:{free_port()}", ca=state.tls.ca_cert,
                     retry_s=1.0)
    started = time.monotonic()
    with pytest.raises(LedgerError, match="unreachable"):
        client.append(CustodyEvent.create("task.started", "site:x", {}),
                      SigningKey.generate())
    assert 0.5 < time.monotonic() - started < 5  # retried for retry_s, then refused


def test_a_request_bridges_a_log_restart(tmp_path: Path) -> None:
    """A log service that comes up while a party is retrying answers it."""
    state_dir = tmp_path / "state"
    env = {**os.environ, "SOVEREIGN_STATE_DIR": str(state_dir)}
    run = [sys.executable, "-m", "orchestrator", "log"]
    subprocess.run([*run, "init"], env=env, check=True, capture_output=True)
    state = LogState(state_dir / "log")
    port = free_port()
    client = HttpLog(f"https://127.0.0.1:{port}", ca=state.tls.ca_cert, retry_s=30)
    proc = subprocess.Popen([*run, "serve", "--port", str(port)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert client.health()["status"] == "ok"  # waited for it, within retry_s
    finally:
        proc.terminate()
        proc.wait(10)


def test_signed_event_parsing_names_the_field() -> None:
    with pytest.raises(ConfigError) as caught:
        SignedEvent.from_json({"event": {}, "signer": "k", "sig": "AA=="})
    assert caught.value.field == "event"


@pytest.mark.slow
def test_sigkill_mid_append_loses_no_acknowledged_entry(tmp_path: Path) -> None:
    """Appenders hammer a log service in a child process; it is SIGKILLed
    mid-stream, restarted, and every acknowledged entry is there, once."""
    state_dir = tmp_path / "state"
    env = {**os.environ, "SOVEREIGN_STATE_DIR": str(state_dir)}
    run = [sys.executable, "-m", "orchestrator", "log"]
    subprocess.run([*run, "init"], env=env, check=True, capture_output=True)
    state = LogState(state_dir / "log")
    site = SigningKey.generate()
    LogOperator(state).enroll(enrollment("site:local", site))
    acknowledged: dict[str, int] = {}
    for round_ in range(3):
        port = free_port()
        proc = subprocess.Popen([*run, "serve", "--port", str(port)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = HttpLog(f"https://127.0.0.1:{port}", ca=state.tls.ca_cert,
                         retry_s=0)  # an append after the kill fails at once
        deadline = time.monotonic() + 30
        while True:
            try:
                client.health()
                break
            except LedgerError:
                assert time.monotonic() < deadline and proc.poll() is None
                time.sleep(0.1)
        stop = threading.Event()

        def append(worker: int, client: HttpLog = client,
                   stop: threading.Event = stop, round_: int = round_) -> None:
            n = 0
            while not stop.is_set():
                event = CustodyEvent.create("task.started", "site:local",
                                            {"w": worker, "n": n, "r": round_})
                try:
                    acknowledged[event.event_id] = client.append(event, site).seq
                except LedgerError:
                    return
                n += 1

        threads = [threading.Thread(target=append, args=(w,)) for w in range(4)]
        for thread in threads:
            thread.start()
        time.sleep(1.0)
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        stop.set()
        for thread in threads:
            thread.join()
        client.close()
    assert len(acknowledged) > 50
    operator = LogOperator(state)
    stored = {e.event.event_id: e.seq for e in operator.entries()}
    for event_id, seq in acknowledged.items():
        assert stored.get(event_id) == seq
    assert len(stored) == operator.size()  # no duplicates
