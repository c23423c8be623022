"""The embedded default's setup flows: nations, officers, sites, datasets, agreements.

Each flow is what the parties of a separated deployment do each on their own
machine, with the hand-overs between them (a public card, a CSR, an enrollment,
a sealed file) done in-process by this composition root. No flow reads one
party's directory on behalf of another.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

from orchestrator.crypto import atomic_write_bytes
from orchestrator.embedded.deployment import Deployment, require_nation
from orchestrator.embedded.layout import StateDir
from orchestrator.errors import AlreadyExists, ConfigError, NotFound
from orchestrator.labels import Classification
from orchestrator.nation import steward
from orchestrator.nation.admissions import sync_admissions
from orchestrator.nation.identity import init_nation as init_nation_dir
from orchestrator.nation.identity import nation_initialized_body
from orchestrator.nation.pkcs11_keystore import Pkcs11Config
from orchestrator.nation.pki import issue_client
from orchestrator.officer import statements as officer_statements
from orchestrator.officer.identity import init_officer
from orchestrator.officer.trust import TrustConfig
from orchestrator.policy.standing import Standing
from orchestrator.protocol.agreements import Agreement, load_agreement
from orchestrator.protocol.datasets import DatasetDescriptor
from orchestrator.protocol.log import SignedEvent
from orchestrator.protocol.parties import Accreditation, NationCard, enrollment
from orchestrator.site.identity import SiteState, init_site
from orchestrator.submit import registration
from orchestrator.submit.context import ORCHESTRATOR_ACTOR
from orchestrator.submit.registry import NationRecord, SealedObjectRecord, SiteRecord
from orchestrator.submit.siteconfig import SiteStartedProviderSection, load_site_config
from orchestrator.timeutil import system_clock
from orchestrator.tlog.events import CustodyEvent
from orchestrator.tlog.names import witness_key_name
from orchestrator.tlog.note import ALG_COSIGNATURE_V1, NoteVerifier

__all__ = ["accredit_site", "add_agreement", "init_nation", "open_model",
           "register_site", "revoke_accreditation", "seal_dataset",
           "sign_agreement", "terminate_agreement"]


def _enroll(deployment: Deployment, path: Path) -> None:
    deployment.log().enroll(SignedEvent.from_json(json.loads(path.read_bytes())))


def _witness_vkey(card: NationCard) -> str:
    return NoteVerifier(witness_key_name(card.code), card.custodian_public,
                        ALG_COSIGNATURE_V1).vkey()


def init_nation(state: StateDir, code: str, *,
                pkcs11: Pkcs11Config | None = None) -> NationRecord:
    """Initialise nation ``code`` and its officer, each in its own directory, and
    introduce them to the others.

    The nation makes its KEK, custodian and HPKE keys and its CA; its officer
    makes its key (the nation pins the public half); both enroll with the log;
    the custodian logs ``nation.initialized``; the nation's card goes to the
    orchestrator, to every other nation (which pins it) and its witness key to
    every officer's trust configuration; the nation issues client certificates
    to the orchestrator (role orchestrator), the log (role log, to ask it to
    witness) and to its officer and the other nations' officers (role officer).

    Raises
    ------
    AlreadyExists
        If the nation is already initialised here.
    ConfigError
        If key files for it already exist (never overwritten).
    """
    deployment = Deployment(state.ensure())
    nation = deployment.nation(code)
    if nation.exists():
        raise AlreadyExists(f"nation {code} is already initialised",
                            source=str(nation.root))
    log = deployment.log()  # a log that lost its key stops here, before any file
    init_nation_dir(nation, pkcs11=pkcs11)
    officer = init_officer(state.officer_dir(code), code)
    nation.pin_officer(officer.public_key())
    log.enroll(enrollment(nation.actor, nation.keys.custodian_signer()))
    _enroll(deployment, officer.root / "enrollment.json")
    nation.pin_log(log.vkey)
    card = nation.card()
    custodian = deployment.custodian(code)
    custodian.ctx.record("nation.initialized", nation_initialized_body(nation))
    orch = deployment.orchestrator()
    nation.admit(ORCHESTRATOR_ACTOR, orch.signer.public_bytes())
    sync_admissions(custodian.ctx)
    record = registration.register_nation(orch, card)
    atomic_write_bytes(orch.client_cert(code),
                       issue_client(nation, orch.csr.read_bytes(),
                                    role="orchestrator", name="submit"), mode=0o644)
    log_client = log.state.client_dir
    atomic_write_bytes(log_client / f"{code}.pem",
                       issue_client(nation, (log_client / "client.csr").read_bytes(),
                                    role="log", name="custody"), mode=0o644)
    for other in state.nations():
        if other == code:
            continue
        peer = deployment.nation(other)
        peer.pin_peer(card)
        nation.pin_peer(peer.card())
        for officer_nation, issuer in ((code, peer), (other, nation)):
            holder = deployment.officer(officer_nation)
            holder.keep_client_cert(issue_client(
                issuer, holder.csr.read_bytes(), role="officer",
                name=officer_nation.lower()), issuer.code)
    officer.keep_client_cert(issue_client(nation, officer.csr.read_bytes(),
                                          role="officer", name=code.lower()))
    for officer_nation in state.nations():  # every officer pins the new witness
        trust_path = state.officer_dir(officer_nation) / "trust.json"
        trust = TrustConfig.load(trust_path)
        trust.log_vkey = trust.log_vkey or log.vkey  # never re-pinned as a side effect
        for other in state.nations():
            trust.witnesses[other] = _witness_vkey(deployment.nation(other).card())
        trust.save(trust_path)
    return record


def _hand_over_channel(orchestrator_root: Path, site: SiteState, name: str) -> None:
    """Introduce a site-started site's worker pools and the orchestrator's
    interchange: public keys only, each way (:mod:`orchestrator.net.channel`)."""
    from orchestrator.submit.channel import install_site_channel, server_public

    install_site_channel(orchestrator_root, name, site.channel_public())
    site.trust_channel(server_public(orchestrator_root))


def register_site(state: StateDir, path: Path) -> SiteRecord:
    """Initialise the site at its own directory (if new), enroll it, log
    ``site.registered`` in its name, and register its configuration with the
    orchestrator.

    Raises
    ------
    ConfigError
        If the file is malformed (file and field named).
    AlreadyExists
        If a site of that name is registered.
    """
    deployment = Deployment(state.ensure())
    config = load_site_config(path)
    name = config.site.name
    site = deployment.site(name)
    orch = deployment.orchestrator()
    from orchestrator.submit.registry import Registry

    if any(s.name == name for s in Registry(orch.registry_db).sites()):
        raise AlreadyExists(f"site {name!r} is already registered", source=str(path))
    if not site.exists():
        init_site(site.root, name=name, operator_nation=config.site.operator_nation,
                  accreditation=config.site.accreditation,
                  config_digest=config.digest())
    description = site.description()
    record = registration.register_site(orch, path, description)
    if isinstance(config.provider, SiteStartedProviderSection):
        _hand_over_channel(orch.root, site, name)
    _enroll(deployment, site.root / "enrollment.json")
    deployment.log().append(CustodyEvent.create("site.registered", site.actor, {
        "site": name, "operator_nation": record.operator_nation,
        "accreditation": record.accreditation, "config_digest": record.config_digest,
        "signing_key_id": record.signing_key_id,
        "signing_public": record.signing_public}), site.signing_key())
    return record


def accredit_site(state: StateDir, site: str, nation: str, *,
                  ceiling: str | None = None, tee_kinds: Sequence[str] = ("none",),
                  expires_in: timedelta = timedelta(days=365),
                  operator_nation: str | None = None) -> Accreditation:
    """Nation ``nation``'s officer accredits site ``site``: its custodian signs an
    accreditation of the site's key (ceiling: the site's claim by default) and
    issues the site a client certificate, both handed to the site.

    Raises
    ------
    NotFound
        Unknown site or nation.
    ConfigError
        Bad ceiling, TEE kind or expiry.
    """
    deployment = Deployment(state)
    holder = deployment.site(site)
    description = holder.description()
    require_nation(deployment, nation)
    custodian = deployment.custodian(nation)
    doc = custodian.accredit(
        description.to_json(), ceiling=ceiling or description.accreditation,
        tee_kinds=list(tee_kinds), expires_at=system_clock() + expires_in,
        operator_nation=operator_nation)
    cert = issue_client(deployment.nation(nation), holder.csr.read_bytes(),
                        role="site", name=site)
    holder.keep_accreditation(nation, doc, cert)
    return Accreditation.verify(
        doc, custodian_public=custodian.ctx.signer.public_bytes())


def revoke_accreditation(state: StateDir, site: str, nation: str, *,
                         reason: str) -> list[str]:
    """Nation ``nation`` revokes its accreditations of ``site`` (releases stop at
    once)."""
    return Deployment(state).custodian(nation).revoke_accreditation(site, reason)


def seal_dataset(state: StateDir, path: Path, *, name: str, owners: Iterable[str],
                 classification: str, releasable_to: Iterable[str],
                 label_column: int | str = -1, has_header: bool | None = None,
                 export_controls: Iterable[str] = (), caveats: Iterable[str] = (),
                 segment_size: int | None = None,
                 progress: Callable[[int], None] | None = None
                 ) -> SealedObjectRecord:
    """The first owner's steward seals the CSV at its nation; the sealed file
    and descriptor go to the orchestrator, which relays the co-owners' shares.

    Raises
    ------
    ConfigError, DataError, NotFound, AlreadyExists
        Bad input, an unknown owner, or a dataset of that name exists.
    """
    from orchestrator.crypto import DEFAULT_SEGMENT_SIZE
    from orchestrator.labels import parse_nations
    from orchestrator.submit.registry import Registry

    deployment = Deployment(state)
    owner_set = sorted(parse_nations(list(owners)))
    for owner in owner_set:
        require_nation(deployment, owner)
    orch = deployment.orchestrator()
    if any(d.name == name for d in Registry(orch.registry_db).datasets()):
        raise AlreadyExists(f"dataset {name!r} is already sealed", source=str(path))
    sealer = deployment.custodian(owner_set[0])
    outbox = sealer.ctx.nation.root / "outbox"
    descriptor = steward.seal_dataset(
        sealer.ctx, path, outbox, name=name, owners=owner_set,
        classification=classification, releasable_to=releasable_to,
        label_column=label_column, has_header=has_header,
        export_controls=export_controls, caveats=caveats,
        segment_size=segment_size or DEFAULT_SEGMENT_SIZE, progress=progress)
    return registration.register_dataset(
        orch, DatasetDescriptor.from_json(descriptor.to_json()),
        outbox / f"{descriptor.id}.sealed", move=True)


def open_model(state: StateDir, model_id: str, nation: str, out: Path
               ) -> dict[str, Any]:
    """Owner ``nation``'s officer opens model ``model_id``: its custodian records
    ``model.opened`` (or the denial) and releases the DEK to the officer, who
    decrypts the sealed file handed over by the orchestrator."""
    from orchestrator.submit.registry import Registry

    deployment = Deployment(state)
    record = Registry(state.registry_db).model(model_id)
    dek = deployment.officer_connect(nation)(nation).open_model_key(model_id)
    return steward.open_owned(dek, Path(record.object_path), record.id, Path(out))


def add_agreement(state: StateDir, path: Path, *,
                  sign_as: Sequence[str] = ()) -> Agreement:
    """Record one agreement version at the orchestrator and every party's
    custodian; sign it at once as ``sign_as``'s officers.

    Raises
    ------
    ConfigError, AlreadyExists
        As :func:`orchestrator.submit.registration.add_agreement`.
    """
    deployment = Deployment(state)
    agreement = registration.add_agreement(deployment.orchestrator(), path)
    for nation in sign_as:
        sign_agreement(state, agreement.id, nation, version=agreement.version)
    return agreement


def sign_agreement(state: StateDir, agreement_id: str, nation: str, *,
                   version: int | None = None) -> Standing:
    """``nation``'s officer signs an agreement version; every party's custodian
    receives the signature. Returns the version's standing at ``nation``.

    Raises
    ------
    ConfigError, AlreadyExists, NotFound
        Not a party, signed already, unknown agreement or version.
    """
    deployment = Deployment(state)
    officer = deployment.officer(nation)
    officer_statements.sign_agreement(officer, deployment.officer_connect(nation),
                                      agreement_id,
                                      version=version)
    return _standing(deployment, nation, agreement_id, version)


def terminate_agreement(state: StateDir, agreement_id: str, nation: str, *,
                        reason: str) -> Standing:
    """``nation``'s officer terminates an agreement; every party's custodian
    receives it (and cancels pending approvals under it once ended)."""
    deployment = Deployment(state)
    officer_statements.terminate_agreement(deployment.officer(nation),
                                           deployment.officer_connect(nation),
                                           agreement_id,
                                           reason=reason)
    return _standing(deployment, nation, agreement_id, None)


def _standing(deployment: Deployment, nation: str, agreement_id: str,
              version: int | None) -> Standing:
    """The version's standing as ``nation``'s custodian holds it, asked the way
    its officer reaches it."""
    found = [Standing.from_json(s)
             for s in deployment.officer_connect(nation)(nation).standings()
             if s["agreement_id"] == agreement_id
             and (version is None or s["version"] == version)]
    if not found:
        raise NotFound(f"agreement {agreement_id!r} is not held by {nation}")
    return found[-1]


def load_agreement_file(path: Path) -> Agreement:
    """Parse an agreement file (re-exported for the CLI)."""
    return load_agreement(path)


def parse_ceiling(text: str) -> str:
    """Check a classification name (for ``--ceiling``)."""
    try:
        return Classification.parse(text).name
    except ConfigError as exc:
        raise ConfigError(exc.message, field="--ceiling") from exc


def site_state(state: StateDir, name: str) -> SiteState:
    """Site ``name``'s own directory in the embedded default."""
    return SiteState(state.site_dir(name))
