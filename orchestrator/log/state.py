"""The log operator's own directory, and its one identity.

A log *is* its checkpoint key: the origin officers and witnesses pin is derived
from it (C2SP tlog-checkpoint). So the key is made exactly once, when the
directory is first set up, and its verifier key is kept beside it
(``log.vkey``). After that a missing or different ``log.key`` is an error
naming the file, never a fresh key: a new key would be a new log, and the
parties that pinned the old one would be told nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from orchestrator.crypto import (
    SigningKey,
    atomic_write_bytes,
    load_private_key,
    save_private_key,
)
from orchestrator.crypto.x509 import new_key_and_csr
from orchestrator.errors import IntegrityError, NotFound
from orchestrator.net.ca import LocalCa
from orchestrator.tlog.names import origin_for
from orchestrator.tlog.note import NoteSigner

__all__ = ["LogState"]


@dataclass(frozen=True)
class LogState:
    """The log operator's own directory (mode 0700).

    ``log.key`` (0600) signs checkpoints and ``log.vkey`` is its verifier key;
    ``custody.db`` holds the entries unless ``storage`` names a database URL
    (``postgresql://...``).
    """

    root: Path
    storage: str | None = None

    @property
    def key_path(self) -> Path:
        """The checkpoint signing key."""
        return self.root / "log.key"

    @property
    def vkey_path(self) -> Path:
        """The log's verifier key, written with the key (``name+hint+base64``)."""
        return self.root / "log.vkey"

    @property
    def target(self) -> Path | str:
        """Where the entries live: an SQLite file or a database URL."""
        return self.storage or self.root / "custody.db"

    @property
    def tls(self) -> LocalCa:
        """The log service's CA and server certificate (``tls/``)."""
        return LocalCa(self.root / "tls", "custody log")

    @property
    def client_dir(self) -> Path:
        """The operator's TLS client material for asking nations to witness:
        ``client.key``, ``client.csr`` and ``<NATION>.pem`` (role ``log``)."""
        return self.root / "client"

    def initialised(self) -> bool:
        """Whether this directory was set up as a log (its key made once)."""
        return any(p.exists() for p in (self.key_path, self.vkey_path,
                                        self.root / "custody.db", self.client_dir))

    def ensure(self) -> LogState:
        """Set the directory up on first use (0700: the log key, its verifier
        key, the operator's TLS client key and CSR); afterwards check the key is
        still the log's.

        Raises
        ------
        IntegrityError
            The directory was set up before and ``log.key`` is missing or is not
            the key ``log.vkey`` names.
        """
        fresh = not self.initialised()
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        if fresh:
            key = SigningKey.generate()
            save_private_key(self.key_path, key)
            atomic_write_bytes(self.vkey_path, _vkey(key).encode() + b"\n", mode=0o644)
        self.log_key()
        if not (self.client_dir / "client.csr").exists():
            self.client_dir.mkdir(mode=0o700, exist_ok=True)
            key_pem, csr_pem = new_key_and_csr("custody-log")
            atomic_write_bytes(self.client_dir / "client.key", key_pem, mode=0o600)
            atomic_write_bytes(self.client_dir / "client.csr", csr_pem, mode=0o644)
        return self

    def log_key(self) -> SigningKey:
        """The checkpoint signing key (checked against ``log.vkey`` when kept).

        Raises
        ------
        NotFound
            The directory was never set up as a log.
        IntegrityError
            It was, and the key is missing or is another log's.
        """
        if not self.key_path.exists():
            if self.initialised():
                raise IntegrityError(
                    "the custody log's key is missing: this log was initialised "
                    "here, so a new key would be a new log that officers and "
                    "witnesses have not pinned; restore log.key from its backup",
                    source=str(self.key_path))
            raise NotFound("the custody log has no key yet (sovereign log init)",
                           source=str(self.root))
        key = load_private_key(self.key_path)
        if self.vkey_path.exists():
            kept = self.vkey_path.read_text().strip()
            if kept != _vkey(key):
                raise IntegrityError(f"log.key is not the key of this log ({kept})",
                                     source=str(self.key_path))
        return key


def _vkey(key: SigningKey) -> str:
    return NoteSigner(origin_for(key), key).verifier().vkey()
