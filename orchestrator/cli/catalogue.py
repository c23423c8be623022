"""``sovereign site|dataset|agreement|model``: register, seal, list and show."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
from rich.table import Table

from orchestrator.cli._common import (
    JsonOpt,
    StateOpt,
    console,
    emit_json,
    handle_errors,
    state_of,
)
from orchestrator.embedded import (
    accredit_site,
    add_agreement,
    open_model,
    register_site,
    revoke_accreditation,
    seal_dataset,
)
from orchestrator.errors import ConfigError
from orchestrator.labels import Label
from orchestrator.submit.registry import Registry, SealedObjectRecord, as_json

site_app = typer.Typer(no_args_is_help=True, help="Site admins: register facilities.")
dataset_app = typer.Typer(no_args_is_help=True, help="Data stewards: seal datasets.")
agreement_app = typer.Typer(no_args_is_help=True, help="Bilateral agreements.")
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


# -- site --------------------------------------------------------------------------
@site_app.command("register")
@handle_errors
def site_register(
    path: Annotated[Path, typer.Argument(help="site config TOML")],
    state_dir: StateOpt = None,
) -> None:
    """Register a facility from its site config: the site makes its own signing
    identity in its directory, the orchestrator registers its configuration.
    Nations accredit it separately (``site accredit``)."""
    record = register_site(state_of(state_dir), path)
    console.print(
        f"site [bold]{record.name}[/] registered: operated by "
        f"{record.operator_nation}, claims {record.accreditation}, "
        f"signing key {record.signing_key_id}"
    )


@site_app.command("accredit")
@handle_errors
def site_accredit(
    name: Annotated[str, typer.Argument(help="site name")],
    nation: Annotated[str, typer.Option("--by", help="accrediting nation")],
    ceiling: Annotated[str | None, typer.Option(
        "--ceiling", help="highest classification (default: the site's claim)")] = None,
    tee: Annotated[str, typer.Option(
        "--tee", help="accepted evidence kinds: none,tdx,sgx,snp")] = "none",
    days: Annotated[int, typer.Option("--days", min=1, max=3650,
                                      help="validity in days")] = 365,
    operator: Annotated[str | None, typer.Option(
        "--operator", help="operator nation (default: the site's claim)")] = None,
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A nation accredits a site's key: its custodian signs the accreditation and
    issues the site a client certificate; only then does it release keys there."""
    from datetime import timedelta

    from orchestrator.labels import parse_nation

    accreditation = accredit_site(
        state_of(state_dir), name, parse_nation(nation, field="--by"),
        ceiling=ceiling, tee_kinds=[t.strip() for t in tee.split(",") if t.strip()],
        expires_in=timedelta(days=days),
        operator_nation=None if operator is None else parse_nation(
            operator, field="--operator"))
    if json_out:
        emit_json(accreditation.to_json())
        return
    console.print(
        f"site [bold]{name}[/] accredited by {accreditation.nation}: "
        f"{accreditation.accreditation_id}, ceiling "
        f"{accreditation.ceiling.name.replace('_', ' ')}, operator "
        f"{accreditation.operator_nation}, TEE {', '.join(accreditation.tee_kinds)},"
        f" until {accreditation.expires_at:%Y-%m-%d}")


@site_app.command("revoke")
@handle_errors
def site_revoke(
    name: Annotated[str, typer.Argument(help="site name")],
    nation: Annotated[str, typer.Option("--by", help="accrediting nation")],
    reason: Annotated[str, typer.Option("--reason", help="why (recorded)")],
    state_dir: StateOpt = None,
) -> None:
    """A nation revokes its accreditation of a site: releases there stop at once."""
    from orchestrator.labels import parse_nation

    ids = revoke_accreditation(state_of(state_dir), name,
                               parse_nation(nation, field="--by"), reason=reason)
    console.print(f"revoked {', '.join(ids)}")


@site_app.command("list")
@handle_errors
def site_list(state_dir: StateOpt = None, json_out: JsonOpt = False) -> None:
    """List registered sites."""
    sites = Registry(state_of(state_dir).registry_db).sites()
    if json_out:
        emit_json([as_json(s) for s in sites])
        return
    table = Table("site", "operator", "accreditation", "provider", "signing key")
    for s in sites:
        table.add_row(
            s.name,
            s.operator_nation,
            s.accreditation,
            f"{(s.config.get('provider') or {}).get('type', '-')}/"
            f"{s.config['executor']['type']}",
            s.signing_key_id,
        )
    console.print(table)


@site_app.command("show")
@handle_errors
def site_show(name: str, state_dir: StateOpt = None, json_out: JsonOpt = False) -> None:
    """Show one site's attributes and config."""
    site = Registry(state_of(state_dir).registry_db).site(name)
    if json_out:
        emit_json(as_json(site))
        return
    table = Table(show_header=False)
    for key, value in as_json(site).items():
        table.add_row(key, str(value))
    console.print(table)


