"""TLS 1.3 contexts and SPIFFE-style identities for every service and client.

Services present a certificate from their own CA and, where they authorise by
role, require a client certificate from it (``ssl.CERT_REQUIRED``). Clients pin
the service's CA (never the system store) and check host names against the
server certificate's subjectAltName (RFC 6125). Both sides speak TLS 1.3 only
(RFC 8446).

A client certificate names its holder's party and role in one ``spiffe://``
URI subjectAltName (the SPIFFE X.509-SVID convention)::

    spiffe://<trust domain>/<role>/<name>      e.g. spiffe://aus/site/local

where the trust domain is the issuing CA's (a nation's CA issues
``spiffe://aus/...``). :class:`PeerIdentity` parses it; services decide what
each role may do.
"""

from __future__ import annotations

import re
import ssl
from dataclasses import dataclass
from pathlib import Path

from orchestrator.errors import ConfigError

__all__ = [
    "ROLES",
    "PeerIdentity",
    "client_context",
    "server_context",
    "spiffe_id",
]

#: Roles a certificate may grant.
ROLES = ("orchestrator", "site", "officer", "log", "custodian")
_SEGMENT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")


def spiffe_id(trust_domain: str, role: str, name: str) -> str:
    """``spiffe://<trust_domain>/<role>/<name>`` (lower-cased trust domain).

    Raises
    ------
    ConfigError
        If the role is unknown or a part is not a plain lower-case identifier.
    """
    domain = trust_domain.lower()
    if role not in ROLES:
        raise ConfigError(f"unknown role {role!r} (one of {', '.join(ROLES)})",
                          field="role")
    for part in (domain, name.lower()):
        if not _SEGMENT.match(part):
            raise ConfigError(f"{part!r} is not a plain identifier", field="name")
    return f"spiffe://{domain}/{role}/{name.lower()}"


@dataclass(frozen=True)
class PeerIdentity:
    """Who is on the other end of a mutually authenticated TLS connection.

    Attributes
    ----------
    trust_domain
        The issuing CA's trust domain (a nation code in lower case).
    role
        One of :data:`ROLES`.
    name
        The holder's name within the role (site name, nation, ``submit``).
    """

    trust_domain: str
    role: str
    name: str

    @classmethod
    def parse(cls, uri: str | None) -> PeerIdentity | None:
        """Parse a ``spiffe://domain/role/name`` URI; ``None`` if it is not one."""
        if uri is None:
            return None
        match = re.fullmatch(r"spiffe://([a-z0-9._-]+)/([a-z]+)/([a-z0-9._-]+)", uri)
        if match is None or match.group(2) not in ROLES:
            return None
        return cls(match.group(1), match.group(2), match.group(3))

    def __str__(self) -> str:
        return f"spiffe://{self.trust_domain}/{self.role}/{self.name}"


def _load_chain(context: ssl.SSLContext, cert: Path, key: Path) -> None:
    try:
        context.load_cert_chain(certfile=cert, keyfile=key)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"cannot load certificate and key: {exc}", source=str(cert)
        ) from exc


def _load_ca(context: ssl.SSLContext, ca: Path | bytes) -> None:
    try:
        if isinstance(ca, bytes):
            context.load_verify_locations(cadata=ca.decode("ascii"))
        else:
            context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError, UnicodeDecodeError) as exc:
        source = "<CA PEM>" if isinstance(ca, bytes) else str(ca)
        raise ConfigError(f"cannot load CA certificate: {exc}", source=source) from exc


def server_context(cert: Path, key: Path, client_ca: Path | None) -> ssl.SSLContext:
    """TLS 1.3 server context presenting ``cert``; with ``client_ca``, a client
    certificate chaining to it is required.

    Raises
    ------
    ConfigError
        If a file cannot be loaded.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    _load_chain(context, cert, key)
    if client_ca is not None:
        _load_ca(context, client_ca)
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(ca: Path | bytes, cert: Path | None,
                   key: Path | None) -> ssl.SSLContext:
    """TLS 1.3 client context pinning ``ca`` (a PEM file, or PEM bytes handed
    over by value) and presenting ``cert``/``key``.

    Only ``ca`` is trusted (not the system store); host names are checked against
    the server certificate's subjectAltName.

    Raises
    ------
    ConfigError
        If a file cannot be loaded.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.minimum_version = ssl.TLSVersion.TLSv1_3
    context.check_hostname = True
    context.verify_mode = ssl.CERT_REQUIRED
    _load_ca(context, ca)
    if cert is not None and key is not None:
        _load_chain(context, cert, key)
    return context
