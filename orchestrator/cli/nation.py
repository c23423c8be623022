"""``sovereign nation``: create and list nations' custodians and officers."""

from __future__ import annotations

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
from orchestrator.nation.identity import init_nation
from orchestrator.registry import Registry, as_json

app = typer.Typer(no_args_is_help=True, help="Nations: KEKs, custodians, officers.")


@app.command("init")
@handle_errors
def init(
    code: Annotated[str, typer.Argument(help="ISO 3166-1 alpha-3 code")],
    state_dir: StateOpt = None,
) -> None:
    """Create a nation's KEK, custodian and officer signing keys."""
    state = state_of(state_dir)
    record = init_nation(state, parse_nation(code, field="CODE"))
    console.print(
        f"nation [bold]{record.code}[/] initialised: KEK {record.kek_id}, "
        f"custodian key {record.custodian_key_id}, "
        f"officer key {record.officer_key_id}"
    )


@app.command("list")
@handle_errors
def list_(state_dir: StateOpt = None, json_out: JsonOpt = False) -> None:
    """List initialised nations and their public keys."""
    nations = Registry(state_of(state_dir).registry_db).nations()
    if json_out:
        emit_json([as_json(n) for n in nations])
        return
    table = Table("nation", "KEK id", "custodian key", "officer key", "created")
    for n in nations:
        table.add_row(n.code, n.kek_id, n.custodian_key_id, n.officer_key_id, n.created)
    console.print(table)
