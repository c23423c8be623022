"""Which task failures Parsl may retry, and at what cost.

Parsl calls ``Config.retry_handler(exception, task_record)`` after every failed try
and adds the returned cost to the task's ``fail_cost``; the task is tried again while
``fail_cost <= Config.retries`` (``parsl/dataflow/dflow.py``,
``handle_exec_update``). :func:`make_retry_handler` returns such a handler:

* **never retried** (cost ``math.inf``): every refusal or verification failure of
  this project - :class:`~orchestrator.errors.PolicyDenied`,
  :class:`~orchestrator.errors.AttestationError`,
  :class:`~orchestrator.errors.IntegrityError` (and subclasses),
  :class:`~orchestrator.errors.ConfigError`, :class:`~orchestrator.errors.DataError`
  - and any failure not known to be transient (a workflow bug fails again);
* **retried** (cost 1, so ``retries`` bounds the number of retries): the loss of the
  worker process or its manager (Parsl ``WorkerLost``, ``ManagerLost``), a wall-time
  or socket timeout, a custodian that could not be reached
  (``CustodianUnavailable``) and a custody log that could not record
  (:class:`~orchestrator.errors.LedgerError`).

A retried task is a new enclave attempt: fresh key pair, fresh attestation, fresh
grants (the lost attempt's grants expire after 120 s and are bound to its attempt id),
and it resumes from the task's last sealed checkpoint
(:mod:`orchestrator.site.checkpoint`).

Exceptions reach the handler already re-raised from Parsl's
``RemoteExceptionWrapper``; :func:`unwrap` also accepts the wrapper itself and looks
through ``__cause__`` / ``__context__`` chains, so a transient error that merely
wraps a security failure is still never retried.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from orchestrator.errors import (
    AttestationError,
    ConfigError,
    DataError,
    IntegrityError,
    LedgerError,
    PolicyDenied,
)

if TYPE_CHECKING:
    from orchestrator.submit.context import Orchestrator

__all__ = [
    "DEFAULT_RETRIES",
    "NEVER",
    "RetryNotice",
    "classify",
    "is_transient",
    "log_retry",
    "logged_retry_handler",
    "make_retry_handler",
    "unwrap",
]

#: Retry budget of a site whose config names none.
DEFAULT_RETRIES = 2
#: Cost of a failure that must never be retried (larger than any budget).
NEVER = math.inf

#: Failures that are refusals or verification failures: never retried.
SECURITY_FAILURES: tuple[type[BaseException], ...] = (
    PolicyDenied,
    AttestationError,
    IntegrityError,
    ConfigError,
    DataError,
)

#: Names (``module.qualname``) of transient failure classes from optional imports.
_TRANSIENT_NAMES = frozenset(
    {
        "parsl.executors.high_throughput.errors.ManagerLost",
        "parsl.executors.high_throughput.errors.WorkerLost",
        "parsl.app.errors.AppTimeout",
        "orchestrator.net.custodian_client.CustodianUnavailable",
    }
)

#: Called with the notice of each retry that will happen (e.g. to log it).
RetryNotice = Callable[[dict[str, Any]], None]


def unwrap(exception: BaseException | Any) -> BaseException:
    """Return the exception inside a Parsl ``RemoteExceptionWrapper`` (or itself).

    Parameters
    ----------
    exception
        What Parsl handed over: normally the re-raised exception, possibly a
        ``parsl.app.errors.RemoteExceptionWrapper``.

    Returns
    -------
    BaseException
        The original exception.
    """
    get = getattr(exception, "get_exception", None)
    if callable(get) and not isinstance(exception, BaseException):
        inner = get()
        if isinstance(inner, BaseException):
            return inner
    if isinstance(exception, BaseException):
        return exception
    return RuntimeError(f"unrecognised failure {exception!r}")


def _chain(exception: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exception
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _qualified(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def is_transient(exception: BaseException) -> bool:
    """Whether ``exception`` alone is a known transient failure (no chain walk)."""
    if isinstance(exception, LedgerError | TimeoutError | ConnectionError):
        return True
    return any(_qualified(cls) in _TRANSIENT_NAMES for cls in type(exception).__mro__)


def classify(exception: BaseException | Any) -> float:
    """Return the retry cost of one failed try.

    Parameters
    ----------
    exception
        The failure (or Parsl's ``RemoteExceptionWrapper`` of it).

    Returns
    -------
    float
        ``1.0`` for a transient failure; :data:`NEVER` (infinity) for a security,
        configuration or data failure anywhere in its cause chain, and for any
        failure not known to be transient.
    """
    chain = list(_chain(unwrap(exception)))
    if any(isinstance(e, SECURITY_FAILURES) for e in chain):
        return NEVER
    return 1.0 if is_transient(chain[0]) else NEVER


def make_retry_handler(
    retries: int = DEFAULT_RETRIES, *, on_retry: RetryNotice | None = None
) -> Callable[[BaseException, Any], float]:
    """Return a Parsl ``retry_handler`` that classifies with :func:`classify`.

    Parameters
    ----------
    retries
        The ``Config.retries`` budget it runs under (to tell ``on_retry`` only
        about retries that will really happen).
    on_retry
        Called, before Parsl resubmits, with ``task`` (the app's ``spec["task"]``
        when its first argument is a spec dict), ``job_id``, ``attempt`` (the
        number of the try about to start, 2 for the first retry), ``error`` (class
        name) and ``message``. If it raises (the retry could not be logged) the
        task is not retried (fail closed) and keeps its original failure.

    Returns
    -------
    callable
        ``handler(exception, task_record) -> cost``.
    """

    def handler(exception: BaseException, task_record: Any) -> float:
        cost = classify(exception)
        record = task_record if isinstance(task_record, dict) else {}
        spent = float(record.get("fail_cost", 0) or 0)
        if on_retry is not None and cost + spent <= retries:
            args = record.get("args") or ()
            spec = args[0] if args and isinstance(args[0], dict) else {}
            inner = unwrap(exception)
            notice = {
                "job_id": str(spec.get("job_id", "")),
                "task": str(spec.get("task", record.get("id", ""))),
                "attempt": int(record.get("try_id", 0)) + 2,
                "error": type(inner).__name__,
                "message": str(inner)[:500],
            }
            try:
                on_retry(notice)
            except Exception:  # see docstring: no record, no retry
                return NEVER
        return cost

    return handler


def log_retry(orch: Orchestrator) -> RetryNotice:
    """Return an ``on_retry`` that logs ``task.retried`` (orchestrator-signed).

    The event names the job, task, the attempt number about to start and the
    failure of the previous try, so the custody log reads: ``key.released``
    (attempt 1) ... ``task.retried`` ... ``key.released`` (attempt 2).
    """

    def notice(body: dict[str, Any]) -> None:
        orch.record("task.retried", body)

    return notice


def logged_retry_handler(
    orch: Orchestrator, retries: int
) -> Callable[[BaseException, Any], float]:
    """The driver's handler: :func:`make_retry_handler` logging each retry.

    Transient losses are retried as new enclave attempts, each logged
    ``task.retried``; security failures never are.
    """
    return make_retry_handler(retries, on_retry=log_retry(orch))
