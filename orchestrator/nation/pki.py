"""One certificate authority per nation, and the TLS contexts built from it.

``sovereign custodian pki init AUS`` creates, under ``<state>/nations/AUS/pki/``
(directory ``0700``, keys ``0600``)::

    ca.pem, ca.key                  the nation's root CA (RFC 5280, cA=TRUE)
    server.pem, server.key          its custodian service (serverAuth, SAN hosts)
    clients/<name>.pem, .key        clientAuth certificates the service accepts:
                                    ``orchestrator``, ``officer`` and one
                                    ``site-<name>`` per registered site (enclaves)

The service demands a client certificate chaining to this CA
(``ssl.CERT_REQUIRED``); clients pin the same CA to authenticate the server. Both
sides speak TLS 1.3 only (RFC 8446). All X.509 work is done by
:mod:`orchestrator.crypto.x509`; this module only files PEM and builds
:class:`ssl.SSLContext` objects.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from orchestrator.crypto import atomic_write_bytes
from orchestrator.crypto.x509 import (
    IssuedCertificate,
    issue_certificate,
    new_certificate_authority,
)
from orchestrator.errors import AlreadyExists, ConfigError, NotFound
from orchestrator.net import tls
from orchestrator.registry import Registry
from orchestrator.state import StateDir

#: Host names and addresses in a custodian's server certificate by default.
DEFAULT_SERVER_HOSTS = ("127.0.0.1", "localhost", "::1")
#: Client identities issued by ``pki init`` besides one per registered site.
DEFAULT_CLIENTS = ("orchestrator", "officer")


@dataclass(frozen=True)
class NationPki:
    """Paths of nation ``nation``'s PKI files under ``directory``."""

    nation: str
    directory: Path

    @classmethod
    def of(cls, state: StateDir, nation: str) -> NationPki:
        """The PKI directory of ``nation`` in ``state``."""
        return cls(nation, state.nation_dir(nation) / "pki")

    @property
    def ca_cert(self) -> Path:
        """The CA certificate (PEM) clients pin."""
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        """The CA private key (PEM, ``0600``)."""
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        """The custodian service's certificate."""
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        """The custodian service's private key."""
        return self.directory / "server.key"

    def client_cert(self, name: str) -> Path:
        """Client certificate ``name``."""
        return self.directory / "clients" / f"{name}.pem"

    def client_key(self, name: str) -> Path:
        """Client private key ``name``."""
        return self.directory / "clients" / f"{name}.key"

    def clients(self) -> list[str]:
        """Names of the issued client certificates."""
        folder = self.directory / "clients"
        return sorted(p.stem for p in folder.glob("*.pem")) if folder.is_dir() else []

    def _ca(self) -> IssuedCertificate:
        try:
            return IssuedCertificate(
                self.ca_cert.read_bytes(), self.ca_key.read_bytes()
            )
        except FileNotFoundError as exc:
            raise NotFound(
                f"no CA for {self.nation}; run 'sovereign custodian pki init "
                f"{self.nation}'",
                source=str(self.directory),
            ) from exc

    def issue_client(self, name: str) -> tuple[Path, Path]:
        """Issue (or re-issue) client certificate ``name``; return (cert, key).

        Raises
        ------
        NotFound
            If the nation has no CA yet.
        ConfigError
            If ``name`` is not a plain file name.
        """
        if not name or "/" in name or name.startswith(".") or len(name) > 64:
            raise ConfigError(f"bad client name {name!r}", field="client")
        issued = issue_certificate(self._ca(), name, server=False)
        _write(self.client_cert(name), self.client_key(name), issued)
        return self.client_cert(name), self.client_key(name)


def _write(cert: Path, key: Path, issued: IssuedCertificate) -> None:
    cert.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write_bytes(key, issued.key_pem, mode=0o600)
    atomic_write_bytes(cert, issued.cert_pem, mode=0o644)


def init_pki(
    state: StateDir,
    nation: str,
    *,
    hosts: tuple[str, ...] = DEFAULT_SERVER_HOSTS,
    clients: tuple[str, ...] | None = None,
) -> NationPki:
    """Create ``nation``'s CA, its custodian's server certificate and client certs.

    Parameters
    ----------
    state
        The state directory; the nation must have been initialised.
    nation
        ISO 3166-1 alpha-3 code.
    hosts
        subjectAltName entries of the server certificate (the addresses clients
        dial; RFC 6125 matching).
    clients
        Client identities to issue; default ``orchestrator``, ``officer`` and
        ``site-<name>`` for every registered site.

    Raises
    ------
    NotFound
        If the nation is not initialised in ``state``.
    AlreadyExists
        If the nation already has a CA (certificates are never silently replaced).
    """
    Registry(state.registry_db).nation(nation)
    pki = NationPki.of(state, nation)
    if pki.ca_cert.exists():
        raise AlreadyExists(f"{nation} already has a CA", source=str(pki.ca_cert))
    if clients is None:
        sites = Registry(state.registry_db).sites()
        clients = (*DEFAULT_CLIENTS, *(f"site-{s.name}" for s in sites))
    pki.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    ca = new_certificate_authority(nation)
    server = issue_certificate(ca, f"{nation} custodian", server=True, hosts=hosts)
    _write(pki.server_cert, pki.server_key, server)
    for name in clients:
        _write(
            pki.client_cert(name),
            pki.client_key(name),
            issue_certificate(ca, name, server=False),
        )
    _write(pki.ca_cert, pki.ca_key, ca)  # last: its presence marks completion
    return pki


def server_context(pki: NationPki) -> ssl.SSLContext:
    """TLS 1.3 server context requiring a client certificate from ``pki``'s CA.

    Raises
    ------
    ConfigError
        If the server certificate, key or CA cannot be loaded.
    """
    return tls.server_context(pki.server_cert, pki.server_key, pki.ca_cert)


client_context = tls.client_context
