"""The PKCS#11 KEK backend: every KEK version is a non-extractable key in an HSM.

Each version is an AES-256 secret key generated *inside* the token
(``C_GenerateKey``, ``CKA_TOKEN=TRUE, CKA_EXTRACTABLE=FALSE, CKA_SENSITIVE=TRUE``,
usable only for ``CKA_WRAP``/``CKA_UNWRAP``), labelled ``<kek_id>:v<N>`` (e.g.
``kek:AUS:1f2e...:v2``). Data keys are wrapped with ``CKM_AES_KEY_WRAP_PAD``
(PKCS#11 v2.40 / v3.0 Current Mechanisms, "AES Key Wrap", RFC 5649 key wrap with
padding), so the wrapped keys are byte-for-byte those of the file keystore for the
same KEK (40 bytes for a 32-byte DEK). Two token quirks are pinned down by the
SoftHSM tests: SoftHSM2 implements RFC 5649 under ``CKM_AES_KEY_WRAP_PAD``
(0x210A, the v2.40 name; v3.0 calls RFC 5649 ``CKM_AES_KEY_WRAP_KWP``, 0x210B, see
softhsm/SoftHSMv2#726), and it zero-pads key data to a multiple of 8 bytes before
wrapping (softhsm/SoftHSMv2#307), which would change the RFC 5649 length field; so
this backend wraps only keys whose length is a multiple of 8 (DEKs and DEK shares
are 32 bytes). A DEK to wrap enters the token as a
short-lived session object; :meth:`Pkcs11Keystore.rewrap` unwraps into a sensitive
session object and wraps it under the primary version without the DEK ever
leaving the token. Tested against SoftHSM2 2.6.1 with ``python-pkcs11`` 0.10.

The lifecycle state (no key material) lives in ``kek-meta.json`` beside
``keystore.json``; destroying a KEK destroys its token objects (``C_DestroyObject``).

``keystore.json`` (the PIN is never in it)::

    {"backend": "pkcs11", "module": "/usr/lib/softhsm/libsofthsm2.so",
     "token_label": "sovereign-aus", "pin_env": "SOVEREIGN_AUS_PKCS11_PIN"}

with optionally ``"pin_file": "/path/to/pin"`` (mode 0600), used when the
environment variable is unset.

References
----------
.. [1] RFC 5649, "Advanced Encryption Standard (AES) Key Wrap with Padding
   Algorithm", https://www.rfc-editor.org/rfc/rfc5649
.. [2] OASIS, "PKCS #11 Cryptographic Token Interface Current Mechanisms
   Specification" v2.40 and v3.0 (``CKM_AES_KEY_WRAP_PAD``, ``CKM_AES_KEY_WRAP_KWP``).
.. [3] SoftHSMv2 issues #726 (mechanism naming) and #305/#307 (zero padding of the
   key data before wrapping), https://github.com/softhsm/SoftHSMv2
"""

from __future__ import annotations

import json
import os
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pkcs11
from pkcs11 import Attribute, KeyType, Mechanism, ObjectClass
from pkcs11.exceptions import (
    NoSuchKey,
    NoSuchToken,
    PinIncorrect,
    PKCS11Error,
    UserAlreadyLoggedIn,
)

from orchestrator.crypto import atomic_write_bytes
from orchestrator.errors import ConfigError, IntegrityError
from orchestrator.nation.keystore import Audit, ManagedKeystore
from orchestrator.nation.lifecycle import KekState
from orchestrator.timeutil import Clock, system_clock

CONFIG_FILE = "keystore.json"
META_FILE = "kek-meta.json"
SOFTHSM_MODULE = "/usr/lib/softhsm/libsofthsm2.so"

#: PKCS#11 login state belongs to the application, shared by all its sessions
#: (PKCS#11 v2.40 §5.6): a second ``C_Login`` fails with CKR_USER_ALREADY_LOGGED_IN
#: and closing a logged-in session logs every session out. The custodian service
#: handles requests on several threads, so token access is serialised per process.
_TOKEN_LOCK = threading.RLock()
_WRAP_PAD = Mechanism.AES_KEY_WRAP_PAD

#: Template of a KEK version: generated in the token, never extractable.
KEK_TEMPLATE: dict[Attribute, Any] = {
    Attribute.TOKEN: True,
    Attribute.PRIVATE: True,
    Attribute.EXTRACTABLE: False,
    Attribute.SENSITIVE: True,
    Attribute.WRAP: True,
    Attribute.UNWRAP: True,
    Attribute.ENCRYPT: False,
    Attribute.DECRYPT: False,
    Attribute.SIGN: False,
    Attribute.VERIFY: False,
}


