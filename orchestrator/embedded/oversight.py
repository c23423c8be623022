"""The embedded default's job, oversight, transfer and custody flows.

Thin compositions over the parties: the orchestrator runs and relays, each
nation's custodian decides on its own records, each officer signs with its own
key and verifies with the keys it pinned, and the log operator publishes and
collects cosignatures. These are what the CLI calls in the embedded default.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from orchestrator.embedded.deployment import Deployment, require_nation
from orchestrator.embedded.layout import StateDir
from orchestrator.errors import ConfigError, NotFound, PolicyDenied, SovereignError
from orchestrator.labels import Label
from orchestrator.log.witnessing import collect_cosignature
from orchestrator.nation import steward
from orchestrator.net.log_client import HttpLog
from orchestrator.officer import statements as officer_statements
from orchestrator.officer.bundle import prove as prove_bundle
from orchestrator.officer.report import ReportInputs, render_report
from orchestrator.officer.trace import trace_model as trace_from_log
from orchestrator.officer.verify import CustodyVerification
from orchestrator.officer.verify import verify_custody as officer_verify
from orchestrator.protocol.approvals import (
    DEFAULT_EXPIRY_S,
    ApprovalRequest,
    Notification,
)
from orchestrator.protocol.statements import SignedStatement
from orchestrator.submit import pipeline
from orchestrator.submit import transfer as relay
from orchestrator.submit.jobs import job_view as orchestrator_job_view
from orchestrator.submit.registry import Registry
from orchestrator.timeutil import Clock, system_clock
from orchestrator.tlog.checkpoint import parse_note
from orchestrator.tlog.names import witness_key_name

__all__ = ["acknowledge", "approval_requests", "consent_to_transfer",
           "decide_request", "job_view", "notifications", "prove",
           "publish_checkpoint", "receive_model", "render_nation_report", "resume",
           "submit", "trace_model", "transfer_history", "transfer_model",
           "verify_custody", "witness"]


# -- jobs ----------------------------------------------------------------------------
def submit(state: StateDir, workflow_path: Path, site_name: str | None = None, *,
           sites: list[str] | None = None,
           progress: pipeline.ProgressSink | None = None) -> pipeline.JobResult:
    """See :func:`orchestrator.submit.pipeline.submit`."""
    return pipeline.submit(Deployment(state).orchestrator(), workflow_path, site_name,
                           sites=sites, progress=progress)


_logger = logging.getLogger(__name__)

def resume(state: StateDir, job_id: str, *,
           progress: pipeline.ProgressSink | None = None) -> pipeline.JobResult:
    """See :func:`orchestrator.submit.pipeline.resume`."""
    return pipeline.resume(Deployment(state).orchestrator(), job_id, progress=progress)


def job_view(state: StateDir, job_id: str) -> dict[str, Any]:
    """See :func:`orchestrator.submit.jobs.job_view`."""
    return orchestrator_job_view(Deployment(state).orchestrator(), job_id)


# -- case-by-case approvals and notifications -----------------------------------
def approval_requests(state: StateDir, *, nation: str | None = None,
                      status: str | None = None) -> list[ApprovalRequest]:
    """The approval requests of ``nation``'s custodian (every nation's when
    ``None``), oldest first."""
    deployment = Deployment(state)
    nations = [nation] if nation else state.nations()
    out = []
    for code in nations:
        require_nation(deployment, code)
        out += [ApprovalRequest.from_json(r)
                for r in deployment.custodian(code).approvals(status)]
    return sorted(out, key=lambda r: r.requested_at)


def decide_request(state: StateDir, request_id: str, nation: str, decision: str, *,
                   expires_in_s: int = DEFAULT_EXPIRY_S) -> ApprovalRequest:
    """``nation``'s officer decides a request at its custodian; see
    :func:`orchestrator.officer.statements.decide_approval`."""
    deployment = Deployment(state)
    require_nation(deployment, nation)
    return officer_statements.decide_approval(
        deployment.officer(nation), deployment.officer_connect(nation), request_id,
        decision,
        expires_in_s=expires_in_s)


def notifications(state: StateDir) -> list[Notification]:
    """Every oversight notification in the log, with who acknowledged it (an
    officer's acknowledgement recorded by a custodian)."""
    log = Deployment(state).log()
    acks: dict[str, str] = {}
    for entry in log.find("notification.acknowledged"):
        acks.setdefault(str(entry.event.body.get("notification_id")),
                        entry.event.actor.split(":", 1)[-1])
    out = []
    for e in log.find("notification.recorded"):
        b = e.event.body
        nid = str(b.get("notification_id"))
        out.append(Notification(
            nid, str(b.get("job_id", "")), str(b.get("agreement_id", "")),
            str(b.get("oversight_body", "")),
            tuple(b.get("kinds", ["per-request"])), float(b.get("gpu_hours", 0.0)),
            bool(b.get("hold")), e.event.time, acks.get(nid)))
    return out


def acknowledge(state: StateDir, notification_id: str, nation: str) -> Notification:
    """``nation``'s officer acknowledges a notification; return it after.

    Raises
    ------
    NotFound
        Unknown notification.
    ConfigError
        Already acknowledged, or ``nation`` is not a party to its agreement.
    """
    deployment = Deployment(state)
    found = [n for n in notifications(state) if n.notification_id == notification_id]
    if not found:
        raise NotFound(f"no notification {notification_id!r} "
                       "(see: sovereign notifications list)")
    if found[0].acknowledged_by:
        raise ConfigError(f"{notification_id} was already acknowledged by "
                          f"{found[0].acknowledged_by}")
    officer_statements.acknowledge(deployment.officer(nation),
                                   deployment.officer_connect(nation),
                                   found[0].to_json())
    return next(n for n in notifications(state)
                if n.notification_id == notification_id)


# -- transfers -----------------------------------------------------------------------
def consent_to_transfer(state: StateDir, model_id: str, nation: str, *, recipient: str,
                        end_use: str, expires_in: timedelta = timedelta(days=7),
                        export_controls: Iterable[str] = (),
                        clock: Clock = system_clock) -> SignedStatement:
    """``nation``'s officer consents to one transfer (signed at ``clock()``);
    return the statement."""
    deployment = Deployment(state)
    record = Registry(state.registry_db).model(model_id)
    owners = Label.from_json(record.label).owners
    if nation not in owners:  # the owner's custodian would refuse it too
        raise PolicyDenied(f"{nation} does not own {model_id}: only its owners may: "
                           f"{', '.join(sorted(owners))}",
                           reasons=[f"consent: {nation} is not an owner"])
    entry = officer_statements.consent_to_transfer(
        deployment.officer(nation), deployment.officer_connect(nation),
        model_id=record.id,
        model_digest=record.sealed_digest, recipient=recipient, end_use=end_use,
        expires_in=expires_in, export_controls=export_controls, clock=clock)
    return SignedStatement.from_json(entry.event.body)


def transfer_model(state: StateDir, model_id: str, recipient: str, end_use: str, *,
                   sender: str | None = None,
                   consents: Sequence[SignedStatement] = ()) -> relay.TransferResult:
    """See :func:`orchestrator.submit.transfer.transfer_model`."""
    return relay.transfer_model(Deployment(state).orchestrator(), model_id, recipient,
                                end_use, sender=sender, consents=consents)


def receive_model(state: StateDir, ref: str, nation: str, out: Path) -> dict[str, Any]:
    """The recipient's officer opens a transferred model: its custodian records
    ``transfer.opened`` and releases the DEK; the sealed file is handed over by
    the orchestrator."""
    from orchestrator.labels import parse_nation

    nation = parse_nation(nation, field="--as")
    deployment = Deployment(state)
    orch = deployment.orchestrator()
    transfer = relay.find_transfer(orch, ref, nation)
    record = Registry(orch.registry_db).model(transfer.model_id)
    dek = deployment.officer_connect(nation)(nation).open_transferred_key(
        transfer.id, record.id, record.sealed_digest)
    result = steward.open_owned(dek, Path(record.object_path), record.id, Path(out))
    return {**result, "transfer_id": transfer.id}


def transfer_history(state: StateDir, model_id: str | None = None
                     ) -> list[dict[str, Any]]:
    """See :func:`orchestrator.submit.transfer.transfer_history`."""
    return relay.transfer_history(Deployment(state).orchestrator(), model_id)


# -- custody -------------------------------------------------------------------------
def publish_checkpoint(state: StateDir) -> bytes:
    """The log operator publishes a checkpoint over every durable entry."""
    return Deployment(state).log().publish()


def witness(state: StateDir, nation: str, *, url: str | None = None,
            ca: Path | bytes | None = None) -> bytes:
    """The log operator asks ``nation``'s custodian to cosign its latest
    checkpoint (C2SP tlog-witness); return the cosigned note.

    With ``url`` and ``ca`` (the custodian's service and its CA) the log operator
    reaches it with its own client certificate (``log/client/<NATION>.pem``),
    reading nothing but its own directory; else as the embedded default does.

    Raises
    ------
    WitnessRefusal
        The witness refused (fork, rollback, inconsistent proof).
    ConfigError
        If only one of ``url`` and ``ca`` is given.
    """
    from orchestrator.net.custodian_client import HttpCustodian

    deployment = Deployment(state)
    log = deployment.log()
    if (url is None) != (ca is None):
        raise ConfigError("--url and --ca go together", field="--url")
    if url is not None and ca is not None:
        tls = log.state.client_dir
        with HttpCustodian(nation, url, ca=ca, cert=tls / f"{nation}.pem",
                           key=tls / "client.key") as custodian:
            return collect_cosignature(log, custodian.witness,
                                       witness_key_name(nation))
    require_nation(deployment, nation)
    embedded = deployment.log_connect()(nation)
    return collect_cosignature(log, embedded.witness, witness_key_name(nation))


def verify_custody(state: StateDir, *, officer: str | None = None,
                   require_cosigners: tuple[str, ...] = (),
                   log: HttpLog | None = None,
                   require_anchored: bool = False,
                   witness_history: int = 0,
                   witness_since: int | None = None) -> CustodyVerification:
    """``officer``'s officer (default: the first nation's) verifies the log
    through its read API (the service ``log`` reaches, else the embedded log),
    with its own pinned keys and last checkpoint: it reads only its own
    directory."""
    deployment = Deployment(state)
    nation = officer or (state.nations() or [""])[0]
    if not nation:
        raise ConfigError("no officer here (sovereign nation init ...)")
    reader = log or deployment.log()
    histories = None
    if witness_history > 0 or witness_since is not None:
        histories = _witness_histories(deployment, nation, reader)
    return officer_verify(deployment.officer(nation), reader,
                          require_cosigners=require_cosigners,
                          require_anchored=require_anchored, histories=histories,
                          witness_history=witness_history,
                          witness_since=witness_since)


def _witness_histories(deployment: Deployment, nation: str, log: Any
                       ) -> Callable[[str], bytes]:
    """Witness nation -> its first cosigned checkpoint of ``log``, asked by
    ``nation``'s officer with its own certificates (``b""`` when unreachable:
    that witness then shows no history, and the reason is logged)."""
    origin = parse_note(log.checkpoint()).checkpoint.origin
    connect = deployment.officer_connect(nation)

    def history(witness: str) -> bytes:
        try:
            return connect(witness).witness_history(origin)
        except SovereignError as exc:
            _logger.warning("witness %s gave no history: %s", witness,
                            exc.diagnostics())
            return b""

    return history


def trace_model(state: StateDir, model_id: str, *, log: HttpLog | None = None
                ) -> dict[str, Any]:
    """See :func:`orchestrator.officer.trace.trace_model` (over the service
    ``log`` reaches, else the embedded log)."""
    return trace_from_log(log or Deployment(state).log(), model_id)


def prove(state: StateDir, model_id: str, *, log: HttpLog | None = None,
          from_size: int | None = None) -> dict[str, Any]:
    """See :func:`orchestrator.officer.bundle.prove` (over the service ``log``
    reaches, else the embedded log)."""
    if log is not None:
        return prove_bundle(log, model_id, log_vkey=str(log.health()["vkey"]),
                            from_size=from_size)
    embedded = Deployment(state).log()
    return prove_bundle(embedded, model_id, log_vkey=embedded.vkey,
                        from_size=from_size)


def render_nation_report(state: StateDir, nation: str) -> str:
    """``nation``'s officer's report, from the log and its own custodian."""
    from orchestrator.errors import SovereignError
    from orchestrator.officer.trust import TrustConfig

    deployment = Deployment(state)
    require_nation(deployment, nation)
    officer = deployment.officer(nation)
    log = deployment.log()
    trust = TrustConfig.load(officer.root / "trust.json")
    try:
        import tempfile

        with tempfile.TemporaryDirectory() as scratch:  # never the officer's state
            from orchestrator.officer.identity import OfficerState

            copy = OfficerState(Path(scratch), nation)
            trusted = officer.root / "checkpoint.json"
            if trusted.exists():  # from the officer's trusted checkpoint, as verify
                shutil.copyfile(trusted, copy.root / "checkpoint.json")
            result = officer_verify(copy, log, trust=trust)
        note = log.checkpoint().decode("utf-8")
        cosigned = ", ".join(result.cosigners) or "nobody"
        status = (f"custody log verified: {result.report.size} entries, signatures "
                  f"and hash chain valid; checkpoint size {result.checkpoint_size} "
                  f"root matches; cosigned by {cosigned}")
        if result.unanchored:
            status += ("; WARNING: entries of actors no pinned custodian admitted: "
                       + ", ".join(f"{a} (from entry {i})"
                                   for a, i in result.unanchored.items()))
        if result.previous_size is None:
            status += ("; FIRST USE: this officer had no trusted checkpoint "
                       "(run sovereign custody verify to keep one)")
        ok, cosigners, size = True, list(result.cosigners), result.checkpoint_size
    except SovereignError as exc:
        ok, status, note, cosigners, size = (
            False, f"VERIFICATION FAILED: {exc.diagnostics()}", "", [], 0)
    custodian = deployment.custodian(nation)
    return render_report(nation, ReportInputs(
        entries=list(log.entries()), verified=ok, status=status, note=note,
        cosigners=cosigners, size=size, standings=custodian.standings(),
        approvals=custodian.approvals()))
