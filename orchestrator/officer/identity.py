"""A sovereignty officer's own directory: its key, what it trusts, what it saw.

``sovereign officer init AUS`` creates, in the officer's own directory (mode
``0700``)::

    officer.key        Ed25519 key signing the officer's statements and events
    enrollment.json    its self-signed actor.enrolled event, for the log operator
    tls/client.key     its TLS key; tls/client.csr the CSR its nation signs;
    tls/<NATION>.pem   the client certificate its nation issued (role officer)
    trust.json         its trust configuration (:mod:`orchestrator.officer.trust`)
    checkpoint.json    the last custody-log checkpoint it verified

Only the officer's public key leaves: the nation pins it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.crypto import (
    SigningKey,
    atomic_write_bytes,
    load_private_key,
    save_private_key,
)
from orchestrator.crypto.x509 import new_key_and_csr
from orchestrator.errors import AlreadyExists, NotFound
from orchestrator.protocol.log import SignedEvent
from orchestrator.protocol.parties import enrollment
from orchestrator.tlog.events import CustodyEvent

__all__ = ["OfficerState", "init_officer"]


@dataclass(frozen=True)
class OfficerState:
    """Nation ``nation``'s officer's own directory."""

    root: Path
    nation: str

    @property
    def actor(self) -> str:
        """The officer's actor name in the custody log."""
        return f"officer:{self.nation}"

    def exists(self) -> bool:
        """Whether the officer was initialised here."""
        return (self.root / "officer.key").is_file()

    def key(self) -> SigningKey:
        """The officer's signing key.

        Raises
        ------
        NotFound
            If the officer is not initialised here.
        """
        if not self.exists():
            raise NotFound(f"no {self.nation} officer key here (sovereign officer "
                           f"init {self.nation})", source=str(self.root))
        return load_private_key(self.root / "officer.key")

    def public_key(self) -> bytes:
        """The officer's public key."""
        return self.key().public_bytes()

    def sign_event(self, kind: str, body: dict[str, Any], *,
                   event_id: str | None = None) -> SignedEvent:
        """An event in the officer's name, signed with its key."""
        return SignedEvent.create(
            CustodyEvent.create(kind, self.actor, body, event_id=event_id), self.key())

    @property
    def tls_key(self) -> Path:
        """The officer's TLS key."""
        return self.root / "tls" / "client.key"

    @property
    def csr(self) -> Path:
        """The CSR its nation signs."""
        return self.root / "tls" / "client.csr"

    def client_cert(self, nation: str | None = None) -> Path:
        """The client certificate ``nation`` (default: its own) issued it."""
        return self.root / "tls" / f"{nation or self.nation}.pem"

    def keep_client_cert(self, cert_pem: bytes, nation: str | None = None) -> None:
        """Keep a client certificate issued to this officer."""
        atomic_write_bytes(self.client_cert(nation), cert_pem, mode=0o644)


def init_officer(root: Path, nation: str) -> OfficerState:
    """Create nation ``nation``'s officer key, enrollment and TLS key in ``root``.

    Raises
    ------
    AlreadyExists
        If an officer key exists there.
    """
    officer = OfficerState(root, nation)
    if officer.exists():
        raise AlreadyExists(f"an officer of {nation} is already initialised here",
                            source=str(root))
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = SigningKey.generate()
    save_private_key(root / "officer.key", key)
    atomic_write_bytes(root / "enrollment.json", json.dumps(
        enrollment(officer.actor, key).to_json(), indent=1).encode(), mode=0o644)
    (root / "tls").mkdir(mode=0o700, exist_ok=True)
    key_pem, csr_pem = new_key_and_csr(f"officer {nation}")
    atomic_write_bytes(officer.tls_key, key_pem, mode=0o600)
    atomic_write_bytes(officer.csr, csr_pem, mode=0o644)
    return officer
