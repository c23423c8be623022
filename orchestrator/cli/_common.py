"""Shared CLI plumbing: state-dir option, JSON output, error translation."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from rich.console import Console

from orchestrator.embedded.deployment import Deployment
from orchestrator.embedded.layout import ENV_VAR, StateDir, resolve_state_dir
from orchestrator.errors import ConfigError, SovereignError
from orchestrator.net.log_client import HttpLog

console = Console()
err_console = Console(stderr=True)

P = ParamSpec("P")
R = TypeVar("R")

StateOpt = Annotated[
    Path | None,
    typer.Option(
        "--state-dir",
        envvar=ENV_VAR,
        help="State directory (default ./.sovereign).",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]
LogUrlOpt = Annotated[str | None, typer.Option(
    "--log-url", help="custody log service URL (default: the embedded log)")]
LogCaOpt = Annotated[Path | None, typer.Option(
    "--log-ca", help="the log service's CA certificate (PEM) or the log's card, "
    "with --log-url")]


def ca_of(path: Path) -> bytes:
    """The CA certificate (PEM) in ``path``: a PEM file, or a card (the log's or
    a nation's, verified first) that carries one.

    Raises
    ------
    NotFound
        If there is no such file.
    ConfigError, IntegrityError
        If it is neither, or the card does not verify (file named).
    """
    from orchestrator.errors import NotFound
    from orchestrator.protocol.cards import (
        is_nation_card,
        load_card_json,
        read_card,
        read_nation_card,
    )

    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound("no such file", source=str(path)) from exc
    if data.lstrip().startswith(b"{"):
        if is_nation_card(load_card_json(path)):
            return read_nation_card(path)[0].ca_pem.encode("ascii")
        return str(read_card(path, expect="log").extra["ca_pem"]).encode("ascii")
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConfigError("neither a PEM certificate nor a card", source=str(path))
    return data


def remote_log(log_url: str | None, log_ca: Path | None) -> HttpLog | None:
    """The log service ``--log-url`` names (its CA pinned: :func:`ca_of`), else
    ``None`` (the embedded log).

    Raises
    ------
    ConfigError
        If only one of ``--log-url`` and ``--log-ca`` is given.
    """
    if (log_url is None) != (log_ca is None):
        raise ConfigError("--log-url and --log-ca go together", field="--log-url")
    return HttpLog(log_url, ca=ca_of(log_ca)) if log_url and log_ca else None


def state_of(option: Path | None) -> StateDir:
    """The state directory chosen by ``--state-dir`` / ``$SOVEREIGN_STATE_DIR``."""
    return StateDir(resolve_state_dir(option))


def deployment_of(option: Path | None) -> Deployment:
    """The embedded default's parties in the chosen state directory."""
    return Deployment(state_of(option))


def emit_json(data: Any) -> None:
    """Print ``data`` as indented JSON on stdout."""
    sys.stdout.write(json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def handle_errors(func: Callable[P, R]) -> Callable[P, R]:
    """Turn :class:`SovereignError` into a one-line message and its exit code; a
    file this user may not read or write (another party's directory) into one
    naming the file, exit 2."""

    @wraps(func)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return func(*args, **kwargs)
        except SovereignError as exc:
            err_console.print(
                f"[bold red]error:[/] {exc.diagnostics()}",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(exc.exit_code) from None
        except PermissionError as exc:
            err_console.print(
                f"[bold red]error:[/] permission denied: {exc.filename or exc} "
                "(another party's file, or a directory this user does not own)",
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(ConfigError.exit_code) from None

    return wrapper
