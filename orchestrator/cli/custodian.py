"""``sovereign custodian``: run a nation's custodian as an mTLS service.

``serve --nation AUS`` (FastAPI + uvicorn, TLS 1.3, client certificates from the
nation's CA required, every operation authorised by the caller's role),
``issue AUS --csr FILE --role site --name local`` (the nation's CA signs a
party's CSR, granting a role), ``register AUS --url https://127.0.0.1:N --ca FILE``
(the orchestrator's directory entry that makes it and its tasks call the
service), ``unregister`` and ``list``.
"""

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
    ca_of,
    console,
    deployment_of,
    emit_json,
    handle_errors,
    remote_log,
    state_of,
)
from orchestrator.crypto import atomic_write_bytes
from orchestrator.errors import ConfigError
from orchestrator.labels import parse_nation
from orchestrator.net.custodian_client import NationEntry
from orchestrator.net.directory import (
    load_directory,
    register_nation,
    unregister_nation,
)
from orchestrator.net.service import DEFAULT_HOST

app = typer.Typer(
    no_args_is_help=True, help="Custodian services: serve over mTLS, issue, directory."
)

NationArg = Annotated[str, typer.Argument(help="ISO 3166-1 alpha-3 code")]
#: Default TCP port.
DEFAULT_PORT = 8443


@app.command("issue")
@handle_errors
def issue(
    code: NationArg,
    csr: Annotated[Path, typer.Option("--csr", help="the party's CSR (PEM)")],
    role: Annotated[str, typer.Option(
        "--role", help="orchestrator, site, officer, log or custodian")],
    name: Annotated[str, typer.Option("--name", help="the party's name")],
    out: Annotated[Path, typer.Option("--out", help="certificate file to write")],
    state_dir: StateOpt = None,
) -> None:
    """Sign a party's CSR with the nation's CA, granting it a role (its SPIFFE
    identity ``spiffe://<nation>/<role>/<name>``)."""
    from orchestrator.nation.pki import issue_client

    nation = deployment_of(state_dir).nation(parse_nation(code, field="CODE"))
    try:
        csr_pem = csr.read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read CSR: {exc.strerror}", source=str(csr)) from exc
    cert = issue_client(nation.require(), csr_pem, role=role, name=name)
    atomic_write_bytes(out, cert, mode=0o644)
    console.print(f"{nation.code} issued {out} to {role} {name}", highlight=False)


@app.command("serve")
@handle_errors
def serve_command(
    nation: Annotated[str, typer.Option("--nation", help="Nation to serve.")],
    host: Annotated[str, typer.Option(help="Bind address.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="TCP port.")] = DEFAULT_PORT,
    log_url: LogUrlOpt = None,
    log_ca: LogCaOpt = None,
    log_level: Annotated[
        str, typer.Option("--log-level", help="uvicorn log level.")
    ] = "warning",
    state_dir: StateOpt = None,
) -> None:
    """Serve the nation's custodian over mutual TLS until interrupted."""
    from orchestrator.nation.custodian import LocalCustodian
    from orchestrator.nation.pki import server_context
    from orchestrator.nation.service import create_app
    from orchestrator.net.service import serve

    deployment = deployment_of(state_dir)
    code = parse_nation(nation, field="--nation")
    state = deployment.nation(code).require()
    remote = remote_log(log_url, log_ca)
    custodian = LocalCustodian(state, remote or deployment.log())
    if remote is not None and not custodian.ctx.journal.find("nation.initialized"):
        from orchestrator.nation.identity import nation_initialized_body

        # a nation initialised alone logs its keys on first serving (enrolled by
        # the log operator from its card by then)
        custodian.ctx.record("nation.initialized", nation_initialized_body(state))
    if remote is not None:
        from orchestrator.nation.admissions import sync_admissions

        sync_admissions(custodian.ctx)  # the keys it admitted while offline
    console.print(f"custodian {code} serving on https://{host}:{port} (mTLS)",
                  highlight=False)
    serve(create_app(custodian), host=host, port=port, context=server_context(state),
          log_level=log_level)


@app.command("register")
@handle_errors
def register(
    code: NationArg,
    url: Annotated[str, typer.Option("--url", help="https://HOST:PORT")],
    ca: Annotated[Path, typer.Option(
        "--ca", help="The nation's CA (PEM) or the nation's card.")],
    cert: Annotated[
        Path | None,
        typer.Option(
            "--cert", help="Client certificate (default: the orchestrator's)."
        ),
    ] = None,
    key: Annotated[Path | None, typer.Option("--key", help="Client key.")] = None,
    officer: Annotated[str | None, typer.Option(
        "--officer", help="register it for this nation's officer (its own "
        "directory and certificates) instead of the orchestrator")] = None,
    state_dir: StateOpt = None,
) -> None:
    """Reach the nation's custodian service at URL (CA pinned) from now on.

    The CA, and a ``--cert`` given without ``--key`` (a certificate the nation
    issued from this party's card), are copied into the party's own directory;
    the party's own TLS key goes with it."""
    deployment = deployment_of(state_dir)
    nation = parse_nation(code, field="CODE")
    if officer is not None:
        holder = deployment.officer(parse_nation(officer, field="--officer"))
        holder.key()  # initialised here (NotFound otherwise)
        root, own_cert, own_key = holder.root, holder.client_cert(nation), \
            holder.tls_key
    else:
        orch = deployment.orchestrator()
        root, own_cert, own_key = orch.root, orch.client_cert(nation), orch.tls_key
    if cert is not None and key is None:  # the party's own certificate: keep it
        _copy_pem(cert, own_cert)
        cert = own_cert
    if cert is None and key is None and own_cert.is_file():
        cert = own_cert
    if cert == own_cert:
        key = own_key
    pinned = root / "custodians" / f"{nation}-ca.pem"
    pinned.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write_bytes(pinned, ca_of(ca), mode=0o644)
    entry = register_nation(root, NationEntry(nation=nation, url=url, ca=pinned,
                                              cert=cert, key=key))
    console.print(f"{nation} custodian registered at {entry.url} (CA {entry.ca})",
                  highlight=False)


def _copy_pem(source: Path, target: Path) -> None:
    from orchestrator.embedded.handover import read_certificate_pem

    data = read_certificate_pem(source)
    if source.resolve() != target.resolve():
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        atomic_write_bytes(target, data, mode=0o644)


@app.command("unregister")
@handle_errors
def unregister(code: NationArg, state_dir: StateOpt = None) -> None:
    """Forget the nation's service: its custodian is in-process again."""
    nation = parse_nation(code, field="CODE")
    unregister_nation(state_of(state_dir).orchestrator_dir, nation)
    console.print(f"{nation} custodian is in-process again", highlight=False)


@app.command("list")
@handle_errors
def list_(state_dir: StateOpt = None, json_out: JsonOpt = False) -> None:
    """List the orchestrator's directory (nations reached as network services)."""
    entries = load_directory(state_of(state_dir).orchestrator_dir)
    if json_out:
        emit_json({code: e.to_json() for code, e in entries.items()})
        return
    table = Table("nation", "url", "CA", "client certificate")
    for code, e in entries.items():
        table.add_row(code, e.url, str(e.ca), str(e.cert or "-"))
    console.print(table)
