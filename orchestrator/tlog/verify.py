"""Offline verification of the custody log.

A sovereignty officer holds the log and the trusted public keys (each with the
actors it may sign for) and checks, entry by entry:

1. ``seq`` equals the entry's position (catches removal, insertion, reordering);
2. ``prev_hash`` equals the RFC 9162 leaf hash of the previous entry (the chain);
3. the signing key is trusted, and allowed to sign for the event's actor;
4. the Ed25519 signature (RFC 8032) over :meth:`SignedEntry.signed_bytes` is valid;
5. no ``event_id`` is recorded twice (catches a replayed, re-signed event).

The first failure raises :class:`~orchestrator.errors.LedgerVerificationError` whose
``index`` is the first bad entry. Removing entries from the *tail* leaves a valid,
shorter chain: it is detected only against a trusted size or head hash
(``expected_size`` / ``expected_head``; signed checkpoints come later).

References
----------
.. [1] RFC 9162, section 2.1.1 (leaf hash ``SHA-256(0x00 || leaf)``),
   https://www.rfc-editor.org/rfc/rfc9162#section-2.1.1
.. [2] RFC 8032, "Edwards-Curve Digital Signature Algorithm (EdDSA)", section 5.1.7.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from orchestrator.crypto import key_id_of, verify_signature
from orchestrator.errors import ConfigError, IntegrityError, LedgerVerificationError
from orchestrator.tlog.enrollment import EnrollmentError, KeyBook
from orchestrator.tlog.events import ZERO_HASH, SignedEntry
from orchestrator.tlog.roles import ENROLL_KIND, check_writer

__all__ = ["ChainVerifier", "EnrollingVerifier", "TrustedKey", "VerifyReport",
           "verify_entries"]


@dataclass(frozen=True)
class TrustedKey:
    """A public key the verifier trusts, and the actors it may sign for.

    Parameters
    ----------
    key_id
        The id recorded in entries' ``signer`` field.
    public_key
        Raw 32-byte Ed25519 public key (RFC 8032 section 5.1.5).
    actors
        Actors this key may sign for, e.g. ``frozenset({"custodian:AUS"})``.
    """

    key_id: str
    public_key: bytes
    actors: frozenset[str]

    def __post_init__(self) -> None:
        if not isinstance(self.key_id, str) or not self.key_id:
            raise ValueError("key_id must be a non-empty string")
        if not isinstance(self.public_key, bytes) or len(self.public_key) != 32:
            raise ValueError(f"public key {self.key_id} must be 32 raw bytes")
        object.__setattr__(self, "actors", frozenset(self.actors))


@dataclass(frozen=True)
class VerifyReport:
    """Outcome of a successful verification.

    Attributes
    ----------
    size
        Number of entries verified.
    head_hash
        Hash of the last entry (:data:`~orchestrator.tlog.events.ZERO_HASH` if empty).
    kinds
        How many entries of each event kind.
    """

    size: int
    head_hash: str
    kinds: Counter[str] = field(default_factory=Counter)


def _verify_ed25519(public_key: bytes, signature: bytes, data: bytes) -> bool:
    """Return whether ``signature`` is a valid Ed25519 signature of ``data``."""
    try:
        verify_signature(public_key, signature, data)
    except IntegrityError:
        return False
    return True


class ChainVerifier:
    """Checks entries one at a time, remembering what the next one must match."""

    def __init__(self, keys: Mapping[str, TrustedKey], source: str | None) -> None:
        for name, key in keys.items():
            if name != key.key_id:
                raise ValueError(
                    f"trusted key listed as {name!r} has id {key.key_id!r}")
        self.keys = keys
        self.source = source
        self.size = 0
        self.head = ZERO_HASH
        self.kinds: Counter[str] = Counter()
        self.event_ids: dict[str, int] = {}

    def fail(self, index: int, message: str) -> LedgerVerificationError:
        return LedgerVerificationError(f"entry {index}: {message}", index=index,
                                       source=self.source)

    def check(self, entry: SignedEntry) -> None:
        i = self.size
        if entry.seq != i:
            raise self.fail(i, f"expected seq {i}, found {entry.seq}")
        if entry.prev_hash != self.head:
            what = "the zero hash" if i == 0 else f"the hash of entry {i - 1}"
            raise self.fail(i, f"prev_hash {entry.prev_hash} is not {what} "
                               f"({self.head})")
        key = self.keys.get(entry.signer)
        if key is None:
            raise self.fail(i, f"signed by unknown key {entry.signer!r}")
        if entry.event.actor not in key.actors:
            raise self.fail(i, f"key {entry.signer!r} may not sign for actor "
                               f"{entry.event.actor!r}")
        if not _verify_ed25519(key.public_key, entry.signature, entry.signed_bytes()):
            raise self.fail(i, f"signature by {entry.signer!r} does not verify")
        first = self.event_ids.get(entry.event.event_id)
        if first is not None:
            raise self.fail(i, f"event_id {entry.event.event_id} already recorded "
                               f"at entry {first}")
        self.event_ids[entry.event.event_id] = i
        self.head = entry.entry_hash()
        self.kinds[entry.event.kind] += 1
        self.size += 1

    def finish(self, expected_size: int | None,
               expected_head: str | None) -> VerifyReport:
        if expected_size is not None and self.size != expected_size:
            index = min(self.size, expected_size)
            raise self.fail(index, f"log has {self.size} entries, the trusted size "
                                   f"is {expected_size}")
        if expected_head is not None and self.head != expected_head:
            raise self.fail(max(self.size - 1, 0),
                            f"head hash {self.head} is not the trusted head "
                            f"{expected_head}")
        return VerifyReport(size=self.size, head_hash=self.head, kinds=self.kinds)


def verify_entries(entries: Iterable[SignedEntry], keys: Mapping[str, TrustedKey], *,
                   expected_size: int | None = None,
                   expected_head: str | None = None) -> VerifyReport:
    """Verify a sequence of entries from the start of the log.

    Parameters
    ----------
    entries
        Entries in log order, starting at entry 0.
    keys
        Trusted keys by key id.
    expected_size, expected_head
        A trusted size and/or head hash (from a checkpoint). Without them, removal of
        entries from the tail cannot be detected.

    Returns
    -------
    VerifyReport

    Raises
    ------
    LedgerVerificationError
        At the first bad entry; ``index`` names it. A size mismatch names the first
        missing (or first unexpected) entry; a head mismatch names the last entry.
    ValueError
        If ``keys`` maps a name to a key with a different id.
    """
    verifier = ChainVerifier(keys, None)
    for entry in entries:
        verifier.check(entry)
    return verifier.finish(expected_size, expected_head)


class EnrollingVerifier(ChainVerifier):
    """A :class:`ChainVerifier` that learns the actors' keys from the log itself,
    and takes them only when anchored in the verifier's own trust.

    Each ``actor.enrolled`` entry publishes one actor's key, signed by that key
    (proof of possession); from then on, and only then, entries of that actor
    must be signed by it. A second key counts only as a rotation signed by the
    first (:class:`~orchestrator.tlog.enrollment.KeyBook`). ``pinned`` keys
    (actor -> 32-byte key, from the verifier's own trust configuration: the
    witnesses' keys as the nations' custodian keys) must match the enrolled
    ones; an actor whose key is neither pinned (custodians) nor admitted by a
    pinned custodian somewhere in the log is *unanchored*
    (:meth:`unanchored`; refused by :meth:`finish` when asked to). An event
    kind the actor's role does not write
    (:func:`orchestrator.tlog.roles.check_writer`) is refused at its index.
    """

    def __init__(self, pinned: Mapping[str, bytes] | None = None,
                 source: str | None = None) -> None:
        self._learned: dict[str, TrustedKey] = {}
        super().__init__(self._learned, source)
        self.book = KeyBook(pinned=dict(pinned or {}))
        self.first_signed: dict[tuple[str, str], int] = {}

    @property
    def enrolled(self) -> dict[str, bytes]:
        """Actor -> its current key."""
        return {actor: keys[-1].public for actor, keys in self.book.history.items()}

    def check(self, entry: SignedEntry) -> None:
        i = self.size
        event = entry.event
        try:
            check_writer(event.actor, event.kind)
        except (ConfigError, PermissionError) as exc:
            raise self.fail(i, f"{event.actor} may not write {event.kind}: "
                               f"{getattr(exc, 'message', exc)}") from exc
        if event.kind == ENROLL_KIND:
            before = self.book.current(event.actor)
            try:
                public = self.book.enroll(entry)
            except EnrollmentError as exc:
                raise self.fail(i, str(exc)) from exc
            if before is not None and before != public:  # a rotation retires it
                old = self._learned[key_id_of(before)]
                self._learned[old.key_id] = TrustedKey(
                    old.key_id, old.public_key, old.actors - {event.actor})
            kid = key_id_of(public)
            previous = self._learned.get(kid)
            actors = frozenset({event.actor} | (previous.actors if previous else set()))
            self._learned[kid] = TrustedKey(kid, public, actors)
        super().check(entry)
        self.first_signed.setdefault((event.actor, entry.signer), i)
        self.book.admit(entry)

    def unanchored(self) -> dict[str, tuple[int, str]]:
        """Actor -> (its first entry signed by a key no pinned trust anchors,
        why): entries whose actor the verifier cannot tell from the log
        operator's own."""
        found: dict[str, tuple[int, str]] = {}
        for (actor, key_id), index in sorted(self.first_signed.items(),
                                             key=lambda item: item[1]):
            why = self.book.unanchored(actor, key_id)
            if why is not None and actor not in found:
                found[actor] = (index, why)
        return found

    def finish(self, expected_size: int | None, expected_head: str | None, *,
               require_anchored: bool = False) -> VerifyReport:
        """See :meth:`ChainVerifier.finish`; with ``require_anchored``, also
        refuse the first entry of an actor :meth:`unanchored` names."""
        report = super().finish(expected_size, expected_head)
        if require_anchored:
            for index, why in sorted(self.unanchored().values()):
                raise self.fail(index, why)
        return report
