"""The public documents parties exchange to know each other.

Every party makes its own keys where it runs; what travels is public and signed
by the party it describes (the signed-statement scheme of
:mod:`orchestrator.protocol.statements`):

* :class:`NationCard` (``nation-card/v1``, signed by the custodian key): a
  nation's custodian key (custody events, witness cosignatures), its HPKE key
  (enclaves seal output DEKs to it), its officer's key and its CA certificate
  (clients pin it). Peers and the orchestrator pin cards.
* :class:`SiteDescription` (``site-description/v1``, signed by the site key): a
  site's public key, the operator nation and ceiling it *claims*, its config
  digest and TEE kinds. A claim only: nations decide.
* :class:`Accreditation` (``site-accreditation/v1``, signed by the accrediting
  nation's custodian key): that nation's decision about one site key: the
  operator nation, the classification ceiling, the TEE kinds accepted and an
  expiry. The custodian releases keys only to evidence signed by a key it
  accredited, as long as the accreditation is live.

:func:`enrollment` builds the self-signed ``actor.enrolled`` event an actor
hands to the log operator.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orchestrator.canonical import b64d, b64e
from orchestrator.crypto import SigningKey, key_id_of
from orchestrator.errors import ConfigError, IntegrityError
from orchestrator.labels import Classification, parse_nation
from orchestrator.protocol.log import ENROLL_KIND, SignedEvent
from orchestrator.protocol.statements import (
    SignedStatement,
    sign_statement,
    verify_statement,
)
from orchestrator.timeutil import parse_rfc3339, rfc3339
from orchestrator.tlog.enrollment import rotation_message
from orchestrator.tlog.events import CustodyEvent

__all__ = ["TEE_KINDS", "Accreditation", "NationCard", "SiteDescription",
           "enrollment", "rotation"]

#: TEE kinds a site may offer and a nation may accredit (``none``: software
#: evidence only).
TEE_KINDS = ("none", "tdx", "sgx", "snp")


def enrollment(actor: str, key: SigningKey, *, event_id: str | None = None
               ) -> SignedEvent:
    """The self-signed ``actor.enrolled`` event that publishes ``key`` as
    ``actor``'s signing key (proof of possession), for the log operator.

    ``event_id`` defaults to one derived from the key, so handing the same
    enrollment over twice is idempotent.
    """
    body = {"actor": actor, "key_id": key.key_id,
            "public_key": b64e(key.public_bytes())}
    eid = event_id or "enroll-" + key.key_id.split(":")[-1]
    return SignedEvent.create(CustodyEvent.create(ENROLL_KIND, actor, body,
                                                  event_id=eid), key)


def rotation(actor: str, current: SigningKey, new: SigningKey) -> SignedEvent:
    """The enrollment of ``new`` as ``actor``'s key in place of ``current``:
    signed by ``new`` (possession), carrying ``current``'s signature over
    :func:`orchestrator.tlog.enrollment.rotation_message` (hand-over)."""
    body = {"actor": actor, "key_id": new.key_id,
            "public_key": b64e(new.public_bytes()),
            "rotates": {"key_id": current.key_id, "signature": b64e(current.sign(
                rotation_message(actor, new.key_id)))}}
    return SignedEvent.create(CustodyEvent.create(
        ENROLL_KIND, actor, body, event_id="enroll-" + new.key_id.split(":")[-1]),
        new)


def _b64key(value: Any, field: str, source: str) -> bytes:
    try:
        raw = b64d(str(value), what=field)
    except ValueError as exc:
        raise IntegrityError(f"{field} is not base64", source=source) from exc
    if len(raw) != 32:
        raise IntegrityError(f"{field} is not a 32-byte key", source=source)
    return raw


@dataclass(frozen=True)
class NationCard:
    """A nation's public identity, signed by its custodian key.

    Attributes
    ----------
    code
        ISO 3166-1 alpha-3.
    kek_id
        Id of its key-encryption key (the key stays in its keystore).
    custodian_public, hpke_public, officer_public
        Raw 32-byte Ed25519, X25519 and Ed25519 public keys.
    ca_pem
        PEM of the nation's CA certificate (its services and client
        certificates chain to it).
    signed
        The signed statement (what is pinned and forwarded).
    """

    code: str
    kek_id: str
    custodian_public: bytes
    hpke_public: bytes
    officer_public: bytes
    ca_pem: str
    signed: SignedStatement

    @property
    def custodian_key_id(self) -> str:
        """Key id of the custodian key."""
        return key_id_of(self.custodian_public)

    @property
    def officer_key_id(self) -> str:
        """Key id of the officer key."""
        return key_id_of(self.officer_public)

    @classmethod
    def create(cls, code: str, *, kek_id: str, custodian: SigningKey,
               hpke_public: bytes, officer_public: bytes, ca_pem: str,
               now: datetime) -> NationCard:
        """Sign a card for nation ``code`` with its custodian key."""
        signed = sign_statement({
            "type": "nation-card/v1", "nation": code, "issued_at": rfc3339(now),
            "kek_id": kek_id, "custodian_public": b64e(custodian.public_bytes()),
            "hpke_public": b64e(hpke_public), "officer_public": b64e(officer_public),
            "ca_pem": ca_pem}, custodian)
        return cls.verify(signed.to_json())

    @classmethod
    def verify(cls, doc: Mapping[str, Any], *, source: str = "<nation card>",
               expect: str | None = None) -> NationCard:
        """Parse a card and check its self-signature (and its nation).

        Raises
        ------
        IntegrityError
            Malformed, another nation than ``expect``, or a bad signature.
        """
        signed = SignedStatement.from_json(doc, source=source)
        nation = signed.nation
        if expect is not None and nation != expect:
            raise IntegrityError(f"card is for {nation!r}, not {expect}", source=source)
        public = _b64key(signed.statement.get("custodian_public"), "custodian_public",
                         source)
        st = verify_statement(signed, public_key=public, expected_type="nation-card/v1",
                              expected_nation=nation, source=source,
                              signer="custodian")
        try:
            parse_nation(nation, source=source, field="nation")
        except ConfigError as exc:
            raise IntegrityError(exc.message, source=source) from exc
        return cls(code=nation, kek_id=str(st["kek_id"]), custodian_public=public,
                   hpke_public=_b64key(st["hpke_public"], "hpke_public", source),
                   officer_public=_b64key(st["officer_public"], "officer_public",
                                          source),
                   ca_pem=str(st["ca_pem"]), signed=signed)

    def to_json(self) -> dict[str, Any]:
        """The signed statement as JSON (what a party hands over)."""
        return self.signed.to_json()


@dataclass(frozen=True)
class SiteDescription:
    """What a site says of itself, signed by its own key (a claim, not a fact).

    Attributes
    ----------
    site
        Site name.
    operator_nation, accreditation
        The operator nation and classification ceiling it claims.
    public_key
        Its Ed25519 signing key (evidence, provenance, task events).
    config_digest
        Digest of its site configuration.
    tee_kinds
        TEE kinds its workers offer (:data:`TEE_KINDS`).
    """

    site: str
    operator_nation: str
    accreditation: str
    public_key: bytes
    config_digest: str
    tee_kinds: tuple[str, ...]
    signed: SignedStatement

    @property
    def key_id(self) -> str:
        """Key id of the site key."""
        return key_id_of(self.public_key)

    @classmethod
    def create(cls, site: str, *, operator_nation: str, accreditation: str,
               key: SigningKey, config_digest: str, tee_kinds: Sequence[str],
               now: datetime) -> SiteDescription:
        """Sign a description with the site key."""
        signed = sign_statement({
            "type": "site-description/v1", "nation": operator_nation,
            "issued_at": rfc3339(now), "site": site,
            "public_key": b64e(key.public_bytes()), "accreditation": accreditation,
            "config_digest": config_digest, "tee_kinds": list(tee_kinds)}, key)
        return cls.verify(signed.to_json())

    @classmethod
    def verify(cls, doc: Mapping[str, Any], *, source: str = "<site description>"
               ) -> SiteDescription:
        """Parse a description and check its self-signature.

        Raises
        ------
        IntegrityError
            Malformed or badly signed.
        """
        signed = SignedStatement.from_json(doc, source=source)
        public = _b64key(signed.statement.get("public_key"), "public_key", source)
        st = verify_statement(signed, public_key=public,
                              expected_type="site-description/v1",
                              expected_nation=signed.nation, source=source,
                              signer="site")
        kinds = st["tee_kinds"]
        if not isinstance(kinds, list) or not all(k in TEE_KINDS for k in kinds):
            raise IntegrityError(f"tee_kinds must be some of {', '.join(TEE_KINDS)}",
                                 source=source)
        return cls(site=str(st["site"]), operator_nation=signed.nation,
                   accreditation=str(st["accreditation"]), public_key=public,
                   config_digest=str(st["config_digest"]), tee_kinds=tuple(kinds),
                   signed=signed)

    def to_json(self) -> dict[str, Any]:
        """The signed statement as JSON."""
        return self.signed.to_json()


@dataclass(frozen=True)
class Accreditation:
    """A nation's signed decision about one site key.

    Attributes
    ----------
    accreditation_id
        ``acc-<NATION>-<site>-<16 hex>``.
    nation
        The accrediting nation.
    site, site_public_key
        Which site, and the exact key accredited.
    operator_nation, ceiling
        The operator nation and the highest classification it may receive.
    tee_kinds
        Evidence kinds accepted from it (``none`` = software evidence).
    expires_at
        Timezone-aware instant it lapses.
    """

    accreditation_id: str
    nation: str
    site: str
    site_public_key: bytes
    operator_nation: str
    ceiling: Classification
    tee_kinds: tuple[str, ...]
    expires_at: datetime
    signed: SignedStatement

    @classmethod
    def create(cls, nation: str, description: SiteDescription, *,
               custodian: SigningKey, ceiling: Classification,
               tee_kinds: Sequence[str], expires_at: datetime, now: datetime,
               operator_nation: str | None = None) -> Accreditation:
        """Sign an accreditation of ``description``'s key as ``nation``'s custodian.

        Raises
        ------
        ConfigError
            An unknown TEE kind, or an expiry not after ``now``.
        """
        if not tee_kinds or any(k not in TEE_KINDS for k in tee_kinds):
            raise ConfigError(f"TEE kinds must be some of {', '.join(TEE_KINDS)}",
                              field="--tee")
        if expires_at <= now:
            raise ConfigError("an accreditation must expire in the future",
                              field="--expires-in")
        signed = sign_statement({
            "type": "site-accreditation/v1", "nation": nation,
            "issued_at": rfc3339(now),
            "accreditation_id": f"acc-{nation}-{description.site}-"
                                f"{uuid.uuid4().hex[:16]}",
            "site": description.site,
            "site_public_key": b64e(description.public_key),
            "operator_nation": operator_nation or description.operator_nation,
            "ceiling": ceiling.name.replace("_", " "),
            "tee_kinds": sorted(set(tee_kinds)),
            "expires_at": rfc3339(expires_at)}, custodian)
        return cls.verify(signed.to_json(), custodian_public=custodian.public_bytes())

    @classmethod
    def verify(cls, doc: Mapping[str, Any], *, custodian_public: bytes,
               source: str = "<accreditation>") -> Accreditation:
        """Parse an accreditation and check it is signed by ``custodian_public``.

        Raises
        ------
        IntegrityError
            Malformed, or not signed by that custodian key.
        """
        signed = SignedStatement.from_json(doc, source=source)
        st = verify_statement(signed, public_key=custodian_public,
                              expected_type="site-accreditation/v1",
                              expected_nation=signed.nation, source=source,
                              signer="custodian")
        try:
            ceiling = Classification.parse(str(st["ceiling"]))
            expires = parse_rfc3339(str(st["expires_at"]))
        except (ConfigError, ValueError) as exc:
            raise IntegrityError(f"malformed accreditation: {exc}",
                                 source=source) from exc
        kinds = st["tee_kinds"]
        if not isinstance(kinds, list) or not all(k in TEE_KINDS for k in kinds):
            raise IntegrityError("malformed accreditation: tee_kinds", source=source)
        return cls(accreditation_id=str(st["accreditation_id"]), nation=signed.nation,
                   site=str(st["site"]),
                   site_public_key=_b64key(st["site_public_key"], "site_public_key",
                                           source),
                   operator_nation=str(st["operator_nation"]), ceiling=ceiling,
                   tee_kinds=tuple(kinds), expires_at=expires, signed=signed)

    def live_at(self, at: datetime) -> bool:
        """Whether it has not expired at ``at``."""
        return at < self.expires_at

    def to_json(self) -> dict[str, Any]:
        """The signed statement as JSON (what the site may keep)."""
        return self.signed.to_json()
