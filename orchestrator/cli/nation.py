"""``sovereign nation``: create and list nations' custodians and officers."""

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
from orchestrator.embedded import init_nation
from orchestrator.errors import ConfigError
from orchestrator.labels import parse_nation
from orchestrator.nation.identity import pkcs11_config
from orchestrator.submit.registry import Registry, as_json

app = typer.Typer(no_args_is_help=True, help="Nations: KEKs, custodians, officers.")


@app.command("init")
@handle_errors
def init(
    code: Annotated[str, typer.Argument(help="ISO 3166-1 alpha-3 code")],
    state_dir: StateOpt = None,
    keystore: Annotated[
        str, typer.Option("--keystore", help="KEK backend: file or pkcs11.")
    ] = "file",
    pkcs11_module: Annotated[
        str | None, typer.Option("--pkcs11-module", help="PKCS#11 module (.so).")
    ] = None,
    token_label: Annotated[
        str | None, typer.Option("--token-label", help="PKCS#11 token label.")
    ] = None,
    pin_env: Annotated[
        str | None, typer.Option("--pin-env", help="Variable holding the user PIN.")
    ] = None,
    pin_file: Annotated[
        str | None, typer.Option("--pin-file", help="0600 file holding the PIN.")
    ] = None,
    officer_card: Annotated[Path | None, typer.Option(
        "--officer-card", help="(alone) the nation's officer's card, with --card")
    ] = None,
    card: Annotated[Path | None, typer.Option(
        "--card", help="(alone) write the nation's card here, with --officer-card")
    ] = None,
) -> None:
    """Create a nation's KEK, custodian keys and CA, and its officer's key, each
    in its own directory; introduce them to the log, the orchestrator and the
    other nations (the embedded default).

    With ``--officer-card`` and ``--card``: initialise this nation alone on its
    own machine, pinning its officer from its card, and write the nation's card
    (for the log operator, the orchestrator, peers and officers)."""
    state = state_of(state_dir)
    nation = parse_nation(code, field="CODE")
    if keystore not in ("file", "pkcs11"):
        raise ConfigError(f"unknown backend {keystore!r}", field="--keystore")
    hsm = None
    if keystore == "pkcs11":
        hsm = pkcs11_config(
            nation,
            module=pkcs11_module,
            token_label=token_label,
            pin_env=pin_env,
            pin_file=pin_file,
        )
    if (officer_card is None) != (card is None):
        raise ConfigError("--officer-card and --card go together",
                          field="--officer-card")
    if officer_card is not None and card is not None:
        from orchestrator.embedded.standalone import init_nation_alone

        made = init_nation_alone(state, nation, officer_card, card, pkcs11=hsm)
        console.print(f"nation [bold]{made.code}[/] initialised alone: KEK "
                      f"{made.kek_id}, custodian key {made.custodian_key_id}; card "
                      f"{card}")
        return
    record = init_nation(state, nation, pkcs11=hsm)
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
