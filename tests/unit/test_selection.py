"""Site selection (pure), per-site gating, placement and the job-state enum."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

import pytest

from orchestrator.errors import PolicyDenied
from orchestrator.labels import Classification as Level
from orchestrator.labels import Label
from orchestrator.policy.access import AccessRequest, SiteFacts, evaluate
from orchestrator.protocol.agreements import Agreement
from orchestrator.submit.jobs import (
    PARSL_TASK_STATES,
    SCHEDULER_STATES,
    TaskState,
    from_parsl,
)
from orchestrator.submit.placement import assign, further_sites, gate_sites
from orchestrator.submit.selection import (
    SelectionRequest,
    SiteOffer,
    assess,
    best_site,
    offer_of,
)
from orchestrator.submit.siteconfig import parse_site_config

DAY = date(2026, 6, 1)


def agreement(
    parties: Sequence[str] = ("AUS", "USA"),
    *,
    aid: str = "AUS-USA-1",
    areas: dict[str, str] | None = None,
    threshold: float = 500.0,
) -> Agreement:
    areas = areas or {"undersea-autonomy": "pre-approved", "quantum": "case-by-case"}
    return Agreement.from_json(
        {
            "id": aid,
            "title": "t",
            "parties": list(parties),
            "valid_from": "2026-01-01",
            "valid_until": "2027-12-31",
            "notification_threshold_gpu_hours": threshold,
            "oversight_body": "JSG",
            "priority_area": [{"name": n, "tier": t} for n, t in areas.items()],
        }
    )


def req(
    *,
    owners: str = "AUS",
    rel: str = "AUS,GBR,USA",
    area: str = "undersea-autonomy",
    hours: float = 1.0,
    gpus: int = 0,
    nodes: int = 1,
    accel: str = "",
) -> SelectionRequest:
    return SelectionRequest(
        dataset_id="ds-1",
        label=Label.create(owners=owners, classification="SECRET", releasable_to=rel),
        priority_area=area,
        gpu_hours=hours,
        on=DAY,
        gpus_per_task=gpus,
        nodes=nodes,
        accelerator=accel,
    )


def site(
    name: str,
    op: str = "USA",
    acc: Level = Level.SECRET,
    nodes: int = 1,
    gpus: int = 0,
    accel: str = "",
) -> SiteOffer:
    return SiteOffer(name, op, acc, nodes, gpus, accel, declared=True)


AGREEMENTS = {"AUS": [agreement()]}


def by_name(verdicts: Sequence[Any]) -> dict[str, Any]:
    return {v.site.name: v for v in verdicts}


def test_all_eligible_ranked_domestic_then_headroom_then_name() -> None:
    sites = [
        site("b-us", gpus=4, nodes=2),
        site("a-us", gpus=4, nodes=2),
        site("big-us", gpus=8, nodes=10),
        site("home", op="AUS"),
    ]
    verdicts = assess(req(), sites, AGREEMENTS)
    assert [v.site.name for v in verdicts] == ["home", "big-us", "a-us", "b-us"]
    assert all(v.eligible for v in verdicts)
    assert verdicts[0].domestic and "domestic" in verdicts[0].why()
    assert "agreement AUS-USA-1" in verdicts[1].why()
    assert best_site(verdicts) is verdicts[0]


def test_ranking_is_independent_of_input_order() -> None:
    sites = [site(f"s{i}", gpus=i % 3, nodes=1 + i % 2) for i in range(8)]
    first = [v.site.name for v in assess(req(), sites, AGREEMENTS)]
    again = [v.site.name for v in assess(req(), list(reversed(sites)), AGREEMENTS)]
    assert first == again


def test_notification_ranks_after_no_notification() -> None:
    agreements = {
        "AUS": [agreement(), agreement(("AUS", "GBR"), aid="AUS-GBR", threshold=0.5)]
    }
    verdicts = assess(
        req(hours=1.0), [site("gb", op="GBR", gpus=8), site("us")], agreements
    )
    assert [v.site.name for v in verdicts] == ["us", "gb"]
    assert verdicts[1].notify and "oversight notified" in verdicts[1].why()


def test_label_exclusions_releasability_and_accreditation() -> None:
    verdicts = by_name(
        assess(
            req(rel="AUS,USA"),
            [site("fr", op="FRA"), site("low", acc=Level.CONFIDENTIAL), site("ok")],
            AGREEMENTS,
        )
    )
    assert verdicts["ok"].eligible
    (fr_label,) = [e for e in verdicts["fr"].exclusions if e.startswith("labels:")]
    assert "FRA" in fr_label and "not in releasable-to" in fr_label
    assert verdicts["low"].exclusions == (
        "labels: site low accredited to CONFIDENTIAL, data is SECRET",
    )
    assert not verdicts["low"].eligible
    assert verdicts["low"].why().startswith("labels:")


def test_policy_exclusions_match_the_custodians_evaluate() -> None:
    request = req(area="quantum")
    (v,) = assess(request, [site("us")], AGREEMENTS)
    assert not v.eligible
    assert v.exclusions == (
        "policy (AUS): tier: needs approval: case-by-case review of area quantum "
        "under agreement AUS-USA-1",
    )
    custodian = evaluate(
        "AUS",
        AccessRequest(
            "ds-1",
            request.label,
            SiteFacts("us", "USA", Level.SECRET),
            "quantum",
            1.0,
            DAY,
        ),
        AGREEMENTS["AUS"],
    )
    assert v.decisions == (custodian,)


def test_no_agreement_excludes_foreign_site() -> None:
    (v,) = assess(req(), [site("gb", op="GBR")], AGREEMENTS)
    assert v.exclusions == (
        "policy (AUS): agreement: no agreement between AUS and GBR",
        "policy (AUS): tier: no valid agreement to grant area 'undersea-autonomy'",
    )


def test_joint_owners_each_decide() -> None:
    (v,) = assess(req(owners="AUS,GBR"), [site("us")], AGREEMENTS)
    assert [d.owner for d in v.decisions] == ["AUS", "GBR"]
    assert any(e.startswith("policy (GBR): agreement:") for e in v.exclusions)
    assert not any(e.startswith("policy (AUS)") for e in v.exclusions)


def test_capacity_and_accelerator_exclusions() -> None:
    sites = [
        site("cpu"),
        site("small", nodes=1, gpus=4, accel="NVIDIA A100-SXM4-40GB"),
        site("h100", nodes=8, gpus=8, accel="NVIDIA H100 80GB HBM3"),
    ]
    verdicts = by_name(assess(req(gpus=4, nodes=2, accel="h100"), sites, AGREEMENTS))
    assert verdicts["h100"].eligible
    assert verdicts["h100"].free_gpus == 64 - 8 and verdicts["h100"].free_nodes == 6
    assert verdicts["cpu"].exclusions == (
        "capacity: needs 2 nodes, site has 1 (capacity)",
        "capacity: needs 4 GPUs per node, site has 0 (capacity)",
        "accelerator: needs 'h100', site has 'none'",
    )
    assert verdicts["small"].exclusions == (
        "capacity: needs 2 nodes, site has 1 (capacity)",
        "accelerator: needs 'h100', site has 'NVIDIA A100-SXM4-40GB'",
    )


def test_to_json_names_every_exclusion() -> None:
    (v,) = assess(req(gpus=1), [site("low", acc=Level.OFFICIAL)], AGREEMENTS)
    data = v.to_json()
    assert data["eligible"] is False and data["accreditation"] == "OFFICIAL"
    assert [e.split(":")[0] for e in data["excluded_because"]] == [
        "labels",
        "capacity",
    ]
    assert best_site([v]) is None


def test_offer_of_site_files() -> None:
    from testkit import ROOT

    gpu = parse_site_config(
        (ROOT / "site_configs" / "slurm-gpu.toml").read_text(), source="gpu"
    )
    offer = offer_of("perlmutter-gpu", "USA", "SECRET", gpu)
    assert (offer.nodes, offer.gpus_per_node, offer.declared) == (1536, 4, True)
    local = parse_site_config(
        (ROOT / "site_configs" / "local.toml").read_text(), source="local"
    )
    offer = offer_of("local", "USA", "SECRET", local)
    assert (offer.nodes, offer.gpus_per_node, offer.declared) == (1, 0, False)
    (v,) = assess(req(gpus=1), [offer], AGREEMENTS)
    assert "no [capacity] table; assumed" in v.exclusions[0]


def _decider(refuse: dict[str, list[str]]) -> Any:
    calls: list[tuple[str, str]] = []

    def decide(owner: str, name: str) -> dict[str, Any]:
        calls.append((owner, name))
        if name in refuse:
            raise PolicyDenied(f"{owner} custodian: deny", reasons=refuse[name])
        return {"outcome": "permit", "hpke_suite": "x25519"}

    decide.calls = calls  # type: ignore[attr-defined]
    return decide


def test_gate_sites_asks_every_owner_for_every_site() -> None:
    decide = _decider({"low": ["accreditation: too low"]})
    permitted, refused, suites = gate_sites(decide, ["a", "low", "b"], ["AUS", "GBR"])
    assert permitted == ["a", "b"] and suites == {"x25519"}
    assert refused == {"low": ["AUS custodian: deny", "accreditation: too low",
                               "GBR custodian: deny", "accreditation: too low"]}
    # Every owner is asked for every site, even after a refusal: each owner's
    # custodian logs its own decision (and, case by case, its approval request).
    assert decide.calls == [
        ("AUS", "a"),
        ("GBR", "a"),
        ("AUS", "low"),
        ("GBR", "low"),
        ("AUS", "b"),
        ("GBR", "b"),
    ]


def test_gate_sites_pending_owner_makes_the_job_wait() -> None:
    from orchestrator.errors import DecisionPending

    def decide(owner: str, name: str) -> dict[str, Any]:
        if owner == "GBR":
            raise DecisionPending("GBR custodian: needs approval",
                                  reasons=["tier: needs approval: case-by-case"])
        return {"outcome": "permit", "hpke_suite": "x25519"}

    with pytest.raises(DecisionPending) as waiting:
        gate_sites(decide, ["a"], ["AUS", "GBR"])
    assert waiting.value.outcome == "needs-approval"
    assert waiting.value.reasons == ["tier: needs approval: case-by-case"]
    # With another site fully permitted, the waiting site is excluded instead.
    calls = _decider({})
    permitted, refused, _ = gate_sites(
        lambda o, n: decide(o, n) if n == "a" else calls(o, n), ["a", "b"],
        ["AUS", "GBR"])
    assert permitted == ["b"] and refused["a"][0] == "waiting for officers"


def test_gate_sites_single_site_refusal_raises_unchanged() -> None:
    with pytest.raises(PolicyDenied) as info:
        gate_sites(_decider({"low": ["x"]}), ["low"], ["AUS"])
    assert info.value.reasons == ["x"]


def test_gate_sites_all_refused() -> None:
    with pytest.raises(PolicyDenied, match="every site was refused") as info:
        gate_sites(_decider({"a": ["r1"], "b": ["r2"]}), ["a", "b"], ["AUS"])
    assert info.value.reasons == [
        "a: AUS custodian: deny; r1",
        "b: AUS custodian: deny; r2",
    ]


def test_assign_round_robin_and_further_sites() -> None:
    tasks = [f"fold-{i}" for i in range(13)] + ["final"]
    placed = assign(tasks, ["local", "local-slurm"])
    assert placed["fold-0"] == "local" and placed["fold-1"] == "local-slurm"
    assert sorted(placed.values()).count("local") == 7
    assert assign(["t"], ["only"]) == {"t": "only"}
    from testkit import ROOT

    local = parse_site_config(
        (ROOT / "site_configs" / "local.toml").read_text(), source="l"
    )
    slurm = parse_site_config(
        (ROOT / "site_configs" / "local-slurm.toml").read_text(), source="s"
    )
    configs = {"local": local, "local-slurm": slurm}
    more = further_sites("local", {t: configs[s] for t, s in placed.items()})
    assert [c.site.name for c in more] == ["local-slurm"]
    assert further_sites("local", None) == ()


def test_every_parsl_state_translates() -> None:
    from parsl.dataflow.states import States
    from parsl.jobs.states import JobState

    for state in States:
        assert isinstance(from_parsl(state), TaskState)
    for job_state in JobState:
        assert isinstance(from_parsl(job_state), TaskState)
    assert from_parsl(States.exec_done) is TaskState.COMPLETED
    assert from_parsl(States.fail_retryable) is TaskState.RETRIED
    assert from_parsl(JobState.HELD) is TaskState.PENDING
    assert from_parsl(JobState.TIMEOUT) is TaskState.FAILED
    assert from_parsl("running") is TaskState.RUNNING
    assert set(PARSL_TASK_STATES.values()) | set(SCHEDULER_STATES.values()) <= set(
        TaskState
    )
    with pytest.raises(ValueError, match="unknown Parsl state"):
        from_parsl("bogus")


def test_monitoring_flag_adds_a_monitoring_hub(tmp_path: Any) -> None:
    from testkit import ROOT

    from orchestrator.submit.providers import to_parsl_config

    text = (ROOT / "site_configs" / "local.toml").read_text()
    plain = parse_site_config(text, source="l")
    watched = parse_site_config(
        text.replace("heartbeat_period = 5", "heartbeat_period = 5\nmonitoring = true"),
        source="m",
    )
    assert to_parsl_config(plain, tmp_path).monitoring is None
    other = parse_site_config(
        text.replace('name = "local"', 'name = "two"'), source="t"
    )
    config = to_parsl_config(watched, tmp_path, more=(other,))
    assert [e.label for e in config.executors] == ["local", "two"]
    assert config.monitoring.logging_endpoint == f"sqlite:///{tmp_path}/monitoring.db"
