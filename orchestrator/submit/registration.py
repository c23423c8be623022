"""What the orchestrator registers: nations, sites, datasets, agreements.

Each registration takes public, signed material another party produced and
checks it before keeping it:

* :func:`register_nation`: a nation's signed card (its custodian, HPKE and
  officer keys, its CA);
* :func:`register_site`: a site configuration (how Parsl reaches the site) with
  the site's own signed description, which must name the same site and config
  digest;
* :func:`register_dataset`: a sealed file and its descriptor, whose SHA-256 must
  match, moved into the orchestrator's object store; co-owners' DEK shares are
  relayed to their custodians;
* :func:`add_agreement`: an agreement document, kept for pre-checks, logged
  (``agreement.added``) and handed to every party's custodian, where it counts
  only once every party's officer signed it.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tomllib
from pathlib import Path

from orchestrator.canonical import b64e
from orchestrator.errors import AlreadyExists, ConfigError, IntegrityError, NotFound
from orchestrator.protocol.agreements import Agreement, load_agreement
from orchestrator.protocol.datasets import DatasetDescriptor
from orchestrator.protocol.parties import NationCard, SiteDescription
from orchestrator.submit.context import Orchestrator
from orchestrator.submit.registry import (
    NationRecord,
    Registry,
    SealedObjectRecord,
    SiteRecord,
)
from orchestrator.submit.siteconfig import load_site_config
from orchestrator.timeutil import rfc3339, system_clock

__all__ = ["add_agreement", "register_dataset", "register_nation", "register_site"]


def register_nation(orch: Orchestrator, card: NationCard) -> NationRecord:
    """Keep a nation's (verified) card in the registry.

    Raises
    ------
    AlreadyExists
        If the nation is registered with other keys.
    """
    registry = Registry(orch.registry_db)
    record = NationRecord(
        code=card.code, kek_id=card.kek_id, custodian_key_id=card.custodian_key_id,
        custodian_public=b64e(card.custodian_public),
        officer_key_id=card.officer_key_id, officer_public=b64e(card.officer_public),
        hpke_public=b64e(card.hpke_public), created=rfc3339(system_clock()))
    try:
        known = registry.nation(card.code)
    except NotFound:
        registry.add_nation(record)
        return record
    if known.custodian_public != record.custodian_public:
        raise AlreadyExists(f"nation {card.code} is registered with another key")
    return known


def register_site(orch: Orchestrator, path: Path,
                  description: SiteDescription) -> SiteRecord:
    """Register the site configuration at ``path`` with the site's description.

    Raises
    ------
    ConfigError
        If the file is malformed, or the description names another site or
        another config digest.
    AlreadyExists
        If a site of that name is registered.
    """
    config = load_site_config(path)
    name = config.site.name
    if description.site != name:
        raise ConfigError(f"the site description is of {description.site!r}, not "
                          f"{name!r}", source=str(path), field="site.name")
    if description.config_digest != config.digest():
        raise ConfigError("the site description names another config digest "
                          "(the site signed another configuration)",
                          source=str(path))
    registry = Registry(orch.registry_db)
    if any(s.name == name for s in registry.sites()):
        raise AlreadyExists(f"site {name!r} is already registered", source=str(path))
    record = SiteRecord(
        name=name, operator_nation=config.site.operator_nation,
        accreditation=config.site.accreditation,
        config=config.model_dump(mode="json"), config_digest=config.digest(),
        signing_key_id=description.key_id,
        signing_public=b64e(description.public_key),
        registered=rfc3339(system_clock()))
    registry.add_site(record)
    return record


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as src:
        for block in iter(lambda: src.read(1 << 20), b""):
            h.update(block)
    return "sha256:" + h.hexdigest()


def register_dataset(orch: Orchestrator, descriptor: DatasetDescriptor,
                     sealed_file: Path, *, move: bool = False) -> SealedObjectRecord:
    """Take in a sealed dataset: check its digest, keep it in the object store,
    register it, and relay each co-owner's DEK share to its custodian.

    Raises
    ------
    IntegrityError
        If the file's SHA-256 is not the descriptor's.
    AlreadyExists
        If a dataset of that name is registered.
    """
    registry = Registry(orch.registry_db)
    if any(d.name == descriptor.name for d in registry.datasets()):
        raise AlreadyExists(f"dataset {descriptor.name!r} is already sealed",
                            source=str(sealed_file))
    digest = _sha256(sealed_file)
    if digest != descriptor.sealed_digest:
        raise IntegrityError(f"sealed file has {digest}, the descriptor names "
                             f"{descriptor.sealed_digest}", source=str(sealed_file))
    target = orch.datasets_dir / f"{descriptor.id}.sealed"
    target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if move:
        os.replace(sealed_file, target)
    else:
        shutil.copyfile(sealed_file, target)
        os.chmod(target, 0o600)
    for owner, share in sorted(descriptor.shares.items()):
        orch.connect(owner).accept_dataset_share(share)
    owners = sorted(descriptor.label.get("ownerProducer", []))
    record = SealedObjectRecord(
        id=descriptor.id, name=descriptor.name, label=descriptor.label,
        manifest=descriptor.manifest, object_path=str(target),
        sealed_digest=descriptor.sealed_digest,
        wrapped_keys={o: {"held_by": f"custodian:{o}"} for o in owners},
        created=rfc3339(system_clock()))
    registry.add_dataset(record)
    return record


def add_agreement(orch: Orchestrator, path: Path) -> Agreement:
    """Keep one version of the agreement at ``path``, log ``agreement.added`` and
    hand it to every party's custodian.

    The document is *proposed*: it takes effect only once every party's officer
    has signed this exact version (:mod:`orchestrator.officer.statements`).

    Raises
    ------
    ConfigError
        If the file is malformed, names a nation that is not registered, or its
        version is not above every recorded version of that id.
    AlreadyExists
        If that id and version are already recorded.
    """
    try:
        agreement = load_agreement(path)
    except tomllib.TOMLDecodeError as exc:  # pragma: no cover - loader converts
        raise ConfigError(f"malformed TOML: {exc}", source=str(path)) from exc
    registry = Registry(orch.registry_db)
    known = {n.code for n in registry.nations()}
    for party in agreement.parties:
        if party not in known:
            raise ConfigError(f"nation {party} is not initialised (run: sovereign "
                              f"nation init {party})", source=str(path),
                              field="agreement.parties")
    versions = [int(d["version"]) for d in registry.agreement_documents()
                if d["id"] == agreement.id]
    if agreement.version in versions:
        raise AlreadyExists(f"agreement {agreement.id!r} version {agreement.version} "
                            "is already recorded", source=str(path))
    if versions and agreement.version < max(versions):
        raise ConfigError(
            f"version {agreement.version} is below the recorded version "
            f"{max(versions)} of agreement {agreement.id!r}; a superseding document "
            "needs a higher version", source=str(path), field="agreement.version")
    for party in agreement.parties:  # each party's custodian keeps its copy first
        orch.connect(party).add_agreement(agreement.to_json())
    registry.add_agreement(agreement.id, agreement.to_json(), agreement.digest(),
                           str(path), rfc3339(system_clock()),
                           version=agreement.version)
    orch.record("agreement.added", {
        "agreement_id": agreement.id, "version": agreement.version,
        "parties": sorted(agreement.parties), "digest": agreement.digest(),
        "valid_from": str(agreement.valid_from),
        "valid_until": str(agreement.valid_until)})
    return agreement
