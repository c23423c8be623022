"""Witnesses with history: who vouches for the log from before the officer came.

An officer verifying a log for the first time, and a witness cosigning it for
the first time, both take what they are shown: a log operator that rewrote
its history before either arrived is accepted by both. Only a witness that
followed the log *before* the rewrite refuses it (C2SP tlog-witness: it cosigns
only checkpoints consistent with the last one it cosigned). So an officer may
require a quorum of witnesses with history:

each witness hands over the first checkpoint it cosigned for the log (the
log's signed note with its own ``cosignature/v1`` line, whose timestamp says
since when); the officer verifies both signatures with the keys *it* pinned
and checks that checkpoint's root against the tree it rebuilt from the log's
entries. A witness *has history* when that first checkpoint is smaller than
the one being verified (and, with ``since``, no larger than ``since``): it
has checked every entry after it. A first checkpoint whose root is not this
log's at that size is proof that the log was rewritten after that witness
began following it.

Pure logic: notes and a tree in, findings out.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from orchestrator.errors import ConfigError, IntegrityError
from orchestrator.tlog.checkpoint import CheckpointError, open_note
from orchestrator.tlog.merkle import MerkleTree
from orchestrator.tlog.note import NoteVerifier

__all__ = ["WitnessHistory", "check_histories", "require_history"]


@dataclass(frozen=True)
class WitnessHistory:
    """What one witness's first cosigned checkpoint shows.

    Attributes
    ----------
    nation
        The witness's nation.
    first_size
        Tree size of the first checkpoint it cosigned (``None``: it never did,
        or its answer did not verify).
    first_time
        Its cosignature timestamp of that checkpoint (Unix seconds).
    has_history
        Whether it counts towards a quorum with history.
    detail
        Why, in words.
    """

    nation: str
    first_size: int | None
    first_time: int | None
    has_history: bool
    detail: str


def check_histories(histories: Mapping[str, bytes], *, log: NoteVerifier,
                    witnesses: Mapping[str, NoteVerifier], tree: MerkleTree,
                    since: int | None = None) -> list[WitnessHistory]:
    """Judge each witness's first cosigned checkpoint against ``tree`` (the
    officer's rebuild of the log at the size being verified).

    Raises
    ------
    IntegrityError
        A witness's first checkpoint, signed by the log and cosigned by that
        witness, has another root than the log now has at that size: the log
        was rewritten after that witness began following it.
    """
    found = []
    for nation in sorted(histories):
        note, witness = histories[nation], witnesses.get(nation)
        if witness is None:
            continue
        if not note:
            found.append(WitnessHistory(nation, None, None, False,
                                        "has never cosigned this log"))
            continue
        try:
            verified = open_note(note, [log, witness],
                                 required=[log.name, witness.name], origin=log.name)
        except CheckpointError as exc:
            found.append(WitnessHistory(nation, None, None, False,
                                        f"its first checkpoint does not verify: "
                                        f"{exc.message}"))
            continue
        first = verified.checkpoint
        at = verified.verified.get(witness.name)
        if first.size > tree.size:
            found.append(WitnessHistory(nation, first.size, at, False,
                                        f"first cosigned size {first.size} is beyond "
                                        f"the verified size {tree.size}"))
            continue
        if tree.root(first.size) != first.root:
            raise IntegrityError(
                f"witness {nation} first cosigned this log at size {first.size} with "
                f"root {first.root.hex()}; the log's root at that size is now "
                f"{tree.root(first.size).hex()}: the log was rewritten after that "
                "witness began following it", source="checkpoint",
                field=f"witness history {nation}")
        counts = first.size < tree.size and (since is None or first.size <= since)
        detail = (f"has cosigned this log since size {first.size}"
                  if counts else f"first cosigned it at size {first.size}"
                  + (" (the size verified: first use)" if first.size == tree.size
                     else f" (after --witness-since {since})"))
        found.append(WitnessHistory(nation, first.size, at, counts, detail))
    return found


def require_history(found: list[WitnessHistory], quorum: int) -> None:
    """Refuse unless at least ``quorum`` witnesses have history.

    Raises
    ------
    ConfigError
        Naming each witness and what its history shows.
    """
    with_history = [h for h in found if h.has_history]
    if len(with_history) < quorum:
        raise ConfigError(
            f"{len(with_history)} witness(es) with history, {quorum} required: "
            + "; ".join(f"{h.nation} {h.detail}" for h in found),
            field="--witness-history")
