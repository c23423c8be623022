"""Each party initialises itself on its own machine and exports its card.

Where the embedded default's flows (:mod:`orchestrator.embedded.parties`)
introduce every party to every other in one process, these create one party's
directory only, in its own state directory (``--state-dir`` or
``$SOVEREIGN_STATE_DIR`` on that party's machine), introduce it to nobody, and
write its public card (:mod:`orchestrator.protocol.cards`) for the others to
import (:mod:`orchestrator.embedded.handover`). No private key leaves the
party's directory.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from orchestrator.embedded.layout import StateDir
from orchestrator.errors import AlreadyExists, IntegrityError
from orchestrator.log.operator import LogOperator, LogState
from orchestrator.nation.identity import NationState
from orchestrator.nation.identity import init_nation as init_nation_dir
from orchestrator.nation.pkcs11_keystore import Pkcs11Config
from orchestrator.net.ca import DEFAULT_SERVER_HOSTS
from orchestrator.officer.identity import OfficerState, init_officer
from orchestrator.protocol.cards import PartyCard, read_card, write_card
from orchestrator.protocol.datasets import DatasetDescriptor
from orchestrator.protocol.log import LogClient
from orchestrator.protocol.parties import NationCard, enrollment
from orchestrator.site.identity import SiteState, init_site
from orchestrator.submit.siteconfig import load_site_config

__all__ = ["init_log_alone", "init_nation_alone", "init_officer_alone",
           "init_orchestrator_alone", "init_site_alone", "log_card", "officer_card",
           "orchestrator_card", "seal_dataset_alone", "site_card", "site_root"]


def _fresh(root: Path, what: str) -> None:
    if root.exists() and any(root.iterdir()):
        raise AlreadyExists(f"{what} is already initialised here", source=str(root))


def log_card(state: StateDir) -> PartyCard:
    """The log operator's card: its checkpoint key, verifier key, service CA and
    client CSR (for the nations it asks to witness)."""
    log_state = LogState(state.log_dir)
    operator = LogOperator(log_state)
    return PartyCard.create(
        "log", "log", log_state.log_key(),
        (log_state.client_dir / "client.csr").read_bytes(), vkey=operator.vkey,
        ca_pem=log_state.tls.ca_cert.read_text())


def init_log_alone(state: StateDir, out: Path, *, storage: str | None = None,
                   hosts: tuple[str, ...] = DEFAULT_SERVER_HOSTS) -> PartyCard:
    """Create the log key, its storage and the service's CA; write its card.

    Raises
    ------
    AlreadyExists
        If a log is initialised in this state directory.
    """
    log_state = LogState(state.log_dir, storage=storage)
    if log_state.initialised():
        raise AlreadyExists("a custody log is already initialised here",
                            source=str(log_state.root))
    LogOperator(log_state)
    log_state.tls.init(hosts)
    card = log_card(state)
    write_card(out, card.to_json())
    return card


def officer_card(officer: OfficerState) -> PartyCard:
    """An officer's card: its statement key and client CSR."""
    return PartyCard.create("officer", officer.actor, officer.key(),
                            officer.csr.read_bytes(), nation=officer.nation)


def init_officer_alone(state: StateDir, code: str, out: Path) -> PartyCard:
    """Create nation ``code``'s officer in its own directory; write its card.

    Raises
    ------
    AlreadyExists
        If that officer is initialised here.
    """
    card = officer_card(init_officer(state.officer_dir(code), code))
    write_card(out, card.to_json())
    return card


def orchestrator_card(state: StateDir) -> PartyCard:
    """The orchestrator's card: its event key, client CSR and its interchange's
    CurveZMQ server public key (for site-started sites)."""
    from orchestrator.crypto import load_private_key
    from orchestrator.submit.channel import server_public

    root = state.orchestrator_dir
    return PartyCard.create(
        "orchestrator", "orchestrator", load_private_key(root / "orchestrator.key"),
        (root / "tls" / "client.csr").read_bytes(),
        channel_public=server_public(root))


def init_orchestrator_alone(state: StateDir, out: Path) -> PartyCard:
    """Create the orchestrator's directory and keys; write its card.

    Raises
    ------
    AlreadyExists
        If an orchestrator is initialised here.
    """
    from orchestrator.submit.context import init_orchestrator

    if (state.orchestrator_key).exists():
        raise AlreadyExists("an orchestrator is already initialised here",
                            source=str(state.orchestrator_dir))
    state.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    init_orchestrator(state.orchestrator_dir)
    card = orchestrator_card(state)
    write_card(out, card.to_json())
    return card


