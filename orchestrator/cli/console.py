"""``sovereign console``: the officers' web console
(:mod:`orchestrator.officer.console`)."""

from __future__ import annotations

from typing import Annotated

import typer

from orchestrator.cli._common import StateOpt, console, deployment_of, handle_errors
from orchestrator.errors import ConfigError
from orchestrator.labels import parse_nation

app = typer.Typer(no_args_is_help=True, help="Officers: the web console.")


def _origin(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


@app.command("serve")
@handle_errors
def serve(
    nation: Annotated[str, typer.Option(
        "--as", help="Whose officer the console serves (ISO 3166-1 alpha-3).")],
    host: Annotated[str, typer.Option(
        "--host", help="Address to listen on (loopback by default).")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port.")] = 8765,
    origin: Annotated[str | None, typer.Option(
        "--origin", help="Origin browsers use, if not http://HOST:PORT (a TLS "
        "reverse proxy: https://console.example).")] = None,
    state_dir: StateOpt = None,
) -> None:
    """Serve one nation's officer console until interrupted (Ctrl-C).

    Officers sign in with their officer key file in the browser (WebCrypto),
    which browsers allow only on https or loopback origins: keep the default
    loopback host, or put a TLS reverse proxy in front and pass ``--origin``.
    """
    import uvicorn

    from orchestrator.officer.console import create_app

    code = parse_nation(nation, field="--as")
    if not 0 < port < 65536:
        raise ConfigError(f"port must be 1-65535, got {port}", field="--port")
    site = origin or _origin(host, port)
    if not site.startswith(("http://", "https://")):
        raise ConfigError(f"origin must be http(s)://host[:port], got {site!r}",
                          field="--origin")
    deployment = deployment_of(state_dir)
    web = create_app(deployment.officer_connect(code)(code), deployment.log(), code,
                     origin=site)
    console.print(f"{code} officer console at {site}/ (Ctrl-C stops)",
                  highlight=False, soft_wrap=True)
    uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False,
                server_header=False)
