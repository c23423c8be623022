"""Issue 29: an officer's verdict holds against the log operator.

The attacker holds only what the log operator holds: the log's directory (its
checkpoint key and storage). It writes entries straight into storage, with keys
it made itself, publishes checkpoints with the log's real key and has the
nations witness them (they are append-only, so the witnesses cosign). Each
attack of the issue is refused, with its reason named; an insider who edits a
custodian's database is refused too.
"""

from __future__ import annotations

import base64
import json
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
from testkit import ROOT, make_world

from orchestrator.crypto import SigningKey
from orchestrator.embedded import (
    Deployment,
    publish_checkpoint,
    render_nation_report,
    submit,
    verify_custody,
    witness,
)
from orchestrator.embedded.layout import StateDir
from orchestrator.errors import IntegrityError, LedgerVerificationError, SovereignError
from orchestrator.log.operator import LogOperator, LogState
from orchestrator.officer.bundle import BundleError, prove, verify_bundle
from orchestrator.officer.trust import TrustConfig
from orchestrator.protocol.log import SignedEvent, presigned
from orchestrator.protocol.parties import enrollment, rotation
from orchestrator.tlog.events import CustodyEvent, SignedEntry

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A state after one sonar job, witnessed by AUS and GBR."""
    root = tmp_path_factory.mktemp("operator-attacks")
    world = make_world(root)
    result = submit(world.state, ROOT / "workflows" / "sonar_classification.toml",
                    "local")
    witness(world.state, "AUS")
    witness(world.state, "GBR")
    return world.state.root, result.model_ids[0]


@pytest.fixture
def state(base: tuple[Path, str], tmp_path: Path) -> StateDir:
    """A private copy of the base state (each attack damages its own)."""
    shutil.copytree(base[0], tmp_path / "state", symlinks=True)
    return StateDir(tmp_path / "state")


def _operator(state: StateDir) -> LogOperator:
    """What the log operator runs: its own directory, nothing else."""
    return LogOperator(LogState(state.log_dir))


def _forge(op: LogOperator, event: CustodyEvent, key: SigningKey) -> SignedEntry:
    """Write ``event`` signed by ``key`` straight into the log's storage."""
    return op.log.append_many([presigned(SignedEvent.create(event, key))])[0]


def _witnessed(state: StateDir, op: LogOperator) -> None:
    op.publish()
    witness(state, "AUS")
    witness(state, "GBR")


def _pinned(state: StateDir) -> dict[str, Any]:
    trust = TrustConfig.load(state.officer_dir("AUS") / "trust.json")
    return {"trusted_log_vkey": trust.log_vkey, "witness_vkeys": trust.witnesses,
            "required_cosigners": ["AUS", "GBR"]}


class _Chosen:
    """The operator's read API, serving the entries it chooses to show."""

    def __init__(self, op: LogOperator, hide: set[int]) -> None:
        self.op, self.hide = op, hide

    def find(self, kind: str | None = None, **match: str) -> list[SignedEntry]:
        return [e for e in self.op.find(kind, **match) if e.seq not in self.hide]

    def checkpoint(self) -> bytes:
        return self.op.checkpoint()

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        return self.op.inclusion_proof(index, size)


def _refused(bundle: dict[str, Any], state: StateDir, words: str) -> BundleError:
    with pytest.raises(BundleError) as info:
        verify_bundle(bundle, **_pinned(state))
    assert words in info.value.diagnostics(), info.value.diagnostics()
    return info.value


def _second_orchestrator(state: StateDir, model_id: str
                         ) -> tuple[LogOperator, SigningKey, set[int]]:
    """The operator enrolls its own "orchestrator" key and re-signs the job's
    orchestrator events with it; returns the real orchestrator's entries (what
    a forged bundle leaves out)."""
    op = _operator(state)
    real = Deployment(state).orchestrator().signer.key_id
    forged_key = SigningKey.generate()
    job_id = op.find("model.sealed", model_id=model_id)[-1].event.body[
        "lineage"]["job_id"]
    real_entries = {e.seq for e in op.find() if e.event.actor == "orchestrator"
                    and e.signer == real}
    _forge(op, enrollment("orchestrator", forged_key).event, forged_key)
    for kind in ("request.submitted", "job.completed", "model.sealed"):
        match = {"model_id": model_id} if kind == "model.sealed" else {
            "job_id": job_id}
        for entry in op.find(kind, **match):
            _forge(op, CustodyEvent.create(kind, "orchestrator",
                                           dict(entry.event.body)), forged_key)
    _witnessed(state, op)
    return op, forged_key, real_entries


