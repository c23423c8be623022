"""Pure witness logic: cosign a log's checkpoint only if it extends the last one.

A witness (C2SP tlog-witness) keeps, per log, the latest checkpoint it cosigned.
Presented a new signed checkpoint and a consistency proof from its stored size,
it checks the log's signature, that the tree did not shrink (rollback), that an
equal size carries the same root (else the log shows a split view), and that a
larger tree is an append-only extension (RFC 9162 section 2.1.4.2). Only then
does it cosign (c2sp.org/tlog-cosignature ``cosignature/v1``) and advance its
state. Refusals carry both checkpoints as evidence; a split view with both notes
signed by the log is a transferable proof of log misbehaviour.

Everything here is pure: the caller loads and persists :class:`WitnessState`
(atomically, before releasing the cosignature).

References
----------
.. [1] C2SP tlog-witness, https://c2sp.org/tlog-witness
.. [2] C2SP tlog-cosignature, https://c2sp.org/tlog-cosignature
.. [3] RFC 9162, section 2.1.4 (consistency proofs).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from orchestrator.errors import ConfigError, IntegrityError
from orchestrator.tlog.checkpoint import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Checkpoint,
    NoteSigner,
    NoteVerifier,
    cosign,
    verify_note,
)
from orchestrator.tlog.merkle import EMPTY_ROOT, ProofError, verify_consistency

__all__ = [
    "ConsistencyError",
    "RollbackError",
    "SplitViewError",
    "Witness",
    "WitnessError",
    "WitnessState",
]


@dataclass(frozen=True)
class WitnessState:
    """The latest checkpoint a witness cosigned for one log.

    Parameters
    ----------
    origin, size, root
        The checkpoint's origin line, tree size and 32-byte root hash.
    note
        The log-signed note that checkpoint came in (evidence), if kept.
    """

    origin: str
    size: int
    root: bytes
    note: bytes = b""

    @property
    def checkpoint(self) -> Checkpoint:
        """The state as a :class:`~orchestrator.tlog.checkpoint.Checkpoint`."""
        return Checkpoint(self.origin, self.size, self.root)


class WitnessError(IntegrityError):
    """The witness refused to cosign; carries the evidence.

    Attributes
    ----------
    previous
        The last cosigned checkpoint (``None`` if there was none).
    presented
        The checkpoint presented now.
    previous_note, presented_note
        The log-signed notes of both (``b""`` if unknown).
    """

    def __init__(
        self,
        message: str,
        *,
        previous: Checkpoint | None,
        presented: Checkpoint,
        previous_note: bytes = b"",
        presented_note: bytes = b"",
    ) -> None:
        super().__init__(message, source=presented.origin)
        self.previous = previous
        self.presented = presented
        self.previous_note = previous_note
        self.presented_note = presented_note


class RollbackError(WitnessError):
    """The presented tree is smaller than the one already cosigned."""


class SplitViewError(WitnessError):
    """Same size as the cosigned tree but a different root: a fork."""


class ConsistencyError(WitnessError):
    """The consistency proof from the cosigned tree does not verify."""


class Witness:
    """The C2SP tlog-witness decision, as pure functions over explicit state."""

    @staticmethod
    def check_and_cosign(
        state: WitnessState | None,
        note: bytes,
        consistency_proof: Sequence[bytes],
        log_verifier: NoteVerifier,
        signer: NoteSigner,
        now: int,
    ) -> tuple[WitnessState, bytes]:
        """Verify ``note`` against ``state`` and cosign it.

        Parameters
        ----------
        state
            Last cosigned checkpoint of this log, or ``None`` for a log seen for
            the first time (trust on first use: any validly signed checkpoint).
        note
            The log-signed checkpoint note.
        consistency_proof
            RFC 9162 proof from ``state.size`` to the presented size (empty for
            an equal size, or when ``state`` is ``None`` or of size 0).
        log_verifier
            The log's Ed25519 (type 0x01) key; its signature is required.
        signer
            The witness's cosignature/v1 (type 0x04) key.
        now
            Cosignature timestamp, Unix seconds.

        Returns
        -------
        tuple of (WitnessState, bytes)
            The new state, to persist before publishing, and the cosignature
            line to append to the note.

        Raises
        ------
        ConfigError
            ``log_verifier`` is not type 0x01 or ``signer`` not type 0x04.
        CheckpointError
            Malformed note, missing or bad log signature, or another origin.
        RollbackError, SplitViewError, ConsistencyError
            The checkpoint does not extend ``state``; ``state`` stays valid.
        """
        if log_verifier.alg != ALG_ED25519 or signer.alg != ALG_COSIGNATURE_V1:
            raise ConfigError("the log key must be type 0x01 and the witness key "
                              "type 0x04")
        origin = state.origin if state is not None else None
        presented = verify_note(note, [log_verifier], required=[log_verifier.name],
                                origin=origin)
        if state is not None:
            check_extends(state, presented, note, consistency_proof)
        elif consistency_proof:
            raise ConsistencyError(
                "no previous checkpoint, yet a consistency proof was given",
                previous=None, presented=presented, presented_note=note)
        line = cosign(presented, signer, now)
        new_state = WitnessState(presented.origin, presented.size, presented.root,
                                 note)
        return new_state, line


def check_extends(
    state: WitnessState, presented: Checkpoint, note: bytes,
    proof: Sequence[bytes],
) -> None:
    """Check that ``presented`` extends ``state`` (RFC 9162 §2.1.4.2).

    Shared by witnesses and by officers checking against their trusted checkpoint.

    Raises
    ------
    RollbackError, SplitViewError, ConsistencyError
        Carrying both checkpoints and both notes as evidence.
    """
    def refuse(kind: type[WitnessError], message: str) -> WitnessError:
        return kind(message, previous=state.checkpoint, presented=presented,
                    previous_note=state.note, presented_note=note)

    if presented.size < state.size:
        raise refuse(RollbackError, f"tree size {presented.size} is smaller than "
                     f"the cosigned size {state.size}")
    if presented.size == state.size:
        if presented.root != state.root:
            raise refuse(SplitViewError, f"two roots for tree size {state.size}: "
                         f"cosigned {state.root.hex()}, presented "
                         f"{presented.root.hex()}")
        if proof:
            raise refuse(ConsistencyError,
                         f"equal sizes, yet the proof has {len(proof)} hashes")
        return
    if state.size == 0:
        if state.root != EMPTY_ROOT:
            raise refuse(SplitViewError, "cosigned empty tree has a non-empty root")
        if proof:
            raise refuse(ConsistencyError, "from the empty tree the proof must be "
                         f"empty, not {len(proof)} hashes")
        return
    try:
        verify_consistency(state.size, presented.size, list(proof), state.root,
                           presented.root)
    except ProofError as exc:
        raise refuse(ConsistencyError, f"tree {presented.size} is not an extension "
                     f"of cosigned tree {state.size}: {exc.message}") from exc
