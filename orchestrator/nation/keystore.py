"""The file keystore: a nation's versioned key-encryption key (KEK) in a 0600 file.

The KEK is a 32-byte AES-256 key used only for AES key wrap with padding
(RFC 5649). It is read inside :class:`FileKeystore` and never returned: callers get
``wrap``/``unwrap``, the interface that a PKCS#11 (HSM) backend implements as well.

File ``kek.json``::

    {"kek_id": "kek:AUS:1f2e...", "primary_version": 1,
     "versions": {"1": {"key": "<base64 32 bytes>", "created": "2026-11-21T..Z"}}}
"""

from __future__ import annotations

import json
import os
import secrets
import stat
from pathlib import Path
from typing import Any, Protocol

from orchestrator.canonical import b64d, b64e
from orchestrator.crypto import atomic_write_bytes, unwrap_dek, wrap_dek
from orchestrator.errors import ConfigError, IntegrityError

KEK_SIZE = 32  # bytes (AES-256)


class KekBackend(Protocol):
    """Where a nation's KEK lives; the KEK itself never crosses this boundary."""

    @property
    def kek_id(self) -> str:
        """Stable identifier of the KEK (all versions share it)."""
        ...

    @property
    def primary_version(self) -> int:
        """The version new wraps use."""
        ...

    def wrap(self, dek: bytes) -> tuple[int, bytes]:
        """Wrap ``dek`` (32 bytes) with the primary version -> (version, wrapped)."""
        ...

    def unwrap(self, kek_id: str, version: int, wrapped: bytes) -> bytes:
        """Unwrap with the given version; raises :class:`IntegrityError` on failure."""
        ...


class FileKeystore:
    """KEK backend reading ``path`` (a ``kek.json`` file with mode 0600)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._doc: dict[str, Any] | None = None

    @staticmethod
    def create(path: Path, nation: str, created: str) -> FileKeystore:
        """Generate a fresh KEK (version 1) into a new 0600 file at ``path``.

        Raises
        ------
        ConfigError
            If ``path`` already exists (a KEK is never silently replaced).
        """
        if path.exists():
            raise ConfigError(
                "a KEK already exists here; refusing to replace it", source=str(path)
            )
        doc = {
            "kek_id": f"kek:{nation}:{secrets.token_hex(8)}",
            "primary_version": 1,
            "versions": {
                "1": {"key": b64e(secrets.token_bytes(KEK_SIZE)), "created": created}
            },
        }
        atomic_write_bytes(path, json.dumps(doc, indent=1).encode(), mode=0o600)
        return FileKeystore(path)

    def _load(self) -> dict[str, Any]:
        if self._doc is None:
            try:
                mode = stat.S_IMODE(os.stat(self.path).st_mode)
                raw = self.path.read_bytes()
            except OSError as exc:
                raise ConfigError(
                    f"cannot read KEK file: {exc.strerror}", source=str(self.path)
                ) from exc
            if mode & 0o077:
                raise ConfigError(
                    f"KEK file permissions too open ({mode:o}); expected 600",
                    source=str(self.path),
                )
            try:
                doc = json.loads(raw)
                int(doc["primary_version"])
                str(doc["kek_id"])
                dict(doc["versions"])
            except (ValueError, KeyError, TypeError) as exc:
                raise ConfigError("malformed KEK file", source=str(self.path)) from exc
            self._doc = doc
        return self._doc

    def _key(self, version: int) -> bytes:
        entry = self._load()["versions"].get(str(version))
        if entry is None:
            raise IntegrityError(
                f"KEK version {version} does not exist", source=str(self.path)
            )
        key = b64d(entry["key"], what="KEK")
        if len(key) != KEK_SIZE:
            raise ConfigError("KEK is not 32 bytes", source=str(self.path))
        return key

    @property
    def kek_id(self) -> str:
        """Stable identifier of this KEK."""
        return str(self._load()["kek_id"])

    @property
    def primary_version(self) -> int:
        """The version used for new wraps."""
        return int(self._load()["primary_version"])

    def wrap(self, dek: bytes) -> tuple[int, bytes]:
        """Wrap ``dek`` (RFC 5649) under the primary version -> (version, wrapped)."""
        version = self.primary_version
        return version, wrap_dek(self._key(version), dek)

    def unwrap(self, kek_id: str, version: int, wrapped: bytes) -> bytes:
        """Unwrap ``wrapped`` (RFC 5649).

        Raises
        ------
        IntegrityError
            If ``kek_id`` is not this KEK, the version is unknown, or the wrapped key
            does not authenticate (wrong KEK, tampering).
        """
        if kek_id != self.kek_id:
            raise IntegrityError(
                f"data key is wrapped under {kek_id}, not under "
                f"this custodian's {self.kek_id}"
            )
        return unwrap_dek(self._key(version), wrapped)
