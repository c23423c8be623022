"""Each party imports the others' cards, never their directories.

The counterpart of :mod:`orchestrator.embedded.standalone`: every function runs
at one party, over its own state directory, and reads another party's public
file (a card, a certificate, an accreditation). A card with a bad signature, of
the wrong kind of party, or with a key other than the one imported before for
the same actor is refused with the file and field named
(:func:`orchestrator.protocol.cards.pin_card_key`); nothing is written then.

========================  =====================================================
at                        imports
========================  =====================================================
the log operator          enrollments from every card (:func:`log_enroll`), its
                          client certificates from nations (:func:`log_install_cert`)
a nation                  the log's and peer nations' cards (:func:`nation_import`);
                          certificates for cards (:func:`nation_issue`); site
                          accreditations (:func:`nation_accredit`)
a site                    accreditations (:func:`site_install`), the
                          orchestrator's card (:func:`site_trust_orchestrator`)
the orchestrator          nation cards (:func:`orchestrator_add_nation`), site
                          cards (:func:`orchestrator_register_site`)
an officer                its trust roots and certificates
                          (:mod:`orchestrator.embedded.officer_handover`)
========================  =====================================================
"""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

from orchestrator.crypto import atomic_write_bytes
from orchestrator.crypto.x509 import check_certifies_key, check_issued_by
from orchestrator.embedded.deployment import Deployment, require_nation
from orchestrator.embedded.layout import StateDir
from orchestrator.errors import ConfigError, IntegrityError, NotFound
from orchestrator.log.operator import LogOperator, LogState
from orchestrator.nation.custodian import LocalCustodian
from orchestrator.nation.pki import issue_client
from orchestrator.protocol.cards import (
    PartyCard,
    is_nation_card,
    load_card_json,
    pin_card_key,
    read_card,
    read_nation_card,
)
from orchestrator.protocol.log import LogClient
from orchestrator.protocol.parties import Accreditation, NationCard
from orchestrator.site.identity import SiteState
from orchestrator.submit.registry import NationRecord, SealedObjectRecord, SiteRecord
from orchestrator.timeutil import system_clock
from orchestrator.tlog.events import SignedEntry

__all__ = [
    "log_enroll",
    "log_install_cert",
    "nation_accredit",
    "nation_import",
    "nation_issue",
    "orchestrator_add_nation",
    "orchestrator_register_dataset",
    "orchestrator_register_site",
    "read_certificate_pem",
    "site_install",
    "site_trust_orchestrator",
]

#: Each importing party's record of the keys it imported (actor -> key id).
PINS = "imported-cards.json"

#: Party kind -> (role, certificate name) a nation grants it from its card.
_ROLES = {"orchestrator": ("orchestrator", "submit"), "log": ("log", "custody")}


def _any_card(path: Path) -> PartyCard | NationCard:
    if is_nation_card(load_card_json(path)):
        return read_nation_card(path)[0]
    return read_card(path)


def read_certificate_pem(path: Path, what: str = "certificate") -> bytes:
    """The PEM certificate(s) in another party's file at ``path``.

    Raises
    ------
    NotFound
        If there is no such file.
    ConfigError
        If it cannot be read or holds no PEM certificate (file named).
    """
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise NotFound(f"no such {what} file", source=str(path)) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {what}: {exc.strerror}",
                          source=str(path)) from exc
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ConfigError(f"not a PEM {what}", source=str(path))
    return data


# -- at the log operator --------------------------------------------------------------

def log_enroll(state: StateDir, path: Path) -> SignedEntry:
    """Enroll the actor of a party's or nation's card (its self-signed
    enrollment, for the key the card names).

    Raises
    ------
    IntegrityError
        A bad card, or a log card (the log enrolls no one for itself).
    AlreadyExists
        If the actor is enrolled with another key.
    """
    log_state = LogState(state.log_dir)
    if isinstance(card := _any_card(path), NationCard):
        _, enrolled = read_nation_card(path)
        actor, key = f"custodian:{card.code}", card.custodian_public
    else:
        enrolled, actor, key = card.enrollment, card.actor, card.public_key
    if enrolled is None:
        raise IntegrityError("field enrollment: this card enrolls no one",
                             source=str(path))
    pin_card_key(log_state.root / PINS, actor, key, str(path))
    return LogOperator(log_state).enroll(enrolled)


