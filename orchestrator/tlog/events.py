"""Custody events and the signed, hash-linked entries that carry them.

Every step of a sovereign job (a dataset sealed, a policy decision, a key released or
denied, a task started, a model sealed or opened, ...) is a :class:`CustodyEvent`.
The custody log wraps each event in a :class:`SignedEntry` that binds it to its
position (``seq``) and to the hash of the entry before it (``prev_hash``), and that is
signed with Ed25519 (RFC 8032) by the key of the event's actor.

Entries are shaped as future Merkle-tree leaves: :meth:`SignedEntry.entry_hash` is
exactly the RFC 9162 leaf hash ``SHA-256(0x00 || leaf bytes)`` (RFC 9162 section
2.1.1), so the hash chain can later be complemented by a transparency-log tree
without rewriting any entry.

References
----------
.. [1] RFC 9162, "Certificate Transparency Version 2.0", section 2.1.1 (Merkle tree
   leaf hash), https://www.rfc-editor.org/rfc/rfc9162#section-2.1.1
.. [2] RFC 3339, "Date and Time on the Internet: Timestamps", section 5.6.
.. [3] RFC 8785, "JSON Canonicalization Scheme" (canonical JSON; see
   :mod:`orchestrator.canonical`).
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

from orchestrator.canonical import b64d, b64e, canonical_bytes

__all__ = [
    "EVENT_DOMAIN",
    "EVENT_KINDS",
    "ZERO_HASH",
    "CustodyEvent",
    "SignedEntry",
    "Signer",
    "event_signing_input",
    "leaf_hash",
    "new_event_id",
    "utc_now",
]

#: Every event kind the custody log accepts; anything else is a ``ValueError``.
EVENT_KINDS: frozenset[str] = frozenset({
    "nation.initialized",
    "site.registered",
    "dataset.sealed",
    "agreement.added",
    "agreement.revoked",
    "request.submitted",
    "policy.decided",
    "key.released",
    "key.denied",
    "notification.recorded",
    "task.started",
    "task.completed",
    "task.refused",
    "task.failed",
    "model.sealed",
    "model.opened",
    "model.open.denied",
    "job.completed",
    "job.failed",
    "key.rewrapped", "kek.rotated", "kek.disabled", "kek.enabled", "kek.destroyed",
    "kek.deletion.scheduled", "kek.deletion.cancelled",
    "kek.min_decryption_version.set",
    "task.retried", "checkpoint.sealed", "checkpoint.restored",
    # signed agreements (orchestrator.policy.standing)
    "agreement.signed", "agreement.effective", "agreement.superseded",
    "agreement.terminated",
    # case-by-case review (orchestrator.nation.approvals)
    "approval.requested", "approval.granted", "approval.denied", "approval.used",
    "approval.refused", "approval.cancelled",
    # allocation accounting and oversight (orchestrator.allocation)
    "allocation.recorded", "notification.acknowledged", "job.pending",
    "job.resumed", "job.interrupted",
    # model transfer (orchestrator.transfer)
    "transfer.consented", "transfer.decided", "transfer.denied",
    "transfer.completed", "transfer.opened",
    # officer console sessions (orchestrator.officer.console)
    "console.login",
    # owners' approval of code measurements (orchestrator.nation.code_approvals)
    "code.approved", "code.revoked",
    # parties apart: enrollment with the log, accreditation of sites by nations,
    # witnesses' verdicts on checkpoints
    "actor.enrolled", "actor.admitted", "site.accredited", "site.accreditation.revoked",
    "site.accreditation.reconciled",
    "access.denied",
})

#: ``prev_hash`` of entry 0: 64 hex zeros.
ZERO_HASH = "0" * 64

_TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")
_HEX64_RE = re.compile(r"^[0-9a-f]{64}$")
_EVENT_KEYS = frozenset({"event_id", "kind", "actor", "time", "body"})
_LEAF_KEYS = frozenset({"seq", "prev", "event", "signer", "sig"})


class Signer(Protocol):
    """Anything that signs custody entries on behalf of one key.

    The crypto package provides the real implementation; the log only needs the
    key id it records in the entry and a ``sign`` that returns an Ed25519 signature
    (64 bytes, RFC 8032 section 5.1.6) over the given bytes.
    """

    @property
    def key_id(self) -> str: ...

    def sign(self, data: bytes) -> bytes: ...


def new_event_id() -> str:
    """Return a fresh idempotency key for an event (UUID4 as 32 hex characters)."""
    return uuid.uuid4().hex


def utc_now() -> str:
    """Return the current time as RFC 3339 UTC with microseconds and ``Z``.

    Example: ``"2026-05-09T07:35:25.123456Z"`` (RFC 3339 section 5.6).
    """
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def leaf_hash(leaf: bytes) -> str:
    """Return the RFC 9162 section 2.1.1 leaf hash ``SHA-256(0x00 || leaf)`` in hex."""
    return hashlib.sha256(b"\x00" + leaf).hexdigest()


def _check_str(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    return value


def _check_time(value: object) -> str:
    text = _check_str(value, "time")
    if not _TIME_RE.match(text):
        raise ValueError(
            f"time {text!r} is not RFC 3339 UTC 'YYYY-MM-DDTHH:MM:SS.ffffffZ'")
    try:
        datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    except ValueError as exc:
        raise ValueError(f"time {text!r} is not a valid date and time") from exc
    return text


def _check_hex64(value: object, what: str) -> str:
    if not isinstance(value, str) or not _HEX64_RE.match(value):
        raise ValueError(f"{what} must be 64 lowercase hex characters")
    return value


def _exact_keys(obj: object, keys: frozenset[str], what: str) -> Mapping[str, Any]:
    if not isinstance(obj, Mapping):
        raise ValueError(f"{what} must be a JSON object")
    found = set(obj)
    if found != keys:
        missing = sorted(keys - found)
        extra = sorted(str(k) for k in found - keys)
        raise ValueError(f"{what} has missing keys {missing} / unknown keys {extra}")
    return obj


@dataclass(frozen=True)
class CustodyEvent:
    """One step of a sovereign job, as recorded in the custody log.

    Parameters
    ----------
    event_id
        Idempotency key (see :func:`new_event_id`): appending the same event twice
        records it once.
    kind
        One of :data:`EVENT_KINDS`.
    actor
        Who vouches for the event, e.g. ``"custodian:AUS"``, ``"officer:AUS"``,
        ``"site:local"``, ``"orchestrator"``; the verifier checks that the signing key
        may sign for this actor.
    time
        RFC 3339 UTC time with microseconds and ``Z`` (see :func:`utc_now`).
    body
        JSON-able details. It is normalised to a plain ``dict`` (a JSON round trip)
        at construction and must be treated as immutable.

    Raises
    ------
    ValueError
        On an unknown kind, an empty id or actor, a malformed time or a body that is
        not a JSON object with string keys.
    """

    event_id: str
    kind: str
    actor: str
    time: str
    body: Mapping[str, Any]

    def __post_init__(self) -> None:
        _check_str(self.event_id, "event_id")
        _check_str(self.kind, "kind")
        if self.kind not in EVENT_KINDS:
            raise ValueError(f"unknown custody event kind {self.kind!r}")
        _check_str(self.actor, "actor")
        _check_time(self.time)
        if not isinstance(self.body, Mapping) or not all(
                isinstance(k, str) for k in self.body):
            raise ValueError("body must be a JSON object with string keys")
        normalised = json.loads(canonical_bytes(dict(self.body)))
        object.__setattr__(self, "body", normalised)

    def __hash__(self) -> int:
        return hash(canonical_bytes(self.to_json()))

    @classmethod
    def create(cls, kind: str, actor: str, body: Mapping[str, Any], *,
               event_id: str | None = None, time: str | None = None) -> CustodyEvent:
        """Build an event, filling in a fresh ``event_id`` and the current time."""
        return cls(event_id=event_id if event_id is not None else new_event_id(),
                   kind=kind, actor=actor,
                   time=time if time is not None else utc_now(), body=body)

    def to_json(self) -> dict[str, Any]:
        """Return the event as a JSON object (the ``event`` member of a leaf)."""
        return {"event_id": self.event_id, "kind": self.kind, "actor": self.actor,
                "time": self.time, "body": dict(self.body)}

    @classmethod
    def from_json(cls, obj: object) -> CustodyEvent:
        """Parse :meth:`to_json` output strictly (exact key set, typed fields).

        Raises
        ------
        ValueError
            If ``obj`` is not exactly such an object.
        """
        data = _exact_keys(obj, _EVENT_KEYS, "event")
        if not isinstance(data["body"], Mapping):
            raise ValueError("event body must be a JSON object")
        return cls(event_id=data["event_id"], kind=data["kind"], actor=data["actor"],
                   time=data["time"], body=data["body"])


#: Domain-separation prefix of an actor's signature over its event.
EVENT_DOMAIN = b"sovereign-custody-event/v1\n"


def event_signing_input(event: CustodyEvent) -> bytes:
    """Return the bytes an actor signs for ``event``:
    ``b"sovereign-custody-event/v1\\n" || canonical(event)``.

    The signature covers the event only, not its position: the actor signs
    before the log places it (over the network, without knowing the head), and
    the order is vouched for by the log's signed checkpoints and the witnesses'
    cosignatures (as with RFC 9162 section 4 signed certificate timestamps).
    """
    return EVENT_DOMAIN + canonical_bytes(event.to_json())


@dataclass(frozen=True)
class SignedEntry:
    """One custody-log entry: an event bound to its position and predecessor.

    Parameters
    ----------
    seq
        0-based index in the log.
    event
        The recorded event.
    prev_hash
        Hex :meth:`entry_hash` of entry ``seq - 1``; :data:`ZERO_HASH` for entry 0.
    signer
        Key id of the signing key.
    signature
        The actor's Ed25519 signature over :meth:`signed_bytes` (the event, see
        :func:`event_signing_input`); ``seq`` and ``prev_hash`` are the log's.
    """

    seq: int
    event: CustodyEvent
    prev_hash: str
    signer: str
    signature: bytes

    def __post_init__(self) -> None:
        if isinstance(self.seq, bool) or not isinstance(self.seq, int) or self.seq < 0:
            raise ValueError("seq must be a non-negative integer")
        if not isinstance(self.event, CustodyEvent):
            raise ValueError("event must be a CustodyEvent")
        _check_hex64(self.prev_hash, "prev_hash")
        _check_str(self.signer, "signer")
        if not isinstance(self.signature, bytes) or not self.signature:
            raise ValueError("signature must be non-empty bytes")

    def __hash__(self) -> int:
        return hash(self.leaf_bytes())

    @classmethod
    def create(cls, seq: int, prev_hash: str, event: CustodyEvent,
               signer: Signer) -> SignedEntry:
        """Sign ``event`` with ``signer``; place it at ``seq`` after ``prev_hash``."""
        signature = bytes(signer.sign(event_signing_input(event)))
        return cls(seq=seq, event=event, prev_hash=prev_hash, signer=signer.key_id,
                   signature=signature)

    def signed_bytes(self) -> bytes:
        """Return what the actor signed: :func:`event_signing_input` of the event."""
        return event_signing_input(self.event)

    def to_json(self) -> dict[str, Any]:
        """Return the entry as the JSON object whose canonical bytes are the leaf."""
        return {"seq": self.seq, "prev": self.prev_hash, "event": self.event.to_json(),
                "signer": self.signer, "sig": b64e(self.signature)}

    def leaf_bytes(self) -> bytes:
        """Return the Merkle leaf: canonical JSON of ``{"seq", "prev", "event",
        "signer", "sig"}`` with the signature in base64."""
        return canonical_bytes(self.to_json())

    def entry_hash(self) -> str:
        """Return the RFC 9162 section 2.1.1 leaf hash ``SHA-256(0x00 || leaf)``."""
        return leaf_hash(self.leaf_bytes())

    @classmethod
    def from_json(cls, obj: object) -> SignedEntry:
        """Parse :meth:`to_json` output strictly.

        Raises
        ------
        ValueError
            On missing or unknown keys, wrong types or bad base64.
        """
        data = _exact_keys(obj, _LEAF_KEYS, "entry")
        seq = data["seq"]
        if isinstance(seq, bool) or not isinstance(seq, int):
            raise ValueError("entry seq must be an integer")
        sig = data["sig"]
        if not isinstance(sig, str):
            raise ValueError("entry sig must be a base64 string")
        return cls(seq=seq, event=CustodyEvent.from_json(data["event"]),
                   prev_hash=data["prev"], signer=data["signer"],
                   signature=b64d(sig, what="entry sig"))

    @classmethod
    def from_leaf(cls, leaf: bytes) -> SignedEntry:
        """Parse stored leaf bytes; they must be exactly the canonical encoding.

        Rejecting non-canonical bytes keeps one entry to one leaf hash.

        Raises
        ------
        ValueError
            If ``leaf`` is not UTF-8 canonical JSON of a valid entry.
        """
        try:
            obj = json.loads(bytes(leaf).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ValueError(f"leaf is not UTF-8 JSON: {exc}") from exc
        entry = cls.from_json(obj)
        if entry.leaf_bytes() != bytes(leaf):
            raise ValueError("leaf is not in canonical form")
        return entry
