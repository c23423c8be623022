"""What may leave an enclave in the clear: the data owners' output rules.

A task's results are the researcher's code's to choose, and anything that leaves
the enclave unsealed is read by every party (the orchestrator, the custody log's
readers). So the data owner states what may leave in clear, in its agreement
(``released_metrics``, ``max_released_metrics``), and its custodian hands those
rules to the enclave with each key it releases (:class:`OutputRules` in the
grant). The enclave releases only metrics every owner allows
(:meth:`OutputRules.combine`): a name on every owner's list, a finite number,
at most the smallest bound per task (:func:`screen_metrics`). Everything else
is withheld; the refusal counts per rule, never a name or a value, go in a
``task.refused`` event.

This bounds what *unapproved* output can carry (a few named numbers). It does
not stop approved code from encoding data in allowed numbers: that is what the
owners' approval of the code is for.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.errors import ConfigError

__all__ = ["DEFAULT_MAX_RELEASED_METRICS", "DEFAULT_RELEASED_METRICS", "OutputRules",
           "Screened", "screen_metrics"]

#: Metrics an agreement (or a nation's domestic use) releases when it names none:
#: those this project's workflows and benchmarks report (accuracies as
#: fractions, loss in nats, counts, seconds), sorted.
DEFAULT_RELEASED_METRICS: tuple[str, ...] = tuple(sorted((
    "final_loss", "params_in_sync", "test_accuracy", "test_rows", "train_accuracy",
    "wall_seconds", "world_size",
    # benchmarks/bench_training_throughput.py and bench_dispatch.py
    "prepare_s", "rows", "samples", "task_s", "train_accuracy_first_100k", "train_s",
)))

#: At most this many clear metrics per task when an agreement sets no bound.
DEFAULT_MAX_RELEASED_METRICS = 16


@dataclass(frozen=True)
class OutputRules:
    """One owner's rules for what a task may return in clear.

    Attributes
    ----------
    metrics
        Names that may be released (each at most 64 characters).
    max_count
        At most this many metrics per task (1..256).
    """

    metrics: tuple[str, ...] = DEFAULT_RELEASED_METRICS
    max_count: int = DEFAULT_MAX_RELEASED_METRICS

    def __post_init__(self) -> None:
        if not isinstance(self.max_count, int) or isinstance(self.max_count, bool) \
                or not 1 <= self.max_count <= 256:
            raise ConfigError("max_released_metrics must be an integer in 1..256",
                              field="max_released_metrics")
        names = tuple(self.metrics)
        if not all(isinstance(n, str) and 0 < len(n) <= 64 for n in names):
            raise ConfigError("released_metrics must be names of 1..64 characters",
                              field="released_metrics")
        object.__setattr__(self, "metrics", tuple(sorted(set(names))))

    def to_json(self) -> dict[str, Any]:
        """``{"metrics": [...], "max_count": n}``."""
        return {"metrics": list(self.metrics), "max_count": self.max_count}

    @classmethod
    def from_json(cls, data: Any) -> OutputRules:
        """Parse :meth:`to_json`'s shape.

        Raises
        ------
        ConfigError
            On another shape.
        """
        if not isinstance(data, Mapping) or set(data) != {"metrics", "max_count"} \
                or not isinstance(data["metrics"], list):
            raise ConfigError("output rules are {metrics: [names], max_count: n}",
                              field="output_rules")
        return cls(tuple(data["metrics"]), data["max_count"])

    @staticmethod
    def combine(rules: Iterable[OutputRules]) -> OutputRules:
        """What every owner allows: the common names, the smallest bound; no
        rules at all (no key released) release nothing."""
        found = list(rules)
        if not found:
            return OutputRules((), 1)
        names = set(found[0].metrics)
        for r in found[1:]:
            names &= set(r.metrics)
        return OutputRules(tuple(names), min(r.max_count for r in found))


@dataclass(frozen=True)
class Screened:
    """The outcome of :func:`screen_metrics`.

    Attributes
    ----------
    released
        Name -> finite float, what leaves in clear.
    refused
        Rule -> how many items it withheld (no names, no values).
    """

    released: dict[str, float]
    refused: dict[str, int] = field(default_factory=dict)


def screen_metrics(metrics: object, rules: OutputRules) -> Screened:
    """Keep the metrics ``rules`` release; count what each rule withheld.

    Rules, in order: ``not-a-mapping`` (the whole output), ``not-allowed`` (a
    name not on the list, or not a string), ``not-a-number`` (not an int or
    float; ``bool`` is not a number), ``not-finite`` (NaN, infinity), then
    ``over-the-bound`` (the allowed ones beyond ``max_count``, in name order).
    """
    if not isinstance(metrics, Mapping):
        return Screened({}, {"not-a-mapping": 1})
    refused: Counter[str] = Counter()
    kept: dict[str, float] = {}
    allowed = set(rules.metrics)
    for name, value in metrics.items():
        if not isinstance(name, str) or name not in allowed:
            refused["not-allowed"] += 1
        elif isinstance(value, bool) or not isinstance(value, int | float):
            refused["not-a-number"] += 1
        elif not _finite(value):
            refused["not-finite"] += 1
        else:
            kept[name] = float(value)
    released = dict(sorted(kept.items())[:rules.max_count])
    if len(kept) > len(released):
        refused["over-the-bound"] += len(kept) - len(released)
    return Screened(released, dict(sorted(refused.items())))


def _finite(value: float) -> bool:
    try:
        return math.isfinite(float(value))
    except OverflowError:  # an int too large for a float
        return False
