"""A party's own certificate authority on disk, and its service certificate.

Layout of a CA directory (``0700``; keys ``0600``)::

    ca.pem, ca.key          the root CA (RFC 5280, cA=TRUE, pathLen 0)
    server.pem, server.key  the party's TLS server certificate (serverAuth)

A nation's custodian runs one (the trust domain ``spiffe://aus/...``: it signs
the client certificates of the parties it deals with, from their CSRs); the log
operator runs one for its service. Clients pin ``ca.pem``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.crypto import atomic_write_bytes
from orchestrator.crypto.x509 import (
    IssuedCertificate,
    issue_certificate,
    issue_from_csr,
    new_certificate_authority,
)
from orchestrator.errors import AlreadyExists, NotFound

__all__ = ["DEFAULT_SERVER_HOSTS", "LocalCa"]

#: Host names and addresses in a server certificate by default.
DEFAULT_SERVER_HOSTS = ("127.0.0.1", "localhost", "::1")


@dataclass(frozen=True)
class LocalCa:
    """The CA files of one party under ``directory``."""

    directory: Path
    label: str

    @property
    def ca_cert(self) -> Path:
        """The CA certificate (PEM) that clients pin."""
        return self.directory / "ca.pem"

    @property
    def ca_key(self) -> Path:
        """The CA private key (PEM, ``0600``)."""
        return self.directory / "ca.key"

    @property
    def server_cert(self) -> Path:
        """The party's TLS server certificate."""
        return self.directory / "server.pem"

    @property
    def server_key(self) -> Path:
        """The party's TLS server key."""
        return self.directory / "server.key"

    def exists(self) -> bool:
        """Whether the CA is complete (its certificate is written last)."""
        return self.ca_cert.is_file()

    def init(self, hosts: tuple[str, ...] = DEFAULT_SERVER_HOSTS) -> LocalCa:
        """Create the CA and the server certificate for ``hosts``.

        Raises
        ------
        AlreadyExists
            If the CA exists (certificates are never silently replaced).
        """
        if self.exists():
            raise AlreadyExists(f"{self.label} already has a CA",
                                source=str(self.ca_cert))
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        ca = new_certificate_authority(self.label)
        server = issue_certificate(ca, f"{self.label} service", server=True,
                                   hosts=hosts)
        _write(self.server_cert, self.server_key, server)
        _write(self.ca_cert, self.ca_key, ca)  # last: marks completion
        return self

    def _ca(self) -> IssuedCertificate:
        try:
            return IssuedCertificate(self.ca_cert.read_bytes(),
                                     self.ca_key.read_bytes())
        except FileNotFoundError as exc:
            raise NotFound(f"{self.label} has no CA yet",
                           source=str(self.directory)) from exc

    def sign_csr(self, csr_pem: bytes, spiffe_id: str) -> bytes:
        """Issue a client certificate for a party's CSR, naming ``spiffe_id``.

        Raises
        ------
        NotFound
            If the CA does not exist.
        ConfigError
            If the CSR is malformed or its signature does not verify.
        """
        return issue_from_csr(self._ca(), csr_pem, spiffe_id=spiffe_id)


def _write(cert: Path, key: Path, issued: IssuedCertificate) -> None:
    cert.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    atomic_write_bytes(key, issued.key_pem, mode=0o600)
    atomic_write_bytes(cert, issued.cert_pem, mode=0o644)
