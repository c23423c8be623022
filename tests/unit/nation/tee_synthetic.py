"""SYNTHETIC TEST EVIDENCE ONLY: builders for TDX quotes, SEV-SNP reports and NRAS
tokens signed by a test-only root whose private scalar is embedded below.

Nothing here is genuine hardware evidence; every document it builds says
``evidence_kind: "synthetic-test"`` unless a test deliberately mislabels it.
"""

from __future__ import annotations

import json
import struct
from datetime import datetime, timedelta
from typing import Any

from orchestrator.canonical import b64e
from orchestrator.crypto import SigningKey
from orchestrator.crypto.ecdsa import EcdsaCurve, EcdsaKey
from orchestrator.nation.tee import TeeVerifierConfig, TrustRoot, gpu_nonce, report_data
from orchestrator.nation.tee.nvidia import b64url
from orchestrator.nation.tee.trust import endorsement_payload, root_id
from orchestrator.protocol.release import TEE_EVIDENCE_FORMAT, Evidence
from orchestrator.timeutil import rfc3339

#: The test-only root (ECDSA P-384). NEVER a production trust anchor.
TEST_ROOT_KEY = EcdsaKey.from_scalar(EcdsaCurve.P384, 0x7E57_0001_5EC0_DE5A_F0)
TEST_ROOT = TrustRoot("sovereign-orchestrator synthetic TEE test root",
                      TEST_ROOT_KEY.public_xy(), "synthetic-test")
#: Another test root nobody trusts ("foreign").
FOREIGN_ROOT_KEY = EcdsaKey.from_scalar(EcdsaCurve.P384, 0xF0_4E16_0002)
TDX_AK = EcdsaKey.from_scalar(EcdsaCurve.P256, 0x7D0_A77E_57)
SNP_VCEK = EcdsaKey.from_scalar(EcdsaCurve.P384, 0x5_4E0_FCEC)
NRAS_KEY = EcdsaKey.from_scalar(EcdsaCurve.P384, 0x4_2A5_0003)
MRTD = bytes(range(48))
SNP_MEASUREMENT = bytes(range(100, 148))


def config(**overrides: Any) -> TeeVerifierConfig:
    """The synthetic test configuration accepting :data:`TEST_ROOT`."""
    kw: dict[str, Any] = {"tdx_mrtd": frozenset({MRTD.hex()}),
                          "snp_measurements": frozenset({SNP_MEASUREMENT.hex()})}
    kw.update(overrides)
    return TeeVerifierConfig.synthetic_for_tests((TEST_ROOT,), **kw)


def endorse(key: EcdsaKey, role: str, now: datetime, *,
            root: EcdsaKey = TEST_ROOT_KEY, days: int = 30) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "role": role, "curve": int(key.curve), "public_key": b64e(key.public_xy()),
        "issuer": root_id(root.public_xy()),
        "not_after": rfc3339(now + timedelta(days=days)), "signature": ""}
    doc["signature"] = b64e(root.sign_raw(endorsement_payload(doc)))
    return doc


def tdx_quote(rd: bytes, *, mrtd: bytes = MRTD, debug: bool = False,
              key: EcdsaKey = TDX_AK) -> bytes:
    header = struct.pack("<HHIHH", 4, 2, 0x81, 0, 0) + b"\x93\x9a\x72\x33" * 4 + \
        bytes(20)
    body = bytearray(584)
    struct.pack_into("<Q", body, 120, 1 if debug else 0)
    body[136:184] = mrtd
    for i in range(4):
        body[328 + 48 * i:376 + 48 * i] = bytes([i + 1]) * 48
    body[520:584] = rd
    signed = header + bytes(body)
    sig_data = key.sign_raw(signed) + key.public_xy() + struct.pack("<HI", 6, 0)
    return signed + struct.pack("<I", len(sig_data)) + sig_data


