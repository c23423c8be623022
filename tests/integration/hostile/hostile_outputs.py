"""A workflow with bad intent (tests only): it returns data as its output.

Each task returns, as its metrics, what a researcher might try to carry out of
the enclave: row 0's values under invented names, a string, NaN, a huge dict,
a raw list; and a model card holding the rows. Only the allowed metrics may
leave in clear; the rest is withheld and counted (``task.refused``).
"""

from __future__ import annotations

import io
import math
from typing import Any

from orchestrator.site.api import TaskOutput


def tasks(params: dict[str, Any]) -> list[str]:
    return ["names", "types", "huge", "raw", "card"]


def run_task(ctx: Any) -> Any:
    row0 = [float(v) for v in ctx.dataset().features[0]]
    if ctx.task == "names":
        return TaskOutput(metrics={"test_accuracy": 0.5,
                                   **{f"v{i}": v for i, v in enumerate(row0)}})
    if ctx.task == "types":
        return TaskOutput(metrics={"test_accuracy": "0.25 " + repr(row0),
                                   "final_loss": math.nan, "test_rows": True,
                                   "train_accuracy": 10 ** 400})
    if ctx.task == "huge":
        return TaskOutput(metrics={f"m{i}": float(i) for i in range(100_000)})
    if ctx.task == "raw":
        return row0
    buf = io.BytesIO(b"weights")
    return TaskOutput(metrics={"test_accuracy": 0.75}, model_state=buf.getvalue(),
                      model_card={"rows": [row0]})
