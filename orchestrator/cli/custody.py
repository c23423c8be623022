"""``sovereign custody``: officers read, verify and trace the custody log."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.tree import Tree

from orchestrator.cli._common import (
    JsonOpt,
    StateOpt,
    console,
    emit_json,
    handle_errors,
    state_of,
)
from orchestrator.ledger import CustodyLog
from orchestrator.officer import trace_model, verify_custody

app = typer.Typer(no_args_is_help=True, help="Officers: the custody log.")


def _brief(body: dict[str, Any]) -> str:
    keys = (
        "job_id",
        "dataset_id",
        "model_id",
        "task",
        "site",
        "owner",
        "nation",
        "grant_id",
        "reasons",
        "error",
    )
    parts = [f"{k}={body[k]}" for k in keys if k in body]
    if "decision" in body:
        parts.append(f"outcome={body['decision'].get('outcome')}")
    return " ".join(parts)[:160]


@app.command("log")
@handle_errors
def log_(
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
    kind: Annotated[str | None, typer.Option(help="only this event kind")] = None,
    limit: Annotated[int, typer.Option(help="show the last N entries")] = 200,
) -> None:
    """Print the custody log (newest last)."""
    log = CustodyLog(state_of(state_dir).custody_db)
    entries = [e for e in log.entries() if kind is None or e.event.kind == kind]
    entries = entries[-limit:] if limit > 0 else entries
    if json_out:
        emit_json([e.to_json() for e in entries])
        return
    table = Table("#", "time", "kind", "actor", "details")
    for e in entries:
        table.add_row(
            str(e.seq),
            e.event.time[:19],
            e.event.kind,
            e.event.actor,
            _brief(dict(e.event.body)),
        )
    console.print(table)


@app.command("verify")
@handle_errors
def verify(state_dir: StateOpt = None, json_out: JsonOpt = False) -> None:
    """Verify every signature and hash link; name the first bad entry."""
    report = verify_custody(state_of(state_dir))
    if json_out:
        emit_json(
            {
                "verified": True,
                "size": report.size,
                "head": report.head_hash,
                "kinds": dict(report.kinds),
            }
        )
        return
    console.print(
        f"[bold green]custody log verified[/]: {report.size} entries, "
        f"head {report.head_hash[:16]}...; "
        + ", ".join(f"{k} {n}" for k, n in sorted(report.kinds.items()))
    )


@app.command("trace")
@handle_errors
def trace(model_id: str, state_dir: StateOpt = None, json_out: JsonOpt = False) -> None:
    """Trace a model back to its datasets through the custody log."""
    lineage = trace_model(state_of(state_dir), model_id)
    if json_out:
        emit_json(lineage)
        return
    model = lineage["model"]
    tree = Tree(f"[bold]model {model['id']}[/] {model['sealed_digest'][:23]}")
    for ev in model["events"]:
        tree.add(f"#{ev['index']} {ev['kind']} by {ev['actor']}")
    job = tree.add(f"[bold]job {lineage['job']['id']}[/]")
    per_task: dict[str, Tree] = {}
    for ev in lineage["job"]["events"]:
        task = ev["body"].get("task")
        text = f"#{ev['index']} {ev['kind']} by {ev['actor']}"
        if task is None:
            job.add(f"{text} {_brief(ev['body'])}")
            continue
        if task not in per_task:
            per_task[task] = job.add(f"task {task}")
        extra = ev["body"].get("grant_id") or ev["body"].get("error") or ""
        per_task[task].add(f"{text} {extra}".rstrip())
    for ds in lineage["datasets"]:
        node = tree.add(f"[bold]dataset {ds['dataset_id']}[/] ({ds['name']})")
        for ev in ds["events"]:
            node.add(
                f"#{ev['index']} {ev['kind']} by {ev['actor']} label "
                f"{json.dumps(ev['body'].get('label', {}), sort_keys=True)}"
            )
    console.print(tree)
