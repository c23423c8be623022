"""TEE evidence adapters behind the ``EvidenceVerifier`` boundary.

:mod:`orchestrator.nation.verifier` defines the boundary; this package adds
Intel TDX (DCAP quote format v4), AMD SEV-SNP (attestation report, SNP firmware
ABI spec) and NVIDIA GPU confidential computing (NRAS EAT) evidence.

Without TEE hardware these are exercised only on clearly labelled synthetic
evidence (``evidence_kind: "synthetic-test"``) signed by a test-only root that a
production configuration refuses; see :mod:`.trust`.
"""

from orchestrator.nation.tee.binding import (
    BINDING_DOMAIN,
    binding_of,
    gpu_nonce,
    report_data,
)
from orchestrator.nation.tee.trust import TeeVerifierConfig, TrustRoot, root_id
from orchestrator.nation.tee.verifier import TEE_MODES, TeeEvidenceVerifier

__all__ = [
    "BINDING_DOMAIN",
    "TEE_MODES",
    "TeeEvidenceVerifier",
    "TeeVerifierConfig",
    "TrustRoot",
    "binding_of",
    "gpu_nonce",
    "report_data",
    "root_id",
]