@site_app.command("check")
@handle_errors
def site_check(
    path: Annotated[Path, typer.Argument(help="site config TOML")],
    json_out: JsonOpt = False,
) -> None:
    """Validate a site config and print the batch script it would submit (no submit)."""
    from orchestrator.submit.sitecheck import check_site
    from orchestrator.submit.siteconfig import load_site_config

    check = check_site(load_site_config(path))
    if json_out:
        emit_json(vars(check))
        return
    lines = [f"# {path}: valid; {check.summary}"]
    lines += [f"# would run: {command}" for command in check.commands]
    console.print("\n".join([*lines, check.script]), markup=False, highlight=False,
                  soft_wrap=True)


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
    state_dir: StateOpt = None,
) -> None:
    """Seal a CSV dataset under a fresh DEK wrapped by its owners' KEKs."""
    column: int | str = (
        int(label_column) if label_column.lstrip("-").isdigit() else label_column
    )
    if not path.is_file():
        raise ConfigError("no such file", source=str(path))
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


# -- agreement ---------------------------------------------------------------------
@agreement_app.command("add")
@handle_errors
def agreement_add(
    path: Annotated[Path, typer.Argument(help="agreement TOML")],
    sign_as: Annotated[
        str,
        typer.Option(
            "--sign-as",
            help="Then sign as these parties' officers (comma-separated; in the "
            "embedded default each officer signs in its own directory).",
        ),
    ] = "",
    state_dir: StateOpt = None,
) -> None:
    """Record an agreement version; it takes effect once every party signs it."""
    nations = [n.strip().upper() for n in sign_as.split(",") if n.strip()]
    state = state_of(state_dir)
    agreement = add_agreement(state, path, sign_as=nations)
    standing = _standing(state, agreement.id, agreement.version)
    console.print(
        f"agreement [bold]{agreement.id}[/] v{agreement.version} recorded: "
        f"{' - '.join(sorted(agreement.parties))}, valid "
        f"{agreement.valid_from} to {agreement.valid_until}; {standing.detail}"
    )


def _standing(state: Any, agreement_id: str, version: int) -> Any:
    from orchestrator.embedded import Deployment
    from orchestrator.submit.agreements import load_standings

    return next(s for s in load_standings(Deployment(state).orchestrator())
                if s.agreement.id == agreement_id and s.agreement.version == version)


@agreement_app.command("sign")
@handle_errors
def agreement_sign(
    agreement_id: Annotated[str, typer.Argument(help="agreement id")],
    nation: Annotated[str, typer.Option("--as", help="signing officer's nation")],
    version: Annotated[
        int | None, typer.Option("--version", help="version (default: latest)")
    ] = None,
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Sign one exact agreement version as a party's sovereignty officer."""
    from orchestrator.embedded import sign_agreement

    standing = sign_agreement(state_of(state_dir), agreement_id,
                              nation.strip().upper(), version=version)
    if json_out:
        emit_json(standing.to_json())
        return
    console.print(f"{standing.status.value}: {standing.detail}")


@agreement_app.command("terminate")
@handle_errors
def agreement_terminate(
    agreement_id: Annotated[str, typer.Argument(help="agreement id")],
    nation: Annotated[str, typer.Option("--as", help="terminating officer's nation")],
    reason: Annotated[str, typer.Option("--reason", help="why (recorded, signed)")],
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Terminate an agreement as a party's officer (signed, logged, at once)."""
    from orchestrator.embedded import terminate_agreement

    standing = terminate_agreement(state_of(state_dir), agreement_id,
                                   nation.strip().upper(), reason=reason)
    if json_out:
        emit_json(standing.to_json())
        return
    console.print(f"{standing.status.value}: {standing.detail}")


@agreement_app.command("list")
@handle_errors
def agreement_list(state_dir: StateOpt = None, json_out: JsonOpt = False) -> None:
    """List every agreement version with its status, signatures and areas."""
    from orchestrator.embedded import Deployment
    from orchestrator.submit.agreements import load_standings

    standings = load_standings(Deployment(state_of(state_dir)).orchestrator())
    if json_out:
        emit_json([{**s.to_json(), "document": s.agreement.to_json()}
                   for s in standings])
        return
    table = Table("id", "v", "status", "parties (signed)", "valid", "areas (tier)",
                  "notify above GPU-h")
    for st in standings:
        a = st.agreement
        table.add_row(
            a.id,
            str(a.version),
            st.status.value,
            ", ".join(f"{p}{' ✓' if p in st.signed_by else ''}"
                      for p in sorted(a.parties)),
            f"{a.valid_from} .. {a.valid_until}",
            "; ".join(f"{p.name} ({p.tier.value})" for p in a.priority_areas),
            f"{a.notification_threshold_gpu_hours:g}"
            + (f" / {a.quarterly_threshold_gpu_hours:g} per quarter"
               if a.quarterly_threshold_gpu_hours is not None else ""),
        )
    console.print(table)


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
