"""Site-admin and agreement registration, and the orchestrator's own identity."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from orchestrator.canonical import b64e
from orchestrator.crypto import SigningKey, load_private_key, save_private_key
from orchestrator.errors import AlreadyExists, ConfigError, NotFound
from orchestrator.log.store import CustodyLog
from orchestrator.nation.locks import agreement_state_lock
from orchestrator.protocol.agreements import Agreement, load_agreement
from orchestrator.protocol.statements import sign_statement
from orchestrator.registry import Registry, SiteRecord
from orchestrator.state import StateDir
from orchestrator.submit.siteconfig import load_site_config
from orchestrator.timeutil import rfc3339, system_clock
from orchestrator.tlog.events import CustodyEvent

if TYPE_CHECKING:
    from orchestrator.agreement_state import Standing

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


def add_agreement(
    state: StateDir, path: Path, *, sign_as: Sequence[str] = ()
) -> Agreement:
    """Record one version of the agreement at ``path``; log ``agreement.added``.

    The document is *proposed*: it takes effect only once every party's officer
    has signed this exact version (:func:`sign_agreement`;
    :mod:`orchestrator.agreement_state`). A version higher than every recorded
    version of the same id supersedes them once fully signed. ``sign_as`` signs
    at once as those parties' officers (their ``officer.key`` must be in this
    state dir, as in the embedded default).

    Raises
    ------
    ConfigError
        If the file is malformed, names a nation that is not initialised, or its
        version is not above every recorded version of that id.
    AlreadyExists
        If that id and version are already recorded.
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
    versions = [int(d["version"]) for d in registry.agreement_documents()
                if d["id"] == agreement.id]
    if agreement.version in versions:
        raise AlreadyExists(
            f"agreement {agreement.id!r} version {agreement.version} is already "
            "recorded", source=str(path)
        )
    if versions and agreement.version < max(versions):
        raise ConfigError(
            f"version {agreement.version} is below the recorded version "
            f"{max(versions)} of agreement {agreement.id!r}; a superseding document "
            "needs a higher version", source=str(path), field="agreement.version",
        )
    registry.add_agreement(
        agreement.id,
        agreement.to_json(),
        agreement.digest(),
        str(path),
        rfc3339(system_clock()),
        version=agreement.version,
    )
    CustodyLog(state.custody_db).append(
        CustodyEvent.create(
            "agreement.added",
            ORCHESTRATOR_ACTOR,
            {
                "agreement_id": agreement.id,
                "version": agreement.version,
                "parties": sorted(agreement.parties),
                "digest": agreement.digest(),
                "valid_from": str(agreement.valid_from),
                "valid_until": str(agreement.valid_until),
            },
        ),
        orchestrator_signer(state),
    )
    for nation in sign_as:
        sign_agreement(state, agreement.id, nation, version=agreement.version)
    return agreement


def _document(state: StateDir, agreement_id: str, version: int | None) -> Agreement:
    docs = [d for d in Registry(state.registry_db).agreement_documents()
            if d["id"] == agreement_id]
    if not docs:
        raise NotFound(f"agreement {agreement_id!r} is not recorded")
    if version is None:
        doc = docs[-1]
    else:
        found = [d for d in docs if int(d["version"]) == version]
        if not found:
            raise NotFound(f"agreement {agreement_id!r} has no version {version}")
        doc = found[0]
    return Agreement.from_json(doc["document"], source=f"agreement {agreement_id}")


def _officer(state: StateDir, nation: str) -> SigningKey:
    path = state.nation_dir(nation) / "officer.key"
    if not path.exists():
        raise ConfigError(
            f"no officer key for {nation} in this state dir ({path}); the officer "
            "signs where the key is", source=str(path),
        )
    return load_private_key(path)


