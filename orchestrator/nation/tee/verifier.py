"""The TEE evidence verifier: Intel TDX, AMD SEV-SNP, optionally NVIDIA GPU CC.

Order of checks (each refusal is an :class:`AttestationError` with its reason):

1. format ``tee-bound-site-signed/v1`` with a ``tee_evidence`` object, and the
   site statement (:func:`~orchestrator.nation.verifier.check_site_statement`):
   registered site signer, binding to (site, job, attempt, code measurement),
   freshness;
2. ``evidence_kind``: ``synthetic-test`` only under
   :meth:`TeeVerifierConfig.synthetic_for_tests` (production refuses it);
3. ``tee_mode`` agrees with the reports present (``tdx``, ``snp``,
   ``tdx+gpu_cc``, ``snp+gpu_cc``);
4. CPU report: parse (:mod:`.formats`); endorsement of the signing key to a
   pinned root of the same kind (:mod:`.trust`); signature (TDX: ECDSA P-256 over
   header + TD quote body, Intel TDX DCAP quote format v4; SNP: ECDSA P-384 over
   bytes 0x000-0x29F, AMD SEV-SNP ABI spec); debug off; MRTD / MEASUREMENT an
   accepted reference value; SNP ``REPORTED_TCB`` at least the minimum;
   ``REPORT_DATA`` = SHA-512 of the binding (:mod:`.binding`);
5. GPU (when present): NRAS EAT (:mod:`.nvidia`), ``eat_nonce`` = SHA-256 of the
   binding.

The key a grant is sealed to (HPKE, RFC 9180) is the enclave key in the binding,
so a release goes only to the key the hardware report names.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from orchestrator.canonical import b64d
from orchestrator.crypto.ecdsa import EcdsaCurve, ecdsa_verify, ecdsa_verify_raw
from orchestrator.errors import AttestationError, IntegrityError
from orchestrator.nation.tee.binding import gpu_nonce, report_data
from orchestrator.nation.tee.formats import parse_snp_report, parse_tdx_quote
from orchestrator.nation.tee.nvidia import verify_gpu_token
from orchestrator.nation.tee.trust import (
    EVIDENCE_KINDS,
    TeeVerifierConfig,
    verify_endorsement,
)
from orchestrator.nation.verifier import (
    AttestationResult,
    ExpectedBinding,
    check_site_statement,
)
from orchestrator.protocol.release import TEE_EVIDENCE_FORMAT, Evidence

__all__ = ["TEE_MODES", "TeeEvidenceVerifier"]

#: Every ``tee_mode`` this verifier can admit.
TEE_MODES = ("tdx", "snp", "tdx+gpu_cc", "snp+gpu_cc")


def _tcb_components(tcb: int) -> tuple[int, int, int, int]:
    raw = tcb.to_bytes(8, "little")  # boot loader, TEE, reserved x4, SNP, microcode
    return raw[0], raw[1], raw[6], raw[7]


class TeeEvidenceVerifier:
    """Verify TEE evidence under ``config`` (see the module docstring)."""

    def __init__(self, config: TeeVerifierConfig) -> None:
        self.config = config

    def verify(
        self, evidence: Evidence, expected: ExpectedBinding, now: datetime
    ) -> AttestationResult:
        """Return the result (``tee_mode``, ``evidence_kind``, measurements).

        Raises
        ------
        AttestationError
            Naming the first failed check.
        """
        tee = evidence.tee_evidence
        if evidence.format != TEE_EVIDENCE_FORMAT or not isinstance(tee, dict):
            raise AttestationError(f"not TEE evidence (format {evidence.format!r})")
        enclave_key = check_site_statement(evidence, expected, now)
        kind = tee.get("evidence_kind")
        if kind not in EVIDENCE_KINDS:
            raise AttestationError(f"unknown evidence_kind {kind!r}")
        if kind == "synthetic-test" and not self.config.accept_synthetic:
            raise AttestationError(
                "synthetic-test evidence is refused by a production verifier")
        cpu, gpu = tee.get("cpu"), tee.get("gpu")
        if not isinstance(cpu, dict) or cpu.get("type") not in ("tdx", "snp"):
            raise AttestationError("TEE evidence lacks a tdx or snp CPU report")
        mode = str(cpu["type"]) + ("+gpu_cc" if gpu is not None else "")
        if evidence.tee_mode != mode:
            raise AttestationError(
                f"evidence claims tee_mode {evidence.tee_mode!r} but carries {mode!r}")
        want = report_data(evidence)
        if cpu["type"] == "tdx":
            measurements = self._tdx(cpu, str(kind), want, now)
        else:
            measurements = self._snp(cpu, str(kind), want, now)
        if gpu is not None:
            measurements.update(self._gpu(gpu, str(kind), evidence, now))
        return AttestationResult(
            tee_mode=mode,
            evidence_format=evidence.format,
            enclave_public_key=enclave_key,
            evidence_kind=str(kind),
            measurements=measurements,
        )

    def _report(self, cpu: dict[str, Any]) -> bytes:
        try:
            return b64d(str(cpu.get("report", "")), what="TEE report")
        except ValueError as exc:
            raise AttestationError(f"malformed TEE report: {exc}") from exc

    def _tdx(self, cpu: dict[str, Any], kind: str, want: bytes,
             now: datetime) -> dict[str, str]:
        quote = parse_tdx_quote(self._report(cpu))
        key = verify_endorsement(cpu.get("endorsement"), role="tdx-attestation-key",
                                 curve=EcdsaCurve.P256, kind=kind,
                                 config=self.config, now=now)
        if key != quote.attestation_key:
            raise AttestationError(
                "TDX quote attestation key is not the endorsed key")
        try:
            ecdsa_verify_raw(EcdsaCurve.P256, key, quote.signature, quote.signed)
        except IntegrityError as exc:
            raise AttestationError("TDX quote signature is invalid") from exc
        if quote.debug:
            raise AttestationError("TDX TD is debuggable (TDATTRIBUTES.DEBUG set)")
        if quote.mrtd.hex() not in self.config.tdx_mrtd:
            raise AttestationError(
                f"TDX MRTD {quote.mrtd.hex()[:16]}... is not an accepted reference "
                "value")
        if quote.report_data != want:
            raise AttestationError("TDX REPORTDATA does not bind this job, attempt, "
                                   "code, enclave key and nonce")
        return {"tdx_mrtd": quote.mrtd.hex(),
                **{f"tdx_rtmr{i}": r.hex() for i, r in enumerate(quote.rtmrs)}}

    def _snp(self, cpu: dict[str, Any], kind: str, want: bytes,
             now: datetime) -> dict[str, str]:
        report = parse_snp_report(self._report(cpu))
        key = verify_endorsement(cpu.get("endorsement"), role="snp-vcek",
                                 curve=EcdsaCurve.P384, kind=kind,
                                 config=self.config, now=now)
        try:
            ecdsa_verify(EcdsaCurve.P384, key, report.r, report.s, report.signed)
        except IntegrityError as exc:
            raise AttestationError("SEV-SNP report signature is invalid") from exc
        if report.debug:
            raise AttestationError("SEV-SNP guest policy allows debugging (DEBUG set)")
        if report.measurement.hex() not in self.config.snp_measurements:
            raise AttestationError(
                f"SEV-SNP MEASUREMENT {report.measurement.hex()[:16]}... is not an "
                "accepted reference value")
        got = _tcb_components(report.reported_tcb)
        if any(g < m for g, m in zip(got, self.config.min_snp_tcb, strict=True)):
            raise AttestationError(f"SEV-SNP REPORTED_TCB {got} is below the minimum "
                                   f"{self.config.min_snp_tcb}")
        if report.report_data != want:
            raise AttestationError("SEV-SNP REPORT_DATA does not bind this job, "
                                   "attempt, code, enclave key and nonce")
        return {"snp_measurement": report.measurement.hex(),
                "snp_reported_tcb": f"{report.reported_tcb:016x}"}

    def _gpu(self, gpu: Any, kind: str, evidence: Evidence,
             now: datetime) -> dict[str, str]:
        if not isinstance(gpu, dict) or not isinstance(gpu.get("eat"), str):
            raise AttestationError("GPU evidence lacks an EAT token")
        key = verify_endorsement(gpu.get("endorsement"), role="nras-signer",
                                 curve=EcdsaCurve.P384, kind=kind,
                                 config=self.config, now=now)
        claims = verify_gpu_token(gpu["eat"], key, gpu_nonce(evidence), now)
        return {"gpu_measres": str(claims["measres"]),
                "gpu_cc_environment": str(claims["x-nvidia-gpu-cc-environment"])}
