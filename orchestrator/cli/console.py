"""``sovereign console``: the officers' web console
(:mod:`orchestrator.officer.console`)."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli._common import StateOpt, console, deployment_of, handle_errors
from orchestrator.errors import ConfigError
from orchestrator.labels import parse_nation

app = typer.Typer(no_args_is_help=True, help="Officers: the web console.")


def _origin(host: str, port: int, scheme: str) -> str:
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (127.0.0.0/8, ::1)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


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
    tls_cert: Annotated[Path | None, typer.Option(
        "--tls-cert", help="PEM certificate chain to serve HTTPS with (required "
        "off loopback).")] = None,
    tls_key: Annotated[Path | None, typer.Option(
        "--tls-key", help="PEM private key of --tls-cert.")] = None,
    client_ca: Annotated[Path | None, typer.Option(
        "--client-ca", help="mutual TLS: require a client certificate from this "
        "CA (the nation's, PEM) naming the nation's own officer")] = None,
    state_dir: StateOpt = None,
) -> None:
    """Serve one nation's officer console until interrupted (Ctrl-C).

    Officers sign in with their officer key file in the browser (WebCrypto),
    which browsers allow only on https or loopback origins: keep the default
    loopback host, or serve HTTPS (``--tls-cert``/``--tls-key``) and pass
    ``--origin`` if browsers reach it by another name. A non-loopback address
    without TLS is refused (exit 2): approvals and sessions would cross the
    network in clear. With ``--client-ca`` (and HTTPS) only a client
    certificate of the nation's own officer gets in
    (:mod:`orchestrator.officer.console.mtls`).
    """
    import uvicorn

    from orchestrator.officer.console import create_app

    code = parse_nation(nation, field="--as")
    if not 0 < port < 65536:
        raise ConfigError(f"port must be 1-65535, got {port}", field="--port")
    if (tls_cert is None) != (tls_key is None):
        raise ConfigError("--tls-cert and --tls-key go together", field="--tls-cert")
    if client_ca is not None and tls_cert is None:
        raise ConfigError("--client-ca needs --tls-cert and --tls-key (mutual TLS)",
                          field="--client-ca")
    for given in (tls_cert, tls_key, client_ca):
        if given is not None and not given.is_file():
            raise ConfigError("no such file", source=str(given))
    if tls_cert is None and not _loopback(host):
        raise ConfigError(
            f"refusing to serve plain HTTP on {host}: bind a loopback address, or "
            "serve HTTPS with --tls-cert and --tls-key", field="--host")
    site = origin or _origin(host, port, "https" if tls_cert else "http")
    if not site.startswith(("http://", "https://")):
        raise ConfigError(f"origin must be http(s)://host[:port], got {site!r}",
                          field="--origin")
    deployment = deployment_of(state_dir)
    web = create_app(deployment.officer_connect(code)(code), deployment.log(), code,
                     origin=site)
    console.print(f"{code} officer console at {site}/ (Ctrl-C stops)"
                  + (" (mutual TLS: officer certificates only)" if client_ca else ""),
                  highlight=False, soft_wrap=True)
    if client_ca is not None and tls_cert is not None and tls_key is not None:
        from orchestrator.net.service import serve as serve_tls
        from orchestrator.net.tls import server_context
        from orchestrator.officer.console.mtls import OfficerOnly

        web.add_middleware(OfficerOnly, nation=code)
        serve_tls(web, host=host, port=port,
                  context=server_context(tls_cert, tls_key, client_ca))
        return
    uvicorn.run(web, host=host, port=port, log_level="warning", access_log=False,
                server_header=False,
                ssl_certfile=str(tls_cert) if tls_cert else None,
                ssl_keyfile=str(tls_key) if tls_key else None)
