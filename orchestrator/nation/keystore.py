"""KEK backends: the lifecycle-enforcing base and the file keystore (the default).

A nation's key-encryption key (KEK) is an AES-256 key used only for AES key wrap
with padding (RFC 5649, ``CKM_AES_KEY_WRAP_PAD`` in PKCS#11 v2.40 / v3.0). It never
crosses the :class:`KekBackend` boundary: callers get ``wrap``, ``unwrap`` and
``rewrap``. :class:`ManagedKeystore` enforces the KEK lifecycle
(:mod:`orchestrator.nation.lifecycle`: versions, rotation, disable, scheduled
deletion, ``min_decryption_version``) over the key-material operations of a
backend: :class:`FileKeystore` here, or
:class:`orchestrator.nation.pkcs11_keystore.Pkcs11Keystore` (an HSM through
PKCS#11). Both produce the same RFC 5649 wrapped keys (40 bytes for a 32-byte DEK).

Lifecycle changes are *audited*: the change is prepared, the ``audit`` callback
(which appends a custody event signed by the custodian) is called, and only if it
returns is the new state persisted (fail closed: no event, no change).

File ``kek.json`` (mode 0600)::

    {"kek_id": "kek:AUS:1f2e...", "primary_version": 2, "state": "enabled",
     "min_decryption_version": 1, "deletion_date": null, "destroyed_at": null,
     "material_destroyed": false,
     "versions": {"1": {"key": "<base64 32 bytes>", "created": "2026-11-21T..Z"},
                  "2": {...}}}

A destroyed KEK keeps its version entries without their ``key`` fields.
"""

from __future__ import annotations

import fcntl
import json
import os
import secrets
import stat
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from orchestrator.canonical import b64d, b64e
from orchestrator.crypto import atomic_write_bytes, unwrap_dek, wrap_dek
from orchestrator.errors import ConfigError, IntegrityError, LedgerError
from orchestrator.nation import lifecycle
from orchestrator.nation.lifecycle import KekState, KeyState
from orchestrator.timeutil import Clock, rfc3339, system_clock

KEK_SIZE = 32  # bytes (AES-256)

#: ``audit(kind, body)`` durably logs a lifecycle custody event or raises.
Audit = Callable[[str, dict[str, Any]], object]


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


