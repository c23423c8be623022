"""The site's task entry points, as the orchestrator names them to Parsl.

The orchestrator hands Parsl a function to run at a site; the site's code
(enclave, checkpoints, MPI ranks) is the site's own and is not imported by the
orchestrator. These thin functions are what Parsl serialises (by reference,
this module being importable on the worker) and run on the site's workers:
each resolves the site's entry point by name there, as a console-script entry
point names its function, and calls it. :data:`ENTRY_POINTS` is the whole
contract: the orchestrator may rely on these names and signatures and nothing
else of the site.

Arguments and results are plain JSON-able values (the task spec of
:func:`orchestrator.submit.dispatch.task_spec`, its result) and Parsl ``File``
inputs; nothing secret crosses.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["ENTRY_POINTS", "enclave_app", "job_done", "mpi_enclave_app",
           "resource_spec"]

#: Entry point name -> ``module:function`` at the site.
ENTRY_POINTS = {
    "enclave": "orchestrator.site.runner:enclave_app",
    "mpi-enclave": "orchestrator.site.mpi_runner:mpi_enclave_task",
    "job-done": "orchestrator.site.runner:job_done",
}


def _entry(name: str) -> Callable[..., Any]:
    """The site function ``name`` stands for, imported on the worker.

    Raises
    ------
    ImportError, AttributeError
        If this worker's installation lacks it (not a site installation).
    """
    module, _, function = ENTRY_POINTS[name].partition(":")
    return getattr(importlib.import_module(module), function)  # type: ignore[no-any-return]


def enclave_app(spec: dict[str, Any], inputs: Sequence[Any] = ()) -> dict[str, Any]:
    """Run one attempt of ``spec``'s task in an enclave at the site, over the
    sealed dataset Parsl staged in (``inputs``: Parsl ``File`` objects); return
    the task's result (metrics, grants, the sealed model if any)."""
    result: dict[str, Any] = _entry("enclave")(spec, inputs)
    return result


def mpi_enclave_app(spec: dict[str, Any], inputs: Sequence[Any] = (),
                    parsl_resource_specification: dict[str, Any] | None = None
                    ) -> dict[str, Any]:
    """:func:`enclave_app` on the ranks Parsl's ``MPIExecutor`` placed
    (``parsl_resource_specification``, see :func:`resource_spec`)."""
    result: dict[str, Any] = _entry("mpi-enclave")(
        spec, inputs, parsl_resource_specification=parsl_resource_specification)
    return result


def job_done(site_dir: str, job_id: str,
             parsl_resource_specification: dict[str, Any] | None = None) -> str:
    """Tell the site the job is over (every task completed): it removes what
    only resuming the job needed (its sealed checkpoints). Returns the job id."""
    done: str = _entry("job-done")(
        site_dir, job_id, parsl_resource_specification=parsl_resource_specification)
    return done


def resource_spec(nodes: int, ranks_per_node: int) -> dict[str, int]:
    """Parsl ``parsl_resource_specification`` for ``nodes`` x ``ranks_per_node``
    MPI ranks (Parsl's ``MPIExecutor`` keys ``num_nodes``, ``ranks_per_node``)."""
    return {"num_nodes": int(nodes), "ranks_per_node": int(ranks_per_node)}