def test_forged_orchestrator_key_is_refused_by_verify_bundle(
        state: StateDir, base: tuple[Path, str]) -> None:
    model_id = base[1]
    verify_bundle(prove(_operator(state), model_id), **_pinned(state))  # honest
    op, forged_key, real_entries = _second_orchestrator(state, model_id)
    # What the attack relied on: a bundle showing only the forged enrollment.
    forged = prove(_Chosen(op, real_entries), model_id)
    error = _refused(forged, state, f"orchestrator's key {forged_key.key_id} was "
                     "admitted by no pinned custodian")
    assert error.part.startswith("entry ")
    # Shown both enrollments, the second is no rotation signed by the first.
    _refused(prove(op, model_id), state, "enrolled a second key")


def test_second_enrollment_without_rotation_changes_no_key(
        state: StateDir, base: tuple[Path, str]) -> None:
    real = Deployment(state).orchestrator().signer
    _second_orchestrator(state, base[1])
    with pytest.raises(LedgerVerificationError, match="enrolled a second key"):
        verify_custody(state, officer="AUS")
    service = _operator(state)  # a fresh log service over the edited storage
    assert service.actor_key("orchestrator") == real.public_bytes()
    entry = service.append(CustodyEvent.create("task.retried", "orchestrator", {
        "job_id": "job-after-the-forgery"}), real)  # the real writer still writes
    assert entry.signer == real.key_id
    with pytest.raises(SovereignError, match="another key"):  # the service refuses
        service.enroll(enrollment("orchestrator", SigningKey.generate()))


def test_signed_rotation_is_accepted(state: StateDir) -> None:
    op = _operator(state)
    real = Deployment(state).orchestrator().signer
    new = SigningKey.generate()
    with pytest.raises(SovereignError, match="rotation signed by its key"):
        op.enroll(rotation("orchestrator", SigningKey.generate(), new))
    op.enroll(rotation("orchestrator", real, new))
    assert op.actor_key("orchestrator") == new.public_bytes()
    with pytest.raises(SovereignError, match="signed by another key"):
        op.append(CustodyEvent.create("task.retried", "orchestrator",
                                      {"job_id": "j"}), real)  # retired
    op.append(CustodyEvent.create("task.retried", "orchestrator", {"job_id": "j"}),
              new)
    publish_checkpoint(state)
    verify_custody(state, officer="AUS")  # admitted key anchors its rotation


def test_decision_by_an_unpinned_custodian_is_refused(
        state: StateDir, base: tuple[Path, str]) -> None:
    op = _operator(state)
    model_id = base[1]
    job_id = op.find("model.sealed", model_id=model_id)[-1].event.body[
        "lineage"]["job_id"]
    decided = op.find("policy.decided", job_id=job_id)[0]
    rogue = SigningKey.generate()
    _forge(op, enrollment("custodian:ZZZ", rogue).event, rogue)
    _forge(op, CustodyEvent.create("policy.decided", "custodian:ZZZ",
                                   dict(decided.event.body)), rogue)
    _witnessed(state, op)
    _refused(prove(op, model_id), state, "custodian:ZZZ's key is not pinned")
    result = verify_custody(state, officer="AUS")  # named, and refused if asked
    assert list(result.unanchored) == ["custodian:ZZZ"]
    with pytest.raises(LedgerVerificationError, match="custodian:ZZZ's key is not "
                       "pinned"):
        verify_custody(state, officer="GBR", require_anchored=True)


def _lineage_refused(bundle: dict[str, Any], state: StateDir, model_id: str,
                     edit: Any, words: str) -> None:
    """Run the lineage checks on the bundle's entries after ``edit`` (what a
    log with other content would show; signatures and proofs are checked
    before, by the tests above)."""
    from orchestrator.officer.bundle_checks import check_lineage

    entries = {item["index"]: SignedEntry.from_leaf(base64.b64decode(item["leaf"]))
               for item in bundle["entries"]}
    edit(entries)
    with pytest.raises(BundleError) as info:
        check_lineage(model_id, entries, {})
    assert words in info.value.diagnostics(), info.value.diagnostics()


def _with_body(entry: SignedEntry, body: dict[str, Any]) -> SignedEntry:
    event = entry.event
    return SignedEntry(seq=entry.seq, prev_hash=entry.prev_hash, signer=entry.signer,
                       signature=entry.signature, event=type(event)(
                           event_id=event.event_id, kind=event.kind,
                           actor=event.actor, time=event.time, body=body))


