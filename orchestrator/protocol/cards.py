"""Hand-over files: what one party sends another so they can work together.

On separate machines the parties never see each other's directories; each
initialises itself and exports one *card*: a JSON file holding a signed
statement about itself, signed by its own key (proof that it holds the key it
describes), plus its self-signed log enrollment. Every importing command reads
the other party's card, never its directory, and checks it with
:func:`read_card`.

``party-card/v1`` statements (log, orchestrator, officer, site) carry::

    party        "log" | "orchestrator" | "officer" | "site"
    actor        its name in the custody log ("log", "orchestrator",
                 "officer:AUS", "site:local")
    public_key   base64 of its raw 32-byte Ed25519 key (which signs the card)
    csr_pem      its TLS client CSR (PEM; nations issue certificates from it)
    nation       its nation (an officer's, a site's operator claim); "" for the
                 log operator and the orchestrator
    vkey, ca_pem (log) the C2SP signed-note verifier key and the log service's
                 CA certificate
    description  (site) its signed ``site-description/v1`` (same key)

A nation's card is its ``nation-card/v1`` (:class:`~orchestrator.protocol.
parties.NationCard`, signed by its custodian key) in the same file layout.

The file itself is ``{"statement", "signature", "key_id", "enrollment"}``
(:meth:`~orchestrator.protocol.statements.SignedStatement.to_json` plus the
``actor.enrolled`` event, :func:`~orchestrator.protocol.parties.enrollment`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orchestrator.canonical import b64e
from orchestrator.crypto import (
    SigningKey,
    atomic_write_bytes,
    key_id_of,
    verify_signature,
)
from orchestrator.errors import ConfigError, IntegrityError, NotFound
from orchestrator.protocol.log import ENROLL_KIND, SignedEvent
from orchestrator.protocol.parties import (
    NationCard,
    SiteDescription,
    _b64key,
    enrollment,
)
from orchestrator.protocol.statements import (
    SignedStatement,
    sign_statement,
    verify_statement,
)
from orchestrator.timeutil import rfc3339, system_clock
from orchestrator.tlog.events import event_signing_input

__all__ = ["CARD_TYPE", "PARTIES", "PartyCard", "card_file_name", "is_nation_card",
           "load_card_json", "pin_card_key", "read_card", "read_nation_card",
           "write_card"]

#: The statement type of a non-nation party's card.
CARD_TYPE = "party-card/v1"
#: Kinds of party that export a :class:`PartyCard`.
PARTIES = ("log", "orchestrator", "officer", "site")


@dataclass(frozen=True)
class PartyCard:
    """A party's public identity, signed by its own key.

    Attributes
    ----------
    party
        One of :data:`PARTIES`.
    actor
        Its custody-log actor name.
    nation
        Its nation (officer, site operator claim), else ``""``.
    public_key
        Raw 32-byte Ed25519 key that signed the card.
    csr_pem
        Its TLS client CSR (PEM bytes).
    extra
        Party-specific fields (``vkey``, ``ca_pem``, ``description``).
    enrollment
        Its self-signed ``actor.enrolled`` event for the same key (``None`` for
        the log operator, which writes no events of its own).
    signed
        The signed statement.
    """

    party: str
    actor: str
    nation: str
    public_key: bytes
    csr_pem: bytes
    extra: dict[str, Any]
    enrollment: SignedEvent | None
    signed: SignedStatement

    @property
    def key_id(self) -> str:
        """Key id of :attr:`public_key`."""
        return key_id_of(self.public_key)

    @property
    def description(self) -> SiteDescription:
        """A site card's signed description (verified, same key).

        Raises
        ------
        IntegrityError
            If this is not a site card.
        """
        doc = self.extra.get("description")
        if self.party != "site" or not isinstance(doc, dict):
            raise IntegrityError("not a site card", source="<card>")
        return SiteDescription.verify(doc)

    @classmethod
    def create(cls, party: str, actor: str, key: SigningKey, csr_pem: bytes, *,
               nation: str = "", **extra: Any) -> PartyCard:
        """Sign a card for ``actor`` with its own ``key``.

        Raises
        ------
        ConfigError
            If ``party`` is not one of :data:`PARTIES`.
        """
        if party not in PARTIES:
            raise ConfigError(f"unknown party kind {party!r}", field="party")
        signed = sign_statement({
            "type": CARD_TYPE, "nation": nation, "issued_at": rfc3339(system_clock()),
            "party": party, "actor": actor, "public_key": b64e(key.public_bytes()),
            "csr_pem": csr_pem.decode("ascii"), **extra}, key)
        doc = signed.to_json()
        if party != "log":
            doc["enrollment"] = enrollment(actor, key).to_json()
        return cls.verify(doc)

    @classmethod
    def verify(cls, doc: Mapping[str, Any], *, source: str = "<card>",
               expect: str | None = None) -> PartyCard:
        """Parse a card file's JSON and check every signature in it.

        Raises
        ------
        IntegrityError
            Malformed, another kind of party than ``expect``, a bad signature,
            a site description or an enrollment for another key or actor (the
            file and the field are named).
        """
        signed = SignedStatement.from_json(doc, source=source)
        st = signed.statement
        if st.get("type") != CARD_TYPE:
            raise IntegrityError(f"field type: {st.get('type')!r} is not a "
                                 f"{CARD_TYPE} card", source=source)
        party = st.get("party")
        if party not in PARTIES:
            raise IntegrityError(f"field party: unknown party kind {party!r}",
                                 source=source)
        if expect is not None and party != expect:
            raise IntegrityError(f"field party: a {party} card, not a {expect} card",
                                 source=source)
        public = _b64key(st.get("public_key"), "public_key", source)
        verify_statement(signed, public_key=public, expected_type=CARD_TYPE,
                         expected_nation=signed.nation, source=source, signer=party)
        actor, csr = st.get("actor"), st.get("csr_pem")
        if not isinstance(actor, str) or not actor:
            raise IntegrityError("field actor: missing or not text", source=source)
        if not isinstance(csr, str) or "CERTIFICATE REQUEST" not in csr:
            raise IntegrityError("field csr_pem: not a PEM certificate request",
                                 source=source)
        extra = {k: v for k, v in st.items() if k not in
                 {"type", "nation", "issued_at", "party", "actor", "public_key",
                  "csr_pem"}}
        enrolled = (None if party == "log"
                    else _enrollment_of(doc, actor, public, source))
        card = cls(party=str(party), actor=actor, nation=signed.nation,
                   public_key=public, csr_pem=csr.encode("ascii"), extra=extra,
                   enrollment=enrolled, signed=signed)
        _check_extra(card, source)
        return card

    def to_json(self) -> dict[str, Any]:
        """The card file's JSON."""
        doc = self.signed.to_json()
        if self.enrollment is not None:
            doc["enrollment"] = self.enrollment.to_json()
        return doc


