"""Code measurement: what an enclave runs, reduced to one digest.

The measurement of a task is ``digest_of({"workflow": sha256(workflow source),
"runtime": sha256 over the orchestrator package's own source files,
"environment": sha256 over the sorted "name==version" of every installed
distribution})``. The submit host computes it when the job is registered; the
enclave recomputes it over the code it actually executes and binds it into its
attestation evidence; the custodian releases keys only if the two agree. It plays
the role of a TEE launch measurement, without a hardware root of trust.
"""

from __future__ import annotations

import functools
import hashlib
from importlib import metadata
from pathlib import Path

from orchestrator.canonical import digest_of, sha256_hex


@functools.cache
def environment_digest() -> str:
    """SHA-256 hex over the sorted ``name==version`` of installed distributions."""
    lines = sorted(
        {
            f"{(d.metadata['Name'] or '').lower()}=={d.version}"
            for d in metadata.distributions()
        }
    )
    return sha256_hex("\n".join(lines).encode())


@functools.cache
def runtime_digest() -> str:
    """SHA-256 hex over the (path, content) of every ``orchestrator/**/*.py`` file."""
    root = Path(__file__).resolve().parent
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    return h.hexdigest()


def code_measurement(workflow_source: bytes) -> str:
    """Return the ``sha256:<hex>`` measurement of a workflow and its environment."""
    return digest_of(
        {
            "workflow": sha256_hex(workflow_source),
            "runtime": runtime_digest(),
            "environment": environment_digest(),
        }
    )
