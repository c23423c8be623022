"""A party's entry for the custody log service: where it writes and reads the log.

``log.toml`` in the party's own directory (``0600``)::

    [log]
    url = "https://127.0.0.1:8444"      # the log service (sovereign log serve)
    ca = "/.../log-ca.pem"              # the log service's CA, pinned

A party with this entry holds an :class:`~orchestrator.net.log_client.HttpLog`
and never opens the log's storage: in a separated deployment the orchestrator's
user cannot read the log operator's directory at all. Without it the embedded
default's in-process log operator is used.
"""

from __future__ import annotations

import json
import tomllib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from orchestrator.crypto import atomic_write_bytes
from orchestrator.crypto.x509 import certificate_info
from orchestrator.errors import ConfigError, NotFound

__all__ = ["FILE_NAME", "LogEntry", "load_log_entry", "register_log", "unregister_log"]

FILE_NAME = "log.toml"


@dataclass(frozen=True)
class LogEntry:
    """The log service a party uses: ``url`` (``https://HOST:PORT``) and the
    path of its CA certificate (PEM)."""

    url: str
    ca: Path


def _check_url(url: object, source: str) -> str:
    if not isinstance(url, str):
        raise ConfigError("missing or not text", source=source, field="log.url")
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(f"log url must be https://HOST:PORT, not {url!r}",
                          source=source, field="log.url")
    return url.rstrip("/")


def load_log_entry(directory: Path) -> LogEntry | None:
    """The entry in ``directory``, or ``None`` when the party has none.

    Raises
    ------
    ConfigError
        If the file is not UTF-8 TOML or its ``[log]`` table is malformed (file
        and field named).
    """
    path = Path(directory) / FILE_NAME
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc}", source=source) from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=source) from exc
    table = doc.get("log")
    if not isinstance(table, dict):
        raise ConfigError("missing or not a table", source=source, field="log")
    unknown = set(table) - {"url", "ca"}
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)}", source=source, field="log")
    if not isinstance(table.get("ca"), str):
        raise ConfigError("missing or not text", source=source, field="log.ca")
    return LogEntry(url=_check_url(table.get("url"), source), ca=Path(table["ca"]))


def register_log(directory: Path, url: str, ca: Path) -> LogEntry:
    """Write the entry after checking that ``ca`` is a CA certificate.

    Raises
    ------
    NotFound
        If ``ca`` does not exist.
    ConfigError
        If the URL is not ``https://HOST:PORT`` or ``ca`` is not a CA certificate.
    """
    source = str(Path(directory) / FILE_NAME)
    clean = _check_url(url, source)
    if not ca.is_file():
        raise NotFound("no such file", source=str(ca))
    if not certificate_info(ca.read_bytes()).is_ca:
        raise ConfigError("not a CA certificate", source=str(ca))
    entry = LogEntry(url=clean, ca=ca.resolve())
    text = ("# Sovereign Orchestrator: the custody log service this party uses.\n"
            "# Written by 'sovereign log register'.\n\n[log]\n"
            f"url = {json.dumps(entry.url)}\nca = {json.dumps(str(entry.ca))}\n")
    atomic_write_bytes(Path(directory) / FILE_NAME, text.encode(), mode=0o600)
    return entry


def unregister_log(directory: Path) -> None:
    """Remove the entry (the in-process log is used again).

    Raises
    ------
    NotFound
        If there is none.
    """
    path = Path(directory) / FILE_NAME
    try:
        path.unlink()
    except FileNotFoundError:
        raise NotFound("no log service is registered", source=str(path)) from None