class ManagedKeystore(ABC):
    """A KEK backend that enforces the lifecycle of :mod:`.lifecycle`.

    Subclasses provide the key-material operations (``_create_material``,
    ``_wrap_with``, ``_unwrap_with``, ``_destroy_material``) and the persistence of
    the :class:`~orchestrator.nation.lifecycle.KekState` (``_read``, ``_write``).

    Parameters
    ----------
    lock
        File locked (``flock``) around every lifecycle change.
    clock
        Source of "now" for lifecycle decisions (injected in tests).
    audit
        Custody-event sink; lifecycle changes and the destruction of due key
        material need one (without it, a due deletion is enforced but the material
        is left for the next audited use).
    """

    backend = "abstract"

    def __init__(
        self, lock: Path, *, clock: Clock = system_clock, audit: Audit | None = None
    ) -> None:
        self._lock_path = lock
        self._clock = clock
        self._audit = audit
        self._lock_depth = 0

    # -- backend hooks ---------------------------------------------------------
    @abstractmethod
    def _read(self) -> KekState: ...

    @abstractmethod
    def _write(self, state: KekState) -> None: ...

    @abstractmethod
    def _create_material(self, version: int) -> Callable[[], None]:
        """Create key material for ``version``; return a function undoing that."""

    @abstractmethod
    def _wrap_with(self, version: int, dek: bytes) -> bytes: ...

    @abstractmethod
    def _unwrap_with(self, version: int, wrapped: bytes) -> bytes: ...

    @abstractmethod
    def _destroy_material(self, state: KekState) -> None: ...

    def _rewrap_with(self, version: int, wrapped: bytes, new_version: int) -> bytes:
        return self._wrap_with(new_version, self._unwrap_with(version, wrapped))

    @abstractmethod
    def _invalidate(self) -> None:
        """Forget cached state so the next ``_read`` sees the stored one."""

    # -- state -----------------------------------------------------------------
    @contextmanager
    def _locked(self) -> Iterator[None]:
        """Exclusive across processes (``flock``), re-entrant within this object."""
        if self._lock_depth:
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
            return
        self._lock_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self._lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            self._lock_depth = 1
            self._invalidate()
            yield
        finally:
            self._lock_depth = 0
            os.close(fd)

    def _current(self, now: datetime) -> KekState:
        state = self._read()
        due = lifecycle.deletion_due(state, now) or (
            state.state is KeyState.DESTROYED and not state.material_destroyed
        )
        if due and self._audit is not None:
            with self._locked():
                state = self._read()
                if not state.effective(now).material_destroyed:
                    done = lifecycle.mark_destroyed(state, now)
                    try:
                        self._audit("kek.destroyed", self._body(done))
                    except LedgerError:
                        # No event, no destruction (yet); the KEK is refused anyway.
                        return state.effective(now)
                    self._destroy_material(done)
                    self._write(done)
                state = self._read()
        return state.effective(now)

    def state(self) -> KekState:
        """The lifecycle state now (destroying due key material when audited)."""
        return self._current(self._clock())

    @property
    def kek_id(self) -> str:
        """Stable identifier of this KEK."""
        return self._read().kek_id

    @property
    def primary_version(self) -> int:
        """The version used for new wraps."""
        return self._read().primary_version

    def status(self) -> dict[str, Any]:
        """Backend and lifecycle state as JSON (no key material)."""
        return {"backend": self.backend, **self.state().to_json()}

    # -- cryptographic use -----------------------------------------------------
    def wrap(self, dek: bytes) -> tuple[int, bytes]:
        """Wrap ``dek`` (RFC 5649) under the primary version -> (version, wrapped).

        Raises :class:`KeyUnavailable` if the KEK is disabled, pending deletion or
        destroyed.
        """
        version = lifecycle.check_wrap(self.state(), self._clock())
        return version, self._wrap_with(version, dek)

    def check_unwrap(self, kek_id: str, version: int) -> None:
        """Raise what :meth:`unwrap` would raise for this KEK and version, if any."""
        now = self._clock()
        lifecycle.check_unwrap(self._current(now), kek_id, version, now)

    def unwrap(self, kek_id: str, version: int, wrapped: bytes) -> bytes:
        """Unwrap ``wrapped`` (RFC 5649) with ``version``.

        Raises
        ------
        IntegrityError
            If ``kek_id`` is not this KEK, the version is unknown, or the wrapped key
            does not authenticate (wrong KEK, tampering).
        KeyUnavailable
            If the KEK is disabled, pending deletion or destroyed, or ``version`` is
            below the minimum decryption version (Vault transit semantics).
        """
        self.check_unwrap(kek_id, version)
        return self._unwrap_with(version, wrapped)

    def rewrap(self, kek_id: str, version: int, wrapped: bytes) -> tuple[int, bytes]:
        """Unwrap with ``version`` and wrap with the primary, inside the backend.

        The Vault transit ``rewrap`` / AWS KMS ``ReEncrypt`` pattern: the DEK is not
        returned (with PKCS#11 it never leaves the token). Raises as :meth:`unwrap`
        and :meth:`wrap`.
        """
        now = self._clock()
        state = self._current(now)
        lifecycle.check_unwrap(state, kek_id, version, now)
        primary = lifecycle.check_wrap(state, now)
        return primary, self._rewrap_with(version, wrapped, primary)

    # -- lifecycle (audited) ---------------------------------------------------
    def _body(self, state: KekState) -> dict[str, Any]:
        return {
            "kek_id": state.kek_id,
            "backend": self.backend,
            "state": state.state.value,
            "primary_version": state.primary_version,
            "min_decryption_version": state.min_decryption_version,
            "deletion_date": state.deletion_date,
        }

    def _change(
        self, kind: str, step: Callable[[KekState, datetime], KekState], **extra: Any
    ) -> KekState:
        if self._audit is None:
            raise ConfigError(
                "KEK lifecycle changes need a custody log (audit)", field="audit"
            )
        with self._locked():
            now = self._clock()
            before = self._current(now)
            after = step(before, now)
            undo: Callable[[], None] = lambda: None  # noqa: E731
            if after.primary_version != before.primary_version:
                undo = self._create_material(after.primary_version)
            try:
                self._audit(kind, {**self._body(after), **extra})
            except BaseException:
                undo()
                raise
            self._write(after)
            return after

    def rotate(self) -> KekState:
        """Create version N+1 in the backend and make it primary (``kek.rotated``)."""
        return self._change("kek.rotated", lifecycle.rotate)

    def disable(self) -> KekState:
        """Refuse every wrap and unwrap from now on (``kek.disabled``)."""
        return self._change("kek.disabled", lifecycle.disable)

    def enable(self) -> KekState:
        """Re-enable a disabled KEK (``kek.enabled``)."""
        return self._change("kek.enabled", lifecycle.enable)

    def schedule_deletion(self, days: int) -> KekState:
        """Destroy the key material after ``days`` (7-30; AWS KMS semantics)."""
        step = lambda s, now: lifecycle.schedule_deletion(s, days, now)  # noqa: E731
        return self._change("kek.deletion.scheduled", step, waiting_days=days)

    def cancel_deletion(self) -> KekState:
        """Cancel a pending deletion; the KEK is left disabled."""
        return self._change("kek.deletion.cancelled", lifecycle.cancel_deletion)

    def set_min_decryption_version(self, version: int) -> KekState:
        """Refuse unwrapping versions below ``version`` (Vault transit)."""
        step = lambda s, now: lifecycle.set_min_decryption_version(  # noqa: E731
            s, version, now
        )
        return self._change("kek.min_decryption_version.set", step)


