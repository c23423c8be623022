"""Binary layouts of CPU TEE reports: Intel TDX quote v4, AMD SEV-SNP report.

Parsing only; signatures and policy are checked by
:mod:`orchestrator.nation.tee.verifier`. Every malformed input raises
:class:`~orchestrator.errors.AttestationError` naming the fault.

References
----------
.. [1] Intel, "Intel TDX DCAP Quoting Library API", appendix "Quote Format" (TD
   quote version 4): 48-byte header, 584-byte TD quote body, then a 4-byte
   signature-data length and the ECDSA-256 quote signature data (64-byte
   signature ``r || s`` over header + body, 64-byte attestation public key
   ``X || Y``, certification data).
.. [2] Intel, "Intel TDX Module Base Architecture Specification", TDATTRIBUTES:
   bit 0 is ``DEBUG``.
.. [3] AMD, "SEV Secure Nested Paging Firmware ABI Specification" (pub. 56860),
   table "ATTESTATION_REPORT Structure": 0x4A0 bytes; ``POLICY`` at 0x08 (bit 19
   ``DEBUG``), ``SIGNATURE_ALGO`` at 0x34 (1 = ECDSA P-384 with SHA-384),
   ``REPORT_DATA`` at 0x50 (64), ``MEASUREMENT`` at 0x90 (48), ``REPORTED_TCB``
   at 0x180, ``CHIP_ID`` at 0x1A0 (64); signature at 0x2A0 over bytes
   0x000-0x29F, ``R`` and ``S`` little-endian, zero-extended to 72 bytes each.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from orchestrator.errors import AttestationError

__all__ = [
    "SNP_REPORT_SIZE",
    "SNP_SIGNED_SIZE",
    "TDX_BODY_SIZE",
    "TDX_HEADER_SIZE",
    "SnpReport",
    "TdxQuote",
    "parse_snp_report",
    "parse_tdx_quote",
]

TDX_HEADER_SIZE = 48
TDX_BODY_SIZE = 584
TDX_QUOTE_VERSION = 4
TDX_ATT_KEY_ECDSA_P256 = 2
TDX_TEE_TYPE = 0x00000081
TDX_ATTR_DEBUG = 1 << 0

SNP_REPORT_SIZE = 0x4A0
SNP_SIGNED_SIZE = 0x2A0
SNP_POLICY_DEBUG = 1 << 19
SNP_SIG_ALGO_ECDSA_P384_SHA384 = 1


@dataclass(frozen=True)
class TdxQuote:
    """The fields of a TDX v4 quote that policy looks at."""

    version: int
    att_key_type: int
    tee_type: int
    td_attributes: int
    mrtd: bytes
    rtmrs: tuple[bytes, bytes, bytes, bytes]
    report_data: bytes
    signed: bytes  # header || body: what the attestation key signed
    signature: bytes  # r || s, 64 bytes
    attestation_key: bytes  # X || Y, 64 bytes

    @property
    def debug(self) -> bool:
        """TDATTRIBUTES.DEBUG: the TD's memory is readable by the host."""
        return bool(self.td_attributes & TDX_ATTR_DEBUG)


def parse_tdx_quote(quote: bytes) -> TdxQuote:
    """Parse a TDX DCAP quote v4 (see the module references).

    Raises
    ------
    AttestationError
        On a short quote, another version, key type or TEE type.
    """
    minimum = TDX_HEADER_SIZE + TDX_BODY_SIZE + 4 + 128
    if len(quote) < minimum:
        raise AttestationError(f"TDX quote is {len(quote)} bytes, need >= {minimum}")
    version, key_type, tee_type = struct.unpack_from("<HHI", quote, 0)
    if version != TDX_QUOTE_VERSION:
        raise AttestationError(f"TDX quote version {version} is not 4")
    if key_type != TDX_ATT_KEY_ECDSA_P256:
        raise AttestationError(f"TDX attestation key type {key_type} is not ECDSA-256")
    if tee_type != TDX_TEE_TYPE:
        raise AttestationError(f"TEE type {tee_type:#x} is not TDX (0x81)")
    body = quote[TDX_HEADER_SIZE:TDX_HEADER_SIZE + TDX_BODY_SIZE]
    (sig_len,) = struct.unpack_from("<I", quote, TDX_HEADER_SIZE + TDX_BODY_SIZE)
    sig_data = quote[TDX_HEADER_SIZE + TDX_BODY_SIZE + 4:]
    if sig_len < 128 or len(sig_data) < sig_len:
        raise AttestationError("TDX quote signature data is truncated")
    (td_attributes,) = struct.unpack_from("<Q", body, 120)
    return TdxQuote(
        version=version,
        att_key_type=key_type,
        tee_type=tee_type,
        td_attributes=td_attributes,
        mrtd=body[136:184],
        rtmrs=(body[328:376], body[376:424], body[424:472], body[472:520]),
        report_data=body[520:584],
        signed=quote[:TDX_HEADER_SIZE + TDX_BODY_SIZE],
        signature=sig_data[:64],
        attestation_key=sig_data[64:128],
    )


@dataclass(frozen=True)
class SnpReport:
    """The fields of an SEV-SNP attestation report that policy looks at."""

    version: int
    policy: int
    signature_algo: int
    report_data: bytes
    measurement: bytes
    reported_tcb: int
    chip_id: bytes
    signed: bytes  # bytes 0x000-0x29F
    r: int
    s: int

    @property
    def debug(self) -> bool:
        """POLICY.DEBUG (bit 19): the hypervisor may debug (read) the guest."""
        return bool(self.policy & SNP_POLICY_DEBUG)


def parse_snp_report(report: bytes) -> SnpReport:
    """Parse an SEV-SNP ``ATTESTATION_REPORT`` (see the module references).

    Raises
    ------
    AttestationError
        On a wrong size, version below 2 or an unknown signature algorithm.
    """
    if len(report) != SNP_REPORT_SIZE:
        raise AttestationError(
            f"SEV-SNP report is {len(report)} bytes, expected {SNP_REPORT_SIZE}")
    version, _svn, policy = struct.unpack_from("<IIQ", report, 0)
    (algo,) = struct.unpack_from("<I", report, 0x34)
    if version < 2:
        raise AttestationError(f"SEV-SNP report version {version} is below 2")
    if algo != SNP_SIG_ALGO_ECDSA_P384_SHA384:
        raise AttestationError(f"SEV-SNP signature algorithm {algo} is not ECDSA P-384")
    (tcb,) = struct.unpack_from("<Q", report, 0x180)
    sig = report[SNP_SIGNED_SIZE:]
    return SnpReport(
        version=version,
        policy=policy,
        signature_algo=algo,
        report_data=report[0x50:0x90],
        measurement=report[0x90:0xC0],
        reported_tcb=tcb,
        chip_id=report[0x1A0:0x1E0],
        signed=report[:SNP_SIGNED_SIZE],
        r=int.from_bytes(sig[0:72], "little"),
        s=int.from_bytes(sig[72:144], "little"),
    )
