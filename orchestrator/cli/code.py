"""``sovereign code``: an owner's officer approves the code that sees its data."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from orchestrator.cli._common import (
    JsonOpt,
    LogCaOpt,
    LogUrlOpt,
    StateOpt,
    console,
    emit_json,
    handle_errors,
    remote_log,
    state_of,
)
from orchestrator.embedded.code_review import approve_code, code_approvals, revoke_code
from orchestrator.labels import parse_nation

app = typer.Typer(no_args_is_help=True, help="Owners' approval of code measurements.")

AsOpt = Annotated[str, typer.Option("--as", help="the approving nation's officer")]


@app.command("approve")
@handle_errors
def approve(
    workflow: Annotated[Path, typer.Argument(help="the workflow's TOML file")],
    as_nation: AsOpt,
    agreement: Annotated[str | None, typer.Option(
        "--agreement", help="the agreement it is approved under (default: "
        "domestic use)")] = None,
    area: Annotated[list[str] | None, typer.Option(
        "--area", help="a priority area it covers (repeatable; default: all)")] = None,
    days: Annotated[float, typer.Option("--days", help="how long it counts")] = 90.0,
    state_dir: StateOpt = None,
) -> None:
    """(Officer) approve the measurement of WORKFLOW's code as it is now: the
    custodian releases keys under an agreement with code_approval = "required"
    only to that measurement."""
    entry = approve_code(state_of(state_dir), parse_nation(as_nation, field="--as"),
                         workflow, agreement_id=agreement, areas=tuple(area or ()),
                         days=days)
    body = entry.event.body
    console.print(f"approved {body['workflow']} {body['measurement']} as "
                  f"{body['approval_id']} until {body['expires_at']} (entry "
                  f"{entry.seq})", highlight=False)


@app.command("revoke")
@handle_errors
def revoke(
    approval_id: Annotated[str, typer.Argument(help="the approval to end")],
    as_nation: AsOpt,
    reason: Annotated[str, typer.Option("--reason", help="why (recorded)")],
    state_dir: StateOpt = None,
) -> None:
    """(Officer) end one of this officer's approvals: releases to it stop."""
    entry = revoke_code(state_of(state_dir), parse_nation(as_nation, field="--as"),
                        approval_id, reason=reason)
    console.print(f"revoked {approval_id} (entry {entry.seq})", highlight=False)


@app.command("list")
@handle_errors
def list_(
    as_nation: Annotated[str | None, typer.Option(
        "--as", help="only this nation's officer's approvals")] = None,
    log_url: LogUrlOpt = None,
    log_ca: LogCaOpt = None,
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List code approvals from the custody log."""
    found = code_approvals(
        state_of(state_dir),
        parse_nation(as_nation, field="--as") if as_nation else None,
        log=remote_log(log_url, log_ca))
    if json_out:
        emit_json(found)
        return
    table = Table("approval", "officer", "workflow", "measurement", "agreement",
                  "areas", "expires", "state")
    for a in found:
        table.add_row(a["approval_id"], a["officer"], a["workflow"],
                      a["measurement"][:19] + "…", str(a["agreement_id"]),
                      ", ".join(a["areas"]) or "all", a["expires_at"],
                      "revoked" if a["revoked"] else "in force")
    console.print(table)
