"""Trust roots, key endorsements and the TEE verifier's configuration.

Real hardware evidence chains to vendor roots through X.509 certificates (Intel
SGX/TDX PCK chain, AMD ARK -> ASK -> VCEK, NVIDIA device and NRAS certificates).
This module uses a deliberately small *endorsement* instead: a root's ECDSA P-384
signature (SHA-384) over the canonical JSON of ``{role, curve, public_key, issuer,
not_after}``. It is enough to test chain *logic* (foreign root, expiry, role,
key substitution) on synthetic evidence; verifying genuine vendor chains is not
implemented, so a production configuration holds no roots and refuses all TEE
evidence (fail closed) until it is.

Every root is labelled ``kind = "hardware"`` or ``"synthetic-test"``.
:meth:`TeeVerifierConfig.production` refuses synthetic roots and synthetic
evidence; only :meth:`TeeVerifierConfig.synthetic_for_tests` accepts them.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from orchestrator.canonical import b64d, canonical_bytes
from orchestrator.crypto.ecdsa import EcdsaCurve, ecdsa_verify_raw
from orchestrator.errors import AttestationError, ConfigError, IntegrityError
from orchestrator.timeutil import parse_rfc3339

__all__ = [
    "EVIDENCE_KINDS",
    "ROLES",
    "TeeVerifierConfig",
    "TrustRoot",
    "endorsement_payload",
    "root_id",
    "verify_endorsement",
]

EVIDENCE_KINDS = ("hardware", "synthetic-test")
#: Endorsement roles: which key may sign which evidence.
ROLES = ("tdx-attestation-key", "snp-vcek", "nras-signer")


def root_id(public_xy: bytes) -> str:
    """``sha256:<hex>`` of a root's raw P-384 public point."""
    return "sha256:" + hashlib.sha256(public_xy).hexdigest()


@dataclass(frozen=True)
class TrustRoot:
    """A pinned root key (ECDSA P-384, raw ``X || Y``) and its kind."""

    name: str
    public_xy: bytes
    kind: str

    def __post_init__(self) -> None:
        if self.kind not in EVIDENCE_KINDS:
            raise ConfigError(f"trust root kind {self.kind!r} is not one of "
                              f"{EVIDENCE_KINDS}")

    @property
    def id(self) -> str:
        """:func:`root_id` of the key."""
        return root_id(self.public_xy)


def endorsement_payload(doc: dict[str, Any]) -> bytes:
    """Canonical bytes a root signs: every endorsement field except ``signature``."""
    return canonical_bytes({k: v for k, v in doc.items() if k != "signature"})


@dataclass(frozen=True)
class TeeVerifierConfig:
    """What a custodian's TEE verifier trusts and accepts.

    Attributes
    ----------
    roots
        Pinned trust roots, by :attr:`TrustRoot.id`.
    tdx_mrtd, snp_measurements
        Accepted reference values (lower-case hex of MRTD / MEASUREMENT, 48 bytes).
    min_snp_tcb
        Minimum ``REPORTED_TCB`` components (boot loader, TEE, SNP, microcode).
    accept_synthetic
        Accept evidence labelled ``synthetic-test`` (tests only).
    """

    roots: dict[str, TrustRoot] = field(default_factory=dict)
    tdx_mrtd: frozenset[str] = frozenset()
    snp_measurements: frozenset[str] = frozenset()
    min_snp_tcb: tuple[int, int, int, int] = (0, 0, 0, 0)
    accept_synthetic: bool = False

    @classmethod
    def production(cls, roots: tuple[TrustRoot, ...] = (), *,
                   tdx_mrtd: frozenset[str] = frozenset(),
                   snp_measurements: frozenset[str] = frozenset(),
                   min_snp_tcb: tuple[int, int, int, int] = (0, 0, 0, 0)
                   ) -> TeeVerifierConfig:
        """A production configuration: hardware roots only, no synthetic evidence.

        Raises
        ------
        ConfigError
            If any root is labelled ``synthetic-test``.
        """
        for root in roots:
            if root.kind != "hardware":
                raise ConfigError(f"production verifier refuses {root.kind} root "
                                  f"{root.name!r} ({root.id})")
        return cls({r.id: r for r in roots}, tdx_mrtd, snp_measurements, min_snp_tcb,
                   accept_synthetic=False)

    @classmethod
    def synthetic_for_tests(cls, roots: tuple[TrustRoot, ...], *,
                            tdx_mrtd: frozenset[str] = frozenset(),
                            snp_measurements: frozenset[str] = frozenset(),
                            min_snp_tcb: tuple[int, int, int, int] = (0, 0, 0, 0)
                            ) -> TeeVerifierConfig:
        """A test configuration that accepts ``synthetic-test`` roots and evidence."""
        return cls({r.id: r for r in roots}, tdx_mrtd, snp_measurements, min_snp_tcb,
                   accept_synthetic=True)


def verify_endorsement(doc: Any, *, role: str, curve: EcdsaCurve, kind: str,
                       config: TeeVerifierConfig, now: datetime) -> bytes:
    """Check an endorsement; return the endorsed raw public key.

    Raises
    ------
    AttestationError
        Malformed, untrusted (foreign) root, root of another kind than the
        evidence, wrong role or curve, expired, or a bad root signature.
    """
    if not isinstance(doc, dict) or set(doc) != {
            "role", "curve", "public_key", "issuer", "not_after", "signature"}:
        raise AttestationError(f"malformed {role} endorsement")
    root = config.roots.get(str(doc["issuer"]))
    if root is None:
        raise AttestationError(
            f"{role} endorsement chains to untrusted root {doc['issuer']}")
    if root.kind != kind:
        raise AttestationError(
            f"{kind} evidence endorsed by {root.kind} root {root.name!r}")
    if doc["role"] != role or doc["curve"] != int(curve):
        raise AttestationError(f"endorsement is for {doc['role']}/P-{doc['curve']}, "
                               f"expected {role}/P-{int(curve)}")
    try:
        not_after = parse_rfc3339(str(doc["not_after"]))
        public = b64d(str(doc["public_key"]), what="endorsed key")
        ecdsa_verify_raw(EcdsaCurve.P384, root.public_xy,
                         b64d(str(doc["signature"]), what="endorsement signature"),
                         endorsement_payload(doc))
    except (ValueError, IntegrityError) as exc:
        raise AttestationError(f"{role} endorsement does not verify: {exc}") from exc
    if now > not_after:
        raise AttestationError(f"{role} endorsement expired at {doc['not_after']}")
    return public
