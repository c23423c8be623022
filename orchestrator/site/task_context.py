"""What an enclave hands the workflow code, and how it reads a sealed envelope.

:class:`EnclaveContext` is the :class:`~orchestrator.site.api.TaskContext` of one
attempt; :class:`HashingReader` streams the envelope from the staged file while
hashing exactly the bytes decrypted (the input digest in the provenance).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from orchestrator.site.api import Table
from orchestrator.site.checkpoint import SealedCheckpoints

__all__ = ["EnclaveContext", "HashingReader"]


class HashingReader:
    """A sequential reader that hashes (SHA-256) every byte read through it."""

    def __init__(self, src: BinaryIO) -> None:
        self._src = src
        self._sha = hashlib.sha256()

    def read(self, size: int = -1) -> bytes:
        data = self._src.read(size)
        self._sha.update(data)
        return data

    def readinto(self, buffer: memoryview) -> int:
        n = self._src.readinto(buffer)  # type: ignore[attr-defined]
        self._sha.update(buffer[:n])
        return int(n)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._src.seek(offset, whence)  # size probes only; no re-reads

    def tell(self) -> int:
        return self._src.tell()

    def hexdigest(self) -> str:
        return self._sha.hexdigest()


@dataclass
class EnclaveContext:
    """The :class:`~orchestrator.site.api.TaskContext` an enclave hands
    ``run_task``: the task, its parameters, the decrypted table (in memory
    only), progress updates, and the attempt's sealed checkpoints (rank 0
    writes them)."""

    task: str
    params: dict[str, Any]
    _table: Table
    updates: list[tuple[int, int]] = field(default_factory=list)
    checkpoints: SealedCheckpoints | None = None
    rank: int = 0  # this MPI rank (0 in a single-process task)
    world_size: int = 1  # ranks of the task; > 1: torch.distributed is initialised
    distributed: bool = False  # whether torch.distributed's process group is up

    def dataset(self) -> Table:
        return self._table

    def progress(self, done: int, total: int) -> None:
        self.updates.append((done, total))

    def save_checkpoint(self, state_bytes: bytes, epoch: int) -> None:
        # No store (an in-process run) or not rank 0 (ranks hold the same state):
        if self.checkpoints is not None and self.rank == 0:  # one writer, no-op else
            self.checkpoints.save(state_bytes, epoch)

    def load_checkpoint(self) -> tuple[bytes, int] | None:
        return None if self.checkpoints is None else self.checkpoints.load()
