"""Commands that set up one party alone and exchange public hand-over files.

Each runs at one party, on its own machine, over its own state directory
(``--state-dir`` / ``$SOVEREIGN_STATE_DIR``), and reads only other parties'
public files (:mod:`orchestrator.embedded.handover`)::

    sovereign log init --card log.card.json              (log operator)
    sovereign officer init AUS --card officer-AUS.card.json
    sovereign nation init AUS --officer-card officer-AUS.card.json \\
        --card nation-AUS.card.json
    sovereign site init local.toml --card site-local.card.json
    sovereign orchestrator init --card orchestrator.card.json

then ``log enroll CARD``, ``nation pin|issue``, ``site accredit --card``,
``site install``, ``site trust-orchestrator``, ``nation add``, ``site register
--card``, ``officer trust``, ``officer|log install-cert`` (README, Deployment).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from orchestrator.cli._common import StateOpt, console, handle_errors, state_of
from orchestrator.cli.log import app as log_app
from orchestrator.cli.nation import app as nation_app
from orchestrator.cli.sites import site_app
from orchestrator.embedded import handover, officer_handover, standalone
from orchestrator.labels import parse_nation
from orchestrator.officer.trust import TrustConfig
from orchestrator.site.identity import SiteState

officer_app = typer.Typer(no_args_is_help=True,
                          help="Sovereignty officers: their own keys and trust.")
orchestrator_app = typer.Typer(no_args_is_help=True,
                               help="The orchestrator's own keys and card.")

NationArg = Annotated[str, typer.Argument(help="ISO 3166-1 alpha-3 code")]
CardOut = Annotated[Path, typer.Option("--card", help="card file to write (public)")]
CardIn = Annotated[Path, typer.Argument(help="another party's card file")]


def _nation(code: str, field: str = "CODE") -> str:
    return parse_nation(code, field=field)


# -- officer ---------------------------------------------------------------------------
@officer_app.command("init")
@handle_errors
def officer_init(code: NationArg, card: CardOut, state_dir: StateOpt = None) -> None:
    """(Officer) make the officer's statement key and TLS key; write its card
    (send it to its nation and the log operator)."""
    made = standalone.init_officer_alone(state_of(state_dir), _nation(code), card)
    console.print(f"officer {made.nation} initialised: key {made.key_id}; card "
                  f"{card}", highlight=False)


@officer_app.command("trust")
@handle_errors
def officer_trust(
    code: NationArg,
    log_card: Annotated[Path, typer.Option("--log-card", help="the log's card")],
    nation_card: Annotated[list[Path], typer.Option(
        "--nation-card", help="a witnessing nation's card (repeatable)")],
    replace_log_key: Annotated[bool, typer.Option(
        "--replace-log-key", help="re-pin a log whose key changed (a new log: its "
        "history is not checked against the old one's)")] = False,
    state_dir: StateOpt = None,
) -> None:
    """(Officer) pin the log's key and each nation's witness key in trust.json.
    A log key other than the pinned one is refused without --replace-log-key."""
    before = TrustConfig.load(state_of(state_dir).officer_dir(_nation(code))
                              / "trust.json").log_vkey
    trust = officer_handover.officer_trust(state_of(state_dir), _nation(code), log_card,
                                   list(nation_card), replace_log_key=replace_log_key)
    if before and before != trust.log_vkey:
        console.print(f"[bold red]WARNING[/]: the pinned log key changed from "
                      f"{before} to {trust.log_vkey} (recorded in "
                      "trust-changes.jsonl); the new log is verified from first use",
                      highlight=False)
    console.print(f"trust.json pins log {trust.log_vkey} and witnesses "
                  f"{', '.join(sorted(trust.witnesses))}", highlight=False)


@officer_app.command("install-cert")
@handle_errors
def officer_install_cert(
    code: NationArg,
    cert: Annotated[Path, typer.Argument(help="certificate a nation issued (PEM)")],
    nation: Annotated[str, typer.Option("--nation", help="the issuing nation")],
    state_dir: StateOpt = None,
) -> None:
    """(Officer) keep the client certificate a nation issued from its card."""
    path = officer_handover.officer_install_cert(state_of(state_dir), _nation(code),
                                         _nation(nation, "--nation"), cert)
    console.print(f"kept {path}", highlight=False)


# -- orchestrator ----------------------------------------------------------------------
@orchestrator_app.command("init")
@handle_errors
def orchestrator_init(card: CardOut, state_dir: StateOpt = None) -> None:
    """(Orchestrator) make its event key, TLS key and HTEX channel keys; write its
    card (send it to the nations, the log operator and the sites)."""
    made = standalone.init_orchestrator_alone(state_of(state_dir), card)
    console.print(f"orchestrator initialised: key {made.key_id}; card {card}",
                  highlight=False)


@nation_app.command("add")
@handle_errors
def nation_add(card: CardIn, state_dir: StateOpt = None) -> None:
    """(Orchestrator) register a nation from its card."""
    record = handover.orchestrator_add_nation(state_of(state_dir), card)
    console.print(f"nation {record.code} registered: custodian key "
                  f"{record.custodian_key_id}", highlight=False)


# -- nation ----------------------------------------------------------------------------
@nation_app.command("pin")
@handle_errors
def nation_pin(code: NationArg, card: CardIn, state_dir: StateOpt = None) -> None:
    """(Nation) pin the custody log it witnesses (the log's card) or a peer
    nation (its card)."""
    what = handover.nation_import(state_of(state_dir), _nation(code), card)
    console.print(f"{code} pinned {what}", highlight=False)


@nation_app.command("issue")
@handle_errors
def nation_issue(
    code: NationArg, card: CardIn,
    out: Annotated[Path, typer.Option("--out", help="certificate file to write")],
    state_dir: StateOpt = None,
) -> None:
    """(Nation) issue the orchestrator, the log operator or an officer its client
    certificate from its card."""
    made = handover.nation_issue(state_of(state_dir), _nation(code), card, out)
    console.print(f"{code} issued {out} to {made.actor}", highlight=False)


# -- site ------------------------------------------------------------------------------
@site_app.command("init")
@handle_errors
def site_init(
    config: Annotated[Path, typer.Argument(help="the site's config TOML")],
    card: CardOut, state_dir: StateOpt = None,
) -> None:
    """(Site) make the site's signing key, TLS key and CurveZMQ key at the site;
    write its card (send it to the orchestrator, the nations and the log)."""
    made = standalone.init_site_alone(state_of(state_dir), config, card)
    console.print(f"{made.actor} initialised: key {made.key_id}; card {card}",
                  highlight=False)


def _site(state_dir: Path | None, config: Path) -> SiteState:
    return SiteState(standalone.site_root(state_of(state_dir), config))


@site_app.command("install")
@handle_errors
def site_install(
    config: Annotated[Path, typer.Argument(help="the site's config TOML")],
    accreditation: Annotated[Path, typer.Argument(help="a nation's accreditation")],
    state_dir: StateOpt = None,
) -> None:
    """(Site) keep an accreditation and client certificate a nation sent."""
    made = handover.site_install(_site(state_dir, config), accreditation)
    console.print(f"kept {made.accreditation_id} from {made.nation}", highlight=False)


@site_app.command("trust-orchestrator")
@handle_errors
def site_trust_orchestrator(
    config: Annotated[Path, typer.Argument(help="the site's config TOML")],
    card: CardIn, state_dir: StateOpt = None,
) -> None:
    """(Site) take the orchestrator's interchange key from its card."""
    made = handover.site_trust_orchestrator(_site(state_dir, config), card)
    console.print(f"worker pools will connect to the orchestrator {made.key_id}",
                  highlight=False)


# -- log -------------------------------------------------------------------------------
@log_app.command("install-cert")
@handle_errors
def log_install_cert(
    cert: Annotated[Path, typer.Argument(help="certificate a nation issued (PEM)")],
    nation: Annotated[str, typer.Option("--nation", help="the issuing nation")],
    state_dir: StateOpt = None,
) -> None:
    """(Log operator) keep the client certificate a nation issued it (to ask that
    nation to witness)."""
    path = handover.log_install_cert(state_of(state_dir), _nation(nation, "--nation"),
                                     cert)
    console.print(f"kept {path}", highlight=False)
