"""A site's own directory: its signing key, its TLS identities, its description.

``sovereign site init site.toml`` runs *at the site* and creates, in the site's
own directory (mode ``0700``, the site's Unix account)::

    site.key            Ed25519 key signing evidence, provenance and task events
    site.json           its signed description (site-description/v1): the public
                        key, the operator nation and ceiling it claims, config digest
    enrollment.json     its self-signed actor.enrolled event, for the log operator
    tls/client.key      its TLS key (P-256); tls/client.csr the CSR nations sign
    tls/<NATION>.pem    the client certificate each accrediting nation issued
    accreditations/<NATION>.json   the accreditation each nation signed
    parsl/certificates/ its CurveZMQ client key pair for its own worker pools
                        and the orchestrator's server public key
                        (:mod:`orchestrator.net.channel`)
    objects/checkpoints/<job>/     sealed checkpoints (ciphertext only)
    staging/            sealed datasets staged in for tasks (ciphertext only)

What leaves the site is public: the description, the enrollment, the CSR and
its CurveZMQ public key (together: its card, :func:`site_card`).
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
from orchestrator.errors import AlreadyExists, ConfigError, NotFound
from orchestrator.protocol.parties import SiteDescription, enrollment
from orchestrator.timeutil import Clock, system_clock

__all__ = ["SiteState", "init_site"]


@dataclass(frozen=True)
class SiteState:
    """Site ``name``'s own directory (see the module docstring)."""

    root: Path

    @property
    def key_path(self) -> Path:
        """The site's signing key."""
        return self.root / "site.key"

    def exists(self) -> bool:
        """Whether the site was initialised here."""
        return self.key_path.is_file()

    def signing_key(self) -> SigningKey:
        """The site's Ed25519 key.

        Raises
        ------
        NotFound
            If the site is not initialised here.
        """
        if not self.exists():
            raise NotFound("no site here (sovereign site init)", source=str(self.root))
        return load_private_key(self.key_path)

    def description(self) -> SiteDescription:
        """The site's signed description (re-verified).

        Raises
        ------
        NotFound
            If there is none.
        """
        path = self.root / "site.json"
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError as exc:
            raise NotFound("no site description here", source=str(path)) from exc
        except ValueError as exc:
            raise ConfigError("malformed site description", source=str(path)) from exc
        return SiteDescription.verify(doc, source=str(path))

    @property
    def name(self) -> str:
        """The site's name."""
        return self.description().site

    @property
    def actor(self) -> str:
        """The site's actor name in the custody log."""
        return f"site:{self.name}"

    @property
    def tls_key(self) -> Path:
        """The site's TLS private key."""
        return self.root / "tls" / "client.key"

    @property
    def csr(self) -> Path:
        """The CSR nations sign (PEM)."""
        return self.root / "tls" / "client.csr"

    def client_cert(self, nation: str) -> Path:
        """The client certificate ``nation`` issued this site."""
        return self.root / "tls" / f"{nation}.pem"

    def keep_accreditation(self, nation: str, accreditation: dict[str, Any],
                           cert_pem: bytes | None) -> None:
        """Keep the accreditation document (and client certificate) a nation gave."""
        folder = self.root / "accreditations"
        folder.mkdir(mode=0o700, exist_ok=True)
        atomic_write_bytes(folder / f"{nation}.json",
                           json.dumps(accreditation, indent=1).encode(), mode=0o600)
        if cert_pem is not None:
            atomic_write_bytes(self.client_cert(nation), cert_pem, mode=0o644)

    @property
    def channel_dir(self) -> Path:
        """The CurveZMQ certificate directory of its worker pools."""
        return self.root / "parsl" / "certificates"

    def channel_public(self) -> str:
        """Its CurveZMQ client public key (Z85), made on first use."""
        from orchestrator.net.channel import new_key_pair

        return new_key_pair(self.channel_dir, "client")

    def trust_channel(self, server_public: str) -> None:
        """Record the orchestrator's interchange public key (from its card).

        Raises
        ------
        ConfigError
            If it is not a Z85 public key.
        """
        from orchestrator.net.channel import write_server_public

        self.channel_public()
        write_server_public(self.channel_dir, server_public)

    @property
    def checkpoints_root(self) -> Path:
        """Root under which sealed checkpoints live (``objects/checkpoints/``)."""
        return self.root

    @property
    def staging(self) -> Path:
        """Where sealed datasets are staged in."""
        return self.root / "staging"


def init_site(root: Path, *, name: str, operator_nation: str, accreditation: str,
              config_digest: str, tee_kinds: tuple[str, ...] = ("none",),
              clock: Clock = system_clock) -> SiteState:
    """Create the site's keys and signed description in its own directory.

    Raises
    ------
    AlreadyExists
        If a site key exists there (keys are never replaced).
    """
    site = SiteState(root)
    if site.exists():
        raise AlreadyExists(f"a site is already initialised in {root}",
                            source=str(root))
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = SigningKey.generate()
    save_private_key(site.key_path, key)
    description = SiteDescription.create(
        name, operator_nation=operator_nation, accreditation=accreditation,
        key=key, config_digest=config_digest, tee_kinds=tee_kinds, now=clock())
    atomic_write_bytes(root / "site.json",
                       json.dumps(description.to_json(), indent=1).encode(),
                       mode=0o644)
    atomic_write_bytes(root / "enrollment.json",
                       json.dumps(enrollment(f"site:{name}", key).to_json(),
                                  indent=1).encode(), mode=0o644)
    tls = root / "tls"
    tls.mkdir(mode=0o700, exist_ok=True)
    key_pem, csr_pem = new_key_and_csr(f"site {name}")
    atomic_write_bytes(site.tls_key, key_pem, mode=0o600)
    atomic_write_bytes(site.csr, csr_pem, mode=0o644)
    for folder in ("objects", "staging"):
        (root / folder).mkdir(mode=0o700, exist_ok=True)
    site.channel_public()
    return site