@dataclass(frozen=True)
class Pkcs11Config:
    """Where a nation's PKCS#11 token is and how its user PIN is found."""

    module: str
    token_label: str
    pin_env: str
    pin_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        """The ``keystore.json`` document."""
        doc: dict[str, Any] = {
            "backend": "pkcs11",
            "module": self.module,
            "token_label": self.token_label,
            "pin_env": self.pin_env,
        }
        if self.pin_file:
            doc["pin_file"] = self.pin_file
        return doc

    @staticmethod
    def from_json(doc: dict[str, Any], *, source: str) -> Pkcs11Config:
        """Parse ``keystore.json``; raises :class:`ConfigError` naming the field."""
        for name in ("module", "token_label", "pin_env"):
            if not isinstance(doc.get(name), str) or not doc[name]:
                raise ConfigError("missing or not a string", source=source, field=name)
        if "pin" in doc:
            raise ConfigError(
                "a PIN must not be stored here; use pin_env or pin_file",
                source=source,
                field="pin",
            )
        pin_file = doc.get("pin_file")
        if pin_file is not None and not isinstance(pin_file, str):
            raise ConfigError("not a string", source=source, field="pin_file")
        return Pkcs11Config(
            doc["module"], doc["token_label"], doc["pin_env"], pin_file
        )

    def pin(self) -> str:
        """The user PIN from ``$pin_env``, else from the 0600 ``pin_file``.

        Raises
        ------
        ConfigError
            If neither gives a PIN, or the pin file is readable by others.
        """
        value = os.environ.get(self.pin_env)
        if value:
            return value
        if not self.pin_file:
            raise ConfigError(
                f"environment variable {self.pin_env} is not set", field="pin_env"
            )
        path = Path(self.pin_file)
        try:
            mode = stat.S_IMODE(path.stat().st_mode)
            text = path.read_text().strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read PIN file: {exc.strerror}", field="pin_file"
            ) from exc
        if mode & 0o077:
            raise ConfigError(
                f"PIN file permissions too open ({mode:o}); expected 600",
                source=str(path),
                field="pin_file",
            )
        return text


def _label(kek_id: str, version: int) -> str:
    return f"{kek_id}:v{version}"


