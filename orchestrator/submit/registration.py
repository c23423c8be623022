"""Site-admin and agreement registration, and the orchestrator's own identity."""

from __future__ import annotations

import tomllib
from pathlib import Path

from orchestrator.agreements import Agreement, agreement_state_lock, load_agreement
from orchestrator.canonical import b64e
from orchestrator.crypto import SigningKey, load_private_key, save_private_key
from orchestrator.errors import AlreadyExists, ConfigError, NotFound
from orchestrator.ledger import CustodyEvent, CustodyLog
from orchestrator.registry import Registry, SiteRecord
from orchestrator.state import StateDir
from orchestrator.submit.siteconfig import load_site_config
from orchestrator.timeutil import rfc3339, system_clock

ORCHESTRATOR_ACTOR = "orchestrator"


def orchestrator_signer(state: StateDir) -> SigningKey:
    """Return the orchestrator's Ed25519 key, creating it (0600) on first use."""
    path = state.orchestrator_key
    if not path.exists():
        state.ensure()
        save_private_key(path, SigningKey.generate())
    return load_private_key(path)


def register_site(state: StateDir, path: Path) -> SiteRecord:
    """Validate the site file at ``path``, create its signing identity, register it.

    The site's Ed25519 key is generated into ``<state>/sites/<name>/site.key``
    (0600); ``site.registered`` is logged, signed by that key, carrying its public
    half and the config digest.

    Raises
    ------
    ConfigError
        If the file is malformed (file and field named).
    AlreadyExists
        If a site of that name is registered.
    """
    config = load_site_config(path)
    state.ensure()
    registry = Registry(state.registry_db)
    name = config.site.name
    if any(s.name == name for s in registry.sites()):
        raise AlreadyExists(f"site {name!r} is already registered", source=str(path))
    directory = state.site_dir(name)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path = directory / "site.key"
    if not key_path.exists():
        save_private_key(key_path, SigningKey.generate())
    key = load_private_key(key_path)
    record = SiteRecord(
        name=name,
        operator_nation=config.site.operator_nation,
        accreditation=config.site.accreditation,
        config=config.model_dump(mode="json"),
        config_digest=config.digest(),
        signing_key_id=key.key_id,
        signing_public=b64e(key.public_bytes()),
        registered=rfc3339(system_clock()),
    )
    registry.add_site(record)
    CustodyLog(state.custody_db).append(
        CustodyEvent.create(
            "site.registered",
            f"site:{name}",
            {
                "site": name,
                "operator_nation": record.operator_nation,
                "accreditation": record.accreditation,
                "config_digest": record.config_digest,
                "signing_key_id": record.signing_key_id,
                "signing_public": record.signing_public,
            },
        ),
        key,
    )
    return record


def add_agreement(state: StateDir, path: Path) -> Agreement:
    """Validate and record the bilateral agreement at ``path``; log ``agreement.added``.

    Raises
    ------
    ConfigError
        If the file is malformed or names a nation that is not initialised.
    AlreadyExists
        If an agreement with that id is recorded.
    """
    try:
        agreement = load_agreement(path)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - loader converts
        raise ConfigError(f"malformed TOML: {exc}", source=str(path)) from exc
    registry = Registry(state.registry_db)
    known = {n.code for n in registry.nations()}
    for party in agreement.parties:
        if party not in known:
            raise ConfigError(
                f"nation {party} is not initialised "
                f"(run: sovereign nation init {party})",
                source=str(path),
                field="agreement.parties",
            )
    if any(doc["id"] == agreement.id for doc in registry.agreement_documents()):
        raise AlreadyExists(
            f"agreement {agreement.id!r} is already recorded", source=str(path)
        )
    registry.add_agreement(
        agreement.id,
        agreement.to_json(),
        agreement.digest(),
        str(path),
        rfc3339(system_clock()),
    )
    CustodyLog(state.custody_db).append(
        CustodyEvent.create(
            "agreement.added",
            ORCHESTRATOR_ACTOR,
            {
                "agreement_id": agreement.id,
                "parties": sorted(agreement.parties),
                "digest": agreement.digest(),
                "valid_from": str(agreement.valid_from),
                "valid_until": str(agreement.valid_until),
            },
        ),
        orchestrator_signer(state),
    )
    return agreement


def revoke_agreement(state: StateDir, agreement_id: str, *, reason: str = "") -> None:
    """Revoke agreement ``agreement_id`` at once; log ``agreement.revoked``.

    The revocation *is* the ``agreement.revoked`` custody-log entry: custodians
    re-read agreements on every decision and leave out those revoked in the log.
    The append happens under
    :func:`~orchestrator.agreements.agreement_state_lock`, which every
    custodian also holds from reading the agreements to appending
    ``key.released``, so no release relying on the agreement is ordered after
    this entry.

    Raises
    ------
    NotFound
        If no agreement ``agreement_id`` is recorded.
    AlreadyExists
        If it is already revoked.
    """
    registry = Registry(state.registry_db)
    if not any(doc["id"] == agreement_id for doc in registry.agreement_documents()):
        raise NotFound(f"agreement {agreement_id!r} is not recorded")
    log = CustodyLog(state.custody_db)
    with agreement_state_lock(state.root / "agreements.lock"):
        if log.find("agreement.revoked", agreement_id=agreement_id):
            raise AlreadyExists(f"agreement {agreement_id!r} is already revoked")
        log.append(
            CustodyEvent.create(
                "agreement.revoked",
                ORCHESTRATOR_ACTOR,
                {
                    "agreement_id": agreement_id,
                    "reason": reason,
                    "revoked_at": rfc3339(system_clock()),
                },
            ),
            orchestrator_signer(state),
        )