def _enrollment_of(doc: Mapping[str, Any], actor: str, public: bytes,
                   source: str) -> SignedEvent:
    raw = doc.get("enrollment")
    if not isinstance(raw, dict):
        raise IntegrityError("field enrollment: missing or not an object",
                             source=source)
    try:
        event = SignedEvent.from_json(raw)
        verify_signature(public, event.signature, event_signing_input(event.event))
    except (ConfigError, IntegrityError) as exc:
        raise IntegrityError(f"field enrollment: {exc.message}",
                             source=source) from exc
    body = event.event.body
    if (event.event.kind != ENROLL_KIND or event.event.actor != actor
            or body.get("actor") != actor or body.get("public_key") != b64e(public)):
        raise IntegrityError("field enrollment: not this card's actor and key",
                             source=source)
    return event


def _check_extra(card: PartyCard, source: str) -> None:
    if card.party == "log":
        for name in ("vkey", "ca_pem"):
            if not isinstance(card.extra.get(name), str):
                raise IntegrityError(f"field {name}: missing or not text",
                                     source=source)
    if card.party == "site":
        doc = card.extra.get("description")
        if not isinstance(doc, dict):
            raise IntegrityError("field description: missing or not an object",
                                 source=source)
        description = SiteDescription.verify(doc, source=source)
        if (description.public_key != card.public_key
                or card.actor != f"site:{description.site}"):
            raise IntegrityError("field description: describes another site or key",
                                 source=source)


def card_file_name(party: str, name: str) -> str:
    """The conventional file name of a card: ``<party>-<name>.card.json``."""
    return f"{party}-{name}.card.json"


