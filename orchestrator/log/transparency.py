"""The custody log as a transparency log: Merkle tree, checkpoints, witnesses.

:class:`TransparencyLog` adds to a :class:`~orchestrator.log.store.CustodyLog`
what Certificate Transparency and Tessera add to a sequencer: an RFC 9162 Merkle tree
over the stored entries' leaf hashes, checkpoints (signed tree heads) in the C2SP
tlog-checkpoint signed-note format, inclusion and consistency proofs, and witness
cosignatures (C2SP tlog-cosignature). It holds no policy and no data keys.

A checkpoint never covers an entry that is not durable: it is computed from entries
read back after their commit, and it is stored only after it is signed.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from orchestrator.crypto import SigningKey
from orchestrator.log.store import CustodyLog
from orchestrator.tlog.checkpoint import Checkpoint, parse_note, sign
from orchestrator.tlog.merkle import MerkleTree
from orchestrator.tlog.names import (
    origin_for,
    replace_signature,
    witness_key_name,
)
from orchestrator.tlog.note import (
    ALG_COSIGNATURE_V1,
    NoteSigner,
    NoteVerifier,
)
from orchestrator.tlog.witness import Witness, WitnessState


class TransparencyLog:
    """Merkle tree and checkpoints over ``store``, signed with ``log_key``."""

    def __init__(self, store: CustodyLog, log_key: SigningKey) -> None:
        self.store = store
        self.origin = origin_for(log_key)
        self.signer = NoteSigner(self.origin, log_key)

    def verifier(self) -> NoteVerifier:
        """The log's note verifier (what officers pin)."""
        return self.signer.verifier()

    def tree(self, size: int | None = None) -> MerkleTree:
        """The Merkle tree over the first ``size`` (default: all) stored entries."""
        return MerkleTree(self.store.leaf_hashes(0, size))

    def publish(self, published: str) -> bytes:
        """Sign and store a checkpoint over every entry durable now; return its note.

        Re-publishing an unchanged size returns the stored (possibly cosigned) note.

        Raises
        ------
        LedgerError
            If the checkpoint cannot be stored.
        """
        tree = self.tree()
        existing = self.store.checkpoint_at(tree.size)
        if existing is not None:
            return existing
        note = sign(Checkpoint(self.origin, tree.size, tree.root()), self.signer)
        self.store.put_checkpoint(tree.size, note, published)
        return note

    def latest(self) -> bytes | None:
        """The signed note of the largest published checkpoint, if any."""
        return self.store.latest_checkpoint()

    def cosign(
        self,
        note: bytes,
        state: WitnessState | None,
        witness_key: SigningKey,
        nation: str,
        now: int,
    ) -> tuple[WitnessState, bytes]:
        """Have nation ``nation``'s witness check ``note`` against its ``state``
        and add its cosignature to the stored note.

        Returns the new witness state (persist it) and the cosigned note.

        Raises
        ------
        RollbackError, SplitViewError, ConsistencyError, CheckpointError
            The witness refuses; nothing is stored.
        """
        presented = parse_note(note).checkpoint
        proof: list[bytes] = []
        if state is not None and 0 < state.size < presented.size:
            proof = self.tree(presented.size).consistency_proof(state.size)
        signer = NoteSigner(witness_key_name(nation), witness_key, ALG_COSIGNATURE_V1)
        new_state, line = Witness.check_and_cosign(
            state, note, proof, self.verifier(), signer, now
        )
        current = self.store.checkpoint_at(presented.size) or note
        cosigned = replace_signature(current, signer.name, line)
        self.store.put_checkpoint(presented.size, cosigned, str(now))
        return new_state, cosigned


class CheckpointPublisher:
    """Publishes a checkpoint after every ``every_events`` entries or ``every_s``
    seconds (whichever first), from a background thread, until stopped."""

    def __init__(
        self,
        tlog: TransparencyLog,
        *,
        every_events: int = 64,
        every_s: float = 5.0,
        clock: Callable[[], str] | None = None,
    ) -> None:
        from orchestrator.timeutil import rfc3339, system_clock

        self.tlog = tlog
        self.every_events = every_events
        self.every_s = every_s
        self._now = clock or (lambda: rfc3339(system_clock()))
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._run, daemon=True, name="checkpoint-publisher"
        )
        self._last_size = -1
        self._last_time = 0.0

    def tick(self) -> bytes | None:
        """Publish if N new entries or T seconds have passed; return the new note."""
        size = self.tlog.store.size()
        due = (
            size - max(self._last_size, 0) >= self.every_events
            or time.monotonic() - self._last_time >= self.every_s
        )
        if size == self._last_size or not due:
            return None
        note = self.tlog.publish(self._now())
        self._last_size, self._last_time = size, time.monotonic()
        return note

    def _run(self) -> None:
        while not self._stop.wait(min(self.every_s, 0.5)):
            self.tick()

    def __enter__(self) -> CheckpointPublisher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()
        self.tlog.publish(self._now())
