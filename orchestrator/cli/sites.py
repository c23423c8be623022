"""``sovereign site``: site admins register facilities; nations accredit them;
``site workers`` runs a site-started site's Parsl worker pools at the site."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
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
    accredit_site,
    register_site,
    revoke_accreditation,
)
from orchestrator.errors import ConfigError
from orchestrator.site.identity import SiteState
from orchestrator.site.workers import PoolSettings, serve_workers
from orchestrator.submit.registry import Registry, as_json
from orchestrator.submit.siteconfig import (
    HtexSection,
    SiteStartedProviderSection,
    load_site_config,
)

site_app = typer.Typer(no_args_is_help=True, help="Site admins: register facilities.")


# -- site --------------------------------------------------------------------------
@site_app.command("register")
@handle_errors
def site_register(
    path: Annotated[Path, typer.Argument(help="site config TOML")],
    card: Annotated[Path | None, typer.Option(
        "--card", help="(orchestrator, parties apart) the site's card: register "
        "the site it describes, never touching its directory")] = None,
    state_dir: StateOpt = None,
) -> None:
    """Register a facility from its site config: the site makes its own signing
    identity in its directory, the orchestrator registers its configuration.
    Nations accredit it separately (``site accredit``)."""
    if card is not None:
        from orchestrator.embedded.handover import orchestrator_register_site

        record = orchestrator_register_site(state_of(state_dir), path, card)
    else:
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
    card: Annotated[Path | None, typer.Option(
        "--card", help="(nation, parties apart) the site's card, with --out and "
        "--log-url/--log-ca")] = None,
    out: Annotated[Path | None, typer.Option(
        "--out", help="(with --card) the file to send the site")] = None,
    log_url: LogUrlOpt = None,
    log_ca: LogCaOpt = None,
    state_dir: StateOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """A nation accredits a site's key: its custodian signs the accreditation and
    issues the site a client certificate; only then does it release keys there.

    With ``--card``: at the nation's own machine, from the site's card, logging
    through the log service; the accreditation, the certificate and the nation's
    card go to ``--out`` for the site (``sovereign site install``)."""
    from datetime import timedelta

    from orchestrator.labels import parse_nation

    code = parse_nation(nation, field="--by")
    kinds = [t.strip() for t in tee.split(",") if t.strip()]
    operator_nation = None if operator is None else parse_nation(
        operator, field="--operator")
    if card is not None:
        from orchestrator.embedded.handover import nation_accredit

        log = remote_log(log_url, log_ca)
        if out is None or log is None:
            raise ConfigError("--card needs --out and --log-url/--log-ca",
                              field="--card")
        accreditation = nation_accredit(
            state_of(state_dir), code, card, out, log=log, site=name,
            ceiling=ceiling, tee_kinds=tuple(kinds), expires_in=timedelta(days=days),
            operator_nation=operator_nation)
    else:
        accreditation = accredit_site(
            state_of(state_dir), name, code, ceiling=ceiling, tee_kinds=kinds,
            expires_in=timedelta(days=days), operator_nation=operator_nation)
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


@site_app.command("reconcile")
@handle_errors
def site_reconcile(
    nation: Annotated[str, typer.Option("--by", help="accrediting nation")],
    log_url: LogUrlOpt = None,
    log_ca: LogCaOpt = None,
    state_dir: StateOpt = None,
) -> None:
    """(Nation operator) after an integrity refusal of the accreditation state:
    re-derive every accreditation's state from the custodian's signed journal,
    re-sign the rows and log the repair; releases resume."""
    from orchestrator.embedded import Deployment
    from orchestrator.labels import parse_nation
    from orchestrator.nation.custodian import LocalCustodian

    deployment = Deployment(state_of(state_dir))
    nation_state = deployment.nation(parse_nation(nation, field="--by")).require()
    custodian = LocalCustodian(nation_state,
                               remote_log(log_url, log_ca) or deployment.log())
    fixed = custodian.ctx.reconcile_accreditations()
    console.print(f"reconciled {', '.join(fixed)} from the journal" if fixed else
                  "accreditation state agrees with the journal; nothing changed")


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


@site_app.command("workers")
@handle_errors
def site_workers(
    path: Annotated[Path, typer.Argument(help="the site's config TOML")],
    once: Annotated[bool, typer.Option(
        "--once", help="run one pool and exit with its status")] = False,
    state_dir: StateOpt = None,
) -> None:
    """(Site) run Parsl worker pools for a site-started site under this account,
    connected to the orchestrator's interchange; restart each pool that exits,
    until SIGTERM."""
    config = load_site_config(path)
    provider, ex = config.provider, config.executor
    if not isinstance(provider, SiteStartedProviderSection) or not isinstance(
            ex, HtexSection):
        raise ConfigError("not a site-started site (provider.type = "
                          "\"site-started\", executor.type = \"htex\")",
                          source=str(path), field="provider.type")
    root = (Path(config.site.state_dir) if config.site.state_dir
            else state_of(state_dir).site_dir(config.site.name))
    settings = PoolSettings(
        address=ex.address, port=provider.worker_port,
        max_workers=ex.max_workers_per_node, cores_per_worker=ex.cores_per_worker,
        heartbeat_period=ex.heartbeat_period,
        heartbeat_threshold=ex.heartbeat_threshold)
    console.print(f"site {config.site.name}: worker pools to {ex.address}:"
                  f"{provider.worker_port} from {root}", highlight=False)
    code = serve_workers(SiteState(root), settings, once=once)
    if code:
        raise typer.Exit(code)