def write_card(path: Path, doc: Mapping[str, Any]) -> Path:
    """Write a card file (``0644``: it is public). Returns ``path``."""
    text = json.dumps(doc, indent=1, sort_keys=True) + "\n"
    atomic_write_bytes(path, text.encode(), mode=0o644)
    return path


def load_card_json(path: Path) -> dict[str, Any]:
    """The JSON object in the card file at ``path``, not yet verified.

    Raises
    ------
    NotFound
        If there is no such file.
    ConfigError
        If it cannot be read, is not JSON or not an object (file named).
    """
    try:
        doc = json.loads(path.read_bytes())
    except FileNotFoundError as exc:
        raise NotFound("no such card file", source=str(path)) from exc
    except PermissionError as exc:
        raise ConfigError("permission denied", source=str(path)) from exc
    except (OSError, ValueError) as exc:
        raise ConfigError(f"not a JSON card file: {exc}", source=str(path)) from exc
    if not isinstance(doc, dict):
        raise ConfigError("not a JSON object", source=str(path))
    return doc


def read_card(path: Path, *, expect: str | None = None) -> PartyCard:
    """Read and verify the party card at ``path``.

    Raises
    ------
    NotFound
        If there is no such file.
    ConfigError
        If it is not a JSON object.
    IntegrityError
        See :meth:`PartyCard.verify`.
    """
    return PartyCard.verify(load_card_json(path), source=str(path), expect=expect)


def is_nation_card(doc: dict[str, Any]) -> bool:
    """Whether a card file's JSON holds a ``nation-card/v1`` statement."""
    statement = doc.get("statement")
    return isinstance(statement, dict) and statement.get("type") == "nation-card/v1"


def read_nation_card(path: Path, *, expect: str | None = None
                     ) -> tuple[NationCard, SignedEvent | None]:
    """Read and verify a nation's card file and the enrollment in it (if any).

    Raises
    ------
    NotFound, ConfigError
        As :func:`read_card`.
    IntegrityError
        A bad card (another nation than ``expect``, a bad signature, a party
        card instead) or an enrollment for another key.
    """
    doc = load_card_json(path)
    statement = doc.get("statement")
    kind = statement.get("type") if isinstance(statement, dict) else None
    if kind != "nation-card/v1":
        raise IntegrityError(f"field type: {kind!r} is not a nation card",
                             source=str(path))
    card = NationCard.verify(doc, source=str(path), expect=expect)
    if "enrollment" not in doc:
        return card, None
    return card, _enrollment_of(doc, f"custodian:{card.code}", card.custodian_public,
                                str(path))


def pin_card_key(pins: Path, actor: str, public_key: bytes, source: str) -> None:
    """Remember the key first imported for ``actor`` in the JSON file ``pins``
    (``0600``); refuse a later card with another key.

    Raises
    ------
    IntegrityError
        If ``actor`` was imported before with another key (``source`` named).
    """
    try:
        doc = json.loads(pins.read_bytes())
    except FileNotFoundError:
        doc = {}
    except (OSError, ValueError) as exc:
        raise ConfigError(f"unreadable pinned keys: {exc}", source=str(pins)) from exc
    known = doc.get(actor)
    new = key_id_of(public_key)
    if known is not None and known != new:
        raise IntegrityError(f"field public_key: {actor} was imported before with key "
                             f"{known}, this card has {new}", source=source)
    if known is None:
        doc[actor] = new
        atomic_write_bytes(pins, json.dumps(doc, indent=1, sort_keys=True).encode(),
                           mode=0o600)


def unpin_card_key(pins: Path, actor: str) -> None:
    """Forget the key imported for ``actor`` in ``pins`` (an explicit re-pin by
    the party's operator; see :func:`pin_card_key`).

    Raises
    ------
    ConfigError
        If ``pins`` cannot be read.
    """
    try:
        doc = json.loads(pins.read_bytes())
    except FileNotFoundError:
        return
    except (OSError, ValueError) as exc:
        raise ConfigError(f"unreadable pinned keys: {exc}", source=str(pins)) from exc
    if doc.pop(actor, None) is not None:
        atomic_write_bytes(pins, json.dumps(doc, indent=1, sort_keys=True).encode(),
                           mode=0o600)
