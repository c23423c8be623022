"""``sovereign approvals`` and ``sovereign notifications``: officers' oversight."""

from __future__ import annotations

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

approvals_app = typer.Typer(no_args_is_help=True,
                            help="Officers: case-by-case approvals.")
notifications_app = typer.Typer(no_args_is_help=True,
                                help="Officers: oversight notifications.")


def _parse_duration(text: str) -> int:
    """``"90s"``, ``"30m"``, ``"12h"``, ``"7d"`` -> seconds."""
    from orchestrator.errors import ConfigError

    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if len(text) < 2 or text[-1] not in units or not text[:-1].isdigit():
        raise ConfigError(f"expected a duration such as 90s, 30m, 12h or 7d, got "
                          f"{text!r}", field="--expires-in")
    return int(text[:-1]) * units[text[-1]]


NationOpt = Annotated[str, typer.Option("--as", help="the officer's nation")]


@approvals_app.command("list")
@handle_errors
def approvals_list(
    nation: Annotated[str | None, typer.Option(
        "--as", help="only requests this nation's officer decides")] = None,
    status: Annotated[str | None, typer.Option(
        help="pending, approved, denied, used, cancelled or expired")] = None,
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """List case-by-case approval requests (default: all, oldest first)."""
    from orchestrator.embedded import approval_requests

    found = approval_requests(state_of(state_dir),
                              nation=nation.strip().upper() if nation else None,
                              status=status)
    if json_out:
        emit_json([r.to_json() for r in found])
        return
    table = Table("request", "owner", "job", "dataset", "site", "area", "GPU-h",
                  "status", "why")
    for r in found:
        table.add_row(r.request_id, r.owner, r.job_id, r.dataset_id, r.site,
                      r.priority_area, f"{r.gpu_hours:g}", r.status,
                      "; ".join(r.reasons))
    console.print(table)


def _decide(request_id: str, nation: str, decision: str, expires_in: str,
            state_dir: Any, json_out: bool) -> None:
    from orchestrator.embedded import decide_request

    req = decide_request(state_of(state_dir), request_id, nation.strip().upper(),
                         decision, expires_in_s=_parse_duration(expires_in))
    if json_out:
        emit_json(req.to_json())
        return
    expires = (req.decision or {}).get("expires_at", "")
    console.print(f"{req.request_id}: {req.status}"
                  + (f" until {expires}" if req.status == "approved" else "")
                  + f"; next: sovereign jobs resume {req.job_id}", highlight=False)


ExpiresOpt = Annotated[str, typer.Option(
    "--expires-in", help="approval lifetime: 90s, 30m, 12h, 7d (max 90d)")]


@approvals_app.command("approve")
@handle_errors
def approvals_approve(
    request_id: Annotated[str, typer.Argument(help="request id (approvals list)")],
    nation: NationOpt,
    expires_in: ExpiresOpt = "7d",
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Approve a pending request: signed by the officer, bound to its digest."""
    _decide(request_id, nation, "approve", expires_in, state_dir, json_out)


@approvals_app.command("deny")
@handle_errors
def approvals_deny(
    request_id: Annotated[str, typer.Argument(help="request id (approvals list)")],
    nation: NationOpt,
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Deny a pending request (signed by the officer; the job is then refused)."""
    _decide(request_id, nation, "deny", "90d", state_dir, json_out)


@notifications_app.command("list")
@handle_errors
def notifications_list(state_dir: StateOpt = None, json_out: JsonOpt = False) -> None:
    """List oversight notifications and whether they are acknowledged."""
    from orchestrator.embedded import notifications

    found = notifications(state_of(state_dir))
    if json_out:
        emit_json([n.to_json() for n in found])
        return
    table = Table("notification", "job", "agreement", "oversight body", "kinds",
                  "GPU-h", "hold", "acknowledged by")
    for n in found:
        table.add_row(n.notification_id, n.job_id, n.agreement_id, n.oversight_body,
                      ", ".join(n.kinds), f"{n.gpu_hours:g}",
                      "yes" if n.hold else "no", n.acknowledged_by or "-")
    console.print(table)


@notifications_app.command("ack")
@handle_errors
def notifications_ack(
    notification_id: Annotated[str, typer.Argument(help="notification id")],
    nation: NationOpt,
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Acknowledge a notification for the oversight body (signed by the officer)."""
    from orchestrator.embedded import acknowledge

    note = acknowledge(state_of(state_dir), notification_id, nation.strip().upper())
    if json_out:
        emit_json(note.to_json())
        return
    console.print(f"{note.notification_id} acknowledged by {note.acknowledged_by}; "
                  f"next: sovereign jobs resume {note.job_id}", highlight=False)
