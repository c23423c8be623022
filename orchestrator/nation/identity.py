"""A nation's key material in its custodian directory, and ``nation init``.

Files (each ``0600``, in ``<state>/nations/<CODE>/``):

``keystore.json``   which KEK backend: ``{"backend": "file"}`` or PKCS#11 (module,
                    token label, PIN variable; see :mod:`.pkcs11_keystore`)
``kek.json``        the versioned KEK of the file backend (:mod:`.keystore`), or
``kek-meta.json``   the KEK's lifecycle metadata when its versions live in a token
``custodian.key``   Ed25519 key signing the custodian's custody events
``officer.key``     Ed25519 key of the nation's sovereignty officer
``hpke.key``        X25519 private key to which enclaves seal output DEKs for wrapping
"""

from __future__ import annotations

import json
from pathlib import Path

from orchestrator.canonical import b64e
from orchestrator.crypto import (
    HpkeSuite,
    RecipientKey,
    SigningKey,
    atomic_write_bytes,
    load_private_key,
    save_private_key,
)
from orchestrator.errors import ConfigError
from orchestrator.log.store import CustodyLog
from orchestrator.nation.keystore import Audit, FileKeystore, ManagedKeystore
from orchestrator.nation.pkcs11_keystore import (
    CONFIG_FILE,
    SOFTHSM_MODULE,
    Pkcs11Config,
    Pkcs11Keystore,
)
from orchestrator.registry import NationRecord, Registry
from orchestrator.state import StateDir
from orchestrator.timeutil import Clock, rfc3339, system_clock
from orchestrator.tlog.events import CustodyEvent


def read_config(directory: Path) -> Pkcs11Config | None:
    """The PKCS#11 config in ``directory/keystore.json``; ``None`` for the file
    backend (or when there is no ``keystore.json``: nations made before it).

    Raises
    ------
    ConfigError
        If ``keystore.json`` is malformed or names an unknown backend.
    """
    path = directory / CONFIG_FILE
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise ConfigError("unreadable or malformed", source=str(path)) from exc
    if not isinstance(doc, dict):
        raise ConfigError("not a JSON object", source=str(path))
    backend = doc.get("backend")
    if backend == "file":
        return None
    if backend != "pkcs11":
        raise ConfigError(
            f"unknown backend {backend!r} (expected 'file' or 'pkcs11')",
            source=str(path),
            field="backend",
        )
    return Pkcs11Config.from_json(doc, source=str(path))


def write_config(directory: Path, config: Pkcs11Config | None) -> None:
    """Write ``keystore.json`` (0600) for the file backend or ``config``."""
    doc = {"backend": "file"} if config is None else config.to_json()
    atomic_write_bytes(
        directory / CONFIG_FILE, json.dumps(doc, indent=1).encode(), mode=0o600
    )


class NationKeys:
    """Loads (lazily) the key files of nation ``nation`` under ``directory``."""

    def __init__(self, directory: Path, nation: str) -> None:
        self.directory = directory
        self.nation = nation

    def keystore(
        self, *, clock: Clock = system_clock, audit: Audit | None = None
    ) -> ManagedKeystore:
        """The nation's KEK backend, as ``keystore.json`` selects (default: file).

        ``audit`` logs lifecycle custody events (see :class:`ManagedKeystore`).
        """
        config = read_config(self.directory)
        if config is None:
            return FileKeystore(self.directory / "kek.json", clock=clock, audit=audit)
        return Pkcs11Keystore(self.directory, config, clock=clock, audit=audit)

    def custodian_signer(self) -> SigningKey:
        """The custodian's Ed25519 signing key."""
        return load_private_key(self.directory / "custodian.key")

    def officer_signer(self) -> SigningKey:
        """The sovereignty officer's Ed25519 signing key."""
        return load_private_key(self.directory / "officer.key")

    def hpke_key(self) -> RecipientKey:
        """The custodian's static HPKE (X25519) private key."""
        path = self.directory / "hpke.key"
        try:
            return RecipientKey.from_private_bytes(HpkeSuite.X25519, path.read_bytes())
        except OSError as exc:
            raise ConfigError(
                f"cannot read HPKE key: {exc.strerror}", source=str(path)
            ) from exc


def pkcs11_config(
    code: str,
    *,
    module: str | None = None,
    token_label: str | None = None,
    pin_env: str | None = None,
    pin_file: str | None = None,
) -> Pkcs11Config:
    """A PKCS#11 keystore config with defaults: SoftHSM2's module, token
    ``sovereign-<code>``, PIN in ``$SOVEREIGN_<CODE>_PKCS11_PIN``."""
    return Pkcs11Config(
        module=module or SOFTHSM_MODULE,
        token_label=token_label or f"sovereign-{code.lower()}",
        pin_env=pin_env or f"SOVEREIGN_{code}_PKCS11_PIN",
        pin_file=pin_file,
    )


def init_nation(
    state: StateDir, code: str, *, pkcs11: Pkcs11Config | None = None
) -> NationRecord:
    """Create nation ``code``'s KEK, custodian, officer and HPKE keys; register them.

    The KEK is generated in the file keystore, or inside the PKCS#11 token that
    ``pkcs11`` names (as a non-extractable key), and ``keystore.json`` records
    which.

    Logs ``nation.initialized`` (signed by the new custodian key) carrying the public
    keys, so officers can pin them.

    Raises
    ------
    AlreadyExists
        If the nation is already registered.
    ConfigError
        If key files already exist for it (they are never overwritten).
    """
    state.ensure()
    registry = Registry(state.registry_db)
    directory = state.nation_dir(code)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    kek_files = ("kek.json", "kek-meta.json", "keystore.json")
    if any(directory.glob("*.key")) or any((directory / f).exists() for f in kek_files):
        raise ConfigError(
            f"key files for {code} already exist; refusing to replace",
            source=str(directory),
        )
    now = rfc3339(system_clock())
    keystore: ManagedKeystore
    if pkcs11 is None:
        keystore = FileKeystore.create(directory / "kek.json", code, now)
    else:
        keystore = Pkcs11Keystore.create(directory, code, pkcs11)
    write_config(directory, pkcs11)
    custodian, officer = SigningKey.generate(), SigningKey.generate()
    save_private_key(directory / "custodian.key", custodian)
    save_private_key(directory / "officer.key", officer)
    hpke = RecipientKey.generate(HpkeSuite.X25519)
    atomic_write_bytes(directory / "hpke.key", hpke.private_bytes(), mode=0o600)
    record = NationRecord(
        code=code,
        kek_id=keystore.kek_id,
        custodian_key_id=custodian.key_id,
        custodian_public=b64e(custodian.public_bytes()),
        officer_key_id=officer.key_id,
        officer_public=b64e(officer.public_bytes()),
        hpke_public=b64e(hpke.public_bytes()),
        created=now,
    )
    registry.add_nation(record)
    CustodyLog(state.custody_db).append(
        CustodyEvent.create(
            "nation.initialized",
            f"custodian:{code}",
            {
                "nation": code,
                "kek_id": record.kek_id,
                "custodian_key_id": record.custodian_key_id,
                "custodian_public": record.custodian_public,
                "officer_key_id": record.officer_key_id,
                "officer_public": record.officer_public,
                "hpke_public": record.hpke_public,
            },
        ),
        custodian,
    )
    return record
