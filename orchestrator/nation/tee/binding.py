"""What TEE evidence must bind, and how it is hashed into the hardware report.

The enclave asks its CPU TEE for a report whose user-data field carries a digest
of the canonical *binding* (RFC 8785-style canonical JSON, see
:mod:`orchestrator.canonical`)::

    {"domain": "sovereign-orchestrator/tee-binding/v1", "site": ...,
     "job_id": ..., "attempt_id": ..., "code_measurement": ...,
     "enclave_public_key": <base64>, "hpke_suite": ..., "nonce": <base64>}

* Intel TDX (DCAP quote v4, TD report body ``REPORTDATA``, 64 bytes) and AMD
  SEV-SNP (attestation report ``REPORT_DATA`` at offset 0x50, 64 bytes):
  ``REPORT_DATA = SHA-512(canonical binding)``.
* NVIDIA GPU attestation (NRAS EAT, claim ``eat_nonce``, 32 bytes as hex):
  ``eat_nonce = hex(SHA-256(canonical binding))``.

So a report can only be replayed for the same job, attempt, code, enclave key
(the only key a grant is ever sealed to) and single-use custodian nonce.
"""

from __future__ import annotations

import hashlib
from typing import Any

from orchestrator.canonical import canonical_bytes
from orchestrator.protocol.release import Evidence

__all__ = ["BINDING_DOMAIN", "binding_of", "gpu_nonce", "report_data"]

BINDING_DOMAIN = "sovereign-orchestrator/tee-binding/v1"


def binding_of(evidence: Evidence) -> dict[str, Any]:
    """The binding claims of ``evidence`` (see the module docstring)."""
    return {
        "domain": BINDING_DOMAIN,
        "site": evidence.site,
        "job_id": evidence.job_id,
        "attempt_id": evidence.attempt_id,
        "code_measurement": evidence.code_measurement,
        "enclave_public_key": evidence.enclave_public_key,
        "hpke_suite": evidence.hpke_suite,
        "nonce": evidence.nonce,
    }


def report_data(evidence: Evidence) -> bytes:
    """64-byte ``REPORTDATA`` / ``REPORT_DATA``: SHA-512 of the canonical binding."""
    return hashlib.sha512(canonical_bytes(binding_of(evidence))).digest()


def gpu_nonce(evidence: Evidence) -> str:
    """``eat_nonce`` for GPU evidence: hex SHA-256 of the canonical binding."""
    return hashlib.sha256(canonical_bytes(binding_of(evidence))).hexdigest()
