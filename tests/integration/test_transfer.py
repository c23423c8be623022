"""Model transfer end to end (``sovereign model consent|transfer|transfers|receive``).

One real training job (a 2-fold sonar run on the ``local`` Parsl site, AUS data
under the signed AUS-USA agreement) gives a real sealed model; every test works
on its own copy of that state directory. Covered: a consented transfer through
the CLI to a nation initialised afterwards (CAN), whose officer then opens the
same plaintext bytes as the owner while every other nation still cannot; the
refusals (no consent, one owner missing, expired, altered, foreign officer,
prohibited end use, ITAR not releasable, third party under a prohibiting
agreement, re-transfer, terminated agreement, forged key hand-over); and a scan
showing the raw DEK appears in no custody-log entry, registry row or CLI output.
"""

from __future__ import annotations

import base64
import copy
import hashlib
import json
import shutil
import uuid
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from testkit import ROOT, SONAR, CliResult, Sovereign, ctx_of, custodian_of

from orchestrator.canonical import b64d, b64e, digest_of
from orchestrator.crypto import load_private_key, new_dek, seal_bytes
from orchestrator.embedded import (
    Deployment,
    accredit_site,
    add_agreement,
    consent_to_transfer,
    init_nation,
    publish_checkpoint,
    receive_model,
    transfer_history,
    transfer_model,
    verify_custody,
)
from orchestrator.embedded.layout import StateDir
from orchestrator.errors import AlreadyExists, NotFound, PolicyDenied
from orchestrator.labels import Label
from orchestrator.log.store import CustodyLog
from orchestrator.nation.store import OwnedObject
from orchestrator.policy.transfer import TransferDecision, TransferDenied
from orchestrator.protocol.statements import SignedStatement, sign_statement
from orchestrator.protocol.transfer import TransferRequest
from orchestrator.submit.registry import Registry, SealedObjectRecord
from orchestrator.submit.transfer import collect_consents
from orchestrator.timeutil import rfc3339, system_clock

pytestmark = pytest.mark.slow

World = tuple[StateDir, str]


