"""What parties send the custody log, and what the log lets each of them write.

Every party signs its own events: a :class:`SignedEvent` is a
:class:`~orchestrator.tlog.events.CustodyEvent` with the actor's Ed25519
signature over ``b"sovereign-custody-event/v1\\n" || canonical(event)``
(:func:`~orchestrator.tlog.events.event_signing_input`). The log operator
places it (sequence number, hash chain, Merkle tree) and answers only once the
entry is durable; the signature does not cover the position, which the log's
signed checkpoints and the witnesses' cosignatures vouch for (as in Certificate
Transparency, RFC 9162 section 4).

Who may write what (:func:`check_writer`), checked by the log on every append
and again by every verifier:

* the actor is ``<role>:<name>`` (``custodian:AUS``, ``officer:AUS``,
  ``site:local``) or ``orchestrator``; its key was enrolled with the log by the
  log operator (an ``actor.enrolled`` entry the actor signed itself: proof of
  possession), and the signature verifies under that key;
* the event's kind is one its role writes (:data:`ROLE_KINDS`): a site cannot
  write ``key.released``, the orchestrator cannot write ``task.completed``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from orchestrator.canonical import b64d, b64e
from orchestrator.errors import ConfigError
from orchestrator.tlog.events import (
    CustodyEvent,
    SignedEntry,
    Signer,
    event_signing_input,
)
from orchestrator.tlog.roles import (
    ENROLL_KIND,
    ROLE_KINDS,
    ROLES,
    check_writer,
    parse_actor,
)

__all__ = [
    "ENROLL_KIND",
    "ROLES",
    "ROLE_KINDS",
    "LogClient",
    "LogReader",
    "LogWriter",
    "SignedEvent",
    "check_writer",
    "parse_actor",
]

@dataclass(frozen=True)
class SignedEvent:
    """An event signed by its actor, as sent to the log (before placement).

    Attributes
    ----------
    event
        The custody event (its ``actor`` names the signer's party).
    signer
        Key id of the signing key (:func:`orchestrator.crypto.key_id_of`).
    signature
        64-byte Ed25519 signature over :func:`event_signing_input`.
    """

    event: CustodyEvent
    signer: str
    signature: bytes

    @classmethod
    def create(cls, event: CustodyEvent, signer: Signer) -> SignedEvent:
        """Sign ``event`` with ``signer``."""
        return cls(event, signer.key_id, bytes(signer.sign(event_signing_input(event))))

    @classmethod
    def of_entry(cls, entry: SignedEntry) -> SignedEvent:
        """The signed event carried by a placed entry."""
        return cls(entry.event, entry.signer, entry.signature)

    def to_json(self) -> dict[str, Any]:
        """``{"event", "signer", "sig"}`` (the request body of an append)."""
        return {"event": self.event.to_json(), "signer": self.signer,
                "sig": b64e(self.signature)}

    @classmethod
    def from_json(cls, data: Any) -> SignedEvent:
        """Parse :meth:`to_json` output strictly.

        Raises
        ------
        ConfigError
            On missing or unknown keys, a malformed event or a bad signature
            encoding (``field`` names the part).
        """
        if not isinstance(data, dict) or set(data) != {"event", "signer", "sig"}:
            raise ConfigError("a signed event is exactly {event, signer, sig}",
                              field="body")
        try:
            event = CustodyEvent.from_json(data["event"])
        except ValueError as exc:
            raise ConfigError(f"malformed event: {exc}", field="event") from exc
        if not isinstance(data["signer"], str) or not data["signer"]:
            raise ConfigError("signer must be a key id", field="signer")
        if not isinstance(data["sig"], str):
            raise ConfigError("sig must be base64 text", field="sig")
        try:
            sig = b64d(data["sig"], what="sig")
        except ValueError as exc:
            raise ConfigError(str(exc), field="sig") from exc
        if len(sig) != 64:
            raise ConfigError("sig must be a 64-byte Ed25519 signature", field="sig")
        return cls(event, data["signer"], sig)


class _PresignedSigner:
    """A :class:`Signer` that returns a signature made elsewhere (by the actor)."""

    def __init__(self, signed: SignedEvent) -> None:
        self._signed = signed
        self._input = event_signing_input(signed.event)

    @property
    def key_id(self) -> str:
        return self._signed.signer

    def sign(self, data: bytes) -> bytes:
        if data != self._input:
            raise ValueError("a presigned signature covers only its own event")
        return self._signed.signature


def presigned(signed: SignedEvent) -> tuple[CustodyEvent, Signer]:
    """``(event, signer)`` for :meth:`CustodyLog.append_many` that places an event
    with the signature its actor already made."""
    return signed.event, _PresignedSigner(signed)


class LogWriter(Protocol):
    """Appends signed events to the custody log (in-process or over HTTP)."""

    def append(self, event: CustodyEvent, signer: Signer) -> SignedEntry:
        """Sign ``event`` with ``signer`` and have the log record it durably.

        Raises
        ------
        LedgerError
            The log is unavailable or refused the entry (nothing recorded).
        """
        ...

    def submit(self, signed: SignedEvent) -> SignedEntry:
        """Have the log record an event its actor already signed (idempotent by
        ``event_id``: the same event again returns the stored entry).

        Raises
        ------
        LedgerError
            As :meth:`append`.
        """
        ...


class LogReader(Protocol):
    """Reads the custody log (public: anyone may read it)."""

    def size(self) -> int:
        """Number of durable entries."""
        ...

    def get(self, seq: int) -> SignedEntry:
        """Entry ``seq`` (``NotFound`` if there is none)."""
        ...

    def find(self, kind: str | None = None, **body_matches: str) -> list[SignedEntry]:
        """Entries of ``kind`` whose body has every ``key=value``, in log order."""
        ...


class LogClient(LogWriter, LogReader, Protocol):
    """A party's handle on the custody log: it writes its own events, reads
    entries (by index, or by kind and body) and asks for a fresh checkpoint."""

    def publish(self) -> bytes:
        """A checkpoint over every entry durable now (its signed note)."""
        ...
