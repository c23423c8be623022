"""An officer verifies the custody log through its public read API.

:func:`verify_custody` reads the log as any C2SP tlog-tiles client would (the
checkpoint, then the entry bundles), and trusts only the officer's own trust
configuration (:mod:`orchestrator.officer.trust`) and its own last verified
checkpoint, kept in the officer's directory:

(0) load the officer's trusted checkpoint (none: the first verification);
(1) verify the latest checkpoint's log signature with the pinned log key and the
    cosignatures of every nation in the quorum with the pinned witness keys;
(2) fetch every entry through the entry bundles;
(3) verify every entry: chain link, no replayed event id, and a signature by the
    key its actor enrolled in the log itself (each nation's custodian key must
    be the witness key pinned for it; a second key only as a rotation signed by
    the first), for a kind its role writes (the first bad entry is named); name
    the actors whose key no pinned custodian admitted (refused with
    ``require_anchored``); then rebuild the RFC 9162 tree and check its root is
    the checkpoint's;
(4a) when asked (``histories``), judge each pinned witness's first cosigned
    checkpoint against the rebuilt tree and require ``witness_history`` of
    them to have followed the log before (:mod:`orchestrator.officer.history`);
(4) check the checkpoint extends the trusted one (rollback, fork and inconsistent
    pairs refused with both signed notes as evidence);
(5) keep the checkpoint as the officer's new trusted one.

Nothing here reads another party's files: a log operator who edits, rolls back
or forks its storage is caught at (1)-(4), whatever it deletes.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from orchestrator.canonical import b64d, b64e
from orchestrator.crypto import atomic_write_bytes
from orchestrator.errors import ConfigError, IntegrityError, LedgerVerificationError
from orchestrator.officer.history import (
    WitnessHistory,
    check_histories,
    require_history,
)
from orchestrator.officer.identity import OfficerState
from orchestrator.officer.trust import TrustConfig
from orchestrator.tlog.checkpoint import open_note
from orchestrator.tlog.events import SignedEntry, leaf_hash
from orchestrator.tlog.merkle import MerkleTree
from orchestrator.tlog.names import witness_key_name
from orchestrator.tlog.verify import EnrollingVerifier, VerifyReport
from orchestrator.tlog.witness import WitnessState, check_extends

__all__ = ["CustodyVerification", "TiledLog", "load_checkpoint", "verify_custody"]

_logger = logging.getLogger(__name__)


class TiledLog(Protocol):
    """What an officer reads of the log: its checkpoint and its leaves."""

    def checkpoint(self) -> bytes:
        """The latest signed checkpoint note."""
        ...

    def leaves(self, start: int, stop: int) -> Iterator[bytes]:
        """Leaves ``start <= i < stop`` (through the entry bundles)."""
        ...


@dataclass(frozen=True)
class CustodyVerification:
    """Outcome of :func:`verify_custody`."""

    report: VerifyReport
    checkpoint_size: int
    cosigners: tuple[str, ...]
    previous_size: int | None
    unanchored: dict[str, int] = field(default_factory=dict)
    """Actor -> its first entry signed by a key no pinned custodian admitted
    (the verifier cannot tell it from the log operator's own)."""
    witnesses: tuple[WitnessHistory, ...] = ()
    """What each pinned witness's first cosigned checkpoint shows (when asked)."""


def load_checkpoint(path: Path) -> WitnessState | None:
    """The checkpoint kept at ``path``, if any.

    Raises
    ------
    ConfigError
        If the file is malformed.
    """
    if not path.exists():
        return None
    try:
        doc = json.loads(path.read_text())
        return WitnessState(doc["origin"], int(doc["size"]), b64d(doc["root"]),
                            b64d(doc["note"]))
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError("malformed checkpoint state", source=str(path)) from exc


def save_checkpoint(path: Path, st: WitnessState) -> None:
    """Keep ``st`` at ``path`` (0600, atomically)."""
    atomic_write_bytes(path, json.dumps({
        "origin": st.origin, "size": st.size, "root": b64e(st.root),
        "note": b64e(st.note)}, indent=1).encode(), mode=0o600)


def verify_custody(officer: OfficerState, log: TiledLog, *,
                   require_cosigners: tuple[str, ...] = (),
                   trust: TrustConfig | None = None,
                   require_anchored: bool = False,
                   histories: Callable[[str], bytes] | None = None,
                   witness_history: int = 0,
                   witness_since: int | None = None) -> CustodyVerification:
    """Verify the custody log from the officer's trusted checkpoint; then trust it
    (see the module docstring).

    Raises
    ------
    ConfigError
        No pinned log key, or a required cosigner without a pinned witness key.
    CheckpointError
        A bad signature, or a required cosignature missing.
    RollbackError, SplitViewError, ConsistencyError
        Step (4); the trusted state is unchanged.
    LedgerVerificationError
        Steps (2)-(3), naming the first bad entry.
    IntegrityError
        A witness's first checkpoint is not this log's (rewritten since).
    ConfigError
        Fewer than ``witness_history`` witnesses with history.
    """
    trust = trust or TrustConfig.load(officer.root / "trust.json")
    log_v = trust.log_verifier()
    witnesses = trust.witness_verifiers()
    required = sorted(set(trust.quorum) | set(require_cosigners))
    unknown = [n for n in required if n not in witnesses]
    if unknown:
        raise ConfigError(f"no pinned witness key for {', '.join(unknown)}",
                          field="--require-cosigners")
    path = officer.root / "checkpoint.json"
    trusted = load_checkpoint(path)  # (0)
    if trusted is not None and trusted.origin != log_v.name:
        raise ConfigError(
            f"the pinned log key ({log_v.name}) is not the one the trusted "
            f"checkpoint was verified with ({trusted.origin}); a new log key is a "
            "new log: re-pin it with sovereign officer trust --replace-log-key",
            source=str(path), field="log.vkey")
    note = log.checkpoint()
    verified = open_note(  # (1)
        note, [log_v, *witnesses.values()],
        required=[log_v.name, *(witness_key_name(n) for n in required)],
        origin=log_v.name)
    cp = verified.checkpoint
    leaves = list(log.leaves(0, cp.size))  # (2), checked after (3) names damage
    pinned = {f"custodian:{n}": w.public_key for n, w in witnesses.items()}
    checker = EnrollingVerifier(pinned, source="custody log")  # (3)
    for index, leaf in enumerate(leaves):
        try:
            entry = SignedEntry.from_leaf(leaf)
        except ValueError as exc:
            raise LedgerVerificationError(f"entry {index}: leaf does not parse: {exc}",
                                          index=index) from exc
        checker.check(entry)
    report = checker.finish(cp.size, None, require_anchored=require_anchored)
    unanchored = checker.unanchored()
    if unanchored:
        _logger.warning("custody log: entries of actors no pinned custodian admitted: "
                        "%s", ", ".join(f"{a} (from entry {i})"
                                        for a, (i, _) in unanchored.items()))
    tree = MerkleTree([bytes.fromhex(leaf_hash(leaf)) for leaf in leaves])
    if tree.root() != cp.root:
        raise IntegrityError(f"the log's entries do not hash to its checkpoint root "
                             f"at size {cp.size}", source="checkpoint")
    found: list[WitnessHistory] = []
    if histories is not None:  # (4a) witnesses that followed the log before
        found = check_histories({n: histories(n) for n in sorted(witnesses)},
                                log=log_v, witnesses=witnesses, tree=tree,
                                since=witness_since)
    require_history(found, witness_history)
    if trusted is not None:  # (4)
        proof = (tree.consistency_proof(trusted.size, cp.size)
                 if 0 < trusted.size < cp.size else [])
        check_extends(trusted, cp, note, proof)
    save_checkpoint(path, WitnessState(cp.origin, cp.size, cp.root, note))  # (5)
    cosigners = tuple(sorted(c for c, v in witnesses.items()
                             if v.name in verified.verified))
    return CustodyVerification(report=report, checkpoint_size=cp.size,
                               cosigners=cosigners,
                               previous_size=trusted.size if trusted else None,
                               unanchored={a: i for a, (i, _) in unanchored.items()},
                               witnesses=tuple(found))
