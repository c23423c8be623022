"""A nation's own directory: its keys, its stores, and whom it trusts.

Files (each ``0600``, in the nation's directory, mode ``0700``, which only the
nation's custodian process reads):

``keystore.json``   which KEK backend: ``{"backend": "file"}`` or PKCS#11 (module,
                    token label, PIN variable; see :mod:`.pkcs11_keystore`)
``kek.json``        the versioned KEK of the file backend (:mod:`.keystore`), or
``kek-meta.json``   the KEK's lifecycle metadata when its versions live in a token
``custodian.key``   Ed25519 key signing the custodian's custody events and its
                    witness cosignatures
``hpke.key``        X25519 private key to which enclaves seal output DEKs
``trust.json``      pinned public keys: its officer, peer nations' cards
``pki/``            the nation's CA and the custodian service's certificate
``journal.db``      the custody events this custodian wrote or accepted
``store.db``        its datasets, accreditations and agreement documents
``nonces.db``, ``grants.db``, ``approvals.db``, ``witness-state.json``

The nation's officer keeps its own key elsewhere (:mod:`orchestrator.officer`);
the nation only pins its public half.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.canonical import b64d, b64e
from orchestrator.crypto import (
    HpkeSuite,
    RecipientKey,
    SigningKey,
    atomic_write_bytes,
    key_id_of,
    load_private_key,
    save_private_key,
)
from orchestrator.errors import ConfigError, IntegrityError, NotFound
from orchestrator.nation.keystore import Audit, FileKeystore, ManagedKeystore
from orchestrator.nation.pkcs11_keystore import (
    CONFIG_FILE,
    SOFTHSM_MODULE,
    Pkcs11Config,
    Pkcs11Keystore,
)
from orchestrator.net.ca import DEFAULT_SERVER_HOSTS, LocalCa
from orchestrator.protocol.parties import NationCard
from orchestrator.timeutil import Clock, rfc3339, system_clock

__all__ = ["NationKeys", "NationState", "init_nation", "pkcs11_config",
           "read_config", "write_config"]


def read_config(directory: Path) -> Pkcs11Config | None:
    """The PKCS#11 config in ``directory/keystore.json``; ``None`` for the file
    backend (or when there is no ``keystore.json``).

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
            source=str(path), field="backend")
    return Pkcs11Config.from_json(doc, source=str(path))


def write_config(directory: Path, config: Pkcs11Config | None) -> None:
    """Write ``keystore.json`` (0600) for the file backend or ``config``."""
    doc = {"backend": "file"} if config is None else config.to_json()
    atomic_write_bytes(directory / CONFIG_FILE, json.dumps(doc, indent=1).encode(),
                       mode=0o600)


class NationKeys:
    """Loads (lazily) the key files of nation ``nation`` under ``directory``."""

    def __init__(self, directory: Path, nation: str) -> None:
        self.directory = directory
        self.nation = nation

    def keystore(self, *, clock: Clock = system_clock,
                 audit: Audit | None = None) -> ManagedKeystore:
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

    def hpke_key(self) -> RecipientKey:
        """The custodian's static HPKE (X25519) private key."""
        path = self.directory / "hpke.key"
        try:
            return RecipientKey.from_private_bytes(HpkeSuite.X25519, path.read_bytes())
        except OSError as exc:
            raise ConfigError(f"cannot read HPKE key: {exc.strerror}",
                              source=str(path)) from exc


