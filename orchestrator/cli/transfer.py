"""``sovereign model consent|transfer|transfers|receive``: model transfer between
nations (:mod:`orchestrator.submit.transfer`).

* ``model consent MODEL --to CAN --end-use research --as AUS`` - an owner's
  officer signs a ``transfer-consent/v1`` (logged ``transfer.consented``);
* ``model transfer MODEL --to CAN --end-use research`` - the owners' custodian
  decides (every rule's reason printed), and on a permit the recipient's
  custodian receives the DEK under its own KEK; exit 4 on refusal;
* ``model transfers`` - every transfer and refusal, from the custody log;
* ``model receive XFER|MODEL --as CAN --out FILE`` - the recipient opens it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.cli._common import (
    JsonOpt,
    StateOpt,
    console,
    emit_json,
    handle_errors,
    state_of,
)
from orchestrator.cli.catalogue import model_app
from orchestrator.embedded import (
    consent_to_transfer,
    receive_model,
    transfer_history,
    transfer_model,
)
from orchestrator.policy.transfer import TransferDecision, TransferDenied
from orchestrator.submit.transfer import load_consent_file, parse_duration

ToOpt = Annotated[str, typer.Option("--to", help="recipient nation, e.g. CAN")]
EndUseOpt = Annotated[
    str, typer.Option("--end-use", help="declared end use (slug), e.g. research")
]


def _print_decision(decision: TransferDecision) -> None:
    table = Table("rule", "passed", "detail", title=(
        f"transfer of {decision.model_id} to {decision.recipient} "
        f"({decision.end_use}): {decision.outcome.upper()}"))
    for reason in decision.reasons:
        table.add_row(reason.rule, "yes" if reason.passed else "NO", reason.detail)
    console.print(table)


@model_app.command("consent")
@handle_errors
def model_consent(
    model_id: Annotated[str, typer.Argument(help="model id")],
    to: ToOpt,
    end_use: EndUseOpt,
    as_nation: Annotated[str, typer.Option("--as", help="consenting owner nation")],
    expires_in: Annotated[
        str, typer.Option("--expires-in", help="validity: 7d, 12h, 30m, 600s")
    ] = "7d",
    export_control: Annotated[
        list[str] | None,
        typer.Option(
            "--export-control",
            help="export-control tag of the model this officer attests is "
            "authorised for this export, e.g. ITAR:USML-XI (repeatable)",
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option(help="also write the signed consent (JSON) to this file"),
    ] = None,
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Sign, as an owner's officer, consent to one model transfer (logged)."""
    signed = consent_to_transfer(
        state_of(state_dir), model_id, as_nation, recipient=to, end_use=end_use,
        expires_in=parse_duration(expires_in), export_controls=export_control or ())
    if out is not None:
        out.write_text(json.dumps(signed.to_json(), indent=2, sort_keys=True) + "\n")
    if json_out:
        emit_json(signed.to_json())
        return
    s = signed.statement
    console.print(
        f"{s['nation']} officer consented ({s['consent_id']}): {s['model_id']} to "
        f"{s['recipient']} for {s['end_use']!r}, until {s['expires_at']}"
        + (f", naming {', '.join(s['export_controls'])}"
           if s["export_controls"] else ""))


@model_app.command("transfer")
@handle_errors
def model_transfer(
    model_id: Annotated[str, typer.Argument(help="model id")],
    to: ToOpt,
    end_use: EndUseOpt,
    sender: Annotated[
        str | None,
        typer.Option("--from", help="re-transfer: the non-owner nation passing on "
                     "its received copy"),
    ] = None,
    consent_file: Annotated[
        list[Path] | None,
        typer.Option("--consent-file",
                     help="a signed consent (JSON) made offline (repeatable)"),
    ] = None,
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Transfer a model to another nation: decided by the owners' custodian.

    Prints every rule's reason; exits 4 if the transfer is refused.
    """
    consents = [load_consent_file(p) for p in consent_file or ()]
    try:
        result = transfer_model(state_of(state_dir), model_id, to, end_use,
                                sender=sender, consents=consents)
    except TransferDenied as exc:
        if json_out:
            emit_json({"transfer_id": exc.transfer_id, "status": "denied",
                       "reasons": exc.reasons,
                       "decision": exc.decision.to_json() if exc.decision else None})
        elif exc.decision is not None:
            _print_decision(exc.decision)
        raise
    if json_out:
        emit_json(result.to_json())
        return
    _print_decision(result.decision)
    key = result.record.wrapped_key
    console.print(
        f"transfer {result.transfer_id} completed: {result.record.recipient} holds "
        f"the model key under its own KEK ({key['kek_id']} v{key['kek_version']}); "
        f"open it with: sovereign model receive {result.transfer_id} "
        f"--as {result.record.recipient} --out FILE")


@model_app.command("transfers")
@handle_errors
def model_transfers(
    model: Annotated[
        str | None, typer.Option("--model", help="only this model's transfers")
    ] = None,
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List model transfers and refusals (from the custody log)."""
    items = transfer_history(state_of(state_dir), model)
    if json_out:
        emit_json(items)
        return
    table = Table("transfer", "model", "to", "end use", "status", "decided by",
                  "agreements", "reasons")
    for item in items:
        by = f" (from {item['sender']})" if item.get("sender") else ""
        table.add_row(item["transfer_id"], str(item["model_id"]),
                      f"{item['recipient']}{by}", str(item["end_use"]),
                      item["status"], str(item["decided_by"] or "-"),
                      ", ".join(item["relied_agreement_ids"]) or "-",
                      "; ".join(item["reasons"]) or "-")
    console.print(table)


@model_app.command("receive")
@handle_errors
def model_receive(
    ref: Annotated[str, typer.Argument(help="transfer id (xfer-...) or model id")],
    as_nation: Annotated[str, typer.Option("--as", help="recipient nation")],
    out: Annotated[Path, typer.Option(help="where to write the weights")],
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Decrypt a transferred model for its recipient (logged by its custodian)."""
    result: dict[str, Any] = receive_model(state_of(state_dir), ref, as_nation, out)
    if json_out:
        emit_json(result)
        return
    console.print(
        f"opened {result['model_id']} (transfer {result['transfer_id']}) for "
        f"{as_nation.upper()} -> {result['out']} (sha256 {result['sha256'][:16]}...)")