def log_install_cert(state: StateDir, nation: str, path: Path) -> Path:
    """Keep the client certificate ``nation`` issued the log operator (role
    ``log``: it asks that nation's custodian to witness).

    Raises
    ------
    IntegrityError
        If it is not for the operator's client key.
    """
    client = LogState(state.log_dir).ensure().client_dir
    pem = read_certificate_pem(path)
    check_certifies_key(pem, (client / "client.key").read_bytes())
    target = client / f"{nation}.pem"
    atomic_write_bytes(target, pem, mode=0o644)
    return target


# -- at a nation ----------------------------------------------------------------------

def nation_import(state: StateDir, code: str, path: Path) -> str:
    """Nation ``code`` pins a log it witnesses (a log card) or a peer nation (its
    card). Returns what was pinned, for messages.

    Raises
    ------
    IntegrityError
        A bad card, or one of another kind of party.
    """
    nation = require_nation(Deployment(state), code)
    card = _any_card(path)
    if isinstance(card, NationCard):
        pin_card_key(nation.root / PINS, f"custodian:{card.code}",
                     card.custodian_public, str(path))
        nation.pin_peer(card)
        return f"nation {card.code} (custodian key {card.custodian_key_id})"
    if card.party != "log":
        raise IntegrityError(f"field party: a {card.party} card is not pinned by a "
                             "nation (a log or a nation card is)", source=str(path))
    pin_card_key(nation.root / PINS, "log", card.public_key, str(path))
    nation.pin_log(str(card.extra["vkey"]))
    return f"custody log {card.extra['vkey']}"


def nation_issue(state: StateDir, code: str, path: Path, out: Path) -> PartyCard:
    """Nation ``code``'s CA issues the party of a card its client certificate
    (orchestrator, log operator or an officer), written to ``out``.

    Raises
    ------
    IntegrityError
        A bad card, or a site's (sites are accredited: :func:`nation_accredit`).
    """
    nation = require_nation(Deployment(state), code)
    card = read_card(path)
    if card.party == "site":
        raise IntegrityError("field party: a site is accredited, not issued a "
                             "certificate (sovereign site accredit --card)",
                             source=str(path))
    role, name = (("officer", card.nation.lower()) if card.party == "officer"
                  else _ROLES[card.party])
    pin_card_key(nation.root / PINS, card.actor, card.public_key, str(path))
    if card.party == "orchestrator":  # logged as actor.admitted on next serving
        nation.admit(card.actor, card.public_key)
    atomic_write_bytes(out, issue_client(nation, card.csr_pem, role=role, name=name),
                       mode=0o644)
    return card


def nation_accredit(state: StateDir, code: str, path: Path, out: Path, *,
                    log: LogClient, site: str | None = None,
                    ceiling: str | None = None,
                    tee_kinds: tuple[str, ...] = ("none",),
                    expires_in: timedelta = timedelta(days=365),
                    operator_nation: str | None = None) -> Accreditation:
    """Nation ``code``'s custodian accredits the site of a card (logging
    ``site.accredited`` through ``log``) and writes to ``out`` what the site
    keeps: the accreditation, its client certificate and the nation's card.

    Raises
    ------
    IntegrityError
        A bad card, or not a site's.
    ConfigError
        The card is not of ``site`` (when given); bad ceiling, TEE kinds or
        expiry.
    """
    nation = require_nation(Deployment(state), code)
    card = read_card(path, expect="site")
    description = card.description
    if site is not None and description.site != site:
        raise ConfigError(f"the card is of site {description.site!r}, not {site!r}",
                          source=str(path), field="site")
    pin_card_key(nation.root / PINS, card.actor, card.public_key, str(path))
    custodian = LocalCustodian(nation, log)
    doc = custodian.accredit(
        description.to_json(), ceiling=ceiling or description.accreditation,
        tee_kinds=list(tee_kinds), expires_at=system_clock() + expires_in,
        operator_nation=operator_nation)
    cert = issue_client(nation, card.csr_pem, role="site", name=description.site)
    atomic_write_bytes(out, json.dumps({
        "accreditation": doc, "certificate_pem": cert.decode("ascii"),
        "nation_card": nation.card().to_json()}, indent=1).encode(), mode=0o644)
    return Accreditation.verify(doc, custodian_public=nation.custodian_public())


# -- at a site ------------------------------------------------------------------------