def site_root(state: StateDir, config_path: Path) -> Path:
    """The site directory of the config at ``config_path`` (its
    ``site.state_dir``, else ``<state>/sites/<name>``)."""
    config = load_site_config(config_path)
    return (Path(config.site.state_dir) if config.site.state_dir
            else state.site_dir(config.site.name))


def site_card(site: SiteState) -> PartyCard:
    """A site's card: its signed description, client CSR and CurveZMQ key."""
    description = site.description()
    return PartyCard.create(
        "site", site.actor, site.signing_key(), site.csr.read_bytes(),
        nation=description.operator_nation, description=description.to_json(),
        channel_public=site.channel_public())


def init_site_alone(state: StateDir, config_path: Path, out: Path,
                    *, tee_kinds: tuple[str, ...] = ("none",)) -> PartyCard:
    """At the site: create its keys and signed description from its config;
    write its card.

    Raises
    ------
    ConfigError
        If the config is malformed (file and field named).
    AlreadyExists
        If the site is initialised here.
    """
    config = load_site_config(config_path)
    root = site_root(state, config_path)
    _fresh(root, f"site {config.site.name}")
    site = init_site(root, name=config.site.name,
                     operator_nation=config.site.operator_nation,
                     accreditation=config.site.accreditation,
                     config_digest=config.digest(), tee_kinds=tee_kinds)
    card = site_card(site)
    write_card(out, card.to_json())
    return card


def init_nation_alone(state: StateDir, code: str, officer_card_path: Path,
                      out: Path, *, pkcs11: Pkcs11Config | None = None,
                      hosts: tuple[str, ...] = DEFAULT_SERVER_HOSTS) -> NationCard:
    """Create nation ``code``'s KEK, custodian and HPKE keys and CA, pinning the
    officer of ``officer_card_path``; write the nation's card (with its
    enrollment for the log).

    Raises
    ------
    IntegrityError
        If the officer card is bad or is another nation's officer's.
    AlreadyExists
        If the nation is initialised here.
    """
    officer = read_card(officer_card_path, expect="officer")
    if officer.nation != code:
        raise IntegrityError(f"field nation: the officer card is of {officer.nation!r},"
                             f" not {code}", source=str(officer_card_path))
    nation = NationState(state.nation_dir(code), code)
    if nation.exists():
        raise AlreadyExists(f"nation {code} is already initialised here",
                            source=str(nation.root))
    state.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    init_nation_dir(nation, pkcs11=pkcs11, hosts=hosts)
    nation.pin_officer(officer.public_key)
    card = nation.card()
    write_card(out, {**card.to_json(), "enrollment": enrollment(
        nation.actor, nation.keys.custodian_signer()).to_json()})
    return card


def seal_dataset_alone(state: StateDir, code: str, path: Path, out: Path, *,
                       log: LogClient, name: str, **options: Any) -> DatasetDescriptor:
    """Nation ``code``'s steward seals the CSV at ``path`` at its own custodian
    (logging ``dataset.sealed`` through ``log``) into ``out``: the sealed file
    ``<id>.sealed`` and its public descriptor ``<id>.descriptor.json``, which
    the orchestrator takes in (``sovereign dataset register``). ``options`` are
    :func:`orchestrator.nation.steward.seal_dataset`'s.

    Raises
    ------
    ConfigError, DataError
        As :func:`orchestrator.nation.steward.seal_dataset`.
    NotFound
        If the nation is not initialised here.
    """
    from orchestrator.nation import steward
    from orchestrator.nation.custodian import LocalCustodian

    nation = NationState(state.nation_dir(code), code).require()
    out.mkdir(mode=0o755, parents=True, exist_ok=True)
    custodian = LocalCustodian(nation, log)
    descriptor = steward.seal_dataset(custodian.ctx, path, out, name=name, **options)
    write_card(out / f"{descriptor.id}.descriptor.json", descriptor.to_json())
    (out / f"{descriptor.id}.sealed").chmod(0o644)  # ciphertext: public
    return descriptor
