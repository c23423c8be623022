"""``sovereign custody``: officers read, verify and trace the custody log."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table
from rich.tree import Tree

from orchestrator.cli._common import (
    JsonOpt,
    LogCaOpt,
    LogUrlOpt,
    StateOpt,
    ca_of,
    console,
    emit_json,
    err_console,
    handle_errors,
    remote_log,
    state_of,
)
from orchestrator.crypto import atomic_write_bytes
from orchestrator.embedded import (
    Deployment,
    publish_checkpoint,
    trace_model,
    verify_custody,
    witness,
)
from orchestrator.errors import ConfigError
from orchestrator.labels import parse_nation, parse_nations
from orchestrator.tlog.witness import WitnessError
from orchestrator.tlog.witness_api import WitnessRefusal

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
    log = Deployment(state_of(state_dir)).log()
    entries = (log.find(kind) if kind is not None else list(log.entries()))
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


@app.command("checkpoint")
@handle_errors
def checkpoint(state_dir: StateOpt = None) -> None:
    """Publish a signed checkpoint (C2SP tlog-checkpoint) over every durable entry."""
    sys.stdout.write(publish_checkpoint(state_of(state_dir)).decode())


@app.command("log-key")
@handle_errors
def log_key_cmd(state_dir: StateOpt = None) -> None:
    """Print the log's checkpoint verifier key (vkey), for officers to pin."""
    sys.stdout.write(Deployment(state_of(state_dir)).log().vkey + "\n")


@app.command("witness")
@handle_errors
def witness_cmd(
    nation: Annotated[str, typer.Option(help="the witnessing nation's custodian")],
    url: Annotated[str | None, typer.Option(
        "--url", help="the custodian's service (default: as the embedded "
        "default reaches it)")] = None,
    ca: Annotated[Path | None, typer.Option(
        "--ca", help="the custodian service's CA (PEM) or the nation's card, "
        "with --url")] = None,
    state_dir: StateOpt = None,
) -> None:
    """The log operator asks NATION's custodian to cosign its latest checkpoint
    (C2SP tlog-witness); the custodian keeps its own witness state."""
    try:
        note = witness(state_of(state_dir), parse_nation(nation, field="--nation"),
                       url=url, ca=None if ca is None else ca_of(ca))
    except WitnessRefusal as exc:
        raise ConfigError(f"witness {nation} refused the checkpoint (HTTP "
                          f"{exc.status}): {exc.message}") from None
    sys.stdout.write(note.decode())


def _evidence(exc: WitnessError) -> None:
    err_console.print("evidence: previously trusted checkpoint:", highlight=False)
    err_console.print(
        exc.previous_note.decode(errors="replace"), highlight=False, markup=False
    )
    err_console.print("evidence: presented checkpoint:", highlight=False)
    err_console.print(
        exc.presented_note.decode(errors="replace"), highlight=False, markup=False
    )


