"""Attestation verifiers: the plug-in boundary between evidence and key release.

:class:`SoftwareEvidenceVerifier` checks a statement signed by a registered site's
Ed25519 key; every release it admits is marked ``tee_mode: none``, because a
site-signed statement cannot prove that memory is protected from the site's own
administrators. :class:`~orchestrator.nation.tee.TeeEvidenceVerifier` (Intel TDX
quote v4, AMD SEV-SNP report, NVIDIA NRAS EAT) implements the same
:class:`EvidenceVerifier` protocol on top of the same site statement
(:func:`check_site_statement`); :class:`DispatchingVerifier` picks one by format.

Nonce freshness (single use) is enforced by the custodian that issued the nonce.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from orchestrator.canonical import b64d
from orchestrator.crypto import key_id_of, verify_signature
from orchestrator.errors import AttestationError, IntegrityError
from orchestrator.protocol.release import (
    SOFTWARE_EVIDENCE_FORMAT,
    TEE_EVIDENCE_FORMAT,
    Evidence,
)
from orchestrator.timeutil import parse_rfc3339

#: Longest accepted evidence lifetime (seconds).
MAX_EVIDENCE_LIFETIME_S = 300
#: Tolerated clock skew between site and custodian (seconds).
CLOCK_SKEW_S = 30


@dataclass(frozen=True)
class ExpectedBinding:
    """What the custodian expects the evidence to bind."""

    site: str
    job_id: str
    attempt_id: str
    code_measurement: str
    site_public_key: bytes  # 32-byte Ed25519 public key of the registered site


@dataclass(frozen=True)
class AttestationResult:
    """A verified attestation: the mode recorded on the release event."""

    tee_mode: str
    evidence_format: str
    enclave_public_key: bytes
    evidence_kind: str = "software"
    measurements: dict[str, str] = field(default_factory=dict)


class EvidenceVerifier(Protocol):
    """Verifies one kind of evidence against an expected binding."""

    def verify(
        self, evidence: Evidence, expected: ExpectedBinding, now: datetime
    ) -> AttestationResult:
        """Return the result, or raise :class:`AttestationError` naming the fault."""
        ...


class SoftwareEvidenceVerifier:
    """Verify site-signed software evidence (``software-site-signed/v1``)."""

    def verify(
        self, evidence: Evidence, expected: ExpectedBinding, now: datetime
    ) -> AttestationResult:
        """Check format, signature, binding and freshness, in that order.

        Raises
        ------
        AttestationError
            With a specific reason: wrong format, foreign signer, bad signature,
            wrong site / job / attempt / measurement, malformed times, not yet
            valid, expired, or an over-long lifetime.
        """
        if (
            evidence.format != SOFTWARE_EVIDENCE_FORMAT
            or evidence.tee_mode != "none"
            or evidence.tee_evidence is not None
        ):
            raise AttestationError(
                f"unsupported evidence format {evidence.format!r} "
                f"(tee_mode {evidence.tee_mode!r})"
            )
        return AttestationResult(
            tee_mode="none",
            evidence_format=evidence.format,
            enclave_public_key=check_site_statement(evidence, expected, now),
        )


def check_site_statement(
    evidence: Evidence, expected: ExpectedBinding, now: datetime
) -> bytes:
    """Check the site's signature, the binding and freshness; return the enclave key.

    Shared by every verifier: hardware evidence is carried inside the same
    site-signed statement.

    Raises
    ------
    AttestationError
        Foreign signer, bad signature, wrong site / job / attempt / measurement,
        malformed times or key, not yet valid, expired, or an over-long lifetime.
    """
    if evidence.signer != key_id_of(expected.site_public_key):
        raise AttestationError(
            f"evidence signed by {evidence.signer}, not by "
            f"site {expected.site}'s registered key"
        )
    try:
        verify_signature(
            expected.site_public_key,
            b64d(evidence.signature, what="evidence signature"),
            evidence.signed_bytes(),
        )
    except (IntegrityError, ValueError) as exc:
        raise AttestationError("evidence signature is invalid") from exc
    for name, want in (
        ("site", expected.site),
        ("job_id", expected.job_id),
        ("attempt_id", expected.attempt_id),
        ("code_measurement", expected.code_measurement),
    ):
        got = getattr(evidence, name)
        if got != want:
            raise AttestationError(f"evidence {name} is {got!r}, expected {want!r}")
    try:
        issued = parse_rfc3339(evidence.issued_at)
        expires = parse_rfc3339(evidence.expires_at)
        enclave_key = b64d(evidence.enclave_public_key, what="enclave key")
    except ValueError as exc:
        raise AttestationError(f"malformed evidence: {exc}") from exc
    skew = timedelta(seconds=CLOCK_SKEW_S)
    if issued - skew > now:
        raise AttestationError("evidence is not yet valid (issued in the future)")
    if now > expires:
        raise AttestationError(f"evidence expired at {evidence.expires_at}")
    if expires - issued > timedelta(seconds=MAX_EVIDENCE_LIFETIME_S):
        raise AttestationError(
            f"evidence lifetime exceeds {MAX_EVIDENCE_LIFETIME_S} s"
        )
    return enclave_key


class DispatchingVerifier:
    """Route software evidence and TEE evidence to their verifiers.

    Parameters
    ----------
    tee
        The verifier for ``TEE_EVIDENCE_FORMAT`` evidence (usually a
        :class:`~orchestrator.nation.tee.TeeEvidenceVerifier`); ``None`` refuses
        all TEE evidence.
    """

    def __init__(self, tee: EvidenceVerifier | None = None) -> None:
        self._software = SoftwareEvidenceVerifier()
        self._tee = tee

    def verify(
        self, evidence: Evidence, expected: ExpectedBinding, now: datetime
    ) -> AttestationResult:
        """Verify with the verifier for ``evidence.format``.

        Raises
        ------
        AttestationError
            From the chosen verifier, or when no verifier handles the format.
        """
        if evidence.format == TEE_EVIDENCE_FORMAT:
            if self._tee is None:
                raise AttestationError("TEE evidence is not accepted: no TEE verifier "
                                       "is configured")
            return self._tee.verify(evidence, expected, now)
        return self._software.verify(evidence, expected, now)
