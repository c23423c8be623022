"""A nation's key material in its custodian directory, and ``nation init``.

Files (each ``0600``, in ``<state>/nations/<CODE>/``):

``kek.json``        the versioned KEK (see :mod:`orchestrator.nation.keystore`)
``custodian.key``   Ed25519 key signing the custodian's custody events
``officer.key``     Ed25519 key of the nation's sovereignty officer
``hpke.key``        X25519 private key to which enclaves seal output DEKs for wrapping
"""

from __future__ import annotations

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
from orchestrator.ledger import CustodyEvent, CustodyLog
from orchestrator.nation.keystore import FileKeystore
from orchestrator.registry import NationRecord, Registry
from orchestrator.state import StateDir
from orchestrator.timeutil import rfc3339, system_clock


class NationKeys:
    """Loads (lazily) the key files of nation ``nation`` under ``directory``."""

    def __init__(self, directory: Path, nation: str) -> None:
        self.directory = directory
        self.nation = nation

    def keystore(self) -> FileKeystore:
        """The nation's KEK backend."""
        return FileKeystore(self.directory / "kek.json")

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


def init_nation(state: StateDir, code: str) -> NationRecord:
    """Create nation ``code``'s KEK, custodian, officer and HPKE keys; register them.

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
    if any(directory.glob("*.key")) or (directory / "kek.json").exists():
        raise ConfigError(
            f"key files for {code} already exist; refusing to replace",
            source=str(directory),
        )
    now = rfc3339(system_clock())
    keystore = FileKeystore.create(directory / "kek.json", code, now)
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