@dataclass(frozen=True)
class NationState:
    """Nation ``code``'s own directory (see the module docstring)."""

    root: Path
    code: str

    @property
    def keys(self) -> NationKeys:
        """The nation's key files."""
        return NationKeys(self.root, self.code)

    @property
    def actor(self) -> str:
        """Its custodian's actor name in the custody log."""
        return f"custodian:{self.code}"

    @property
    def pki(self) -> LocalCa:
        """The nation's CA and its custodian service's certificate."""
        return LocalCa(self.root / "pki", self.code)

    def path(self, name: str) -> Path:
        """A file in the nation's directory."""
        return self.root / name

    def exists(self) -> bool:
        """Whether the nation was initialised here."""
        return (self.root / "custodian.key").is_file()

    def require(self) -> NationState:
        """``self``, or :class:`NotFound` if the nation is not initialised here."""
        if not self.exists():
            raise NotFound(f"nation {self.code} is not initialised here "
                           f"(sovereign nation init {self.code})",
                           source=str(self.root))
        return self

    # -- trust ---------------------------------------------------------------------
    def _trust(self) -> dict[str, Any]:
        path = self.root / "trust.json"
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return {"officer": None, "peers": {}}
        except ValueError as exc:
            raise ConfigError("malformed trust file", source=str(path)) from exc
        if not isinstance(doc, dict) or not isinstance(doc.get("peers"), dict):
            raise ConfigError("malformed trust file", source=str(path))
        return doc

    def _save_trust(self, doc: dict[str, Any]) -> None:
        atomic_write_bytes(self.root / "trust.json",
                           json.dumps(doc, indent=1, sort_keys=True).encode(),
                           mode=0o600)

    def officer_public(self) -> bytes:
        """The pinned public key of this nation's own officer.

        Raises
        ------
        ConfigError
            If no officer key is pinned yet.
        """
        officer = self._trust().get("officer")
        if not isinstance(officer, str):
            raise ConfigError(f"{self.code} has no officer key pinned "
                              f"(sovereign nation trust-officer {self.code} ...)",
                              source=str(self.root / "trust.json"))
        return b64d(officer)

    def pin_officer(self, public_key: bytes) -> None:
        """Pin this nation's officer key (32-byte Ed25519).

        Raises
        ------
        ConfigError
            If it is not 32 bytes.
        """
        if len(public_key) != 32:
            raise ConfigError("an officer key is 32 bytes", field="officer key")
        doc = self._trust()
        doc["officer"] = b64e(public_key)
        self._save_trust(doc)

    def admit(self, actor: str, public_key: bytes) -> None:
        """Vouch for ``actor``'s 32-byte Ed25519 key (the orchestrator, from its
        card): the custodian logs it as ``actor.admitted``
        (:func:`orchestrator.nation.admissions.sync_admissions`).

        Raises
        ------
        ConfigError
            If the key is not 32 bytes.
        """
        if len(public_key) != 32:
            raise ConfigError("an admitted key is 32 bytes", field=actor)
        doc = self._trust()
        doc.setdefault("admitted", {})[actor] = b64e(public_key)
        self._save_trust(doc)

    def admitted(self) -> dict[str, bytes]:
        """Actor -> the key this nation admitted for it."""
        return {str(a): b64d(str(k))
                for a, k in dict(self._trust().get("admitted") or {}).items()}

    def pin_peer(self, card: NationCard) -> None:
        """Pin another nation's card (its custodian, HPKE and officer keys)."""
        if card.code == self.code:
            raise ConfigError("a nation does not pin itself as a peer")
        doc = self._trust()
        doc["peers"][card.code] = card.to_json()
        self._save_trust(doc)

    def peers(self) -> dict[str, NationCard]:
        """Pinned peer cards by nation (each self-signature re-verified).

        Raises
        ------
        IntegrityError
            If a stored card does not verify (the trust file was edited).
        """
        out = {}
        for code, doc in self._trust()["peers"].items():
            out[code] = NationCard.verify(doc, expect=code,
                                          source=str(self.root / "trust.json"))
        return out

    def pin_log(self, vkey: str) -> None:
        """Pin a custody log's verifier key (``name+hint+base64``): this nation
        witnesses it.

        Raises
        ------
        CheckpointError
            If ``vkey`` is malformed.
        """
        from orchestrator.tlog.note import NoteVerifier

        NoteVerifier.from_vkey(vkey)
        doc = self._trust()
        logs = [v for v in doc.get("logs", []) if v != vkey]
        doc["logs"] = [*logs, vkey]
        self._save_trust(doc)

    def witnessed_logs(self) -> tuple[Any, ...]:
        """The note verifiers of the logs this nation witnesses."""
        from orchestrator.tlog.note import NoteVerifier

        return tuple(NoteVerifier.from_vkey(v) for v in self._trust().get("logs", []))

    def officer_keys(self) -> dict[str, bytes]:
        """Officer public keys this nation trusts: its own and its peers'."""
        keys = {code: card.officer_public for code, card in self.peers().items()}
        try:
            keys[self.code] = self.officer_public()
        except ConfigError:
            pass
        return keys

    def card(self, *, clock: Clock = system_clock) -> NationCard:
        """This nation's card, signed now by its custodian key.

        Raises
        ------
        ConfigError
            If no officer key is pinned yet.
        """
        keys = self.keys
        custodian = keys.custodian_signer()
        return NationCard.create(
            self.code, kek_id=keys.keystore().kek_id, custodian=custodian,
            hpke_public=keys.hpke_key().public_bytes(),
            officer_public=self.officer_public(),
            ca_pem=self.pki.ca_cert.read_text(), now=clock())

    def custodian_public(self) -> bytes:
        """The custodian's public key."""
        return self.keys.custodian_signer().public_bytes()

    def check_peer_key(self, nation: str, public_key: bytes, what: str) -> None:
        """Refuse a key that is not ``nation``'s pinned ``what`` key.

        Raises
        ------
        IntegrityError
            If it is not.
        """
        card = self.peers().get(nation)
        pinned = None if card is None else (
            card.custodian_public if what == "custodian" else card.officer_public)
        if pinned != public_key:
            raise IntegrityError(f"{key_id_of(public_key)} is not the pinned {nation} "
                                 f"{what} key")