def snp_report(rd: bytes, *, measurement: bytes = SNP_MEASUREMENT,
               debug: bool = False, tcb: bytes = bytes([3, 0, 0, 0, 0, 0, 14, 200]),
               key: EcdsaKey = SNP_VCEK) -> bytes:
    report = bytearray(0x4A0)
    policy = (1 << 17) | (1 << 16) | ((1 << 19) if debug else 0)
    struct.pack_into("<IIQ", report, 0, 3, 0, policy)
    struct.pack_into("<I", report, 0x34, 1)
    report[0x50:0x90] = rd
    report[0x90:0xC0] = measurement
    report[0x180:0x188] = tcb
    report[0x1A0:0x1E0] = b"\xc1" * 64
    r, s = key.sign(bytes(report[:0x2A0]))
    report[0x2A0:0x2E8] = r.to_bytes(72, "little")
    report[0x2E8:0x330] = s.to_bytes(72, "little")
    return bytes(report)


def nras_token(nonce: str, now: datetime, **claims: Any) -> str:
    body = {"iss": "https://nras.attestation.nvidia.com (SYNTHETIC TEST)",
            "iat": int(now.timestamp()), "exp": int(now.timestamp()) + 300,
            "eat_nonce": nonce, "x-nvidia-overall-att-result": True,
            "measres": "success", "x-nvidia-gpu-cc-environment": "PROD",
            "x-nvidia-gpu-devtools-mode": False, "secboot": True,
            "dbgstat": "disabled"}
    body.update(claims)
    head = b64url(json.dumps({"alg": "ES384", "typ": "JWT"}).encode())
    payload = b64url(json.dumps(body).encode())
    sig = NRAS_KEY.sign_raw(f"{head}.{payload}".encode())
    return f"{head}.{payload}.{b64url(sig)}"


def tee_evidence(base: Evidence, site_key: SigningKey, now: datetime, *,
                 cpu: str = "tdx", gpu: bool = False, kind: str = "synthetic-test",
                 mutate: str = "") -> Evidence:
    """Turn software ``base`` evidence into signed synthetic TEE evidence.

    ``mutate`` names one fault: debug, measurement, report_data, foreign_root,
    sim, devtools, gpu_nonce, expired_endorsement, tcb.
    """
    mode = cpu + ("+gpu_cc" if gpu else "")
    ev = Evidence(**{**base.to_json(), "format": TEE_EVIDENCE_FORMAT,
                     "tee_mode": mode, "signature": ""})
    rd = bytes(64) if mutate == "report_data" else report_data(ev)
    root = FOREIGN_ROOT_KEY if mutate == "foreign_root" else TEST_ROOT_KEY
    days = -1 if mutate == "expired_endorsement" else 30
    if cpu == "tdx":
        report = tdx_quote(rd, debug=mutate == "debug",
                           mrtd=bytes(48) if mutate == "measurement" else MRTD)
        endorsement = endorse(TDX_AK, "tdx-attestation-key", now, root=root, days=days)
    else:
        report = snp_report(
            rd, debug=mutate == "debug",
            measurement=bytes(48) if mutate == "measurement" else SNP_MEASUREMENT,
            tcb=bytes(8) if mutate == "tcb" else bytes([3, 0, 0, 0, 0, 0, 14, 200]))
        endorsement = endorse(SNP_VCEK, "snp-vcek", now, root=root, days=days)
    tee: dict[str, Any] = {"evidence_kind": kind,
                           "cpu": {"type": cpu, "report": b64e(report),
                                   "endorsement": endorsement}}
    if gpu:
        extra: dict[str, Any] = {}
        if mutate == "sim":
            extra["x-nvidia-gpu-cc-environment"] = "SIM"
        if mutate == "devtools":
            extra["x-nvidia-gpu-devtools-mode"] = True
        nonce = "00" * 32 if mutate == "gpu_nonce" else gpu_nonce(ev)
        tee["gpu"] = {"eat": nras_token(nonce, now, **extra),
                      "endorsement": endorse(NRAS_KEY, "nras-signer", now)}
    ev = Evidence(**{**ev.to_json(), "tee_evidence": tee})
    return ev.with_signature(b64e(site_key.sign(ev.signed_bytes())))
