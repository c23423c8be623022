"""Live progress of a job, as the orchestrator reports it to its caller."""

from __future__ import annotations

__all__ = ["ProgressSink"]


class ProgressSink:
    """Callbacks the CLI implements to show live progress (no-ops by default)."""

    def stage(self, message: str) -> None:
        """A pipeline stage began."""

    def tasks_planned(self, names: list[str]) -> None:
        """The job's tasks are known."""

    def task_done(self, name: str, metrics: dict[str, float]) -> None:
        """One task finished."""
