"""``sovereign log``: the custody log operator's commands.

``init`` (the log key, storage and the service's CA), ``serve`` (the C2SP
tlog-tiles HTTPS service; :mod:`orchestrator.log.service`), ``enroll FILE`` (an
actor's self-signed enrollment, the operator's decision), ``key`` (the verifier
key officers and witnesses pin), ``actors`` (who may write); and, run by the
orchestrator, ``register --url --ca`` / ``unregister`` (which log service it
uses).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli._common import (
    JsonOpt,
    StateOpt,
    ca_of,
    console,
    emit_json,
    handle_errors,
    state_of,
)
from orchestrator.errors import ConfigError
from orchestrator.log.operator import LogOperator, LogState
from orchestrator.net.ca import DEFAULT_SERVER_HOSTS
from orchestrator.net.log_directory import register_log, unregister_log
from orchestrator.net.service import DEFAULT_HOST
from orchestrator.protocol.log import SignedEvent

app = typer.Typer(no_args_is_help=True, help="Custody log operator: serve, enroll.")

#: Default TCP port of the log service.
DEFAULT_LOG_PORT = 8440


def log_state(state_dir: Path | None, storage: str | None = None) -> LogState:
    """The log operator's directory within the chosen state directory."""
    return LogState(state_of(state_dir).log_dir, storage=storage)


@app.command("init")
@handle_errors
def init(
    host: Annotated[list[str] | None, typer.Option(
        "--host", help="Server certificate host/IP (repeatable).")] = None,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="postgresql://... URL (default: SQLite in the dir).")] = None,
    card: Annotated[Path | None, typer.Option(
        "--card", help="write the log's card here (public: for officers, nations "
        "and the orchestrator)")] = None,
    state_dir: StateOpt = None,
) -> None:
    """Create the log key, its storage and the service's CA and certificate."""
    from orchestrator.embedded.standalone import log_card
    from orchestrator.protocol.cards import write_card

    state = log_state(state_dir, storage)
    operator = LogOperator(state)
    if not state.tls.exists():
        state.tls.init(tuple(host) if host else DEFAULT_SERVER_HOSTS)
    console.print(f"custody log {operator.origin} in {state.root}; pin "
                  f"{operator.vkey} and CA {state.tls.ca_cert}", highlight=False)
    if card is not None:
        write_card(card, log_card(state_of(state_dir)).to_json())
        console.print(f"card {card}", highlight=False)


@app.command("serve")
@handle_errors
def serve_command(
    host: Annotated[str, typer.Option(help="Bind address.")] = DEFAULT_HOST,
    port: Annotated[int, typer.Option(help="TCP port.")] = DEFAULT_LOG_PORT,
    storage: Annotated[str | None, typer.Option(
        "--storage", help="postgresql://... URL (default: SQLite in the dir).")] = None,
    log_level: Annotated[str, typer.Option("--log-level")] = "warning",
    max_skew: Annotated[float, typer.Option(
        "--max-skew", min=1.0, max=3600.0,
        help="seconds an event's time may differ from this clock")] = 300.0,
    checkpoint_interval: Annotated[float, typer.Option(
        "--checkpoint-interval", min=0.1, max=3600.0,
        help="seconds between checkpoints (published when the log grew)")] = 1.0,
    state_dir: StateOpt = None,
) -> None:
    """Serve the custody log over HTTPS (tlog-tiles reads, signed writes)."""
    from orchestrator.log.service import create_app
    from orchestrator.net.service import serve
    from orchestrator.net.tls import server_context

    state = log_state(state_dir, storage)
    if not state.tls.exists():
        raise ConfigError("the log has no TLS certificate (sovereign log init)",
                          source=str(state.root))
    operator = LogOperator(state)
    console.print(f"custody log {operator.origin} serving on https://{host}:{port}",
                  highlight=False)
    serve(create_app(operator, max_skew_s=max_skew,
                     checkpoint_interval_s=checkpoint_interval), host=host, port=port,
          log_level=log_level,
          context=server_context(state.tls.server_cert, state.tls.server_key, None))


@app.command("enroll")
@handle_errors
def enroll(
    files: Annotated[list[Path], typer.Argument(help="Enrollment JSON file(s).")],
    state_dir: StateOpt = None,
) -> None:
    """Enroll actors (each file: a party's or nation's card, or a self-signed
    actor.enrolled event)."""
    from orchestrator.embedded.handover import log_enroll

    operator = LogOperator(log_state(state_dir))
    for path in files:
        try:
            doc = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"unreadable or not JSON: {exc}",
                              source=str(path)) from exc
        if isinstance(doc, dict) and "statement" in doc:  # a card
            entry = log_enroll(state_of(state_dir), path)
        else:
            entry = operator.enroll(SignedEvent.from_json(doc))
        console.print(f"enrolled {entry.event.actor} (key {entry.signer}) as entry "
                      f"{entry.seq}", highlight=False)


@app.command("key")
@handle_errors
def key(state_dir: StateOpt = None) -> None:
    """Print the log's verifier key (what officers and witnesses pin)."""
    print(LogOperator(log_state(state_dir)).vkey)


@app.command("actors")
@handle_errors
def actors(state_dir: StateOpt = None, json_out: JsonOpt = False) -> None:
    """List the enrolled actors and their key ids."""
    found = LogOperator(log_state(state_dir)).actors()
    if json_out:
        emit_json(found)
        return
    for actor, key_id in found.items():
        console.print(f"{actor}  {key_id}", highlight=False)


@app.command("register")
@handle_errors
def register(
    url: Annotated[str, typer.Option("--url", help="https://HOST:PORT")],
    ca: Annotated[Path, typer.Option(
        "--ca", help="The log service's CA (PEM) or the log's card.")],
    state_dir: StateOpt = None,
) -> None:
    """(Orchestrator) write and read the custody log through the service at URL
    from now on, never its storage (``log.toml`` in the orchestrator's dir; the
    CA is kept there as ``log-ca.pem``)."""
    from orchestrator.crypto import atomic_write_bytes

    root = state_of(state_dir).orchestrator_dir
    pem = ca_of(ca)
    if not root.is_dir():
        raise ConfigError("no orchestrator here (sovereign orchestrator init)",
                          source=str(root))
    pinned = root / "log-ca.pem"
    atomic_write_bytes(pinned, pem, mode=0o644)
    entry = register_log(root, url, pinned)
    console.print(f"custody log service registered at {entry.url} (CA {entry.ca})",
                  highlight=False)


@app.command("unregister")
@handle_errors
def unregister(state_dir: StateOpt = None) -> None:
    """(Orchestrator) forget the log service: the in-process log is used again."""
    unregister_log(state_of(state_dir).orchestrator_dir)
    console.print("custody log service unregistered", highlight=False)
