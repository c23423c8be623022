"""The job view end to end: a real job on the local site with Parsl monitoring on.

One sonar job runs through the CLI on a copy of ``site_configs/local.toml`` with
``[executor] monitoring = true``; then ``sovereign jobs`` and ``jobs show`` must
report every task COMPLETED on ``local`` with wall seconds, 0 GPU-hours (CPU site)
and the custody log indices of its events, the ``tasks`` table must hold one row
per attempt, and Parsl's monitoring database must exist under the job's run dir
with one row per task. Submitting without ``--site`` must pick the best eligible
site and say why; ``site eligible`` must explain an excluded site.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from testkit import ROOT, Sovereign, make_world

pytestmark = pytest.mark.slow

WORKFLOW = ROOT / "workflows" / "sonar_classification.toml"


def test_jobs_view_and_monitoring_db(tmp_path: Path) -> None:
    from testkit import register_accredited_site as register_site

    from orchestrator.log.store import CustodyLog
    from orchestrator.submit.jobs import TaskState
    from orchestrator.submit.registry import Registry

    world = make_world(tmp_path)  # registers "local" (no monitoring)
    watched = tmp_path / "watched.toml"
    watched.write_text(
        (ROOT / "site_configs" / "local.toml")
        .read_text()
        .replace('name = "local"', 'name = "watched"')
        .replace("heartbeat_period = 5", "heartbeat_period = 5\nmonitoring = true")
    )
    register_site(world.state, watched)
    low = tmp_path / "low.toml"
    low.write_text(
        (ROOT / "site_configs" / "local.toml")
        .read_text()
        .replace('name = "local"', 'name = "low"')
        .replace('accreditation = "SECRET"', 'accreditation = "CONFIDENTIAL"')
    )
    register_site(world.state, low)
    cli = Sovereign(world.state.root)

    eligible = cli("site", "eligible", str(WORKFLOW), "--json").json()
    sites = {s["site"]: s for s in eligible["sites"]}
    assert [s["site"] for s in eligible["sites"]] == ["local", "watched", "low"]
    assert sites["low"]["excluded_because"] == [
        "labels: site low accredited to CONFIDENTIAL, data is SECRET"
    ]
    table = cli("site", "eligible", str(WORKFLOW)).out
    assert "excluded because" in table and "CONFIDENTIAL" in table

    run = cli("submit", str(WORKFLOW), "--sites", "watched", "--json").json()
    job_id = run["job_id"]
    assert run["sites"] == ["watched"] and run["excluded"] == {}

    listing = cli("jobs", "--json").json()
    (row,) = [j for j in listing if j["job_id"] == job_id]
    assert row["state"] == "completed" and row["task_states"] == {"COMPLETED": 14}
    assert row["gpu_hours"] == 0.0 and row["wall_seconds"] > 0

    view = cli("jobs", "show", job_id, "--json").json()
    log = CustodyLog(world.state.custody_db)
    assert len(view["tasks"]) == 14
    for task in view["tasks"]:
        (attempt,) = task["attempts"]
        assert attempt["state"] == TaskState.COMPLETED == task["state"]
        assert attempt["site"] == "watched" and attempt["gpus"] == 0
        assert attempt["wall_seconds"] > 0 and attempt["gpu_hours"] == 0.0
        kinds = [log.get(i).event.kind for i in attempt["custody_events"]]
        assert kinds[0] == "task.started" and "task.completed" in kinds
        assert "key.released" in kinds
        for i in attempt["custody_events"]:
            body = log.get(i).event.body
            assert job_id in (body.get("job_id"), body.get("lineage", {}).get("job_id"))
    assert "model.sealed" in [
        log.get(i).event.kind
        for t in view["tasks"]
        if t["task"] == "final"
        for i in t["attempts"][0]["custody_events"]
    ]
    assert {d["outcome"] for d in view["policy_decisions"]} == {"permit"}
    shown = cli("jobs", "show", job_id).out
    assert "COMPLETED" in shown and "#" in shown
    assert len(Registry(world.state.registry_db).tasks(job_id)) == 14

    monitoring_db = world.state.runinfo_dir / job_id / "monitoring.db"
    assert monitoring_db.is_file(), "Parsl monitoring DB missing"
    with sqlite3.connect(monitoring_db) as con:
        names = [n for (n,) in con.execute("SELECT task_func_name FROM task")]
    # 14 enclave tasks, then one clean-up task at the site once the job is over
    assert sorted(names) == ["enclave_app"] * 14 + ["job_done"]

    # Without --site: the best eligible site ("local": domestic-equal, name order).
    auto = cli("submit", str(WORKFLOW))
    assert "selected site local (eligible: agreement AUS-USA-SONAR-2026" in auto.out
    assert "ran on: local" in auto.out


def test_jobs_view_of_a_denied_job(tmp_path: Path) -> None:
    world = make_world(tmp_path, accreditation="CONFIDENTIAL")
    cli = Sovereign(world.state.root)
    denied = cli("submit", str(WORKFLOW), "--site", "local", ok=False)
    assert denied.code == 4
    (job,) = cli("jobs", "--json").json()
    assert job["state"] == "failed" and job["task_states"] == {"DENIED": 14}
    view = cli("jobs", "show", job["job_id"], "--json").json()
    assert [d["outcome"] for d in view["policy_decisions"]] == ["deny"]
    nothing = cli("submit", str(WORKFLOW), ok=False)
    assert nothing.code == 4 and "no registered site is eligible" in nothing.err
    assert "accredited to CONFIDENTIAL" in nothing.err