def test_release_needs_a_permit_and_a_model_needs_a_release(
        state: StateDir, base: tuple[Path, str]) -> None:
    model_id = base[1]
    bundle = prove(_operator(state), model_id)

    def deny(entries: dict[int, SignedEntry]) -> None:
        for seq, e in list(entries.items()):
            if e.event.kind == "policy.decided":
                decision = {**e.event.body["decision"], "outcome": "deny"}
                entries[seq] = _with_body(e, {**e.event.body, "decision": decision})

    def no_release(entries: dict[int, SignedEntry]) -> None:
        for seq, e in list(entries.items()):
            if e.event.kind == "key.released":
                del entries[seq]
            elif e.event.kind == "task.completed":
                entries[seq] = _with_body(e, {**e.event.body, "grants": []})

    _lineage_refused(bundle, state, model_id, deny, "follows no permit of "
                     "custodian:AUS")
    _lineage_refused(bundle, state, model_id, no_release,
                     "custodian:AUS released no key of dataset")


def test_report_after_a_rollback_is_not_verified(
        state: StateDir, base: tuple[Path, str]) -> None:
    verify_custody(state, officer="AUS")  # the officer keeps a trusted checkpoint
    size = _operator(state).size()
    db = sqlite3.connect(state.log_dir / "custody.db")
    with db:
        db.execute("DELETE FROM entries WHERE seq >= ?", (size - 5,))
        db.execute("DELETE FROM checkpoints")
    db.close()
    _operator(state).publish()  # a smaller, log-signed checkpoint
    report = render_nation_report(state, "AUS")
    assert "VERIFICATION FAILED" in report and "smaller than" in report, report
    with pytest.raises(SovereignError, match="smaller than"):
        verify_custody(state, officer="AUS")


def test_replaced_log_key_is_an_error_not_a_new_log(state: StateDir) -> None:
    from orchestrator.embedded import init_nation

    trust_before = (state.officer_dir("AUS") / "trust.json").read_bytes()
    (state.log_dir / "log.key").unlink()
    with pytest.raises(IntegrityError) as info:
        _operator(state)
    assert info.value.source == str(state.log_dir / "log.key")
    assert "restore log.key" in info.value.diagnostics()
    with pytest.raises(IntegrityError, match=r"log\.key"):
        init_nation(state, "NZL")
    assert (state.officer_dir("AUS") / "trust.json").read_bytes() == trust_before
    from orchestrator.crypto import save_private_key

    save_private_key(state.log_dir / "log.key", SigningKey.generate())
    with pytest.raises(IntegrityError, match="not the key of this log"):
        _operator(state)


def test_officer_repins_a_new_log_only_by_hand(state: StateDir, tmp_path: Path
                                               ) -> None:
    from orchestrator.embedded.officer_handover import officer_trust
    from orchestrator.embedded.standalone import init_log_alone

    verify_custody(state, officer="AUS")
    other = StateDir(tmp_path / "other-log")
    card = init_log_alone(other, tmp_path / "other-log.card.json")
    officer = state.officer_dir("AUS")
    with pytest.raises(IntegrityError, match="--replace-log-key"):
        officer_trust(state, "AUS", tmp_path / "other-log.card.json", [])
    # Edited by hand, the pinned key no longer matches the trusted checkpoint.
    trust = TrustConfig.load(officer / "trust.json")
    old = trust.log_vkey
    trust.log_vkey = str(card.extra["vkey"])
    trust.save(officer / "trust.json")
    with pytest.raises(SovereignError, match="--replace-log-key"):
        verify_custody(state, officer="AUS")
    trust.log_vkey = old
    trust.save(officer / "trust.json")
    officer_trust(state, "AUS", tmp_path / "other-log.card.json", [],
                  replace_log_key=True)
    changes = [json.loads(line) for line in
               (officer / "trust-changes.jsonl").read_text().splitlines()]
    assert changes[-1]["old"] == old and changes[-1]["new"] == card.extra["vkey"]
    assert not (officer / "checkpoint.json").exists()  # the old log's, kept aside
    assert (officer / changes[-1]["old_checkpoint"]).exists()


def test_edited_revocation_stops_releases(state: StateDir) -> None:
    from orchestrator.embedded import revoke_accreditation
    from orchestrator.errors import PolicyDenied

    deployment = Deployment(state)
    revoke_accreditation(state, "local", "USA", reason="site compromised")
    with pytest.raises(PolicyDenied):
        deployment.custodian("USA").ctx.accreditation("local")
    db = sqlite3.connect(state.nation_dir("USA") / "store.db")
    with db:  # the insider turns deny back into permit
        db.execute("UPDATE accreditations SET revoked = NULL, reason = NULL")
    db.close()
    with pytest.raises(IntegrityError) as info:
        deployment.custodian("USA").ctx.accreditation("local")
    assert (info.value.field or "").startswith("accreditations.")
    assert "not as the custodian signed it" in info.value.diagnostics()
    with pytest.raises(IntegrityError):  # every release stops, not only this site
        deployment.custodian("USA").ctx.accreditation("elsewhere")
    # Putting back the row as signed before the revocation (Ed25519 is
    # deterministic: these are the bytes the insider kept) is caught too.
    ctx = deployment.custodian("USA").ctx
    rows = ctx.store.accreditation_rows()
    from orchestrator.nation.accreditation_state import signed_row
    from orchestrator.nation.store import AccreditationRow

    ctx.store.put_accreditation_state([signed_row(AccreditationRow(
        r.id, r.site, r.document, r.issued), ctx.signer.sign) for r in rows])
    with pytest.raises(IntegrityError, match="custodian revoked it"):
        ctx.accreditation("local")
    assert ctx.reconcile_accreditations() == [r.id for r in rows]
    with pytest.raises(PolicyDenied):  # revoked again, from the journal
        ctx.accreditation("local")
    assert ctx.journal.find("site.accreditation.reconciled")


