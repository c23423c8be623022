"""Globus Compute sites through Parsl's own ``GlobusComputeExecutor``.

The hosted Globus Compute service cannot be reached from here, and
``globus-compute-sdk`` is not a dependency (it would pin dill below Parsl's). So:

* STAND-IN, NOT THE SDK: :class:`ProcessPoolEndpoint` is a real
  ``concurrent.futures.ProcessPoolExecutor`` standing in for the endpoint's
  ``globus_compute_sdk.Executor``. Like the SDK it serialises each call (with
  Parsl's ``pack_apply_message``, dill by value) and exposes the attributes
  ``GlobusComputeExecutor`` uses (``resource_specification``,
  ``user_endpoint_config``, ``_get_result_watcher``);
* the ``sdk_stand_in`` fixture lets Parsl's ``GlobusComputeExecutor`` accept it: it
  sets the two module globals Parsl fills from ``import globus_compute_sdk``
  (``_globus_compute_enabled`` and ``Executor``, which typeguard checks against).

Everything else is real: our adapter (``to_parsl_config(...,
endpoint_executor=...)``), Parsl's executor class, the DFK, and in the slow test the
whole sonar job. The manual check against a real endpoint is described in
``site_configs/globus-compute.toml``.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import Future, ProcessPoolExecutor
from pathlib import Path
from typing import Any
from uuid import UUID

import pytest
from testkit import ROOT, make_world

from orchestrator.submit.providers import to_parsl_config
from orchestrator.submit.siteconfig import (
    GlobusComputeSection,
    load_site_config,
)

GC_SITE = ROOT / "site_configs" / "globus-compute.toml"


def _run_packed(buffer: bytes) -> Any:
    from parsl.serialize import unpack_apply_message

    fn, args, kwargs = unpack_apply_message(buffer)
    return fn(*args, **kwargs)


class ProcessPoolEndpoint(ProcessPoolExecutor):
    """STAND-IN for ``globus_compute_sdk.Executor``: runs tasks in local processes."""

    def __init__(self, endpoint_id: UUID, user_endpoint_config: dict[str, Any]):
        super().__init__(max_workers=2)
        self.endpoint_id = endpoint_id
        self.resource_specification: dict[str, Any] = {}
        self.user_endpoint_config = user_endpoint_config
        self.seen: list[tuple[dict[str, Any], dict[str, Any]]] = []

    def submit(self, fn: Any, /, *args: Any, **kwargs: Any) -> Future[Any]:
        from parsl.serialize import pack_apply_message

        self.seen.append(
            (dict(self.resource_specification), dict(self.user_endpoint_config))
        )
        return super().submit(_run_packed, pack_apply_message(fn, args, kwargs))

    def _get_result_watcher(self) -> ProcessPoolEndpoint:
        return self  # the SDK's watcher thread; shutting the pool down is enough


@pytest.fixture
def sdk_stand_in(monkeypatch: pytest.MonkeyPatch) -> list[ProcessPoolEndpoint]:
    """Make Parsl's GlobusComputeExecutor accept the stand-in; collect instances."""
    import parsl.executors.globus_compute as gc

    monkeypatch.setattr(gc, "_globus_compute_enabled", True)
    monkeypatch.setattr(gc, "Executor", ProcessPoolEndpoint, raising=False)
    return []


def _factory(made: list[ProcessPoolEndpoint], section: GlobusComputeSection) -> Any:
    endpoint = ProcessPoolEndpoint(
        section.endpoint_id, dict(section.user_endpoint_config)
    )
    made.append(endpoint)
    return endpoint


def _where(tag: str) -> tuple[int, str]:
    import os

    return os.getpid(), tag


def test_adapter_runs_apps_through_parsls_executor(
    sdk_stand_in: list[ProcessPoolEndpoint], tmp_path: Path
) -> None:
    import parsl
    from parsl.executors import GlobusComputeExecutor

    config = load_site_config(GC_SITE)
    cfg = to_parsl_config(
        config, tmp_path, endpoint_executor=functools.partial(_factory, sdk_stand_in)
    )
    (executor,) = cfg.executors
    assert isinstance(executor, GlobusComputeExecutor)
    assert executor.label == "gc-endpoint"
    (endpoint,) = sdk_stand_in
    assert endpoint.endpoint_id == UUID("4b116d3c-1703-4f8f-9f6f-39921e5864df")

    dfk = parsl.load(cfg)
    try:
        app = parsl.python_app(_where, executors=["gc-endpoint"])
        results = [app(f"t{i}").result(timeout=60) for i in range(4)]
    finally:
        dfk.cleanup()
        parsl.clear()
    assert [tag for _, tag in results] == ["t0", "t1", "t2", "t3"]
    assert os.getpid() not in {pid for pid, _ in results}  # ran in the "endpoint"
    # The site's user_endpoint_config reached the SDK executor on every submit.
    assert {tuple(sorted(u.items())) for _, u in endpoint.seen} == {
        (("account", "sovereign"), ("walltime", "00:30:00"))
    }


@pytest.mark.slow
def test_sonar_job_through_a_globus_compute_site(
    sdk_stand_in: list[ProcessPoolEndpoint],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from testkit import register_accredited_site as register_site

    from orchestrator.embedded import submit
    from orchestrator.log.store import CustodyLog
    from orchestrator.submit import dispatch

    world = make_world(tmp_path)
    site = tmp_path / "gc.toml"
    # operated by the USA, so the AUS-USA agreement of make_world covers it
    site.write_text(GC_SITE.read_text().replace('"GBR"', '"USA"'))
    register_site(world.state, site)
    monkeypatch.setattr(
        dispatch,
        "to_parsl_config",
        functools.partial(
            to_parsl_config, endpoint_executor=functools.partial(_factory, sdk_stand_in)
        ),
    )
    workflow = ROOT / "workflows" / "sonar_classification.toml"
    result = submit(world.state, workflow, "gc-endpoint")
    assert len(result.tasks) == 14 and result.model_ids
    log = CustodyLog(world.state.custody_db)
    done = log.find("task.completed", job_id=result.job_id)
    assert {e.event.body["site"] for e in done} == {"gc-endpoint"}
    assert len(done) == 14
