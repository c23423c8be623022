"""``sovereign submit``: run a workflow on a registered site with live progress."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn
from rich.table import Table

from orchestrator.cli._common import (
    JsonOpt,
    StateOpt,
    console,
    emit_json,
    err_console,
    handle_errors,
    state_of,
)
from orchestrator.embedded import submit
from orchestrator.errors import DecisionPending, JobInterrupted
from orchestrator.submit.pipeline import JobResult, ProgressSink


class _RichProgress(ProgressSink):
    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("preparing", total=None)

    def stage(self, message: str) -> None:
        self.progress.update(self.task, description=message)

    def tasks_planned(self, names: list[str]) -> None:
        self.progress.update(
            self.task, total=len(names), completed=0, description="training in enclaves"
        )

    def task_done(self, name: str, metrics: dict[str, float]) -> None:
        acc = metrics.get("test_accuracy", metrics.get("train_accuracy"))
        note = "" if acc is None else f" {100 * acc:.1f} %"
        self.progress.console.print(f"  [green]done[/] {name}{note}")
        self.progress.advance(self.task)


def _print_result(result: JobResult) -> None:
    table = Table(
        "task",
        "test accuracy",
        "train accuracy",
        "test rows",
        title=f"job {result.job_id}",
    )
    for name, m in result.tasks.items():
        test = m.get("test_accuracy")
        table.add_row(
            name,
            "-" if test is None else f"{100 * test:.2f} %",
            f"{100 * m.get('train_accuracy', 0.0):.2f} %",
            str(int(m.get("test_rows", m.get("rows", 0)))),
        )
    console.print(table)
    mean = result.summary.get("mean_test_accuracy")
    if mean is not None:
        console.print(
            f"mean test accuracy over {int(result.summary.get('folds', 0))} "
            f"folds: [bold]{100 * mean:.2f} %[/] (sd "
            f"{100 * result.summary.get('std_test_accuracy', 0.0):.2f}); "
            "Gorman & Sejnowski 1988, 12 hidden units: 84.7 % (sd 5.7)"
        )
    for model_id in result.model_ids:
        console.print(f"sealed model: [bold]{model_id}[/]")
    console.print(
        f"first result after {result.first_result_s:.1f} s; "
        f"job took {result.elapsed_s:.1f} s"
    )


@handle_errors
def submit_command(
    workflow: Annotated[Path, typer.Argument(help="workflow TOML")],
    site: Annotated[
        str | None,
        typer.Option(help="registered site (default: the best eligible site)"),
    ] = None,
    sites: Annotated[
        str | None,
        typer.Option(help="several sites, comma-separated: tasks spread over them"),
    ] = None,
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Submit a workflow: policy decisions, key releases, enclave training.

    Without ``--site``/``--sites`` the best eligible site is chosen (see
    ``sovereign site eligible``); with ``--sites a,b`` one Parsl executor per site.
    """
    state = state_of(state_dir)
    many = [s.strip() for s in sites.split(",") if s.strip()] if sites else None
    _run(lambda sink: submit(state, workflow, site, sites=many, progress=sink),
         json_out)


@handle_errors
def resume_command(
    job_id: Annotated[str, typer.Argument(help="a job waiting for officers")],
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Resume a job left pending approval or held for acknowledgement.

    Every owner's custodian decides again, now with the officers' recorded
    approvals (each used once) or acknowledgements.
    """
    from orchestrator.embedded import resume

    state = state_of(state_dir)
    _run(lambda sink: resume(state, job_id, progress=sink), json_out)


def _waiting(exc: DecisionPending, json_out: bool) -> None:
    job_id = exc.source or "?"
    if json_out:
        emit_json({"job_id": job_id, "state": exc.outcome, "message": exc.message,
                   "reasons": exc.reasons})
    else:
        err_console.print(
            f"[bold yellow]job {job_id} is waiting ({exc.outcome}):[/] {exc.message}",
            highlight=False, soft_wrap=True)
        for reason in exc.reasons:
            err_console.print(f"  - {reason}", highlight=False, soft_wrap=True)
        step = ("sovereign approvals list" if exc.outcome == "needs-approval"
                else "sovereign notifications list")
        err_console.print(f"next: {step}; then: sovereign jobs resume {job_id}",
                          highlight=False)
    raise typer.Exit(exc.exit_code)


def _run(start: Callable[[ProgressSink | None], JobResult], json_out: bool) -> None:
    try:
        if json_out:
            result = start(None)
        else:
            with Progress(
                "[progress.description]{task.description}",
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
            ) as bar:
                result = start(_RichProgress(bar))
    except DecisionPending as exc:
        _waiting(exc, json_out)
        return
    except JobInterrupted as exc:
        if json_out:
            emit_json({"job_id": exc.source, "state": "interrupted",
                       "failed": exc.failed, "done": sorted(exc.completed),
                       "message": exc.message})
        err_console.print(f"[bold yellow]job {exc.source} interrupted:[/] "
                          f"{exc.message}", highlight=False, soft_wrap=True)
        raise typer.Exit(exc.exit_code) from None
    if json_out:
        emit_json(
            {
                "job_id": result.job_id,
                "tasks": result.tasks,
                "summary": result.summary,
                "models": result.model_ids,
                "first_result_s": result.first_result_s,
                "elapsed_s": result.elapsed_s,
                "sites": result.sites,
                "excluded": result.excluded,
                "selection": result.selection,
            }
        )
        return
    if result.selection:
        console.print(result.selection, highlight=False)
    for name, reasons in result.excluded.items():
        console.print(f"site {name} excluded: {'; '.join(reasons)}", highlight=False)
    console.print(f"ran on: {', '.join(result.sites)}")
    _print_result(result)
