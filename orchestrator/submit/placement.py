"""Placing a job on sites: the I/O around :mod:`orchestrator.submit.selection`.

:func:`eligible_sites` assesses every registered site for a workflow (registry,
live agreements); :func:`choose_sites` turns ``--site``/``--sites`` or nothing into
the sites to ask; :func:`gate_sites` asks every owner's custodian for every such
site (each decision logged by the custodian; a refused site is left out of a
multi-site job with its reasons); :func:`assign` spreads tasks over the
permitted sites, round-robin in the given order.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping, Sequence
from datetime import date
from pathlib import Path
from typing import Any

from orchestrator.labels import Label
from orchestrator.submit.context import Orchestrator
from orchestrator.submit.selection import (
    SelectionRequest,
    SiteVerdict,
    assess,
    best_site,
    offer_of,
)
from orchestrator.submit.siteconfig import SiteConfig

__all__ = [
    "assign",
    "choose_sites",
    "eligible_sites",
    "further_sites",
    "gate_sites",
    "site_router",
]


def eligible_sites(
    state: Orchestrator, workflow_path: Path, *, on: date | None = None
) -> tuple[SelectionRequest, list[SiteVerdict]]:
    """Assess every registered site for the workflow at ``workflow_path``.

    Reads the registry (sites, dataset) and the agreements in force in the
    orchestrator's view (:mod:`orchestrator.submit.agreements`).

    Returns
    -------
    tuple
        The request built from the workflow and the ranked verdicts.

    Raises
    ------
    ConfigError, NotFound
        Malformed workflow, unknown dataset.
    """
    from orchestrator.submit.agreements import effective_agreements
    from orchestrator.submit.registry import Registry
    from orchestrator.submit.siteconfig import SiteConfig
    from orchestrator.submit.workflow import load_workflow
    from orchestrator.timeutil import system_clock

    wf = load_workflow(workflow_path).manifest
    registry = Registry(state.registry_db)
    dataset = registry.dataset(wf.workflow.dataset)
    request = SelectionRequest(
        dataset_id=dataset.id,
        label=Label.from_json(dataset.label),
        priority_area=wf.workflow.priority_area,
        gpu_hours=wf.resources.gpu_hours,
        on=on or system_clock().date(),
        gpus_per_task=wf.resources.gpus_per_task,
        nodes=wf.resources.nodes,
        accelerator=wf.resources.accelerator,
    )
    live, _ = effective_agreements(state)
    offers = [
        offer_of(
            s.name,
            s.operator_nation,
            s.accreditation,
            SiteConfig.model_validate(s.config),
        )
        for s in registry.sites()
    ]
    by_owner = {o: live for o in request.label.owners}
    return request, assess(request, offers, by_owner)


def choose_sites(
    state: Orchestrator, workflow_path: Path, site: str | None,
    sites: Sequence[str] | None
) -> tuple[list[str], str]:
    """The sites a submission names, or the best eligible one, and a note why.

    ``sites`` (several, in the given order, duplicates dropped) wins over
    ``site``; with neither, :func:`eligible_sites` picks the best-ranked site.

    Raises
    ------
    PolicyDenied
        When no registered site is eligible (every site's exclusions listed).
    """
    from orchestrator.errors import PolicyDenied

    if sites:
        return list(dict.fromkeys(sites)), ""
    if site:
        return [site], ""
    _, verdicts = eligible_sites(state, workflow_path)
    best = best_site(verdicts)
    if best is None:
        raise PolicyDenied(
            "no registered site is eligible for this workflow",
            reasons=[f"{v.site.name}: {v.why()}" for v in verdicts]
            or ["no site is registered"],
            source=str(workflow_path),
        )
    return [best.site.name], f"selected site {best.site.name} ({best.why()})"


def gate_sites(
    decide: Callable[[str, str], dict[str, Any]],
    sites: Sequence[str],
    owners: Sequence[str],
) -> tuple[list[str], dict[str, list[str]], set[str]]:
    """Ask every owner's custodian to decide for every site (each logs it).

    Parameters
    ----------
    decide
        ``decide(owner, site)``: the custodian's job-level decision (raises
        :class:`~orchestrator.errors.PolicyDenied` on a refusal).
    sites, owners
        The sites asked for, the dataset's owners.

    Returns
    -------
    tuple
        Permitted sites (in order), refused sites with their reasons, and the
        HPKE suites the permits name.

    Raises
    ------
    PolicyDenied
        With one site, its refusal; with several, when every site is refused.
    DecisionPending
        When no site is permitted and some wait on an officer (approval or
        acknowledgement); every owner has logged its request.
    """
    from orchestrator.crypto import HpkeSuite
    from orchestrator.errors import DecisionPending, PolicyDenied

    permitted: list[str] = []
    refused: dict[str, list[str]] = {}
    waiting: dict[str, list[DecisionPending]] = {}
    suites: set[str] = set()
    for site in sites:
        found: set[str] = set()
        denied: list[PolicyDenied] = []
        pending: list[DecisionPending] = []
        for owner in owners:  # every owner decides (and logs), even after a refusal
            try:
                found.add(str(decide(owner, site).get("hpke_suite",
                                                      HpkeSuite.X25519.value)))
            except DecisionPending as exc:
                pending.append(exc)
            except PolicyDenied as exc:
                denied.append(exc)
        if denied:
            if len(sites) == 1 and len(denied) == 1 and not pending:
                raise denied[0]
            refused[site] = [r for exc in denied for r in (exc.message, *exc.reasons)]
            continue
        if pending:
            waiting[site] = pending
            continue
        permitted.append(site)
        suites |= found
    if not permitted and waiting:
        held = all(e.outcome == "held" for es in waiting.values() for e in es)
        raise DecisionPending(
            "waiting for officers: " + "; ".join(
                e.message for es in waiting.values() for e in es),
            outcome="held" if held else "needs-approval",
            reasons=[r for es in waiting.values() for e in es for r in e.reasons]
            + [f"{s}: refused: {'; '.join(r)}" for s, r in refused.items()],
        )
    for site, pending_list in waiting.items():
        refused[site] = ["waiting for officers", *(e.message for e in pending_list)]
    if not permitted:
        if len(sites) == 1:
            raise PolicyDenied(refused[sites[0]][0], reasons=refused[sites[0]][1:])
        raise PolicyDenied(
            "every site was refused",
            reasons=[f"{s}: {'; '.join(r)}" for s, r in refused.items()],
        )
    return permitted, refused, suites


def assign(task_names: Sequence[str], sites: Sequence[str]) -> dict[str, str]:
    """Task name -> site, round-robin over ``sites`` in order (deterministic)."""
    return {name: sites[i % len(sites)] for i, name in enumerate(task_names)}


def further_sites(
    first: str, placement: Mapping[str, SiteConfig] | None
) -> tuple[SiteConfig, ...]:
    """The distinct site configs of ``placement`` other than site ``first``."""
    by_name = {c.site.name: c for c in (placement or {}).values()}
    return tuple(c for name, c in by_name.items() if name != first)


def site_router(
    func: Callable[..., Any],
    configs: Sequence[SiteConfig],
    *,
    nodes: int = 1,
    ranks_per_node: int = 1,
) -> Callable[..., Any]:
    """A Parsl ``python_app`` of ``func`` per site's executor, chosen by
    ``spec["site"]``: each task runs on the executor labelled with its site, with
    its staged ``inputs`` (Parsl ``File`` objects).

    On a site whose executor is ``mpi`` the app is instead
    :func:`orchestrator.protocol.tasks.mpi_enclave_app`, called with
    ``parsl_resource_specification`` for ``nodes`` x ``ranks_per_node`` ranks.
    """
    import parsl

    from orchestrator.protocol.tasks import mpi_enclave_app, resource_spec
    from orchestrator.submit.siteconfig import MpiSection

    apps: dict[str, Callable[..., Any]] = {}
    for c in configs:
        if isinstance(c.executor, MpiSection):
            mpi_app = parsl.python_app(mpi_enclave_app, executors=[c.site.name])
            apps[c.site.name] = functools.partial(
                mpi_app,
                parsl_resource_specification=resource_spec(nodes, ranks_per_node),
            )
        else:
            apps[c.site.name] = parsl.python_app(func, executors=[c.site.name])

    def app(spec: dict[str, Any], inputs: Sequence[Any] = ()) -> Any:
        return apps[spec["site"]](spec, inputs=list(inputs))

    return app
