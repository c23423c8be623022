"""Site selection: which registered sites may run a request, and why not the others.

:func:`assess` is pure (no I/O, no clock): given a :class:`SelectionRequest`, the
candidate sites (:class:`SiteOffer`) and each owner's agreements, it returns one
:class:`SiteVerdict` per site listing every exclusion, grouped by check:

``labels``
    The site's operator nation is in the data's releasable-to, and its
    accreditation is at least the data's classification.
``policy``
    A *pre-check* with the same pure :func:`orchestrator.policy.access.evaluate`
    each owner's custodian runs (owner, request, agreement valid on the day,
    priority-area tier). It explains; it decides nothing: at submission every
    owner's custodian still decides, per site, and logs ``policy.decided``.
``capacity``
    The request's ``nodes`` fit the site's ``[capacity] nodes`` and its
    ``gpus_per_task`` fit ``gpus_per_node``. A site without ``[capacity]`` counts
    as one node with the executor's ``available_accelerators`` GPUs (0 for CPU).
``accelerator``
    A requested accelerator (e.g. ``"A100"``) is a case-insensitive substring of
    the site's ``[capacity] accelerator``.

Ranking of the eligible sites (:func:`rank_key`), best first:

1. domestic before foreign: every owner operates the site itself (no agreement);
2. no oversight notification before a notification (GPU-hours above a threshold);
3. more free GPUs (``nodes * gpus_per_node - nodes_req * gpus_per_task``);
4. more free nodes (``nodes - nodes_req``);
5. site name (alphabetical), so the order is total and deterministic.

:func:`orchestrator.submit.placement.eligible_sites` is the I/O wrapper over the
registry and custody log.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from orchestrator.labels import Classification, Label
from orchestrator.policy.access import AccessRequest, Decision, SiteFacts, evaluate
from orchestrator.protocol.agreements import Agreement

__all__ = [
    "SelectionRequest",
    "SiteOffer",
    "SiteVerdict",
    "assess",
    "best_site",
    "offer_of",
    "rank_key",
]

#: Policy rules reported under ``labels`` (the rest under ``policy``).
_LABEL_RULES = ("releasability", "accreditation")


@dataclass(frozen=True)
class SelectionRequest:
    """What a workflow asks for.

    Attributes
    ----------
    dataset_id
        The dataset's registry id.
    label
        The dataset's security label.
    priority_area
        The agreement priority area claimed.
    gpu_hours
        Requested allocation, GPU-hours.
    on
        The day agreements are checked on.
    gpus_per_task
        GPUs each task needs on one node (0: CPU only).
    nodes
        Nodes each task needs.
    accelerator
        Required GPU model substring, or ``""`` for any.
    """

    dataset_id: str
    label: Label
    priority_area: str
    gpu_hours: float
    on: date
    gpus_per_task: int = 0
    nodes: int = 1
    accelerator: str = ""


@dataclass(frozen=True)
class SiteOffer:
    """A registered site's sovereignty attributes and capacity.

    Attributes
    ----------
    name, operator_nation, accreditation
        As registered.
    nodes, gpus_per_node, accelerator
        From ``[capacity]`` (or inferred, see the module doc).
    declared
        Whether the site file has a ``[capacity]`` table.
    """

    name: str
    operator_nation: str
    accreditation: Classification
    nodes: int = 1
    gpus_per_node: int = 0
    accelerator: str = ""
    declared: bool = False


@dataclass(frozen=True)
class SiteVerdict:
    """One site's assessment.

    Attributes
    ----------
    site
        The site assessed.
    exclusions
        ``"check: detail"`` for every failed check (empty: eligible).
    decisions
        The pre-check decision of every owner.
    free_gpus, free_nodes
        Capacity headroom for the request (may be negative when excluded).
    """

    site: SiteOffer
    exclusions: tuple[str, ...]
    decisions: tuple[Decision, ...] = field(default=())
    free_gpus: int = 0
    free_nodes: int = 0

    @property
    def eligible(self) -> bool:
        """True when no check excluded the site."""
        return not self.exclusions

    @property
    def domestic(self) -> bool:
        """Every owner operates the site (no agreement needed)."""
        return all(d.agreement_id is None for d in self.decisions) and bool(
            self.decisions
        )

    @property
    def notify(self) -> bool:
        """Some owner's oversight body would be notified."""
        return any(d.notify for d in self.decisions)

    def why(self) -> str:
        """One line: the exclusions, or why an eligible site ranks where it does."""
        if self.exclusions:
            return "; ".join(self.exclusions)
        basis = (
            "domestic"
            if self.domestic
            else "agreement "
            + ", ".join(sorted({d.agreement_id or "" for d in self.decisions} - {""}))
        )
        note = ", oversight notified" if self.notify else ""
        return (
            f"eligible: {basis}{note}; {self.free_gpus} free GPUs, "
            f"{self.free_nodes} free nodes"
        )

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (CLI ``--json``)."""
        return {
            "site": self.site.name,
            "operator_nation": self.site.operator_nation,
            "accreditation": self.site.accreditation.name,
            "nodes": self.site.nodes,
            "gpus_per_node": self.site.gpus_per_node,
            "accelerator": self.site.accelerator,
            "eligible": self.eligible,
            "excluded_because": list(self.exclusions),
            "domestic": self.domestic,
            "notify": self.notify,
            "free_gpus": self.free_gpus,
            "free_nodes": self.free_nodes,
            "why": self.why(),
            "decisions": [d.to_json() for d in self.decisions],
        }


def rank_key(verdict: SiteVerdict) -> tuple[bool, bool, bool, int, int, str]:
    """Sort key: eligible first, then the ranking rule of the module doc."""
    return (
        not verdict.eligible,
        not verdict.domestic,
        verdict.notify,
        -verdict.free_gpus,
        -verdict.free_nodes,
        verdict.site.name,
    )


def _assess_one(
    request: SelectionRequest,
    site: SiteOffer,
    agreements_by_owner: Mapping[str, Sequence[Agreement]],
) -> SiteVerdict:
    access = AccessRequest(
        dataset_id=request.dataset_id,
        label=request.label,
        site=SiteFacts(site.name, site.operator_nation, site.accreditation),
        priority_area=request.priority_area,
        gpu_hours=request.gpu_hours,
        on=request.on,
    )
    decisions = tuple(
        evaluate(owner, access, agreements_by_owner.get(owner, ()))
        for owner in sorted(request.label.owners)
    )
    exclusions: list[str] = []
    seen: set[str] = set()
    for decision in decisions:
        for reason in decision.reasons:
            if reason.passed:
                continue
            group = "labels" if reason.rule in _LABEL_RULES else "policy"
            text = (
                f"{group}: {reason.detail}"
                if group == "labels"
                else f"policy ({decision.owner}): {reason.rule}: {reason.detail}"
            )
            if text not in seen:  # label checks repeat once per owner
                seen.add(text)
                exclusions.append(text)
    free_nodes = site.nodes - request.nodes
    free_gpus = site.nodes * site.gpus_per_node - request.nodes * request.gpus_per_task
    source = "capacity" if site.declared else "capacity (no [capacity] table; assumed)"
    if request.nodes > site.nodes:
        exclusions.append(
            f"capacity: needs {request.nodes} nodes, site has {site.nodes} ({source})"
        )
    if request.gpus_per_task > site.gpus_per_node:
        exclusions.append(
            f"capacity: needs {request.gpus_per_task} GPUs per node, site has "
            f"{site.gpus_per_node} ({source})"
        )
    wanted = request.accelerator.strip().lower()
    if wanted and wanted not in site.accelerator.lower():
        exclusions.append(
            f"accelerator: needs {request.accelerator!r}, site has "
            f"{site.accelerator or 'none'!r}"
        )
    return SiteVerdict(
        site=site,
        exclusions=tuple(exclusions),
        decisions=decisions,
        free_gpus=free_gpus,
        free_nodes=free_nodes,
    )


def assess(
    request: SelectionRequest,
    sites: Sequence[SiteOffer],
    agreements_by_owner: Mapping[str, Sequence[Agreement]],
) -> list[SiteVerdict]:
    """Assess every site; return the verdicts ranked (eligible first, best first).

    Parameters
    ----------
    request
        What the workflow asks for.
    sites
        The candidate sites.
    agreements_by_owner
        Each owner's live agreements (an owner missing has none).

    Returns
    -------
    list of SiteVerdict
        Sorted by :func:`rank_key`; pure and deterministic.
    """
    verdicts = [_assess_one(request, s, agreements_by_owner) for s in sites]
    return sorted(verdicts, key=rank_key)


def best_site(verdicts: Sequence[SiteVerdict]) -> SiteVerdict | None:
    """The first eligible verdict of a ranked list, or ``None``."""
    return next((v for v in verdicts if v.eligible), None)


def offer_of(name: str, operator: str, accreditation: str, config: Any) -> SiteOffer:
    """Build a :class:`SiteOffer` from a registered site's validated config."""
    from orchestrator.submit.siteconfig import HtexSection, SiteConfig

    assert isinstance(config, SiteConfig)
    cap = config.capacity
    if cap is not None:
        return SiteOffer(
            name=name,
            operator_nation=operator,
            accreditation=Classification.parse(accreditation),
            nodes=cap.nodes,
            gpus_per_node=cap.gpus_per_node,
            accelerator=cap.accelerator,
            declared=True,
        )
    gpus = (
        config.executor.available_accelerators
        if isinstance(config.executor, HtexSection)
        else 0
    )
    return SiteOffer(
        name=name,
        operator_nation=operator,
        accreditation=Classification.parse(accreditation),
        gpus_per_node=gpus,
    )
