"""``sovereign key``: a nation custodian's KEK lifecycle (KMS semantics).

``status``, ``rotate``, ``rewrap`` (every stored wrapped key to the primary
version, without exposing a DEK), ``disable``/``enable``, ``schedule-deletion
--days 7..30`` / ``cancel-deletion`` (AWS KMS ScheduleKeyDeletion) and
``set-min-decryption-version N`` (Vault transit). Every change is logged as a
custody event signed by the custodian before it takes effect.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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
from orchestrator.labels import parse_nation
from orchestrator.nation.context import CustodianContext
from orchestrator.nation.kek_admin import nation_keystore, rewrap_all
from orchestrator.nation.keystore import ManagedKeystore
from orchestrator.nation.lifecycle import KekState

app = typer.Typer(no_args_is_help=True, help="KEK lifecycle of a nation's custodian.")

NationArg = Annotated[str, typer.Argument(help="ISO 3166-1 alpha-3 code")]


def _custodian(code: str, state_dir: Path | None) -> tuple[str, CustodianContext]:
    from orchestrator.embedded import Deployment
    from orchestrator.embedded.deployment import require_nation

    nation = parse_nation(code, field="NATION")
    deployment = Deployment(state_of(state_dir))
    require_nation(deployment, nation)
    return nation, deployment.custodian(nation).ctx


def _keystore(code: str, state_dir: Path | None) -> tuple[str, ManagedKeystore]:
    nation, ctx = _custodian(code, state_dir)
    return nation, nation_keystore(ctx)


def _report(nation: str, what: str, state: KekState) -> None:
    extra = f", deletion on {state.deletion_date}" if state.deletion_date else ""
    console.print(
        f"{nation} {what}: KEK {state.kek_id} is {state.state.value}, primary "
        f"version {state.primary_version}, minimum decryption version "
        f"{state.min_decryption_version}{extra}",
        highlight=False,
    )


@app.command("status")
@handle_errors
def status(
    code: NationArg, state_dir: StateOpt = None, json_out: JsonOpt = False
) -> None:
    """Show the KEK's backend, state and versions."""
    nation, keystore = _keystore(code, state_dir)
    doc = keystore.status()
    if json_out:
        emit_json({"nation": nation, **doc})
        return
    table = Table("field", "value")
    for name in ("backend", "kek_id", "state", "primary_version"):
        table.add_row(name, str(doc[name]))
    table.add_row("min_decryption_version", str(doc["min_decryption_version"]))
    if doc["deletion_date"]:
        table.add_row("deletion_date", str(doc["deletion_date"]))
    if doc["destroyed_at"]:
        table.add_row("destroyed_at", str(doc["destroyed_at"]))
    for version, created in doc["versions"].items():
        table.add_row(f"version {version}", f"created {created}")
    console.print(table)


@app.command("rotate")
@handle_errors
def rotate(code: NationArg, state_dir: StateOpt = None) -> None:
    """Create KEK version N+1 and make it primary."""
    nation, keystore = _keystore(code, state_dir)
    _report(nation, "rotated", keystore.rotate())


@app.command("rewrap")
@handle_errors
def rewrap(
    code: NationArg, state_dir: StateOpt = None, json_out: JsonOpt = False
) -> None:
    """Rewrap every stored dataset/model key of NATION under the primary version."""
    nation, ctx = _custodian(code, state_dir)
    outcomes = rewrap_all(ctx)
    refused = [o for o in outcomes if o.status == "refused"]
    if json_out:
        emit_json([o.to_json() for o in outcomes])
    else:
        for o in outcomes:
            detail = f" ({o.reason})" if o.reason else ""
            console.print(
                f"{o.status:9} {o.object_kind} {o.object_id} "
                f"v{o.from_version} -> v{o.to_version}{detail}",
                highlight=False,
            )
        done = sum(o.status == "rewrapped" for o in outcomes)
        console.print(f"{nation}: {done} rewrapped, {len(refused)} refused")
    if refused:
        raise typer.Exit(4)


@app.command("disable")
@handle_errors
def disable(code: NationArg, state_dir: StateOpt = None) -> None:
    """Refuse every wrap and unwrap under the KEK."""
    nation, keystore = _keystore(code, state_dir)
    _report(nation, "disabled", keystore.disable())


@app.command("enable")
@handle_errors
def enable(code: NationArg, state_dir: StateOpt = None) -> None:
    """Re-enable a disabled KEK."""
    nation, keystore = _keystore(code, state_dir)
    _report(nation, "enabled", keystore.enable())


@app.command("schedule-deletion")
@handle_errors
def schedule_deletion(
    code: NationArg,
    days: Annotated[
        int, typer.Option("--days", help="Waiting period, 7 to 30 days.")
    ] = 30,
    state_dir: StateOpt = None,
) -> None:
    """Destroy the KEK after a waiting period; every unwrap is refused meanwhile."""
    nation, keystore = _keystore(code, state_dir)
    _report(nation, "scheduled for deletion", keystore.schedule_deletion(days))


@app.command("cancel-deletion")
@handle_errors
def cancel_deletion(code: NationArg, state_dir: StateOpt = None) -> None:
    """Cancel a pending deletion (the KEK is left disabled)."""
    nation, keystore = _keystore(code, state_dir)
    _report(nation, "deletion cancelled", keystore.cancel_deletion())


@app.command("set-min-decryption-version")
@handle_errors
def set_min_decryption_version(
    code: NationArg,
    version: Annotated[int, typer.Argument(help="Lowest version allowed to unwrap")],
    state_dir: StateOpt = None,
) -> None:
    """Refuse unwrapping versions below VERSION."""
    nation, keystore = _keystore(code, state_dir)
    _report(
        nation, "minimum version set", keystore.set_min_decryption_version(version)
    )