def test_first_use_is_said_and_witnesses_with_history_can_be_required(
        state: StateDir, caplog: pytest.LogCaptureFixture) -> None:
    from orchestrator.errors import ConfigError

    # the base checkpoint is the first each witness cosigned: no history yet
    with pytest.raises(ConfigError, match="0 witness\\(es\\) with history, 2 "
                       "required") as info:
        verify_custody(state, officer="AUS", witness_history=2)
    assert "AUS first cosigned it at size" in info.value.diagnostics()
    assert "USA has never cosigned this log" in info.value.diagnostics()
    Deployment(state).orchestrator().record("task.retried", {"job_id": "later"})
    op = _operator(state)
    op.publish()
    witness(state, "AUS")
    witness(state, "GBR")
    with caplog.at_level("WARNING", logger="orchestrator.nation.witness"):
        witness(state, "USA")  # its first checkpoint of this log
    assert "FIRST USE" in caplog.text and "witness-USA" in caplog.text
    result = verify_custody(state, officer="AUS", witness_history=2)
    assert result.previous_size is None  # the officer's own first use, said
    assert {h.nation: h.has_history for h in result.witnesses} == {
        "AUS": True, "GBR": True, "USA": False}
    with pytest.raises(ConfigError, match="after --witness-since 3"):
        verify_custody(state, officer="GBR", witness_history=1, witness_since=3)


def test_a_witness_history_from_before_a_rewrite_is_proof_of_it(
        state: StateDir) -> None:
    from orchestrator.crypto import load_private_key
    from orchestrator.officer.verify import verify_custody as officer_verify
    from orchestrator.tlog.checkpoint import Checkpoint, cosign, sign
    from orchestrator.tlog.names import witness_key_name
    from orchestrator.tlog.note import ALG_COSIGNATURE_V1, NoteSigner

    op = _operator(state)
    # what AUS's witness cosigned before the log was rewritten: size 3, another root
    old = Checkpoint(op.origin, 3, bytes(32))
    aus = NoteSigner(witness_key_name("AUS"), load_private_key(
        state.nation_dir("AUS") / "custodian.key"), ALG_COSIGNATURE_V1)
    note = sign(old, op.signer)
    first = note + cosign(old, aus, 1_700_000_000)
    deployment = Deployment(state)
    with pytest.raises(IntegrityError, match="the log was rewritten after that "
                       "witness began following it"):
        officer_verify(deployment.officer("AUS"), op, witness_history=1,
                       histories=lambda n: first if n == "AUS" else b"")


def test_verify_bundle_starts_from_the_officers_trusted_checkpoint(
        state: StateDir, base: tuple[Path, str]) -> None:
    from orchestrator.officer.verify import load_checkpoint

    model_id = base[1]
    op = _operator(state)
    old_bundle = prove(op, model_id)
    Deployment(state).orchestrator().record("task.retried", {"job_id": "later"})
    _witnessed(state, op)
    verify_custody(state, officer="AUS")
    trusted = load_checkpoint(state.officer_dir("AUS") / "checkpoint.json")
    assert trusted is not None
    pinned = _pinned(state)
    with pytest.raises(BundleError, match="smaller than the cosigned size"):
        verify_bundle(old_bundle, **pinned, trusted_checkpoint=trusted)
    Deployment(state).orchestrator().record("task.retried", {"job_id": "later-2"})
    _witnessed(state, op)
    newer = prove(op, model_id)
    with pytest.raises(BundleError, match="--from-size"):
        verify_bundle(newer, **pinned, trusted_checkpoint=trusted)
    extended = prove(op, model_id, from_size=trusted.size)
    report = verify_bundle(extended, **pinned, trusted_checkpoint=trusted)
    assert report.checkpoint_size > trusted.size
    extended["consistency"]["proof"] = extended["consistency"]["proof"][::-1]
    with pytest.raises(BundleError) as info:
        verify_bundle(extended, **pinned, trusted_checkpoint=trusted)
    assert info.value.part == "consistency"
