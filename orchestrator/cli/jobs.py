"""``sovereign jobs`` (job view) and ``sovereign site eligible`` (site selection).

``jobs [--json]`` lists jobs with their task states (one enum, see
:mod:`orchestrator.submit.jobs`), wall seconds and GPU-hours; ``jobs show ID
[--json]`` shows every task and attempt with its site, resources and the custody
log indices of its events. ``site eligible WORKFLOW [--json]`` lists every
registered site, ranked, with why it is excluded (registered on the existing
``site`` group when this module is imported by :mod:`orchestrator.cli`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from orchestrator.cli._common import (
    JsonOpt,
    StateOpt,
    console,
    emit_json,
    handle_errors,
    state_of,
)
from orchestrator.cli.sites import site_app

app = typer.Typer(
    no_args_is_help=False,
    invoke_without_command=True,
    help="Researchers and officers: jobs, task states, resources, custody links.",
)


def _counts(view: dict[str, Any]) -> str:
    return ", ".join(f"{n} {s}" for s, n in sorted(view["task_states"].items()))


@app.callback()
@handle_errors
def jobs_list(
    ctx: typer.Context, state_dir: StateOpt = None, json_out: JsonOpt = False
) -> None:
    """List jobs (oldest first) with task states and resources used."""
    if ctx.invoked_subcommand is not None:
        return
    from orchestrator.embedded import job_view
    from orchestrator.submit.registry import Registry

    state = state_of(state_dir)
    views = [job_view(state, j.id) for j in Registry(state.registry_db).jobs()]
    if json_out:
        emit_json([{k: v for k, v in v.items() if k != "tasks"} for v in views])
        return
    table = Table(
        "job", "workflow", "sites", "state", "tasks", "wall s", "GPU-h", "created"
    )
    for v in views:
        table.add_row(
            v["job_id"],
            v["workflow"],
            ", ".join(v["sites"]),
            v["state"],
            _counts(v),
            f"{v['wall_seconds']:.1f}",
            f"{v['gpu_hours']:.4f}",
            v["created"],
        )
    console.print(table)


@app.command("show")
@handle_errors
def jobs_show(
    job_id: Annotated[str, typer.Argument(help="job id (sovereign jobs)")],
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show one job: every task and attempt, its state, site, resources, events."""
    from orchestrator.embedded import job_view

    view = job_view(state_of(state_dir), job_id)
    if json_out:
        emit_json(view)
        return
    console.print(
        f"job [bold]{view['job_id']}[/] {view['workflow']} on "
        f"{', '.join(view['sites'])}: {view['state']} ({_counts(view)}); "
        f"{view['wall_seconds']:.1f} s, {view['gpu_hours']:.4f} GPU-h",
        highlight=False,
    )
    for d in view["policy_decisions"]:
        console.print(
            f"  #{d['seq']} policy.decided {d['owner']} for site {d['site']}: "
            f"{d['outcome']}",
            highlight=False,
        )
    table = Table(
        "task",
        "state",
        "attempt",
        "site",
        "wall s",
        "GPUs",
        "GPU-h",
        "batch job",
        "custody events",
    )
    for task in view["tasks"]:
        attempts = task["attempts"] or [{}]
        for i, a in enumerate(attempts):
            wall = a.get("wall_seconds")
            table.add_row(
                task["task"] if i == 0 else "",
                a.get("state", task["state"]),
                a.get("attempt_id", "-"),
                a.get("site") or "-",
                "-" if wall is None else f"{wall:.2f}",
                str(a.get("gpus", 0)),
                f"{a.get('gpu_hours', 0.0):.4f}",
                str(a.get("slurm_job_id") or a.get("pbs_job_id") or "-"),
                " ".join(f"#{n}" for n in a.get("custody_events", [])) or "-",
            )
    console.print(table)


@site_app.command("eligible")
@handle_errors
def site_eligible(
    workflow: Annotated[Path, typer.Argument(help="workflow TOML")],
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Rank the registered sites for a workflow; say why each excluded one is.

    A pre-check with the custodians' own policy code: at submission each owner's
    custodian still decides (and logs) per site. Ranking: domestic first, then no
    oversight notification, more free GPUs, more free nodes, name.
    """
    from orchestrator.embedded import Deployment
    from orchestrator.submit.placement import eligible_sites

    request, verdicts = eligible_sites(Deployment(state_of(state_dir)).orchestrator(),
                                       workflow)
    if json_out:
        emit_json(
            {
                "request": {
                    "dataset_id": request.dataset_id,
                    "priority_area": request.priority_area,
                    "gpu_hours": request.gpu_hours,
                    "gpus_per_task": request.gpus_per_task,
                    "nodes": request.nodes,
                    "accelerator": request.accelerator,
                    "on": request.on.isoformat(),
                },
                "sites": [v.to_json() for v in verdicts],
            }
        )
        return
    table = Table(
        "rank",
        "site",
        "operator",
        "accreditation",
        "nodes x GPUs",
        "eligible",
        "excluded because",
    )
    rank = 0
    for v in verdicts:
        rank += v.eligible
        table.add_row(
            str(rank) if v.eligible else "-",
            v.site.name,
            v.site.operator_nation,
            v.site.accreditation.name,
            f"{v.site.nodes} x {v.site.gpus_per_node}",
            "yes" if v.eligible else "no",
            "\n".join(v.exclusions) or v.why(),
        )
    console.print(table)
