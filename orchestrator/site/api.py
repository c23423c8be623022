"""The contract between an enclave and the workflow code it runs.

A workflow module (``workflows/*.py``) is plain Python that the enclave measures
(SHA-256 of its source) and executes in memory. It must define:

``tasks(params: dict[str, Any]) -> list[str]``
    The task names of one job, e.g. ``["fold-0", ..., "fold-12", "final"]``. Each
    task becomes one Parsl task and one enclave attempt.
``run_task(ctx: TaskContext) -> TaskOutput``
    Train or evaluate one task on plaintext that exists only in the enclave's memory.
    Long trainings call ``ctx.save_checkpoint`` every few epochs and start with
    ``ctx.load_checkpoint()``, so that a retried attempt resumes where a lost one
    stopped (:mod:`orchestrator.site.checkpoint`).

and may define ``summarize(results: dict[str, dict[str, float]]) -> dict[str, float]``
to aggregate the per-task metrics printed after the job.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from orchestrator.tabular import Table

__all__ = ["Table", "TaskContext", "TaskOutput"]


@dataclass(frozen=True)
class TaskOutput:
    """What a task hands back to its enclave.

    Attributes
    ----------
    metrics
        Scalar results (``test_accuracy`` as a fraction in [0, 1], losses, counts).
        Only these leave the enclave in the clear.
    model_state
        The trained weights serialised in memory (``torch.save`` of a
        ``state_dict`` into ``io.BytesIO``), or ``None`` if the task keeps no model.
        The enclave seals it before it leaves; it is never written in the clear.
    model_card
        Non-secret description of the model (architecture, hyper-parameters), stored
        with the sealed model's manifest.
    """

    metrics: dict[str, float]
    model_state: bytes | None = None
    model_card: dict[str, Any] = field(default_factory=dict)


class TaskContext(Protocol):
    """What the enclave offers to ``run_task``.

    Attributes
    ----------
    task
        This task's name (one of ``tasks(params)``).
    params
        The workflow's ``[training]`` table from its TOML file.
    """

    task: str
    params: dict[str, Any]

    def dataset(self) -> Table:
        """Return the job's input table, decrypted in memory."""
        ...

    def progress(self, done: int, total: int) -> None:
        """Report training progress (e.g. epochs done out of total)."""
        ...

    def save_checkpoint(self, state_bytes: bytes, epoch: int) -> None:
        """Seal and durably store this task's training state after ``epoch``.

        ``state_bytes`` is serialised in memory (``torch.save`` into
        ``io.BytesIO`` of model, optimiser and RNG state); the enclave seals it
        under a fresh DEK and the job's derived label, has every owner wrap that
        DEK, writes it atomically and logs ``checkpoint.sealed``. It replaces the
        task's previous checkpoint. Without a checkpoint store (an in-process
        run) this does nothing.
        """
        ...

    def load_checkpoint(self) -> tuple[bytes, int] | None:
        """Return ``(state_bytes, epoch)`` of this task's last checkpoint, or None.

        A retried attempt (a new enclave: fresh attestation and grants) gets the
        state a lost attempt saved; the first attempt gets ``None``. Raises
        :class:`~orchestrator.errors.IntegrityError` if the checkpoint does not
        verify.
        """
        ...
