"""NVIDIA GPU confidential-computing attestation results (NRAS EAT).

NVIDIA's Remote Attestation Service (NRAS) verifies a GPU's SPDM evidence and
returns an Entity Attestation Token (EAT, RFC 9711) as a JWT/JWS compact
serialisation signed ``ES384`` (RFC 7515, RFC 7518 section 3.4). This module
verifies such a token against an endorsed NRAS signing key and applies release
policy to its claims:

* ``eat_nonce`` equals :func:`~orchestrator.nation.tee.binding.gpu_nonce`;
* ``x-nvidia-overall-att-result`` is ``true`` and ``measres`` (the measurement
  comparison against NVIDIA's reference integrity manifests) is ``"success"``;
* ``x-nvidia-gpu-cc-environment`` is ``"PROD"`` (not ``"SIM"``) and
  ``x-nvidia-gpu-devtools-mode`` is ``false``: NVML's confidential-computing
  environment and DevTools mode, which a release policy must check (the claim
  spelling of these two is this project's mapping of the NVML values);
* ``iat <= now <= exp``.
"""

from __future__ import annotations

import base64
import json
from datetime import datetime
from typing import Any

from orchestrator.crypto.ecdsa import EcdsaCurve, ecdsa_verify_raw
from orchestrator.errors import AttestationError, IntegrityError

__all__ = ["b64url", "verify_gpu_token"]


def b64url(data: bytes) -> str:
    """Unpadded base64url (RFC 7515 section 2)."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def verify_gpu_token(token: str, signer_xy: bytes, expected_nonce: str,
                     now: datetime) -> dict[str, Any]:
    """Verify an ES384 EAT from NRAS and its policy claims; return the claims.

    Raises
    ------
    AttestationError
        Malformed token, wrong algorithm, bad signature, nonce mismatch, failed
        measurement, ``SIM`` mode, DevTools on, or outside ``iat``..``exp``.
    """
    try:
        head_b64, body_b64, sig_b64 = token.split(".")
        header = json.loads(_unb64url(head_b64))
        claims = json.loads(_unb64url(body_b64))
        signature = _unb64url(sig_b64)
    except (ValueError, TypeError) as exc:
        raise AttestationError(f"malformed GPU attestation token: {exc}") from exc
    if not isinstance(header, dict) or header.get("alg") != "ES384":
        raise AttestationError("GPU attestation token is not signed ES384")
    try:
        ecdsa_verify_raw(EcdsaCurve.P384, signer_xy, signature,
                         f"{head_b64}.{body_b64}".encode("ascii"))
    except IntegrityError as exc:
        raise AttestationError("GPU attestation token signature is invalid") from exc
    if not isinstance(claims, dict):
        raise AttestationError("GPU attestation claims are not an object")
    if claims.get("eat_nonce") != expected_nonce:
        raise AttestationError("GPU eat_nonce does not bind this job/attempt/key/nonce")
    if claims.get("x-nvidia-overall-att-result") is not True:
        raise AttestationError("GPU overall attestation result is not true")
    if claims.get("measres") != "success":
        raise AttestationError(
            f"GPU measurement result is {claims.get('measres')!r}, not 'success'")
    if claims.get("x-nvidia-gpu-cc-environment") != "PROD":
        raise AttestationError("GPU confidential-computing environment is "
                               f"{claims.get('x-nvidia-gpu-cc-environment')!r}, "
                               "not 'PROD'")
    if claims.get("x-nvidia-gpu-devtools-mode") is not False:
        raise AttestationError("GPU DevTools mode is on (or not reported)")
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or not isinstance(exp, int):
        raise AttestationError("GPU attestation token lacks iat/exp")
    stamp = now.timestamp()
    if stamp > exp:
        raise AttestationError("GPU attestation token expired")
    if iat > stamp + 30:
        raise AttestationError("GPU attestation token issued in the future")
    return claims
