"""The custody log operator: storage, enrolled actors, checkpoints, tiles, proofs.

:class:`LogOperator` is what ``sovereign log serve`` runs (behind
:mod:`orchestrator.log.service`) and what the embedded default calls in-process.
It holds the log's own state only (:class:`LogState`): the checkpoint signing
key, the entries (SQLite, or PostgreSQL for a log that outgrows one disk) and,
derived from the log itself, the key each actor enrolled.

Writes (:meth:`LogOperator.submit`): an entry is accepted only when its actor is
enrolled, it is signed by that actor's enrolled key, the signature verifies, and
the actor's role writes that kind of event
(:func:`orchestrator.protocol.log.check_writer`). It is placed (sequence number,
hash chain) under the storage's serialised transaction and the call returns only
once the commit is durable; concurrent submissions share commits
(:class:`~orchestrator.log.group_commit.GroupCommitter`). Replaying an event
changes nothing: its stored entry is returned.

Enrollment (:meth:`LogOperator.enroll`) is the operator's decision, never an
HTTP write: an ``actor.enrolled`` event signed by the key it enrolls (proof of
possession), one key per actor; a second key only as a rotation signed by the
first (:mod:`orchestrator.tlog.enrollment`), and a second enrollment found in
storage on other terms is ignored (the first key stays the actor's). Because
enrollments are entries, every reader of the log sees which key each actor
signs with.

Reads serve C2SP tlog-tiles from an in-memory Merkle tree that follows the
durable entries, and checkpoints (C2SP tlog-checkpoint) that never cover an
entry before it is durable.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator

from orchestrator.canonical import b64d
from orchestrator.crypto import (
    key_id_of,
    verify_signature,
)
from orchestrator.errors import (
    AlreadyExists,
    ConfigError,
    IntegrityError,
    NotFound,
    PolicyDenied,
)
from orchestrator.log.group_commit import GroupCommitter
from orchestrator.log.state import LogState
from orchestrator.log.store import CustodyLog
from orchestrator.protocol.log import (
    ENROLL_KIND,
    SignedEvent,
    check_writer,
    parse_actor,
    presigned,
)
from orchestrator.timeutil import rfc3339, system_clock
from orchestrator.tlog.checkpoint import Checkpoint, sign
from orchestrator.tlog.enrollment import EnrollmentError, KeyBook
from orchestrator.tlog.events import (
    CustodyEvent,
    SignedEntry,
    Signer,
    event_signing_input,
    leaf_hash,
)
from orchestrator.tlog.merkle import MerkleTree
from orchestrator.tlog.names import origin_for, replace_signature
from orchestrator.tlog.note import NoteSigner, NoteVerifier
from orchestrator.tlog.tiles import TILE_WIDTH, TilePath, entry_bundle, hash_tile

__all__ = ["LogOperator", "LogState", "WriteRefused"]

_logger = logging.getLogger(__name__)


class WriteRefused(PolicyDenied):
    """The log refused an entry: unknown actor, wrong key, bad signature, or a
    kind the actor's role does not write (HTTP 403; nothing recorded)."""


