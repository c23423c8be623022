"""``sovereign custodian``: run a nation's custodian as an mTLS service.

``pki init AUS`` (the nation's CA, server and client certificates), ``serve
--nation AUS`` (FastAPI + uvicorn, TLS 1.3, client certificates required),
``register AUS --url https://127.0.0.1:N --ca FILE`` (the nation directory entry
that makes the orchestrator and enclaves call the service instead of an
in-process custodian), ``unregister`` and ``list``.
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
from orchestrator.nation.directory import (
    NationEntry,
    load_directory,
    register_nation,
    unregister_nation,
)
from orchestrator.nation.pki import DEFAULT_SERVER_HOSTS, NationPki, init_pki
from orchestrator.nation.service import DEFAULT_HOST, DEFAULT_PORT, serve

app = typer.Typer(
    no_args_is_help=True, help="Custodian services: PKI, serve over mTLS, directory."
)
pki_app = typer.Typer(no_args_is_help=True, help="A nation's CA and certificates.")
app.add_typer(pki_app, name="pki")

NationArg = Annotated[str, typer.Argument(help="ISO 3166-1 alpha-3 code")]


@pki_app.command("init")
@handle_errors
def pki_init(
    code: NationArg,
    host: Annotated[
        list[str] | None,
        typer.Option("--host", help="Server certificate host/IP (repeatable)."),
    ] = None,
    client: Annotated[
        list[str] | None,
        typer.Option(
            "--client",
            help="Client identity to issue (repeatable; default orchestrator, "
            "officer and site-<name> per registered site).",
        ),
    ] = None,
    state_dir: StateOpt = None,
) -> None:
    """Create the nation's CA, its custodian's server cert and client certs."""
    state = state_of(state_dir)
    nation = parse_nation(code, field="CODE")
    pki = init_pki(
        state,
        nation,
        hosts=tuple(host) if host else DEFAULT_SERVER_HOSTS,
        clients=tuple(client) if client else None,
    )
    console.print(
        f"{nation} PKI in {pki.directory}: CA {pki.ca_cert.name}, server "
        f"certificate for {', '.join(host or DEFAULT_SERVER_HOSTS)}, clients "
        f"{', '.join(pki.clients())}",
        highlight=False,
    )


@pki_app.command("issue")
@handle_errors
def pki_issue(code: NationArg, name: str, state_dir: StateOpt = None) -> None:
    """Issue one more client certificate from the nation's CA."""
    state = state_of(state_dir)
    cert, key = NationPki.of(state, parse_nation(code, field="CODE")).issue_client(name)
    console.print(f"client certificate {cert} (key {key})", highlight=False)


@app.command("serve")
@handle_errors
def serve_command(
    nation: Annotated[str, typer.Option("--nation", help="Nation to serve.")],
    host: Annotated[str, typer.Option(help="Bind address.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="TCP port.")] = DEFAULT_PORT,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn log level.")
    ] = "warning",
    state_dir: StateOpt = None,
) -> None:
    """Serve the nation's custodian over mutual TLS until interrupted."""
    state = state_of(state_dir)
    code = parse_nation(nation, field="--nation")
    console.print(
        f"custodian {code} serving on https://{host}:{port} (mTLS)", highlight=False
    )
    serve(state, code, host=host, port=port, log_level=log_level)


@app.command("register")
@handle_errors
def register(
    code: NationArg,
    url: Annotated[str, typer.Option("--url", help="https://HOST:PORT")],
    ca: Annotated[Path, typer.Option("--ca", help="The nation's CA (PEM).")],
    cert: Annotated[
        Path | None,
        typer.Option(
            "--cert", help="Client certificate (default: this state's orchestrator)."
        ),
    ] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Client key.")] = None,
    state_dir: StateOpt = None,
) -> None:
    """Reach the nation's custodian service at URL (CA pinned) from now on."""
    state = state_of(state_dir)
    nation = parse_nation(code, field="CODE")
    if cert is None and key is None:
        pki = NationPki.of(state, nation)
        if pki.client_cert("orchestrator").is_file():
            cert, key = pki.client_cert("orchestrator"), pki.client_key("orchestrator")
    entry = register_nation(
        state, NationEntry(nation=nation, url=url, ca=ca, cert=cert, key=key)
    )
    console.print(
        f"{nation} custodian registered at {entry.url} (CA {entry.ca})",
        highlight=False,
    )


@app.command("unregister")
@handle_errors
def unregister(code: NationArg, state_dir: StateOpt = None) -> None:
    """Forget the nation's service: its custodian is in-process again."""
    nation = parse_nation(code, field="CODE")
    unregister_nation(state_of(state_dir), nation)
    console.print(f"{nation} custodian is in-process again", highlight=False)


@app.command("list")
@handle_errors
def list_(state_dir: StateOpt = None, json_out: JsonOpt = False) -> None:
    """List the nation directory (nations reached as network services)."""
    entries = load_directory(state_of(state_dir))
    if json_out:
        emit_json({code: e.to_json() for code, e in entries.items()})
        return
    table = Table("nation", "url", "CA", "client certificate")
    for code, e in entries.items():
        table.add_row(code, e.url, str(e.ca), str(e.cert or "-"))
    console.print(table)
