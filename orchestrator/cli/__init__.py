"""The ``sovereign`` command: one command group per role.

``nation`` (custodians/officers), ``site`` (site admins), ``dataset`` (data
stewards), ``agreement`` (officers: add, sign, terminate), ``submit`` and ``jobs``
(researchers; ``jobs resume``), ``model`` (owners: open, consent, transfer;
recipients: receive), ``approvals``, ``notifications``, ``console`` and ``custody``
(officers), ``custodian`` and ``key`` (nation custodians), ``log`` (the log
operator), ``officer`` and ``orchestrator`` (their own keys and cards, for a
deployment whose parties are apart: :mod:`orchestrator.cli.handover`).
"""

from __future__ import annotations

import typer

from orchestrator.cli import (
    agreements,
    catalogue,
    code,
    console,
    custodian,
    custody,
    handover,
    jobs,
    keys,
    log,
    nation,
    oversight,
    run,
    sites,
    transfer,  # noqa: F401  (adds `model consent|transfer|transfers`)
)

app = typer.Typer(
    name="sovereign",
    no_args_is_help=True,
    add_completion=False,
    help="Sovereign Orchestrator: train on allied supercomputers while "
    "every dataset and model stays under its owner's keys.",
)
app.add_typer(nation.app, name="nation")
app.add_typer(sites.site_app, name="site")
app.add_typer(catalogue.dataset_app, name="dataset")
app.add_typer(agreements.agreement_app, name="agreement")
app.add_typer(catalogue.model_app, name="model")
app.add_typer(custody.app, name="custody")
app.add_typer(custodian.app, name="custodian")
app.add_typer(log.app, name="log")
app.add_typer(keys.app, name="key")
app.add_typer(jobs.app, name="jobs")  # also adds `site eligible`
app.add_typer(oversight.approvals_app, name="approvals")
app.add_typer(oversight.notifications_app, name="notifications")
app.add_typer(console.app, name="console")
app.add_typer(code.app, name="code")
app.add_typer(handover.officer_app, name="officer")
app.add_typer(handover.orchestrator_app, name="orchestrator")
app.command("submit")(run.submit_command)
jobs.app.command("resume")(run.resume_command)


def main() -> None:
    """Console-script entry point."""
    app()
