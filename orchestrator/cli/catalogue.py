"""``sovereign dataset|model``: seal, list, show and open sealed objects."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from orchestrator.cli._common import (
    JsonOpt,
    LogCaOpt,
    LogUrlOpt,
    StateOpt,
    console,
    emit_json,
    handle_errors,
    remote_log,
    state_of,
)
from orchestrator.embedded import (
    open_model,
    seal_dataset,
)
from orchestrator.errors import ConfigError
from orchestrator.labels import Label
from orchestrator.net.log_client import HttpLog
from orchestrator.submit.registry import Registry, SealedObjectRecord, as_json

dataset_app = typer.Typer(no_args_is_help=True, help="Data stewards: seal datasets.")
model_app = typer.Typer(no_args_is_help=True, help="Sealed models.")


def _marking(label: dict[str, Any]) -> str:
    return Label.from_json(label, derived=True).marking()


def _show_object(record: SealedObjectRecord, json_out: bool) -> None:
    if json_out:
        emit_json(as_json(record))
        return
    table = Table(show_header=False)
    for key, value in (
        ("id", record.id),
        ("name", record.name),
        ("label", _marking(record.label)),
        ("sealed file", record.object_path),
        ("sealed digest", record.sealed_digest),
        (
            "wrapped for",
            ", ".join(
                f"{n} ({k['kek_id']} v{k['kek_version']})" if "kek_id" in k
                else f"{n} (held by its custodian)"
                for n, k in sorted(record.wrapped_keys.items())
            ),
        ),
        ("created", record.created),
    ):
        table.add_row(key, value)
    for key, value in sorted(record.manifest.items()):
        if key not in ("feature_names",):
            table.add_row(f"manifest.{key}", str(value))
    if record.metrics:
        for key, value in sorted(record.metrics.items()):
            table.add_row(f"metrics.{key}", f"{value:.4g}")
    console.print(table)


# -- dataset -----------------------------------------------------------------------
@dataset_app.command("seal")
@handle_errors
def dataset_seal(
    path: Annotated[Path, typer.Argument(help="CSV file to seal")],
    owner: Annotated[str, typer.Option(help="owner nation(s), e.g. AUS or AUS,GBR")],
    classification: Annotated[str, typer.Option(help="e.g. SECRET")],
    rel_to: Annotated[
        str, typer.Option("--rel-to", help="releasable to, e.g. AUS,GBR,USA")
    ],
    name: Annotated[
        str | None, typer.Option(help="dataset name (default: file stem)")
    ] = None,
    label_column: Annotated[
        str, typer.Option(help="label column index or header name")
    ] = "-1",
    header: Annotated[
        bool | None,
        typer.Option(
            "--header/--no-header", help="CSV has a header row (default: detect)"
        ),
    ] = None,
    export_control: Annotated[
        list[str] | None,
        typer.Option(help="export-control tag, e.g. EAR99, EAR:6A991, ITAR:USML-XI"),
    ] = None,
    caveat: Annotated[list[str] | None, typer.Option(help="end-use caveat")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="(nation, parties apart) seal at this nation's own custodian "
        "into this folder, with --log-url/--log-ca, for 'dataset register'")] = None,
    log_url: LogUrlOpt = None,
    log_ca: LogCaOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """Seal a CSV dataset under a fresh DEK wrapped by its owners' KEKs."""
    column: int | str = (
        int(label_column) if re.fullmatch(r"-?[0-9]+", label_column) else label_column
    )
    if not path.is_file():
        raise ConfigError("no such file", source=str(path))
    if out is not None:
        _seal_alone(path, out, remote_log(log_url, log_ca), state_dir, name=name
                    or path.stem, owners=owner.split(","),
                    classification=classification, releasable_to=rel_to.split(","),
                    label_column=column, has_header=header,
                    export_controls=export_control or (), caveats=caveat or ())
        return
    size = path.stat().st_size
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        console=console,
        transient=True,
    ) as bar:
        task = bar.add_task(f"sealing {path.name}", total=size)
        record = seal_dataset(
            state_of(state_dir),
            path,
            name=name or path.stem,
            owners=owner.split(","),
            classification=classification,
            releasable_to=rel_to.split(","),
            label_column=column,
            has_header=header,
            export_controls=export_control or (),
            caveats=caveat or (),
            progress=lambda done: bar.update(task, completed=done),
        )
    console.print(
        f"sealed [bold]{record.name}[/] as {record.id} "
        f"[{_marking(record.label)}]: {record.manifest['rows']} rows x "
        f"{record.manifest['features']} features, wrapped for "
        f"{', '.join(sorted(record.wrapped_keys))}"
    )