def _agreement_file(root: Path, aid: str, a: str, b: str, extra: str = "",
                    version: int = 1) -> Path:
    path = root / f"{aid.lower()}-v{version}.toml"
    path.write_text(f"""
[agreement]
id = "{aid}"
title = "{aid}"
parties = ["{a}", "{b}"]
valid_from = 2026-01-01
valid_until = 2028-12-31
notification_threshold_gpu_hours = 500.0
oversight_body = "Joint board"
version = {version}
{extra}

[[agreement.priority_area]]
name = "undersea-autonomy"
tier = "pre-approved"
""")
    return path


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A trained world: AUS, GBR, USA, NZL; AUS data (REL TO AUS, CAN, GBR, NZL,
    USA) trained at the USA-operated site under AUS-USA; AUS-NZL signed too."""
    from testkit import register_accredited_site as register_site

    from orchestrator.embedded import seal_dataset, submit

    root = tmp_path_factory.mktemp("transfer-world")
    state = StateDir(root / "state").ensure()
    for code in ("AUS", "GBR", "USA", "NZL"):
        init_nation(state, code)
    register_site(state, ROOT / "site_configs" / "local.toml",
                  by=("AUS", "GBR", "USA", "NZL"))
    seal_dataset(state, SONAR, name="uci-sonar", owners=["AUS"],
                 classification="SECRET",
                 releasable_to=["AUS", "CAN", "GBR", "NZL", "USA"])
    add_agreement(state, ROOT / "agreements" / "aus-usa.toml", sign_as=["AUS", "USA"])
    add_agreement(state, _agreement_file(root, "AUS-NZL-2026", "AUS", "NZL"),
                  sign_as=["AUS", "NZL"])
    text = (ROOT / "workflows" / "sonar_classification.toml").read_text()
    text = (text.replace('code = "sonar_classification.py"',
                         f'code = "{ROOT / "workflows" / "sonar_classification.py"}"')
            .replace("folds = 13", "folds = 2").replace("epochs = 300", "epochs = 20")
            .replace("checkpoint_every = 100", "checkpoint_every = 0"))
    workflow = root / "sonar-small.toml"
    workflow.write_text(text)
    (model_id,) = submit(state, workflow, "local").model_ids
    return state.root, model_id


@pytest.fixture
def world(trained: tuple[Path, str], tmp_path: Path) -> World:
    """A private copy of the trained state directory and the model id."""
    source, model_id = trained
    target = tmp_path / "state"
    shutil.copytree(source, target, ignore=shutil.ignore_patterns("runinfo"))
    return StateDir(target), model_id


def _join_can(state: StateDir, extra: str = 'prohibited_end_uses = '
              '["weapons-targeting"]') -> None:
    """Initialise CAN and sign an AUS-CAN agreement (weapons-targeting prohibited)."""
    init_nation(state, "CAN")
    accredit_site(state, "local", "CAN")
    add_agreement(state, _agreement_file(state.root, "AUS-CAN-2026", "AUS", "CAN",
                                         extra), sign_as=["AUS", "CAN"])


def _refused(state: StateDir, model_id: str, recipient: str, end_use: str, *,
             sender: str | None = None, consents: Sequence[SignedStatement] = ()
             ) -> TransferDecision:
    """Assert the transfer is refused and logged; return the decision."""
    with pytest.raises(TransferDenied) as info:
        transfer_model(state, model_id, recipient, end_use, sender=sender,
                       consents=consents)
    exc = info.value
    assert exc.exit_code == 4 and exc.decision is not None and not exc.decision.permit
    log = CustodyLog(state.custody_db)
    (denied,) = log.find("transfer.denied", transfer_id=exc.transfer_id)
    assert denied.event.actor == "custodian:AUS"
    assert denied.event.body["reasons"] == exc.reasons == \
        exc.decision.denial_reasons()
    assert not log.find("transfer.completed", transfer_id=exc.transfer_id)
    assert all(t.id != exc.transfer_id for t in Registry(state.registry_db).transfers())
    return exc.decision


def _failed(decision: TransferDecision) -> dict[str, str]:
    return {r.rule: r.detail for r in decision.reasons if not r.passed}


def _synth_model(state: StateDir, like: str, *, owners: list[str],
                 releasable: list[str], export_controls: tuple[str, ...] = ()
                 ) -> str:
    """Register a sealed model (random weights, fresh DEK wrapped for each owner)
    from the same job as ``like``: for labels the training run does not make."""
    registry = Registry(state.registry_db)
    job_id = registry.model(like).job_id
    label = Label.create(owners=owners, classification="SECRET",
                         releasable_to=releasable, export_controls=export_controls)
    object_id = "model-" + uuid.uuid4().hex[:16]
    manifest = {"object_id": object_id, "kind": "model", "job_id": job_id}
    dek = new_dek()
    blob = seal_bytes(b"weights " * 512, dek, object_id=object_id,
                      label=label.to_json(), manifest_digest=digest_of(manifest))
    path = state.models_dir / f"{object_id}.sealed"
    path.write_bytes(blob)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    for owner in sorted(owners):  # each owner's custodian keeps its own record
        ctx = ctx_of(state, owner)
        keystore = ctx.keys.keystore()
        version, key = keystore.wrap(dek)
        ctx.store.add_object(OwnedObject(
            id=object_id, kind="model", label=label.to_json(), job_id=job_id,
            attempt_id="attempt-synth", site="local", inputs=[],
            wrapped={"owner": owner, "kek_id": keystore.kek_id,
                     "kek_version": version, "wrapped_dek": b64e(key)},
            sealed_digest=digest, created=rfc3339(system_clock())))
    registry.add_model(SealedObjectRecord(
        id=object_id, name=object_id, label=label.to_json(), manifest=manifest,
        object_path=str(path), sealed_digest=digest, wrapped_keys={},
        created=rfc3339(system_clock()), job_id=job_id, metrics={},
        lineage={"job_id": job_id}))
    return object_id


def _model_dek(state: StateDir, model_id: str) -> bytes:
    """The model's raw DEK, unwrapped with AUS's keystore (test-side only)."""
    ctx = ctx_of(state, "AUS")
    wrapped = ctx.store.object(model_id).wrapped
    return ctx.keys.keystore().unwrap(
        wrapped["kek_id"], int(wrapped["kek_version"]), b64d(wrapped["wrapped_dek"]))


def _forms(secret: bytes) -> list[bytes]:
    b64 = base64.b64encode(secret)
    url = base64.urlsafe_b64encode(secret)
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), b64,
            b64.rstrip(b"="), url, url.rstrip(b"=")]


# -- the consented transfer, end to end --------------------------------------------
def test_consented_transfer_end_to_end_through_the_cli(world: World,
                                                       tmp_path: Path) -> None:
    state, model_id = world
    cli = Sovereign(state.root)
    outputs: list[CliResult] = []

    def run(*args: str, ok: bool = True) -> CliResult:
        result = cli(*args, ok=ok)
        outputs.append(result)
        return result

    run("nation", "init", "CAN")  # a nation that joins after the training
    agreement = _agreement_file(tmp_path, "AUS-CAN-2026", "AUS", "CAN")
    run("agreement", "add", str(agreement), "--sign-as", "AUS,CAN")

    refused = run("model", "transfer", model_id, "--to", "CAN", "--end-use",
                  "research", "--json", ok=False)
    assert refused.code == 4, refused.err
    doc = refused.json()
    assert doc["status"] == "denied"
    assert [r["rule"] for r in doc["decision"]["reasons"] if not r["passed"]] == \
        ["consent"]
    assert "consent: no valid consent from AUS" in refused.err

    not_owner = run("model", "consent", model_id, "--to", "CAN", "--end-use",
                    "research", "--as", "GBR", ok=False)
    assert not_owner.code == 4 and "only its owners may: AUS" in not_owner.err
    consent = run("model", "consent", model_id, "--to", "CAN", "--end-use",
                  "research", "--as", "AUS", "--expires-in", "1d", "--json").json()
    assert consent["statement"]["model_digest"] == \
        Registry(state.registry_db).model(model_id).sealed_digest

    done = run("model", "transfer", model_id, "--to", "CAN", "--end-use",
               "research", "--json").json()
    assert done["status"] == "completed"
    decision = done["decision"]
    assert decision["permit"] and all(r["passed"] for r in decision["reasons"])
    assert [r["rule"] for r in decision["reasons"]] == [
        "request", "consent", "releasability", "export-control", "end-use",
        "agreement", "re-transfer"]
    assert decision["relied_agreement_ids"] == ["AUS-CAN-2026"]
    assert decision["consent_ids"] == [consent["statement"]["consent_id"]]
    transfer_id = done["transfer_id"]
    key = done["transfer"]["wrapped_key"]
    assert key["kek_id"].startswith("kek:CAN:")

    table = run("model", "transfer", model_id, "--to", "CAN", "--end-use",
                "research", ok=False)  # the consent is spent
    assert table.code == 4 and "already used by transfer" in table.out + table.err

    can_out, aus_out = tmp_path / "can" / "weights.bin", tmp_path / "aus.bin"
    received = run("model", "receive", transfer_id, "--as", "CAN", "--out",
                   str(can_out), "--json").json()
    run("model", "open", model_id, "--as", "AUS", "--out", str(aus_out))
    weights = aus_out.read_bytes()
    assert weights and can_out.read_bytes() == weights
    assert received["sha256"] == hashlib.sha256(weights).hexdigest()
    by_model = run("model", "receive", model_id, "--as", "CAN", "--out",
                   str(tmp_path / "again.bin"), "--json").json()
    assert by_model["transfer_id"] == transfer_id

    for args, code in (
        (("model", "receive", transfer_id, "--as", "GBR"), 4),
        (("model", "receive", model_id, "--as", "USA"), 5),
        (("model", "open", model_id, "--as", "CAN"), 4),
        (("model", "open", model_id, "--as", "GBR"), 4),
    ):
        other = run(*args, "--out", str(tmp_path / "nope.bin"), ok=False)
        assert other.code == code, (args, other.err)
    assert not (tmp_path / "nope.bin").exists()

    history = run("model", "transfers", "--json").json()
    assert [(h["status"], h["recipient"]) for h in history] == [
        ("denied", "CAN"), ("completed", "CAN"), ("denied", "CAN")]
    completed = history[1]
    assert completed["transfer_id"] == transfer_id
    assert set(completed["steps"]) == {"transfer.decided", "transfer.completed",
                                       "transfer.opened"}
    assert "denied" in run("model", "transfers").out

    log = CustodyLog(state.custody_db)
    actors = {(e.event.kind, e.event.actor) for e in log.entries()
              if e.event.kind.startswith("transfer.")}
    assert actors == {("transfer.consented", "officer:AUS"),
                      ("transfer.decided", "custodian:AUS"),
                      ("transfer.denied", "custodian:AUS"),
                      ("transfer.completed", "custodian:CAN"),
                      ("transfer.opened", "custodian:CAN")}
    (decided,) = log.find("transfer.decided", transfer_id=transfer_id)
    assert decided.event.body["consents"][0]["statement"]["consent_id"] == \
        consent["statement"]["consent_id"]
    assert Registry(state.registry_db).transfer(transfer_id).consents_digest == \
        decided.event.body["consents_digest"]
    publish_checkpoint(state)  # every step signed by its actor's enrolled key
    verify_custody(state, officer="AUS")

    # The raw DEK appears in no custody-log entry, no file of the state directory
    # (registry and custody log included) and no CLI output.
    dek = _model_dek(state, model_id)
    forms = _forms(dek)
    for entry in log.entries():
        leaf = entry.leaf_bytes()
        assert not any(f in leaf for f in forms), entry.event.kind
    scanned = 0
    for path in sorted(state.root.rglob("*")):
        if path.is_file():
            data = path.read_bytes()
            scanned += path.name.startswith(("registry.db", "custody.db",
                                             "store.db", "journal.db"))
            assert not any(f in data for f in forms), path
    assert scanned >= 4
    for result in outputs:
        text = (result.out + result.err).encode()
        assert not any(f in text for f in forms)
    record = Registry(state.registry_db).transfer(transfer_id)
    assert b64d(record.wrapped_key["wrapped_dek"]) != dek


# -- refusals ------------------------------------------------------------------------
def test_refused_without_any_consent(world: World) -> None:
    state, model_id = world
    _join_can(state)
    decision = _refused(state, model_id, "CAN", "research")
    assert _failed(decision) == {"consent": "no valid consent from AUS"}


def test_refused_when_one_owner_has_not_consented(world: World) -> None:
    state, model_id = world
    _join_can(state)
    add_agreement(state, _agreement_file(state.root, "CAN-GBR-2026", "CAN", "GBR"),
                  sign_as=["CAN", "GBR"])
    joint = _synth_model(state, model_id, owners=["AUS", "GBR"],
                         releasable=["AUS", "CAN", "GBR"])
    consent_to_transfer(state, joint, "AUS", recipient="CAN", end_use="research")
    decision = _refused(state, joint, "CAN", "research")
    assert _failed(decision) == {"consent": "no valid consent from GBR"}
    consent_to_transfer(state, joint, "GBR", recipient="CAN", end_use="research")
    done = transfer_model(state, joint, "CAN", "research")
    assert done.decision.relied_agreement_ids == ("AUS-CAN-2026", "CAN-GBR-2026")
    assert len(done.decision.consent_ids) == 2


def test_refused_with_an_expired_consent(world: World) -> None:
    state, model_id = world
    _join_can(state)
    now = system_clock()
    consent_to_transfer(state, model_id, "AUS", recipient="CAN", end_use="research",
                        expires_in=timedelta(days=7),
                        clock=lambda: now - timedelta(days=8))
    detail = _failed(_refused(state, model_id, "CAN", "research"))["consent"]
    assert detail.startswith("no valid consent from AUS (consent consent-")
    assert "expired at" in detail


def test_refused_with_an_altered_consent(world: World, tmp_path: Path) -> None:
    state, model_id = world
    _join_can(state)
    record = Registry(state.registry_db).model(model_id)
    officer = load_private_key(state.officer_dir("AUS") / "officer.key")
    signed = sign_statement(
        {"type": "transfer-consent/v1", "nation": "AUS",
         "issued_at": rfc3339(system_clock()), "consent_id": "consent-offline",
         "model_id": model_id, "model_digest": record.sealed_digest,
         "recipient": "CAN", "end_use": "research",
         "expires_at": rfc3339(system_clock() + timedelta(days=1)),
         "export_controls": []}, officer)
    doc = copy.deepcopy(signed.to_json())
    doc["statement"]["end_use"] = "surveillance"  # edited after signing
    altered = tmp_path / "altered.json"
    altered.write_text(json.dumps(doc))
    cli = Sovereign(state.root)
    result = cli("model", "transfer", model_id, "--to", "CAN", "--end-use",
                 "surveillance", "--consent-file", str(altered), ok=False)
    assert result.code == 4
    assert "refused statements: consent consent-offline: AUS officer signature " \
        "does not verify" in result.err
    original = tmp_path / "original.json"  # the untouched statement does count
    original.write_text(json.dumps(signed.to_json()))
    done = cli("model", "transfer", model_id, "--to", "CAN", "--end-use",
               "research", "--consent-file", str(original), "--json").json()
    assert done["decision"]["consent_ids"] == ["consent-offline"]
    (decided,) = CustodyLog(state.custody_db).find(
        "transfer.decided", transfer_id=done["transfer_id"])
    assert decided.event.body["consents"] == [signed.to_json()]  # now in the log


def test_refused_when_a_foreign_officer_signs(world: World) -> None:
    state, model_id = world
    _join_can(state)
    record = Registry(state.registry_db).model(model_id)
    gbr = load_private_key(state.officer_dir("GBR") / "officer.key")
    body = {"type": "transfer-consent/v1", "issued_at": rfc3339(system_clock()),
            "model_id": model_id, "model_digest": record.sealed_digest,
            "recipient": "CAN", "end_use": "research",
            "expires_at": rfc3339(system_clock() + timedelta(days=1))}
    posing = sign_statement({**body, "nation": "AUS", "consent_id": "c-posing"}, gbr)
    own = sign_statement({**body, "nation": "GBR", "consent_id": "c-gbr"}, gbr)
    decision = _refused(state, model_id, "CAN", "research", consents=[posing, own])
    detail = _failed(decision)["consent"]
    assert "consent c-posing: statement key" in detail
    assert "is not the registered AUS officer key" in detail
    assert "consents by GBR ignored: not owners" in detail
    with pytest.raises(PolicyDenied):
        consent_to_transfer(state, model_id, "GBR", recipient="CAN",
                            end_use="research")


def test_refused_for_an_end_use_the_agreement_prohibits(world: World) -> None:
    state, model_id = world
    _join_can(state)
    consent_to_transfer(state, model_id, "AUS", recipient="CAN",
                        end_use="weapons-targeting")
    decision = _refused(state, model_id, "CAN", "weapons-targeting")
    assert _failed(decision) == {"end-use": "end use 'weapons-targeting' is "
                                 "prohibited by agreement(s) AUS-CAN-2026"}


def test_itar_model_goes_only_where_releasable_and_named(world: World) -> None:
    state, model_id = world
    _join_can(state)
    itar_usa = _synth_model(state, model_id, owners=["AUS"],
                            releasable=["AUS", "USA"],
                            export_controls=("ITAR:USML-XI",))
    consent_to_transfer(state, itar_usa, "AUS", recipient="CAN", end_use="research",
                        export_controls=["ITAR:USML-XI"])
    failed = _failed(_refused(state, itar_usa, "CAN", "research"))
    assert set(failed) == {"releasability", "export-control"}
    assert "ITAR:USML-XI: CAN is not in releasable-to" in failed["export-control"]

    itar_can = _synth_model(state, model_id, owners=["AUS"],
                            releasable=["AUS", "CAN", "USA"],
                            export_controls=("ITAR:USML-XI",))
    consent_to_transfer(state, itar_can, "AUS", recipient="CAN", end_use="research")
    failed = _failed(_refused(state, itar_can, "CAN", "research"))
    assert set(failed) == {"export-control"}
    assert "none from AUS does" in failed["export-control"]
    consent_to_transfer(state, itar_can, "AUS", recipient="CAN", end_use="research",
                        export_controls=["ITAR:USML-XI"])
    done = transfer_model(state, itar_can, "CAN", "research")
    assert done.decision.permit


def test_third_party_refused_while_the_training_agreement_prohibits(
        world: World, tmp_path: Path) -> None:
    state, model_id = world
    consent_to_transfer(state, model_id, "AUS", recipient="GBR", end_use="research")
    detail = _failed(_refused(state, model_id, "GBR", "research"))["agreement"]
    assert detail.startswith("GBR is a third party for AUS: no agreement between "
                             "them is in force")
    assert "agreement AUS-USA-SONAR-2026 prohibits third-party transfer" in detail
    # Both officers sign a v2 that allows third-party transfer with consent.
    text = (ROOT / "agreements" / "aus-usa.toml").read_text().replace(
        'oversight_body = "AUKUS Joint Steering Group"',
        'oversight_body = "AUKUS Joint Steering Group"\nversion = 2\n'
        'third_party_transfer = "with-consent"')
    v2 = tmp_path / "aus-usa-v2.toml"
    v2.write_text(text)
    add_agreement(state, v2, sign_as=["AUS", "USA"])
    done = transfer_model(state, model_id, "GBR", "research")
    assert done.decision.third_party
    assert done.decision.relied_agreement_ids == ("AUS-USA-SONAR-2026",)


def test_re_transfer_by_a_recipient_is_refused(world: World) -> None:
    state, model_id = world
    _join_can(state)
    consent_to_transfer(state, model_id, "AUS", recipient="CAN", end_use="research")
    transfer_model(state, model_id, "CAN", "research")
    consent_to_transfer(state, model_id, "AUS", recipient="NZL", end_use="research")
    decision = _refused(state, model_id, "NZL", "research", sender="CAN")
    assert decision.re_transfer
    failed = _failed(decision)
    assert set(failed) == {"re-transfer"}
    assert "agreement AUS-CAN-2026 prohibits third-party re-transfer" in \
        failed["re-transfer"]
    assert "agreement AUS-USA-SONAR-2026 prohibits third-party re-transfer" in \
        failed["re-transfer"]
    # The owners themselves may still send it to NZL (AUS-NZL is in force).
    assert transfer_model(state, model_id, "NZL", "research").decision.permit
    # A nation that received nothing cannot pass it on.
    consent_to_transfer(state, model_id, "AUS", recipient="USA", end_use="research")
    failed = _failed(_refused(state, model_id, "USA", "research", sender="GBR"))
    assert "GBR neither owns" in failed["re-transfer"]


def test_terminated_agreement_refuses_new_transfers_at_once(world: World,
                                                            tmp_path: Path) -> None:
    from orchestrator.embedded import terminate_agreement

    state, model_id = world
    _join_can(state)
    consent_to_transfer(state, model_id, "AUS", recipient="CAN", end_use="research")
    before = transfer_model(state, model_id, "CAN", "research")
    consent_to_transfer(state, model_id, "AUS", recipient="CAN", end_use="analysis")
    terminate_agreement(state, "AUS-CAN-2026", "CAN", reason="exercise over")
    detail = _failed(_refused(state, model_id, "CAN", "analysis"))["agreement"]
    assert "agreement AUS-CAN-2026 terminated by CAN officer" in detail
    assert "exercise over" in detail
    # A transfer completed before the termination still opens for its recipient.
    out = receive_model(state, before.transfer_id, "CAN", tmp_path / "w.bin")
    assert Path(out["out"]).stat().st_size > 0


def test_recipient_custodian_refuses_keys_without_a_permit(world: World) -> None:
    state, model_id = world
    _join_can(state)
    record = Registry(state.registry_db).model(model_id)
    can = custodian_of(state, "CAN")
    forged = {"transfer_id": "xfer-forged", "model_id": model_id,
              "model_digest": record.sealed_digest, "recipient": "CAN",
              "end_use": "research", "exporter": "AUS", "label": record.label,
              "sealed_dek": b64e(b"\x00" * 80)}
    with pytest.raises(PolicyDenied, match=r"no permitting transfer\.decided"):
        can.import_model_key(forged)
    assert CustodyLog(state.custody_db).find("transfer.denied",
                                             transfer_id="xfer-forged")
    with pytest.raises(PolicyDenied, match="is for CAN, not GBR"):
        custodian_of(state, "GBR").import_model_key(forged)
    # A real hand-over opens once; a replay of it is refused.
    consent_to_transfer(state, model_id, "AUS", recipient="CAN", end_use="research")
    request = TransferRequest("xfer-direct", model_id, record.sealed_digest, "CAN",
                              "research", None, tuple(collect_consents(
                                  Deployment(state).orchestrator(), model_id)))
    sealed = custodian_of(state, "AUS").export_model_key(request.to_json())
    dek = _model_dek(state, model_id)
    assert not any(f in json.dumps(sealed).encode() for f in _forms(dek))
    wrapped = can.import_model_key(sealed)
    assert wrapped["kek_id"].startswith("kek:CAN:")
    with pytest.raises(AlreadyExists):
        can.import_model_key(sealed)
    with pytest.raises(NotFound):
        transfer_model(state, "model-nope", "CAN", "research")


def test_transfer_to_a_nation_without_a_custodian(world: World) -> None:
    state, model_id = world
    decision = _refused(state, model_id, "JPN", "research")
    failed = _failed(decision)
    assert "JPN has no custodian known to AUS" in failed["request"]
    assert "JPN is not in releasable-to" in failed["releasability"]
    history = transfer_history(state, model_id)
    assert [h["status"] for h in history] == ["denied"]
