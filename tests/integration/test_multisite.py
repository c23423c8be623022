"""One sonar job spread over two sites at once: the local site and local Slurm.

``submit(..., sites=["local", "local-slurm", "low"])`` builds one Parsl ``Config``
with one executor per site; each owner's custodian decides per site (logged), the
third site ``low`` (accredited CONFIDENTIAL for SECRET data) is refused and left
out with its reason, and the 13 folds + final run round-robin on the other two.
The mean accuracy must equal the single-site run's. The Slurm cluster comes from
the ``slurm_cluster`` fixture of ``test_slurm_site.py`` (started, checked for
leaks and stopped there).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from test_slurm_site import slurm_cluster
from testkit import ROOT, make_world

pytestmark = [pytest.mark.slurm, pytest.mark.slow]
__all__ = ["slurm_cluster"]

WORKFLOW = ROOT / "workflows" / "sonar_classification.toml"


def test_folds_shared_between_local_and_slurm(slurm_cluster: Path) -> None:
    from testkit import register_accredited_site as register_site

    from orchestrator.embedded import job_view, submit
    from orchestrator.log.store import CustodyLog
    from orchestrator.submit.registry import Registry

    world = make_world(slurm_cluster / "multi")
    register_site(world.state, ROOT / "site_configs" / "local-slurm.toml")
    low = slurm_cluster / "low.toml"
    low.write_text(
        (ROOT / "site_configs" / "local.toml")
        .read_text()
        .replace('name = "local"', 'name = "low"')
        .replace('accreditation = "SECRET"', 'accreditation = "CONFIDENTIAL"')
    )
    register_site(world.state, low)

    both = submit(world.state, WORKFLOW, sites=["local", "local-slurm", "low"])
    single = submit(world.state, WORKFLOW, "local")

    assert both.sites == ["local", "local-slurm"]
    (reasons,) = both.excluded.values()
    assert list(both.excluded) == ["low"]
    assert any("accreditation" in r and "CONFIDENTIAL" in r for r in reasons)
    assert both.summary["mean_test_accuracy"] == single.summary["mean_test_accuracy"]
    assert both.summary == single.summary and len(both.tasks) == 14

    log = CustodyLog(world.state.custody_db)
    started = [e.event.body for e in log.find("task.started", job_id=both.job_id)]
    by_site = {s: [b for b in started if b["site"] == s] for s in both.sites}
    assert len(by_site["local"]) == 7 and len(by_site["local-slurm"]) == 7
    assert all(b["slurm_job_id"] is None for b in by_site["local"])
    assert all(b["slurm_job_id"] for b in by_site["local-slurm"])
    # Each owner's custodian decided (and logged) once per site asked.
    decided = {
        (e.event.body["site"], e.event.body["decision"]["outcome"])
        for e in log.find("policy.decided", job_id=both.job_id)
    }
    assert decided == {("local", "permit"), ("local-slurm", "permit"), ("low", "deny")}
    # Keys were released to each enclave for its own site only.
    for e in log.find("key.released", job_id=both.job_id):
        body = e.event.body
        assert body["site"] == next(
            b["site"] for b in started if b["task"] == body["task"]
        )
    # The model's lineage names the site of the final task.
    (model_id,) = both.model_ids
    lineage = Registry(world.state.registry_db).model(model_id).lineage or {}
    final_site = next(b["site"] for b in started if b["task"] == "final")
    assert lineage["site"] == final_site

    view = job_view(world.state, both.job_id)
    assert view["task_states"] == {"COMPLETED": 14}
    assert {t["site"] for t in view["tasks"]} == {"local", "local-slurm"}
    slurm_rows = [t for t in view["tasks"] if t["site"] == "local-slurm"]
    assert all(t["attempts"][0]["slurm_job_id"] for t in slurm_rows)