def pkcs11_config(code: str, *, module: str | None = None,
                  token_label: str | None = None, pin_env: str | None = None,
                  pin_file: str | None = None) -> Pkcs11Config:
    """A PKCS#11 keystore config with defaults: SoftHSM2's module, token
    ``sovereign-<code>``, PIN in ``$SOVEREIGN_<CODE>_PKCS11_PIN``."""
    return Pkcs11Config(
        module=module or SOFTHSM_MODULE,
        token_label=token_label or f"sovereign-{code.lower()}",
        pin_env=pin_env or f"SOVEREIGN_{code}_PKCS11_PIN",
        pin_file=pin_file,
    )


def init_nation(nation: NationState, *, pkcs11: Pkcs11Config | None = None,
                hosts: tuple[str, ...] = DEFAULT_SERVER_HOSTS) -> NationState:
    """Create nation ``code``'s KEK, custodian and HPKE keys and its CA, in its
    own directory.

    The KEK is generated in the file keystore, or inside the PKCS#11 token that
    ``pkcs11`` names (as a non-extractable key), and ``keystore.json`` records
    which. The CA issues the custodian service's certificate for ``hosts``.

    Raises
    ------
    ConfigError
        If key files already exist there (they are never overwritten).
    """
    directory = nation.root
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    kek_files = ("kek.json", "kek-meta.json", "keystore.json")
    if any(directory.glob("*.key")) or any((directory / f).exists() for f in kek_files):
        raise ConfigError(f"key files for {nation.code} already exist; refusing to "
                          "replace", source=str(directory))
    now = rfc3339(system_clock())
    if pkcs11 is None:
        FileKeystore.create(directory / "kek.json", nation.code, now)
    else:
        Pkcs11Keystore.create(directory, nation.code, pkcs11)
    write_config(directory, pkcs11)
    save_private_key(directory / "custodian.key", SigningKey.generate())
    hpke = RecipientKey.generate(HpkeSuite.X25519)
    atomic_write_bytes(directory / "hpke.key", hpke.private_bytes(), mode=0o600)
    nation.pki.init(hosts)
    return nation


def nation_initialized_body(nation: NationState) -> dict[str, Any]:
    """The body of the nation's ``nation.initialized`` event: its public keys.

    Raises
    ------
    IntegrityError
        If the stored keys cannot be read.
    """
    keys = nation.keys
    custodian = keys.custodian_signer()
    try:
        officer = nation.officer_public()
    except ConfigError as exc:
        raise IntegrityError(exc.message, source=exc.source) from exc
    return {"nation": nation.code, "kek_id": keys.keystore().kek_id,
            "custodian_key_id": custodian.key_id,
            "custodian_public": b64e(custodian.public_bytes()),
            "officer_key_id": key_id_of(officer), "officer_public": b64e(officer),
            "hpke_public": b64e(keys.hpke_key().public_bytes())}
