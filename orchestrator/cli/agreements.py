"""``sovereign agreement``: add, sign, terminate and list bilateral agreements."""

from __future__ import annotations

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
from orchestrator.embedded import (
    add_agreement,
)

agreement_app = typer.Typer(no_args_is_help=True, help="Bilateral agreements.")


# -- agreement ---------------------------------------------------------------------
@agreement_app.command("add")
@handle_errors
def agreement_add(
    path: Annotated[Path, typer.Argument(help="agreement TOML")],
    sign_as: Annotated[
        str,
        typer.Option(
            "--sign-as",
            help="Then sign as these parties' officers (comma-separated; in the "
            "embedded default each officer signs in its own directory).",
        ),
    ] = "",
    state_dir: StateOpt = None,
) -> None:
    """Record an agreement version; it takes effect once every party signs it."""
    nations = [n.strip().upper() for n in sign_as.split(",") if n.strip()]
    state = state_of(state_dir)
    agreement = add_agreement(state, path, sign_as=nations)
    standing = _standing(state, agreement.id, agreement.version)
    console.print(
        f"agreement [bold]{agreement.id}[/] v{agreement.version} recorded: "
        f"{' - '.join(sorted(agreement.parties))}, valid "
        f"{agreement.valid_from} to {agreement.valid_until}; {standing.detail}"
    )


def _standing(state: Any, agreement_id: str, version: int) -> Any:
    from orchestrator.embedded import Deployment
    from orchestrator.submit.agreements import load_standings

    return next(s for s in load_standings(Deployment(state).orchestrator())
                if s.agreement.id == agreement_id and s.agreement.version == version)


@agreement_app.command("sign")
@handle_errors
def agreement_sign(
    agreement_id: Annotated[str, typer.Argument(help="agreement id")],
    nation: Annotated[str, typer.Option("--as", help="signing officer's nation")],
    version: Annotated[
        int | None, typer.Option("--version", help="version (default: latest)")
    ] = None,
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Sign one exact agreement version as a party's sovereignty officer."""
    from orchestrator.embedded import sign_agreement

    standing = sign_agreement(state_of(state_dir), agreement_id,
                              nation.strip().upper(), version=version)
    if json_out:
        emit_json(standing.to_json())
        return
    console.print(f"{standing.status.value}: {standing.detail}")


@agreement_app.command("terminate")
@handle_errors
def agreement_terminate(
    agreement_id: Annotated[str, typer.Argument(help="agreement id")],
    nation: Annotated[str, typer.Option("--as", help="terminating officer's nation")],
    reason: Annotated[str, typer.Option("--reason", help="why (recorded, signed)")],
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Terminate an agreement as a party's officer (signed, logged, at once)."""
    from orchestrator.embedded import terminate_agreement

    standing = terminate_agreement(state_of(state_dir), agreement_id,
                                   nation.strip().upper(), reason=reason)
    if json_out:
        emit_json(standing.to_json())
        return
    console.print(f"{standing.status.value}: {standing.detail}")


@agreement_app.command("list")
@handle_errors
def agreement_list(state_dir: StateOpt = None, json_out: JsonOpt = False) -> None:
    """List every agreement version with its status, signatures and areas."""
    from orchestrator.embedded import Deployment
    from orchestrator.submit.agreements import load_standings

    standings = load_standings(Deployment(state_of(state_dir)).orchestrator())
    if json_out:
        emit_json([{**s.to_json(), "document": s.agreement.to_json()}
                   for s in standings])
        return
    table = Table("id", "v", "status", "parties (signed)", "valid", "areas (tier)",
                  "notify above GPU-h")
    for st in standings:
        a = st.agreement
        table.add_row(
            a.id,
            str(a.version),
            st.status.value,
            ", ".join(f"{p}{' ✓' if p in st.signed_by else ''}"
                      for p in sorted(a.parties)),
            f"{a.valid_from} .. {a.valid_until}",
            "; ".join(f"{p.name} ({p.tier.value})" for p in a.priority_areas),
            f"{a.notification_threshold_gpu_hours:g}"
            + (f" / {a.quarterly_threshold_gpu_hours:g} per quarter"
               if a.quarterly_threshold_gpu_hours is not None else ""),
        )
    console.print(table)