def sign_agreement(
    state: StateDir, agreement_id: str, nation: str, *, version: int | None = None
) -> Standing:
    """Sign ``version`` (default: the latest) of an agreement as ``nation``'s officer.

    Logs ``agreement.signed`` (actor ``officer:<nation>``, signed by the officer
    key, carrying the ``agreement-signature/v1`` statement); if the version is
    then signed by every party, logs ``agreement.effective`` and, for each lower
    version it replaces, ``agreement.superseded``. Runs under the agreement-state
    lock, as releases do.

    Returns
    -------
    Standing
        The version's standing after the signature.

    Raises
    ------
    NotFound
        Unknown agreement or version.
    ConfigError
        ``nation`` is not a party, or its officer key is not here.
    AlreadyExists
        This officer has already signed this version.
    """
    from orchestrator.agreement_state import AgreementStatus, load_standings

    agreement = _document(state, agreement_id, version)
    if nation not in agreement.parties:
        raise ConfigError(
            f"{nation} is not a party to agreement {agreement_id} "
            f"({', '.join(agreement.parties)})", field="--as",
        )
    key = _officer(state, nation)
    log = CustodyLog(state.custody_db)
    with agreement_state_lock(state.root / "agreements.lock"):
        before = {(s.agreement.id, s.agreement.version): s
                  for s in load_standings(state)}
        mine = before[(agreement.id, agreement.version)]
        if nation in mine.signed_by:
            raise AlreadyExists(
                f"{nation} officer has already signed agreement {agreement_id} "
                f"v{agreement.version}"
            )
        signed = sign_statement(
            {"type": "agreement-signature/v1", "nation": nation,
             "issued_at": rfc3339(system_clock()), "agreement_id": agreement.id,
             "version": agreement.version, "digest": agreement.digest()},
            key,
        )
        log.append(CustodyEvent.create(
            "agreement.signed", f"officer:{nation}",
            {"agreement_id": agreement.id, "version": agreement.version,
             **signed.to_json()}), key)
        after = {(s.agreement.id, s.agreement.version): s
                 for s in load_standings(state)}
        now = after[(agreement.id, agreement.version)]
        if now.status is AgreementStatus.EFFECTIVE:
            signer = orchestrator_signer(state)
            log.append(CustodyEvent.create(
                "agreement.effective", ORCHESTRATOR_ACTOR,
                {"agreement_id": agreement.id, "version": agreement.version,
                 "digest": agreement.digest(), "signed_by": list(now.signed_by)}),
                signer)
            for (aid, v), standing in after.items():
                if (aid == agreement.id and standing.status
                        is AgreementStatus.SUPERSEDED and before[(aid, v)].status
                        is not AgreementStatus.SUPERSEDED):
                    log.append(CustodyEvent.create(
                        "agreement.superseded", ORCHESTRATOR_ACTOR,
                        {"agreement_id": aid, "version": v,
                         "superseded_by": agreement.version}), signer)
    return now


def terminate_agreement(
    state: StateDir, agreement_id: str, nation: str, *, reason: str
) -> Standing:
    """Sign and log ``nation``'s officer's termination of an agreement.

    Under the agreement-state lock (so no release relying on the agreement is
    logged after it): logs ``agreement.terminated`` (actor ``officer:<nation>``,
    the ``agreement-termination/v1`` statement). Once the termination clause is
    met (one party, or every party), every pending case-by-case approval under
    the agreement is cancelled (``approval.cancelled``). Custodians refuse new
    releases and transfers relying on it from the next decision on.

    Raises
    ------
    NotFound
        Unknown agreement.
    ConfigError
        ``nation`` is not a party, its officer key is not here, or ``reason`` is
        empty.
    AlreadyExists
        This party has already signed a termination.
    """
    from orchestrator.agreement_state import AgreementStatus, load_standings
    from orchestrator.approvals import cancel_pending

    agreement = _document(state, agreement_id, None)
    if nation not in agreement.parties:
        raise ConfigError(
            f"{nation} is not a party to agreement {agreement_id}", field="--as"
        )
    if not reason.strip():
        raise ConfigError("a termination needs a reason", field="--reason")
    key = _officer(state, nation)
    log = CustodyLog(state.custody_db)
    with agreement_state_lock(state.root / "agreements.lock"):
        for entry in log.find("agreement.terminated", agreement_id=agreement_id):
            if entry.event.body.get("statement", {}).get("nation") == nation:
                raise AlreadyExists(
                    f"{nation} officer has already terminated {agreement_id}"
                )
        signed = sign_statement(
            {"type": "agreement-termination/v1", "nation": nation,
             "issued_at": rfc3339(system_clock()), "agreement_id": agreement_id,
             "reason": reason},
            key,
        )
        log.append(CustodyEvent.create(
            "agreement.terminated", f"officer:{nation}",
            {"agreement_id": agreement_id, **signed.to_json()}), key)
        standing = next(s for s in reversed(load_standings(state))
                        if s.agreement.id == agreement_id)
        if standing.status is AgreementStatus.TERMINATED:
            cancel_pending(state, agreement_id=agreement_id,
                           reason=f"agreement {agreement_id} terminated")
    return standing


def revoke_agreement(state: StateDir, agreement_id: str, *, reason: str = "") -> None:
    """Revoke agreement ``agreement_id`` at once; log ``agreement.revoked``.

    The revocation *is* the ``agreement.revoked`` custody-log entry: custodians
    re-read agreements on every decision and leave out those revoked in the log.
    The append happens under
    :func:`~orchestrator.protocol.agreements.agreement_state_lock`, which every
    custodian also holds from reading the agreements to appending
    ``key.released``, so no release relying on the agreement is ordered after
    this entry.

    Pending (and approved, unused) case-by-case requests under it are cancelled
    (``approval.cancelled``), as a termination does.

    Raises
    ------
    NotFound
        If no agreement ``agreement_id`` is recorded.
    AlreadyExists
        If it is already revoked.
    """
    from orchestrator.approvals import cancel_pending

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
        cancel_pending(state, agreement_id=agreement_id,
                       reason=f"agreement {agreement_id} revoked")