class Pkcs11Keystore(ManagedKeystore):
    """KEK backend in a PKCS#11 token; lifecycle metadata in ``kek-meta.json``."""

    backend = "pkcs11"

    def __init__(
        self,
        directory: Path,
        config: Pkcs11Config,
        *,
        clock: Clock = system_clock,
        audit: Audit | None = None,
    ) -> None:
        super().__init__(directory / ".kek.lock", clock=clock, audit=audit)
        self.directory = directory
        self.config = config
        self.meta_path = directory / META_FILE
        self._state: KekState | None = None

    @staticmethod
    def create(
        directory: Path,
        nation: str,
        config: Pkcs11Config,
        *,
        clock: Clock = system_clock,
    ) -> Pkcs11Keystore:
        """Generate version 1 of a new KEK in the token; write ``kek-meta.json``.

        Raises
        ------
        ConfigError
            If metadata already exists, or the module, token or PIN is wrong.
        """
        meta = directory / META_FILE
        if meta.exists():
            raise ConfigError(
                "a KEK already exists here; refusing to replace it", source=str(meta)
            )
        store = Pkcs11Keystore(directory, config, clock=clock)
        state = KekState.new(f"kek:{nation}:{secrets.token_hex(8)}", clock())
        store._state = state
        undo = store._create_material(1)
        try:
            store._write(state)
        except BaseException:
            undo()
            raise
        return store

    # -- token access ----------------------------------------------------------
    @contextmanager
    def _session(self) -> Iterator[Any]:
        with _TOKEN_LOCK:  # module load, token lookup and login: one thread at a time
            session = self._open(self._token())
            with session:
                yield session

    def _token(self) -> Any:
        cfg = self.config
        try:
            lib = pkcs11.lib(cfg.module)
        except (RuntimeError, OSError) as exc:
            raise ConfigError(
                f"cannot load PKCS#11 module {cfg.module}: {exc}", field="module"
            ) from exc
        try:
            return lib.get_token(token_label=cfg.token_label)
        except NoSuchToken as exc:
            raise ConfigError(
                f"no PKCS#11 token labelled {cfg.token_label!r}", field="token_label"
            ) from exc

    def _open(self, token: Any) -> Any:
        cfg = self.config
        try:
            return token.open(user_pin=cfg.pin(), rw=True)
        except UserAlreadyLoggedIn:
            # A session of this thread (re-entrant use) is logged in: the login
            # covers every session of the application.
            return token.open(rw=True)
        except PinIncorrect as exc:
            raise ConfigError(
                f"PKCS#11 user PIN (from {cfg.pin_env}) is incorrect", field="pin_env"
            ) from exc
        except PKCS11Error as exc:
            raise ConfigError(
                f"cannot open a session on token {cfg.token_label!r}: "
                f"{type(exc).__name__}",
                field="token_label",
            ) from exc

    def _kek(self, session: Any, version: int) -> Any:
        label = _label(self._read().kek_id, version)
        try:
            return session.get_key(
                object_class=ObjectClass.SECRET_KEY, key_type=KeyType.AES, label=label
            )
        except NoSuchKey as exc:
            raise IntegrityError(
                f"KEK version {version} has no key material in the token",
                source=label,
            ) from exc
        except PKCS11Error as exc:
            raise IntegrityError(
                f"token lookup failed: {type(exc).__name__}", source=label
            ) from exc

    @staticmethod
    def _dek_object(session: Any, dek: bytes) -> Any:
        if not dek or len(dek) % 8:
            raise ConfigError(
                "the PKCS#11 backend wraps keys of 8, 16, 24, ... bytes, "
                f"not {len(dek)}"
            )
        return session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.GENERIC_SECRET,
                Attribute.VALUE: dek,
                Attribute.TOKEN: False,
                Attribute.EXTRACTABLE: True,
                Attribute.SENSITIVE: False,
            }
        )

    @staticmethod
    def _unwrap_object(kek: Any, wrapped: bytes, *, sensitive: bool) -> Any:
        try:
            return kek.unwrap_key(
                ObjectClass.SECRET_KEY,
                KeyType.GENERIC_SECRET,
                wrapped,
                mechanism=_WRAP_PAD,
                store=False,
                template={
                    Attribute.EXTRACTABLE: True,
                    Attribute.SENSITIVE: sensitive,
                },
            )
        except PKCS11Error as exc:
            raise IntegrityError(
                "wrapped data key does not authenticate under this KEK "
                f"({type(exc).__name__})"
            ) from exc

    # -- ManagedKeystore hooks -------------------------------------------------
    def _invalidate(self) -> None:
        self._state = None

    def _read(self) -> KekState:
        if self._state is None:
            try:
                doc = json.loads(self.meta_path.read_bytes())
            except OSError as exc:
                raise ConfigError(
                    f"cannot read KEK metadata: {exc.strerror}",
                    source=str(self.meta_path),
                ) from exc
            except ValueError as exc:
                raise ConfigError(
                    "malformed KEK metadata", source=str(self.meta_path)
                ) from exc
            self._state = KekState.from_json(doc, source=str(self.meta_path))
        return self._state

    def _write(self, state: KekState) -> None:
        doc = {"backend": self.backend, **state.to_json()}
        atomic_write_bytes(
            self.meta_path, json.dumps(doc, indent=1).encode(), mode=0o600
        )
        self._state = state

    def _create_material(self, version: int) -> Callable[[], None]:
        label = _label(self._read().kek_id, version)
        with self._session() as session:
            session.generate_key(
                KeyType.AES,
                256,
                label=label,
                id=label.encode(),
                store=True,
                template=KEK_TEMPLATE,
            )

        def undo() -> None:
            with self._session() as s:
                for obj in s.get_objects({Attribute.LABEL: label}):
                    obj.destroy()

        return undo

    def _destroy_material(self, state: KekState) -> None:
        with self._session() as session:
            for version in state.versions:
                label = _label(state.kek_id, version)
                for obj in list(session.get_objects({Attribute.LABEL: label})):
                    obj.destroy()

    def _wrap_with(self, version: int, dek: bytes) -> bytes:
        with self._session() as session:
            kek = self._kek(session, version)
            obj = self._dek_object(session, dek)
            try:
                return bytes(kek.wrap_key(obj, mechanism=_WRAP_PAD))
            finally:
                obj.destroy()

    def _unwrap_with(self, version: int, wrapped: bytes) -> bytes:
        with self._session() as session:
            obj = self._unwrap_object(
                self._kek(session, version), wrapped, sensitive=False
            )
            try:
                return bytes(obj[Attribute.VALUE])
            finally:
                obj.destroy()

    def _rewrap_with(self, version: int, wrapped: bytes, new_version: int) -> bytes:
        with self._session() as session:
            obj = self._unwrap_object(
                self._kek(session, version), wrapped, sensitive=True
            )
            try:
                new_kek = self._kek(session, new_version)
                return bytes(new_kek.wrap_key(obj, mechanism=_WRAP_PAD))
            finally:
                obj.destroy()