@app.command("verify")
@handle_errors
def verify(
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
    as_nation: Annotated[
        str | None,
        typer.Option("--as", help="officer whose trusted checkpoint to use and update"),
    ] = None,
    require_cosigners: Annotated[
        str,
        typer.Option(
            help="nations whose witness cosignatures are required, e.g. AUS,GBR"
        ),
    ] = "",
    witness_history: Annotated[int, typer.Option(
        "--witness-history", min=0, help="require this many pinned witnesses that "
        "cosigned the log before this checkpoint (each asked for its first "
        "cosigned checkpoint, checked against the log's entries)")] = 0,
    witness_since: Annotated[int | None, typer.Option(
        "--witness-since", min=0, help="a witness counts only if it has followed "
        "the log since this tree size or earlier")] = None,
    require_anchored: Annotated[bool, typer.Option(
        "--require-anchored", help="refuse entries of actors whose key no pinned "
        "custodian admitted (default: name them in a warning)")] = False,
    log_url: LogUrlOpt = None,
    log_ca: LogCaOpt = None,
) -> None:
    """Verify the log from the officer's trusted checkpoint, then trust the new one."""
    required = (
        tuple(sorted(parse_nations(require_cosigners))) if require_cosigners else ()
    )
    try:
        result = verify_custody(
            state_of(state_dir),
            require_cosigners=required,
            officer=parse_nation(as_nation, field="--as") if as_nation else None,
            log=remote_log(log_url, log_ca),
            require_anchored=require_anchored,
            witness_history=witness_history,
            witness_since=witness_since,
        )
    except WitnessError as exc:
        _evidence(exc)
        raise
    report = result.report
    if json_out:
        emit_json(
            {
                "verified": True,
                "size": report.size,
                "head": report.head_hash,
                "checkpoint_size": result.checkpoint_size,
                "previous_trusted_size": result.previous_size,
                "cosigners": list(result.cosigners),
                "kinds": dict(report.kinds),
                "unanchored": result.unanchored,
                "witness_history": [{"nation": h.nation, "first_size": h.first_size,
                                     "first_time": h.first_time,
                                     "has_history": h.has_history,
                                     "detail": h.detail}
                                    for h in result.witnesses],
            }
        )
        return
    since = (
        "[bold yellow]FIRST USE: no trusted checkpoint, the log is trusted as "
        "presented[/]"
        if result.previous_size is None
        else f"consistent with trusted size {result.previous_size}"
    )
    console.print(
        f"[bold green]custody log verified[/]: {report.size} entries, "
        f"checkpoint size {result.checkpoint_size} ({since}), cosigned by "
        f"{', '.join(result.cosigners) or 'nobody'}; "
        + ", ".join(f"{k} {n}" for k, n in sorted(report.kinds.items()))
    )
    for h in result.witnesses:
        console.print(f"witness {h.nation} {h.detail}", highlight=False)
    if result.unanchored:
        console.print("[bold yellow]WARNING[/]: entries of actors whose key no pinned "
                      "custodian admitted (they may be the log operator's own): "
                      + ", ".join(f"{a} from entry {i}"
                                  for a, i in result.unanchored.items()),
                      highlight=False)


@app.command("trace")
@handle_errors
def trace(model_id: str, state_dir: StateOpt = None, json_out: JsonOpt = False,
          log_url: LogUrlOpt = None, log_ca: LogCaOpt = None) -> None:
    """Trace a model back to its datasets through the custody log."""
    lineage = trace_model(state_of(state_dir), model_id,
                          log=remote_log(log_url, log_ca))
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


@app.command("prove")
@handle_errors
def prove_cmd(
    model_id: str,
    out: Annotated[Path, typer.Option("--out", help="bundle file to write")],
    from_size: Annotated[int | None, typer.Option(
        "--from-size", min=0, help="add the consistency proof from this tree size "
        "(an officer's trusted checkpoint) to the bundle's")] = None,
    state_dir: StateOpt = None,
    log_url: LogUrlOpt = None,
    log_ca: LogCaOpt = None,
) -> None:
    """Write MODEL_ID's offline custody bundle (events, proofs, keys, provenance)."""
    from orchestrator.embedded import prove

    bundle = prove(state_of(state_dir), model_id, log=remote_log(log_url, log_ca),
                   from_size=from_size)
    text = json.dumps(bundle, indent=1, sort_keys=True) + "\n"
    atomic_write_bytes(out, text.encode("utf-8"), mode=0o644)
    sealed = next(e for e in bundle["entries"]
                  if _kind_of(e) == "model.sealed")
    proof_file = out.with_suffix(".tlog-proof")
    atomic_write_bytes(proof_file, bundle["proofs"][str(sealed["index"])].encode(),
                       mode=0o644)
    console.print(
        f"custody bundle of {model_id} written to {out}: "
        f"{len(bundle['entries'])} entries proven against one checkpoint; the "
        f"model.sealed entry's C2SP tlog-proof in {proof_file}",
        highlight=False,
    )


def _trusted(path: Path | None) -> Any:
    """The officer's trusted checkpoint at ``path`` (``None`` without a path).

    Raises
    ------
    NotFound, ConfigError
        No such file, or a malformed one.
    """
    from orchestrator.errors import NotFound
    from orchestrator.officer.verify import load_checkpoint

    if path is None:
        return None
    found = load_checkpoint(path)
    if found is None:
        raise NotFound("no such checkpoint file", source=str(path))
    return found