class LogOperator:
    """The log operator's logic over its :class:`LogState` (thread-safe).

    Parameters
    ----------
    state
        The operator's directory; created on first use.
    timeout
        Seconds to wait for the storage's append lock.
    """

    def __init__(self, state: LogState, *, timeout: float = 30.0) -> None:
        self.state = state.ensure()
        self.log = CustodyLog(state.target, timeout=timeout)
        self.log.ensure_schema()
        key = state.log_key()
        self.origin = origin_for(key)
        self.signer = NoteSigner(self.origin, key)
        self._committer = GroupCommitter(self.log, max_batch=256, max_wait=0.0005)
        self._lock = threading.Lock()
        self._tree = MerkleTree()
        self._actors: dict[str, tuple[str, bytes]] = {}
        self._book = KeyBook(require_pinned_roles=frozenset())
        self._refresh()

    # -- identity ------------------------------------------------------------------
    def verifier(self) -> NoteVerifier:
        """The note verifier officers and witnesses pin for this log."""
        return self.signer.verifier()

    @property
    def vkey(self) -> str:
        """The log's verifier key (``name+hint+base64``), as officers pin it."""
        return self.verifier().vkey()

    # -- derived state ---------------------------------------------------------------
    def _refresh(self) -> int:
        """Extend the tree and the enrolled actors with entries durable now;
        return the size."""
        with self._lock:
            start = self._tree.size
            for row in self.log.rows(start):
                self._tree.append(bytes.fromhex(leaf_hash(row.leaf)))
                if row.kind == ENROLL_KIND:
                    self._learn(SignedEntry.from_leaf(row.leaf))
            return self._tree.size

    def _learn(self, entry: SignedEntry) -> None:
        """Take an enrollment from storage on the terms :meth:`enroll` sets; one
        that breaks them (a second key without a signed rotation: storage was
        written behind the service's back) changes nothing and is logged."""
        try:
            public = self._book.enroll(entry)
        except EnrollmentError as exc:
            _logger.error("custody log entry %d ignored: %s", entry.seq, exc)
            return
        self._actors[entry.event.actor] = (key_id_of(public), public)

    def actors(self) -> dict[str, str]:
        """Enrolled actors and their key ids."""
        self._refresh()
        return {actor: key_id for actor, (key_id, _) in sorted(self._actors.items())}

    def actor_key(self, actor: str) -> bytes | None:
        """The 32-byte Ed25519 key ``actor`` enrolled, or ``None``."""
        if actor not in self._actors:
            self._refresh()
        found = self._actors.get(actor)
        return found[1] if found else None

    # -- writing ---------------------------------------------------------------------
    def enroll(self, signed: SignedEvent) -> SignedEntry:
        """Record an actor's self-signed enrollment (the operator's decision).

        The event is ``actor.enrolled`` with body ``{"actor", "key_id",
        "public_key"}`` (base64 32-byte Ed25519), its actor is the one it enrolls,
        and it is signed by that key. Enrolling the same key again returns the
        stored entry.

        Raises
        ------
        ConfigError
            Malformed enrollment.
        IntegrityError
            The signature is not by the enrolled key.
        AlreadyExists
            The actor already enrolled another key.
        """
        event = signed.event
        body = event.body
        if event.kind != ENROLL_KIND or not (
                {"actor", "key_id", "public_key"} <= set(body)
                <= {"actor", "key_id", "public_key", "rotates"}):
            raise ConfigError("an enrollment is actor.enrolled with exactly "
                              "{actor, key_id, public_key} and, for a rotation, "
                              "rotates", field="event")
        if body["actor"] != event.actor:
            raise ConfigError("an actor enrolls only itself", field="event.actor")
        parse_actor(event.actor)
        try:
            public = b64d(str(body["public_key"]), what="public_key")
        except ValueError as exc:
            raise ConfigError(str(exc), field="public_key") from exc
        if len(public) != 32 or key_id_of(public) != body["key_id"] or (
                signed.signer != body["key_id"]):
            raise ConfigError("key_id and signer must be the id of public_key",
                              field="key_id")
        verify_signature(public, signed.signature, event_signing_input(event))
        known = self.actor_key(event.actor)
        if known is not None and known != public:
            try:
                self._book.enroll(signed, dry_run=True)
            except EnrollmentError as exc:
                raise AlreadyExists(f"{event.actor} is already enrolled with "
                                    f"another key: {exc}") from exc
        entry = self.log.append_many([presigned(signed)])[0]
        self._refresh()
        return entry

    def _authorise(self, signed: SignedEvent) -> None:
        event = signed.event
        if event.kind == ENROLL_KIND:
            raise WriteRefused("enrollment is the log operator's decision",
                               reasons=["write: actor.enrolled is not accepted here"])
        try:
            check_writer(event.actor, event.kind)
        except PermissionError as exc:
            raise WriteRefused(f"{event.actor} may not write {event.kind}",
                               reasons=[f"role: {exc}"]) from exc
        key = self.actor_key(event.actor)
        if key is None:
            raise WriteRefused(f"{event.actor} is not enrolled with this log",
                               reasons=["actor: not enrolled"])
        if signed.signer != key_id_of(key):
            raise WriteRefused(f"entry for {event.actor} is signed by another key",
                               reasons=[f"signer: {signed.signer} is not the key "
                                        f"{event.actor} enrolled"])
        try:
            verify_signature(key, signed.signature, event_signing_input(event))
        except IntegrityError as exc:
            raise WriteRefused(f"signature of {event.actor} does not verify",
                               reasons=["signature: does not verify"]) from exc

    def append(self, event: CustodyEvent, signer: Signer) -> SignedEntry:
        """Sign ``event`` with ``signer`` (the actor's key, in this process) and
        :meth:`submit` it."""
        return self.submit(SignedEvent.create(event, signer))

    def submit(self, signed: SignedEvent) -> SignedEntry:
        """Authorise, place and durably record one signed event; return its entry.

        Raises
        ------
        WriteRefused
            See :meth:`_authorise` (nothing recorded).
        LedgerError
            Storage failed, the event id is recorded with other content, or the
            entry would exceed an entry bundle's 65,535 bytes.
        """
        self._authorise(signed)
        event, signer = presigned(signed)
        return self._committer.append(event, signer)

    # -- checkpoints -----------------------------------------------------------------
    def publish(self) -> bytes:
        """Sign and store a checkpoint over every entry durable now; return it.

        An unchanged size returns the stored (possibly cosigned) note.

        Raises
        ------
        LedgerError
            If the checkpoint cannot be stored.
        """
        size = self._refresh()
        existing = self.log.checkpoint_at(size)
        if existing is not None:
            return existing
        with self._lock:
            root = self._tree.root(size)
        note = sign(Checkpoint(self.origin, size, root), self.signer)
        self.log.put_checkpoint(size, note, rfc3339(system_clock()))
        return note

    def checkpoint(self) -> bytes:
        """The latest checkpoint (published now if there is none yet)."""
        return self.log.latest_checkpoint() or self.publish()

    def checkpoint_at(self, size: int) -> bytes | None:
        """The stored checkpoint at tree ``size``, if one was published."""
        return self.log.checkpoint_at(size)

    def add_cosignature(self, size: int, name: str, line: bytes) -> bytes:
        """Replace witness ``name``'s line in the stored checkpoint at ``size``.

        Raises
        ------
        NotFound
            If no checkpoint of that size was published.
        """
        note = self.log.checkpoint_at(size)
        if note is None:
            raise NotFound(f"no checkpoint at size {size}")
        cosigned = replace_signature(note, name, line)
        self.log.put_checkpoint(size, cosigned, rfc3339(system_clock()))
        return cosigned

    # -- reads -------------------------------------------------------------------
    def size(self) -> int:
        """Entries durable now."""
        return self._refresh()

    def tile(self, tile: TilePath) -> bytes:
        """The bytes of a hash tile or entry bundle.

        Raises
        ------
        NotFound
            If the tile does not exist at the current size (a partial tile of
            another width, or beyond the tree).
        """
        size = self._refresh()
        if tile.end_index() > size:  # any width up to what is durable
            raise NotFound(f"no tile {tile.path()} at size {size}")
        if tile.entries:
            first = tile.index * TILE_WIDTH
            leaves = [row.leaf for row in self.log.rows(first, first + tile.width)]
            return entry_bundle(leaves)
        with self._lock:
            return hash_tile(self._tree, tile)

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 consistency proof between tree sizes ``old`` and ``new``.

        Raises
        ------
        ConfigError
            If not ``0 <= old <= new <= size``.
        """
        size = self._refresh()
        if not 0 <= old <= new <= size:
            raise ConfigError(f"sizes must satisfy 0 <= old <= new <= {size}",
                              field="old,new")
        with self._lock:
            return self._tree.consistency_proof(old, new)

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size``.

        Raises
        ------
        ConfigError
            If not ``0 <= index < size <= current size``.
        """
        current = self._refresh()
        if not 0 <= index < size <= current:
            raise ConfigError(f"need 0 <= index < size <= {current}",
                              field="index,size")
        with self._lock:
            return self._tree.inclusion_proof(index, size)

    def leaves(self, start: int, stop: int) -> Iterator[bytes]:
        """The raw leaves ``start <= i < stop`` (what the entry bundles serve)."""
        for row in self.log.rows(start, stop):
            yield row.leaf

    def get(self, seq: int) -> SignedEntry:
        """Entry ``seq`` (``NotFound`` if absent)."""
        return self.log.get(seq)

    def entries(self, start: int = 0, stop: int | None = None
                ) -> Iterator[SignedEntry]:
        """Entries ``start <= seq < stop`` in order."""
        return self.log.entries(start, stop)

    def find(self, kind: str | None = None, **body_matches: str) -> list[SignedEntry]:
        """Entries of ``kind`` whose body has every ``key=value`` (see
        :meth:`CustodyLog.find`)."""
        return self.log.find(kind, **body_matches)


