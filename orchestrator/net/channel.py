"""The CurveZMQ channel between an orchestrator's HTEX interchange and a site's
worker pools, with no secret crossing between them.

Parsl encrypts and authenticates HTEX traffic with CurveZMQ (RFC 26/CURVEZMQ of
the ZeroMQ RFCs) from one certificate directory (``parsl/curvezmq.py``): the
server's key pair, a client key pair, and every ``*.key`` public certificate in
it is a client the interchange accepts. Parsl makes that directory for itself
when its own provider starts the workers; when a site starts its own pools under
its own account, the two parties set it up as follows:

* the orchestrator keeps one server key pair and its executor's client key pair
  (``<orchestrator>/parsl/channel/``), and for each site a directory with both
  and the site's *public* client certificate (``<site>.key``): that interchange
  accepts that site's pools only;
* the site makes its own client key pair (its secret never leaves the site) and
  receives the orchestrator's server *public* key (the orchestrator's card).

Parsl's worker loads the server certificate through the same loader as a secret
certificate, which refuses a file without a secret key, so the site's copy of
the server certificate carries the real server public key and a placeholder
secret key of its own (:func:`write_server_public`): the worker uses only the
public key, and the server's secret stays with the orchestrator.

Keys are Z85 text (ZeroMQ RFC 32), 40 characters for a 32-byte Curve25519 key.
"""

from __future__ import annotations

import re
from pathlib import Path

import zmq
import zmq.auth

from orchestrator.errors import ConfigError, NotFound

__all__ = ["check_public", "new_key_pair", "public_key", "write_public",
           "write_server_public"]

_Z85_KEY = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")


def check_public(value: object, *, field: str, source: str = "<channel>") -> str:
    """Return ``value`` if it is a Z85 Curve25519 public key.

    Raises
    ------
    ConfigError
        If it is not 40 characters of the Z85 alphabet (``field`` named).
    """
    if not isinstance(value, str) or not _Z85_KEY.match(value):
        raise ConfigError("not a Z85 CurveZMQ public key (40 characters)",
                          source=source, field=field)
    return value


def new_key_pair(directory: Path, name: str) -> str:
    """Make ``name.key`` and ``name.key_secret`` in ``directory`` (mode ``0700``,
    as Parsl requires) unless they exist; return the public key."""
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    directory.chmod(0o700)
    if not (directory / f"{name}.key_secret").is_file():
        public, secret = zmq.curve_keypair()
        _write(directory / f"{name}.key_secret", public.decode(), secret.decode())
        _write(directory / f"{name}.key", public.decode(), None)
    return public_key(directory, name)


def public_key(directory: Path, name: str) -> str:
    """The public key of ``directory/name.key``.

    Raises
    ------
    NotFound
        If there is no such certificate.
    """
    path = directory / f"{name}.key"
    if not path.is_file():
        raise NotFound("no CurveZMQ certificate", source=str(path))
    public, _ = zmq.auth.load_certificate(str(path))
    return public.decode("ascii")


def _write(path: Path, public: str, secret: str | None) -> None:
    lines = ["#   ZeroMQ CURVE certificate (Sovereign Orchestrator, "
             "orchestrator.net.channel)", "", "metadata", "curve",
             f'    public-key = "{public}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret}"')
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("\n".join(lines) + "\n")
    tmp.chmod(0o600)
    tmp.replace(path)


def write_public(directory: Path, name: str, public: str) -> Path:
    """Write a public certificate ``directory/name.key`` (a client the
    interchange over ``directory`` accepts). Returns its path.

    Raises
    ------
    ConfigError
        If ``public`` is not a Z85 public key.
    """
    check_public(public, field="channel_public")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = directory / f"{name}.key"
    _write(path, public, None)
    return path


def write_server_public(directory: Path, server_public: str) -> None:
    """At the site: record the orchestrator's server public key in the
    directory its pools use (``server.key``, and ``server.key_secret`` with a
    placeholder secret key of the site's own, which Parsl's loader demands and
    the worker never uses; see the module docstring).

    Raises
    ------
    ConfigError
        If ``server_public`` is not a Z85 public key.
    """
    check_public(server_public, field="channel_public")
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    _, secret = zmq.curve_keypair()  # the placeholder: no key of the server's
    _write(directory / "server.key", server_public, None)
    _write(directory / "server.key_secret", server_public, secret.decode("ascii"))
