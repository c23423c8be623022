"""A nation custodian as a C2SP tlog-witness of the custody log.

Each nation's custodian cosigns the log's checkpoints with its own key (key name
``witness-<NATION>``, C2SP tlog-cosignature ``cosignature/v1``), and only if
each checkpoint extends the last one it cosigned. Its state lives in the
nation's own directory (``witness-state.json``: per log origin, the latest
cosigned size, root and note), so a log operator that rolls back or forks the
log is refused by a party that does not run the log, however the operator's own
files are edited.

:meth:`NationWitness.add_checkpoint` implements ``POST /add-checkpoint``: the
check of the old size against the stored one and the persisting of the new
state happen under one lock (a file lock shared with other processes of the
same nation), as the specification requires. A refusal of a checkpoint signed
by the log (fork, rollback, bad proof) is kept as evidence in
``witness-evidence/``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orchestrator.canonical import b64d, b64e
from orchestrator.crypto import SigningKey, atomic_write_bytes
from orchestrator.errors import ConfigError
from orchestrator.tlog.checkpoint import (
    Checkpoint,
    CheckpointError,
    cosign,
    parse_note,
    verify_note,
)
from orchestrator.tlog.names import witness_key_name
from orchestrator.tlog.note import ALG_COSIGNATURE_V1, NoteSigner, NoteVerifier
from orchestrator.tlog.witness import (
    ConsistencyError,
    SplitViewError,
    WitnessError,
    WitnessState,
    check_extends,
)
from orchestrator.tlog.witness_api import WitnessRefusal, parse_add_checkpoint

__all__ = ["EMPTY_ROOT", "NationWitness"]

_logger = logging.getLogger(__name__)

#: Root hash of the empty Merkle tree (RFC 9162, section 2.1.1).
EMPTY_ROOT = hashlib.sha256(b"").digest()


def _checkpoint_text_ok(note: bytes) -> bool:
    """Whether the text of ``note`` (before its last blank line) is a
    well-formed checkpoint, whatever its signature lines."""
    text, sep, _ = note.rpartition(b"\n\n")
    if not sep:
        return False
    try:
        Checkpoint.from_body(text + b"\n")
    except (CheckpointError, ValueError):
        return False
    return True


class NationWitness:
    """Nation ``nation``'s witness over ``directory`` (its custodian directory).

    Parameters
    ----------
    directory
        The nation's own directory.
    nation
        ISO 3166-1 alpha-3 code (key name ``witness-<nation>``).
    key
        The witness key (the nation's custodian key).
    logs
        The logs it witnesses: each log's Ed25519 note verifier, whose key name
        is the log's origin.
    clock
        Unix seconds for cosignature timestamps.
    """

    def __init__(self, directory: Path, nation: str, key: SigningKey,
                 logs: Sequence[NoteVerifier], *,
                 clock: Callable[[], float] = time.time) -> None:
        self.directory = Path(directory)
        self.signer = NoteSigner(witness_key_name(nation), key, ALG_COSIGNATURE_V1)
        self._logs = {v.name: v for v in logs}
        self._now = clock
        self._path = self.directory / "witness-state.json"
        self._lock_path = self.directory / "witness.lock"

    def verifier(self) -> NoteVerifier:
        """This witness's cosignature/v1 verifier (what officers pin)."""
        return self.signer.verifier()

    @contextmanager
    def _locked(self) -> Iterator[None]:
        with self._lock_path.open("a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def _doc(self) -> dict[str, Any]:
        try:
            doc = json.loads(self._path.read_bytes())
        except FileNotFoundError:
            return {}
        except ValueError as exc:
            raise ConfigError("malformed witness state",
                              source=str(self._path)) from exc
        if not isinstance(doc, dict):
            raise ConfigError("malformed witness state", source=str(self._path))
        return doc

    def _states(self) -> dict[str, WitnessState]:
        try:
            return {origin: WitnessState(origin, int(s["size"]), b64d(s["root"]),
                                         b64d(s["note"]))
                    for origin, s in self._doc().items()}
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ConfigError("malformed witness state",
                              source=str(self._path)) from exc

    def state(self, origin: str) -> WitnessState | None:
        """The latest checkpoint cosigned for ``origin``, if any."""
        return self._states().get(origin)

    def history(self, origin: str) -> bytes:
        """The first checkpoint this witness cosigned for ``origin``: the log's
        signed note with this witness's ``cosignature/v1`` line (its timestamp
        says since when it follows the log), or ``b""`` if it never cosigned
        one. Officers check it against the tree they rebuild
        (:func:`orchestrator.officer.history.check_histories`)."""
        first = (self._doc().get(origin) or {}).get("first")
        return b64d(str(first)) if first else b""

    def _save(self, states: dict[str, WitnessState],
              first: tuple[str, bytes] | None = None) -> None:
        old = self._doc()
        doc = {o: {"size": s.size, "root": b64e(s.root), "note": b64e(s.note),
                   "first": (old.get(o) or {}).get("first") or (
                       b64e(first[1]) if first and first[0] == o else None)}
               for o, s in sorted(states.items())}
        atomic_write_bytes(self._path, json.dumps(doc, indent=1).encode(), mode=0o600)

    def _evidence(self, error: WitnessError) -> None:
        folder = self.directory / "witness-evidence"
        folder.mkdir(mode=0o700, exist_ok=True)
        doc = {"refusal": type(error).__name__, "message": error.message,
               "previous_note": error.previous_note.decode("utf-8", "replace"),
               "presented_note": error.presented_note.decode("utf-8", "replace"),
               "at": int(self._clock())}
        atomic_write_bytes(folder / f"{int(self._clock())}-{uuid.uuid4().hex[:8]}.json",
                           json.dumps(doc, indent=1).encode(), mode=0o600)

    def _clock(self) -> float:
        return float(self._now())

    def add_checkpoint(self, body: bytes) -> bytes:
        """Answer a tlog-witness ``add-checkpoint`` request with cosignature lines.

        Raises
        ------
        WitnessRefusal
            With the status the specification names (see
            :mod:`orchestrator.tlog.witness_api`); the state is unchanged.
        """
        request = parse_add_checkpoint(body)
        try:
            parsed = parse_note(request.note)
        except CheckpointError as exc:
            if _checkpoint_text_ok(request.note):
                # the checkpoint is well-formed, its signature lines are not (a
                # second line of the log's key, ...): a signature failure
                # (signed-note: reject the whole note), not a malformed request
                raise WitnessRefusal(403, f"signature lines refused: "
                                          f"{exc.message}") from exc
            raise WitnessRefusal(400, f"malformed checkpoint: {exc.message}") from exc
        presented = parsed.checkpoint
        log = self._logs.get(presented.origin)
        if log is None:
            raise WitnessRefusal(404, f"unknown log origin {presented.origin!r}")
        try:
            verify_note(request.note, [log], required=[log.name],
                        origin=presented.origin)
        except CheckpointError as exc:
            raise WitnessRefusal(403, f"no valid log signature: {exc.message}") from exc
        if request.old_size > presented.size:
            raise WitnessRefusal(400, f"old size {request.old_size} is above the "
                                      f"checkpoint size {presented.size}")
        if presented.size == 0 and presented.root != EMPTY_ROOT:
            # RFC 9162 2.1.1: the empty tree's hash is SHA-256 of nothing; any
            # other root at size 0 is not a tree (and would wedge this witness)
            raise WitnessRefusal(422, "a checkpoint of size 0 must have the empty "
                                      "tree's root hash")
        with self._locked():
            states = self._states()
            current = states.get(presented.origin)
            stored = current.size if current is not None else 0
            if request.old_size != stored:
                raise WitnessRefusal(409, f"old size {request.old_size} is not the "
                                          f"cosigned size {stored}", size=stored)
            if current is not None:
                try:
                    check_extends(current, presented, request.note, request.proof)
                except SplitViewError as exc:
                    # same size, another root: 409 *without* a size body, so no
                    # client takes a fork for a stale size (tlog-witness)
                    self._evidence(exc)
                    raise WitnessRefusal(409, exc.message) from exc
                except WitnessError as exc:
                    self._evidence(exc)
                    status = 422 if isinstance(exc, ConsistencyError) else 409
                    raise WitnessRefusal(status, exc.message, size=stored) from exc
            elif request.proof:
                raise WitnessRefusal(422, "a first checkpoint takes no proof")
            line = cosign(presented, self.signer, int(self._clock()))
            states[presented.origin] = WitnessState(
                presented.origin, presented.size, presented.root, request.note)
            first = None
            if current is None:
                first = (presented.origin, request.note + line)
                _logger.warning(
                    "%s: FIRST USE of log %s: cosigning size %d with no earlier "
                    "checkpoint to check it against", self.signer.name,
                    presented.origin, presented.size)
            self._save(states, first)  # persisted before the cosignature leaves
        return line