def _kind_of(item: dict[str, Any]) -> str:
    import base64

    leaf = json.loads(base64.b64decode(item["leaf"]))
    return str(leaf["event"]["kind"])


@app.command("verify-bundle")
@handle_errors
def verify_bundle_cmd(
    file: Path,
    log_key: Annotated[
        str | None,
        typer.Option("--log-key", help="pinned log verifier key (vkey text)"),
    ] = None,
    witness_key: Annotated[
        list[str] | None,
        typer.Option("--witness-key", help="pinned witness key NATION=VKEY "
                     "(repeatable)"),
    ] = None,
    trust: Annotated[
        Path | None,
        typer.Option("--trust", help="an officer's trust.json (log and witness "
                     "keys, quorum)"),
    ] = None,
    trust_log_on_first_use: Annotated[
        bool, typer.Option("--trust-log-on-first-use",
                           help="take the log key from the bundle's checkpoint "
                           "(no pinning: says so in the report)")] = False,
    require_cosigners: Annotated[
        str, typer.Option(help="nations whose cosignatures are required, e.g. AUS,GBR")
    ] = "",
    trusted_checkpoint: Annotated[Path | None, typer.Option(
        "--trusted-checkpoint", help="an officer's checkpoint.json: the bundle's "
        "checkpoint must extend it (the bundle made with --from-size)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Verify a custody bundle offline (needs no state directory): keys only from
    --log-key/--witness-key/--trust, never from the bundle."""
    from orchestrator.officer.bundle import BundleError, verify_bundle
    from orchestrator.officer.trust import TrustConfig

    try:
        raw = file.read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read bundle: {exc.strerror}", source=str(file)
        ) from None
    try:
        bundle = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise BundleError(
            "json", f"{file} is not a JSON document (truncated?): {exc}"
        ) from None
    required = sorted(parse_nations(require_cosigners, field="--require-cosigners"))
    config = TrustConfig.load(trust) if trust is not None else TrustConfig()
    witnesses = dict(config.witnesses)
    for item in witness_key or []:
        code, sep, vkey = item.partition("=")
        if not sep:
            raise ConfigError(f"--witness-key takes NATION=VKEY, not {item!r}",
                              field="--witness-key")
        witnesses[parse_nation(code, field="--witness-key")] = vkey
    tofu = None
    if trust_log_on_first_use and isinstance(bundle, dict):
        tofu = _first_use_key(bundle)
    report = verify_bundle(
        bundle, trusted_log_vkey=log_key or config.log_vkey or None,
        witness_vkeys=witnesses,
        required_cosigners=sorted(set(required) | set(config.quorum)),
        trust_log_on_first_use=tofu,
        trusted_checkpoint=_trusted(trusted_checkpoint))
    if json_out:
        emit_json(report.to_json())
        return
    console.print(
        f"[bold green]custody bundle verified[/]: model {report.model_id} "
        f"({report.sealed_digest}) from job {report.job_id} at site:{report.site}; "
        f"{report.entries} entries included in checkpoint size "
        f"{report.checkpoint_size}, cosigned by "
        f"{', '.join(report.cosigners) or 'nobody'}; provenance signed by the site",
        highlight=False,
    )
    for note in report.notes:
        console.print(f"note: {note}", highlight=False, markup=False)


@app.command("report")
@handle_errors
def report_cmd(
    nation: Annotated[str, typer.Option(help="the nation whose holdings to report")],
    out: Annotated[Path, typer.Option("--out", help="HTML file to write")],
    state_dir: StateOpt = None,
) -> None:
    """Write NATION's self-contained HTML sovereignty report (printable)."""
    from orchestrator.embedded import render_nation_report

    page = render_nation_report(state_of(state_dir), parse_nation(nation,
                                                                  field="--nation"))
    atomic_write_bytes(out, page.encode("utf-8"), mode=0o644)
    console.print(f"report written to {out}", highlight=False)


def _first_use_key(bundle: dict[str, Any]) -> str | None:
    """The vkey a bundle's checkpoint would need, from the note's signature name
    and the key the bundle carries (only for --trust-log-on-first-use)."""
    key = (bundle.get("checkpoint") or {}).get("log_key")
    return key if isinstance(key, str) else None