def _seal_alone(path: Path, out: Path, log: HttpLog | None, state_dir: Path | None,
                **options: Any) -> None:
    from orchestrator.embedded.standalone import seal_dataset_alone
    from orchestrator.labels import parse_nations

    if log is None:
        raise ConfigError("--out needs --log-url/--log-ca", field="--out")
    sealer = sorted(parse_nations(options["owners"]))[0]
    descriptor = seal_dataset_alone(state_of(state_dir), sealer, path, out, log=log,
                                    **options)
    console.print(f"sealed [bold]{descriptor.name}[/] as {descriptor.id} at "
                  f"{sealer}: {out}/{descriptor.id}.sealed and .descriptor.json "
                  "(for the orchestrator: sovereign dataset register)")


@dataset_app.command("register")
@handle_errors
def dataset_register(
    descriptor: Annotated[Path, typer.Argument(help="<id>.descriptor.json")],
    sealed: Annotated[Path, typer.Argument(help="<id>.sealed")],
    state_dir: StateOpt = None,
) -> None:
    """(Orchestrator) take in a dataset a nation sealed at its own custodian."""
    from orchestrator.embedded.handover import orchestrator_register_dataset

    record = orchestrator_register_dataset(state_of(state_dir), descriptor, sealed)
    console.print(f"registered [bold]{record.name}[/] as {record.id} "
                  f"[{_marking(record.label)}]")


@dataset_app.command("list")
@handle_errors
def dataset_list(state_dir: StateOpt = None, json_out: JsonOpt = False) -> None:
    """List sealed datasets."""
    datasets = Registry(state_of(state_dir).registry_db).datasets()
    if json_out:
        emit_json([as_json(d) for d in datasets])
        return
    table = Table("id", "name", "label", "rows", "features", "created")
    for d in datasets:
        table.add_row(
            d.id,
            d.name,
            _marking(d.label),
            str(d.manifest["rows"]),
            str(d.manifest["features"]),
            d.created,
        )
    console.print(table)


@dataset_app.command("show")
@handle_errors
def dataset_show(
    ref: Annotated[str, typer.Argument(help="dataset id or name")],
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Show a sealed dataset's label, manifest and wrapped keys."""
    _show_object(Registry(state_of(state_dir).registry_db).dataset(ref), json_out)


@dataset_app.command("synth")
@handle_errors
def dataset_synth(
    out: Annotated[Path, typer.Argument(help="CSV file to write")],
    rows: Annotated[int, typer.Option(min=1, help="number of rows")] = 208,
    bands: Annotated[int, typer.Option(min=1, help="frequency bands per row")] = 60,
    seed: Annotated[int, typer.Option(min=0, help="generator seed")] = 0,
) -> None:
    """Write synthetic sonar-like returns (chirp echoes, M/R labels) as a CSV.

    A stand-in for the UCI sonar data at any size (``orchestrator.synthetic``);
    seal it like real data with ``sovereign dataset seal``.
    """
    import time

    from orchestrator.synthetic import write_csv

    t0 = time.perf_counter()
    written = write_csv(out, rows, bands, seed)
    console.print(
        f"wrote {rows} rows x {bands} bands (seed {seed}) to {out}: "
        f"{written / 1e6:.1f} MB in {time.perf_counter() - t0:.1f} s"
    )


# -- model -------------------------------------------------------------------------
@model_app.command("list")
@handle_errors
def model_list(state_dir: StateOpt = None, json_out: JsonOpt = False) -> None:
    """List sealed models."""
    models = Registry(state_of(state_dir).registry_db).models()
    if json_out:
        emit_json([as_json(m) for m in models])
        return
    table = Table("id", "job", "label", "train acc.", "created")
    for m in models:
        acc = (m.metrics or {}).get("train_accuracy")
        table.add_row(
            m.id,
            m.job_id,
            _marking(m.label),
            "-" if acc is None else f"{100 * acc:.1f} %",
            m.created,
        )
    console.print(table)


@model_app.command("show")
@handle_errors
def model_show(
    model_id: str, state_dir: StateOpt = None, json_out: JsonOpt = False
) -> None:
    """Show a sealed model's label, manifest, lineage and wrapped keys."""
    _show_object(Registry(state_of(state_dir).registry_db).model(model_id), json_out)


@model_app.command("open")
@handle_errors
def model_open(
    model_id: str,
    as_nation: Annotated[str, typer.Option("--as", help="owner nation")],
    out: Annotated[Path, typer.Option(help="where to write the weights")],
    state_dir: StateOpt = None,
) -> None:
    """Decrypt a model for one of its owners (logged by that owner's custodian)."""
    from orchestrator.labels import parse_nation

    result = open_model(
        state_of(state_dir), model_id, parse_nation(as_nation, field="--as"), out
    )
    console.print(
        f"opened {result['model_id']} for {as_nation} -> {result['out']} "
        f"(sha256 {result['sha256'][:16]}...)"
    )