class FileKeystore(ManagedKeystore):
    """KEK backend reading ``path`` (a ``kek.json`` file with mode 0600)."""

    backend = "file"

    def __init__(
        self, path: Path, *, clock: Clock = system_clock, audit: Audit | None = None
    ) -> None:
        super().__init__(path.with_name(".kek.lock"), clock=clock, audit=audit)
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
        store = FileKeystore(path)
        store._doc = {"versions": {"1": {"key": b64e(secrets.token_bytes(KEK_SIZE))}}}
        store._write(KekState(f"kek:{nation}:{secrets.token_hex(8)}", {1: created}))
        return store

    def _invalidate(self) -> None:
        self._doc = None

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
                _ = [e["created"] for e in dict(doc["versions"]).values()]
            except (ValueError, KeyError, TypeError, AttributeError) as exc:
                raise ConfigError("malformed KEK file", source=str(self.path)) from exc
            self._doc = doc
        return self._doc

    def _read(self) -> KekState:
        doc = self._load()
        created = {v: e["created"] for v, e in doc["versions"].items()}
        return KekState.from_json({**doc, "versions": created}, source=str(self.path))

    def _write(self, state: KekState) -> None:
        keys = {v: e.get("key") for v, e in self._load()["versions"].items()}
        doc = state.to_json()
        doc["versions"] = {
            v: {"key": keys.get(v), "created": c} if keys.get(v) else {"created": c}
            for v, c in doc["versions"].items()
        }
        atomic_write_bytes(self.path, json.dumps(doc, indent=1).encode(), mode=0o600)
        self._doc = doc

    def _create_material(self, version: int) -> Callable[[], None]:
        versions = self._load()["versions"]
        versions[str(version)] = {
            "key": b64e(secrets.token_bytes(KEK_SIZE)),
            "created": rfc3339(self._clock()),
        }
        return lambda: versions.pop(str(version), None)

    def _destroy_material(self, state: KekState) -> None:
        for entry in self._load()["versions"].values():
            entry.pop("key", None)

    def _key(self, version: int) -> bytes:
        entry = self._load()["versions"].get(str(version))
        if entry is None or "key" not in entry:
            raise IntegrityError(
                f"KEK version {version} has no key material", source=str(self.path)
            )
        key = b64d(entry["key"], what="KEK")
        if len(key) != KEK_SIZE:
            raise ConfigError("KEK is not 32 bytes", source=str(self.path))
        return key

    def _wrap_with(self, version: int, dek: bytes) -> bytes:
        return wrap_dek(self._key(version), dek)

    def _unwrap_with(self, version: int, wrapped: bytes) -> bytes:
        return unwrap_dek(self._key(version), wrapped)