def site_install(site: SiteState, path: Path) -> Accreditation:
    """Keep a nation's accreditation of this site and its client certificate,
    after checking both against the nation's card (and the card against the key
    imported before for that nation).

    Raises
    ------
    IntegrityError
        Not signed by that nation, not for this site's key, or a certificate not
        from that nation's CA or not for this site's TLS key.
    """
    source = str(path)
    try:
        doc: dict[str, Any] = json.loads(path.read_bytes())
        nation_doc, acc_doc = doc["nation_card"], doc["accreditation"]
        cert = str(doc["certificate_pem"]).encode("ascii")
    except FileNotFoundError as exc:
        raise NotFound("no such accreditation file", source=source) from exc
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"not an accreditation file: {exc}", source=source) from exc
    card = NationCard.verify(nation_doc, source=source)
    accreditation = Accreditation.verify(
        acc_doc, custodian_public=card.custodian_public, source=source)
    if accreditation.site_public_key != site.signing_key().public_bytes():
        raise IntegrityError("field accreditation: it accredits another site key",
                             source=source)
    try:
        check_issued_by(cert, card.ca_pem.encode("ascii"))
        check_certifies_key(cert, site.tls_key.read_bytes())
    except (ConfigError, IntegrityError) as exc:
        raise IntegrityError(f"field certificate_pem: {exc.message}",
                             source=source) from exc
    pin_card_key(site.root / PINS, f"custodian:{card.code}", card.custodian_public,
                 source)
    site.keep_accreditation(card.code, acc_doc, cert)
    return accreditation


def site_trust_orchestrator(site: SiteState, path: Path) -> PartyCard:
    """Take the orchestrator's interchange public key from its card (its worker
    pools connect to nothing else).

    Raises
    ------
    IntegrityError
        A bad card, or not the orchestrator's.
    """
    card = read_card(path, expect="orchestrator")
    pin_card_key(site.root / PINS, "orchestrator", card.public_key, str(path))
    site.trust_channel(str(card.extra.get("channel_public")))
    return card


# -- at the orchestrator --------------------------------------------------------------

def orchestrator_add_nation(state: StateDir, path: Path) -> NationRecord:
    """Register a nation from its card (its HPKE key seals output DEKs).

    Raises
    ------
    IntegrityError
        A bad card, or one with another key than the nation registered before.
    """
    from orchestrator.submit import registration

    card, _ = read_nation_card(path)
    orch = Deployment(state).orchestrator()
    pin_card_key(orch.root / PINS, f"custodian:{card.code}", card.custodian_public,
                 str(path))
    return registration.register_nation(orch, card)


def orchestrator_register_site(state: StateDir, config_path: Path,
                               card_path: Path) -> SiteRecord:
    """Register a site's configuration with the description on its card; for a
    site-started site, accept its worker pools' CurveZMQ key.

    Raises
    ------
    IntegrityError
        A bad card, not a site's, or another key than before.
    ConfigError
        A malformed config, or one the site did not describe.
    """
    from orchestrator.submit import registration
    from orchestrator.submit.channel import install_site_channel
    from orchestrator.submit.siteconfig import (
        SiteStartedProviderSection,
        load_site_config,
    )

    card = read_card(card_path, expect="site")
    orch = Deployment(state).orchestrator()
    pin_card_key(orch.root / PINS, card.actor, card.public_key, str(card_path))
    record = registration.register_site(orch, config_path, card.description)
    if isinstance(load_site_config(config_path).provider, SiteStartedProviderSection):
        install_site_channel(orch.root, record.name, str(card.extra.get(
            "channel_public")))
    return record


def orchestrator_register_dataset(state: StateDir, descriptor_path: Path,
                                  sealed_path: Path) -> SealedObjectRecord:
    """Take in a dataset a nation sealed alone: its descriptor and sealed file
    (checked against the descriptor's SHA-256), relaying co-owners' shares.

    Raises
    ------
    ConfigError
        If the descriptor is malformed (file named).
    IntegrityError
        If the sealed file is not the one the descriptor names.
    AlreadyExists
        If a dataset of that name is registered.
    """
    from orchestrator.protocol.datasets import DatasetDescriptor
    from orchestrator.submit import registration

    try:
        doc = json.loads(descriptor_path.read_bytes())
    except FileNotFoundError as exc:
        raise NotFound("no such descriptor", source=str(descriptor_path)) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"not a JSON descriptor: {exc}",
                          source=str(descriptor_path)) from exc
    if not sealed_path.is_file():
        raise NotFound("no such sealed file", source=str(sealed_path))
    descriptor = DatasetDescriptor.from_json(doc, source=str(descriptor_path))
    return registration.register_dataset(Deployment(state).orchestrator(),
                                         descriptor, sealed_path)
