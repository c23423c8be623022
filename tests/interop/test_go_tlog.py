"""Interop: Go's reference packages (golang.org/x/mod/sumdb/note and
.../sumdb/tlog, Debian golang-golang-x-mod-dev) audit our custody log.

The Go program (``tlogcheck/main.go``) shares no code with ours: it reads the log
service over HTTPS through the C2SP tlog-tiles API and verifies the checkpoint
(``note.Open``, origin = key name, one-byte changes refused), a witness's
cosignature/v1 line, every hash tile and entry bundle against the root
(``tlog.TileHashReader``, ``tlog.CheckRecord``), the service's inclusion and
consistency proofs (``tlog.CheckTree``) and a C2SP tlog-proof file.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from orchestrator.canonical import b64e
from orchestrator.crypto import SigningKey
from orchestrator.log.operator import LogOperator, LogState
from orchestrator.log.service import create_app
from orchestrator.net.service import ServiceThread
from orchestrator.net.tls import server_context
from orchestrator.protocol.log import SignedEvent
from orchestrator.tlog.checkpoint import parse_note
from orchestrator.tlog.events import CustodyEvent
from orchestrator.tlog.names import witness_key_name
from orchestrator.tlog.note import ALG_COSIGNATURE_V1, NoteSigner
from orchestrator.tlog.proof import format_proof
from orchestrator.tlog.witness import Witness

pytestmark = [pytest.mark.slow, pytest.mark.interop]

ROOT = Path(__file__).resolve().parents[2]
PROGRAM = Path(__file__).resolve().parent / "tlogcheck"
#: Enough entries for a full level-0 tile (256), a partial one and a partial
#: level-1 tile, so every tile path form is read.
ENTRIES = 300


@pytest.fixture(scope="module")
def tlogcheck(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go program, built in GOPATH mode against Debian's x/mod."""
    out = subprocess.run(["bash", str(ROOT / "scripts/go-tlog-setup.sh")],
                         capture_output=True, text=True, check=True)
    go, gopath = out.stdout.split()
    binary = tmp_path_factory.mktemp("go") / "tlogcheck"
    env = {**os.environ, "GO111MODULE": "off", "GOPATH": gopath, "GOFLAGS": "",
           "GOCACHE": str(binary.parent / "cache"), "GOTOOLCHAIN": "local"}
    if "GOROOT" not in os.environ:
        env.pop("GOROOT", None)
    subprocess.run([go, "vet", "."], cwd=PROGRAM, env=env, check=True)
    subprocess.run([go, "build", "-o", str(binary), "."], cwd=PROGRAM, env=env,
                   check=True)
    return binary


class CosignedLog:
    """A log service with ``ENTRIES`` signed entries and one witness
    cosignature on its latest checkpoint."""

    def __init__(self, root: Path) -> None:
        self.state = LogState(root / "log")
        self.operator = LogOperator(self.state)
        self.state.tls.init()
        site = SigningKey.generate()
        body = {"actor": "site:local", "key_id": site.key_id,
                "public_key": b64e(site.public_bytes())}
        self.operator.enroll(SignedEvent.create(
            CustodyEvent.create("actor.enrolled", "site:local", body), site))
        for i in range(ENTRIES - 1):
            self.operator.append(CustodyEvent.create(
                "task.started", "site:local", {"job_id": f"job-{i:04d}"}), site)
        note = self.operator.publish()
        self.size = parse_note(note).checkpoint.size
        self.witness_key = SigningKey.generate()
        self.witness = NoteSigner(witness_key_name("AUS"), self.witness_key,
                                  ALG_COSIGNATURE_V1)
        _, line = Witness.check_and_cosign(None, note, [], self.operator.verifier(),
                                           self.witness, now=1_796_000_000)
        self.note = self.operator.add_cosignature(self.size, self.witness.name, line)
        self.thread = ServiceThread(create_app(self.operator), server_context(
            self.state.tls.server_cert, self.state.tls.server_key, None)).start()

    def args(self, tmp: Path, index: int) -> list[str]:
        """tlogcheck's arguments, with a tlog-proof for entry ``index``."""
        proof = tmp / "entry.tlog-proof"
        proof.write_bytes(format_proof(
            index, self.operator.inclusion_proof(index, self.size), self.note))
        leaf = tmp / "entry.leaf"
        leaf.write_bytes(self.operator.get(index).leaf_bytes())
        witness = f"{self.witness.name}+{self.witness_key.public_bytes().hex()}"
        return ["-url", self.thread.url, "-ca", str(self.state.tls.ca_cert),
                "-vkey", self.operator.vkey, "-witness", witness,
                "-proof", str(proof), "-leaf", str(leaf)]


@pytest.fixture
def cosigned(tmp_path: Path) -> Iterator[CosignedLog]:
    log = CosignedLog(tmp_path)
    try:
        yield log
    finally:
        log.thread.stop()


def test_go_reference_packages_verify_our_log(tlogcheck: Path, cosigned: CosignedLog,
                                              tmp_path: Path) -> None:
    run = subprocess.run([str(tlogcheck), *cosigned.args(tmp_path, 257)],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    assert ("ok note.Open: log signature and witness-AUS cosignature verify"
            in run.stdout)
    assert f"ok {ENTRIES} entries from the entry bundles are included" in run.stdout
    assert "ok tlog-proof for entry 257 verifies" in run.stdout
    assert "ok changed checkpoints are refused" in run.stdout


def test_go_refuses_a_proof_for_another_leaf(tlogcheck: Path, cosigned: CosignedLog,
                                             tmp_path: Path) -> None:
    args = cosigned.args(tmp_path, 10)
    (tmp_path / "entry.leaf").write_bytes(cosigned.operator.get(11).leaf_bytes())
    run = subprocess.run([str(tlogcheck), *args], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 1
    assert "tlog-proof CheckRecord(10)" in run.stderr


def test_go_refuses_a_witness_key_that_did_not_cosign(tlogcheck: Path,
                                                     cosigned: CosignedLog,
                                                     tmp_path: Path) -> None:
    args = cosigned.args(tmp_path, 0)
    other = SigningKey.generate().public_bytes().hex()
    args[args.index("-witness") + 1] = f"{cosigned.witness.name}+{other}"
    run = subprocess.run([str(tlogcheck), *args], capture_output=True, text=True,
                         timeout=300)
    assert run.returncode == 1
    assert "want the log and the witness" in run.stderr
