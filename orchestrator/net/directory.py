"""A party's directory of custodian services: how it reaches each nation.

``nations.toml`` in the party's own directory (``0600``) holds one table per
nation::

    [nations.AUS]
    url = "https://127.0.0.1:8443"             # the custodian service
    ca = "/.../AUS-ca.pem"                     # the nation's CA, pinned
    cert = "/.../tls/AUS.pem"                  # this party's client certificate
    key = "/.../tls/AUS.key"                   # and its key

A nation listed here is reached over mutual TLS
(:mod:`orchestrator.net.custodian_client`), presenting the party's own client
certificate.
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from orchestrator.crypto import atomic_write_bytes
from orchestrator.crypto.x509 import certificate_info, check_issued_by
from orchestrator.errors import ConfigError, NotFound
from orchestrator.labels import parse_nation
from orchestrator.net.custodian_client import NationEntry

FILE_NAME = "nations.toml"


def _check_url(url: str, source: str) -> str:
    parts = urlsplit(url)
    if parts.scheme != "https" or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError(
            f"custodian url must be https://HOST:PORT, not {url!r}",
            source=source,
            field="url",
        )
    return url.rstrip("/")


def _entry(nation: str, table: Any, source: str) -> NationEntry:
    field = f"nations.{nation}"
    if not isinstance(table, dict):
        raise ConfigError("must be a table", source=source, field=field)
    unknown = set(table) - {"url", "ca", "cert", "key"}
    if unknown:
        raise ConfigError(f"unknown keys {sorted(unknown)}", source=source, field=field)
    for name in ("url", "ca"):
        if not isinstance(table.get(name), str):
            raise ConfigError(
                "missing or not text", source=source, field=f"{field}.{name}"
            )
    cert, key = table.get("cert"), table.get("key")
    if (cert is None) != (key is None) or not all(
        v is None or isinstance(v, str) for v in (cert, key)
    ):
        raise ConfigError(
            "cert and key must be given together, as paths",
            source=source,
            field=field,
        )
    return NationEntry(
        nation=parse_nation(nation, source=source, field=field),
        url=_check_url(table["url"], source),
        ca=Path(table["ca"]),
        cert=None if cert is None else Path(cert),
        key=None if key is None else Path(key),
    )


def load_directory(directory: Path) -> dict[str, NationEntry]:
    """Read the nation directory; an absent file is an empty directory.

    Raises
    ------
    ConfigError
        If the file is not UTF-8, not valid TOML, or an entry is malformed (file
        and field named).
    """
    path = Path(directory) / FILE_NAME
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    except UnicodeDecodeError as exc:
        raise ConfigError(f"not UTF-8 text: {exc}", source=str(path)) from exc
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"not valid TOML: {exc}", source=str(path)) from exc
    nations = doc.get("nations", {})
    if not isinstance(nations, dict):
        raise ConfigError("must be a table", source=str(path), field="nations")
    return {
        code: _entry(code, table, str(path)) for code, table in sorted(nations.items())
    }


def _save(directory: Path, entries: dict[str, NationEntry]) -> None:
    lines = [
        "# Sovereign Orchestrator nation directory: custodian services over mTLS.",
        "# Written by 'sovereign custodian register'.",
    ]
    for code in sorted(entries):
        lines.append("")
        lines.append(f"[nations.{code}]")
        for name, value in entries[code].to_json().items():
            lines.append(f"{name} = {json.dumps(value)}")  # JSON strings are TOML
    atomic_write_bytes(
        Path(directory) / FILE_NAME, ("\n".join(lines) + "\n").encode(), mode=0o600
    )


def register_nation(directory: Path, entry: NationEntry) -> NationEntry:
    """Add or replace ``entry.nation`` in the directory after checking its files.

    The CA must be a CA certificate and the client certificate, when given, must
    be issued by it (RFC 5280); the key file must exist.

    Raises
    ------
    NotFound
        If a named file does not exist.
    ConfigError
        If the URL or a certificate is malformed.
    IntegrityError
        If the client certificate was not issued by the CA.
    """
    source = str(Path(directory) / FILE_NAME)
    url = _check_url(entry.url, source)
    files = [p for p in (entry.ca, entry.cert, entry.key) if p is not None]
    for path in files:
        if not path.is_file():
            raise NotFound("no such file", source=str(path))
    ca_pem = entry.ca.read_bytes()
    if not certificate_info(ca_pem).is_ca:
        raise ConfigError("not a CA certificate", source=str(entry.ca))
    if entry.cert is not None:
        check_issued_by(entry.cert.read_bytes(), ca_pem)
    resolved = NationEntry(
        nation=entry.nation,
        url=url,
        ca=entry.ca.resolve(),
        cert=None if entry.cert is None else entry.cert.resolve(),
        key=None if entry.key is None else entry.key.resolve(),
    )
    entries = load_directory(directory)
    entries[entry.nation] = resolved
    _save(directory, entries)
    return resolved


def unregister_nation(directory: Path, nation: str) -> None:
    """Remove ``nation`` from the directory.

    Raises
    ------
    NotFound
        If ``nation`` is not in the directory.
    """
    entries = load_directory(directory)
    if nation not in entries:
        raise NotFound(f"{nation} is not in the nation directory")
    del entries[nation]
    _save(directory, entries)
