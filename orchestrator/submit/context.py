"""The orchestrator's own state, and the handles it holds on the other parties.

The orchestrator (the submit host) keeps, in its own directory (mode ``0700``)::

    orchestrator.key      its Ed25519 key (the only private signing key here)
    registry.db           its catalogue: nations' cards, sites, datasets, jobs,
                          models (public metadata and ciphertext paths only)
    objects/datasets/     sealed datasets handed to it (ciphertext only)
    objects/models/       sealed models returned by tasks (ciphertext only)
    runinfo/<job>/        Parsl run directories
    tls/client.key, tls/<NATION>.pem   its TLS key and each nation's certificate
    nations.toml          how it reaches remote custodians (url, CA, its cert)

:class:`Orchestrator` bundles that directory with a custody-log handle (it
writes its own events and reads public entries), a way to reach each nation's
custodian, and :attr:`Orchestrator.task_endpoints`: what a task is handed so it
can reach the log and the custodians itself (URLs and CA certificates by value).
It never holds a nation's, a site's or an officer's key.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.crypto import SigningKey, load_private_key, save_private_key
from orchestrator.crypto.x509 import new_key_and_csr
from orchestrator.errors import NotFound
from orchestrator.protocol.custodian import CustodianApi
from orchestrator.protocol.log import LogClient
from orchestrator.tlog.events import CustodyEvent, SignedEntry

__all__ = ["ORCHESTRATOR_ACTOR", "Orchestrator", "TaskEndpoints", "init_orchestrator"]

#: The orchestrator's actor name in the custody log.
ORCHESTRATOR_ACTOR = "orchestrator"


@dataclass(frozen=True)
class TaskEndpoints:
    """What a task is handed to reach the other parties (all public).

    Attributes
    ----------
    log
        ``{"url", "ca_pem"}`` of the custody log service.
    custodians
        Nation -> ``{"url", "ca_pem"}`` of its custodian service.
    objects
        Base URL from which tasks stage sealed datasets (HTTP).
    site_dirs
        Site -> the site's own directory as its workers see it.
    """

    log: dict[str, str]
    custodians: dict[str, dict[str, str]]
    objects: str
    site_dirs: dict[str, str] = field(default_factory=dict)


@dataclass
class Orchestrator:
    """The orchestrator's directory and its handles (see the module docstring).

    Parameters
    ----------
    root
        The orchestrator's own directory.
    log
        The custody log.
    connect
        Nation -> its custodian (service client, or in-process in the embedded
        default).
    task_endpoints
        A context manager giving the :class:`TaskEndpoints` tasks are handed for
        as long as it is held (the embedded default starts loopback services for
        its duration; a separated deployment names the running services).
    """

    root: Path
    log: LogClient
    connect: Callable[[str], CustodianApi]
    task_endpoints: Callable[[], AbstractContextManager[TaskEndpoints]]

    @property
    def registry_db(self) -> Path:
        """The orchestrator's registry (SQLite)."""
        return self.root / "registry.db"

    @property
    def orchestrator_key(self) -> Path:
        """The orchestrator's signing key file."""
        return self.root / "orchestrator.key"

    @property
    def datasets_dir(self) -> Path:
        """Sealed datasets (ciphertext)."""
        return self.root / "objects" / "datasets"

    @property
    def models_dir(self) -> Path:
        """Sealed models (ciphertext)."""
        return self.root / "objects" / "models"

    @property
    def runinfo_dir(self) -> Path:
        """Parent of Parsl run directories."""
        return self.root / "runinfo"

    @property
    def signer(self) -> SigningKey:
        """The orchestrator's Ed25519 key.

        Raises
        ------
        NotFound
            If the orchestrator is not initialised.
        """
        if not self.orchestrator_key.exists():
            raise NotFound("the orchestrator is not initialised here",
                           source=str(self.root))
        return load_private_key(self.orchestrator_key)

    def record(self, kind: str, body: dict[str, Any]) -> SignedEntry:
        """Sign and durably log one event in the orchestrator's name.

        Raises
        ------
        LedgerError
            If the log did not acknowledge it.
        """
        return self.log.append(CustodyEvent.create(kind, ORCHESTRATOR_ACTOR, body),
                               self.signer)

    @property
    def tls_key(self) -> Path:
        """The orchestrator's TLS key."""
        return self.root / "tls" / "client.key"

    @property
    def csr(self) -> Path:
        """The CSR nations sign for it."""
        return self.root / "tls" / "client.csr"

    def client_cert(self, nation: str) -> Path:
        """The client certificate ``nation`` issued it."""
        return self.root / "tls" / f"{nation}.pem"


def init_orchestrator(root: Path) -> SigningKey:
    """Create the orchestrator's directory, key, its self-signed log enrollment
    (``enrollment.json``, for the log operator) and TLS key/CSR (idempotent);
    return its signing key."""
    import json

    from orchestrator.crypto import atomic_write_bytes
    from orchestrator.protocol.parties import enrollment

    for folder in (root, root / "objects" / "datasets", root / "objects" / "models",
                   root / "runinfo", root / "tls"):
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path = root / "orchestrator.key"
    if not key_path.exists():
        save_private_key(key_path, SigningKey.generate())
    key = load_private_key(key_path)
    if not (root / "enrollment.json").exists():
        atomic_write_bytes(root / "enrollment.json", json.dumps(
            enrollment(ORCHESTRATOR_ACTOR, key).to_json(), sort_keys=True).encode(),
            mode=0o644)
    if not (root / "tls" / "client.key").exists():
        key_pem, csr_pem = new_key_and_csr("orchestrator")
        atomic_write_bytes(root / "tls" / "client.key", key_pem, mode=0o600)
        atomic_write_bytes(root / "tls" / "client.csr", csr_pem, mode=0o644)
    return key
