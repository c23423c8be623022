"""The key-release protocol spoken between enclaves, the orchestrator and custodians.

This module holds only messages and the :class:`Custodian` interface; the embedded
implementation lives in :mod:`orchestrator.nation.custodian` and a network one can
implement the same interface. The flow for one task attempt (``design.md``):

1. the enclave asks each owner's custodian for a nonce (:meth:`Custodian.challenge`);
2. it obtains :class:`Evidence` binding (job id, attempt id, site, code measurement,
   enclave public key, nonce), signed by the site (``tee_mode: none``);
3. it sends a :class:`ReleaseRequest`; the custodian verifies the evidence, evaluates
   its policy, durably logs ``key.released`` (or ``key.denied``) and only then returns a
   :class:`Grant`: the dataset's DEK sealed to the enclave key with HPKE (RFC 9180),
   whose ``info`` is the request digest, so the grant opens only for that request;
4. to seal outputs the enclave makes a fresh DEK and sends it, HPKE-sealed to each
   owner custodian's public key, in a :class:`WrapRequest`; each custodian returns a
   :class:`WrappedKey` (RFC 5649 under its KEK).
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, field, fields, replace
from typing import Any, Protocol

from orchestrator.canonical import canonical_bytes, digest_of
from orchestrator.errors import ConfigError
from orchestrator.protocol.outputs import OutputRules

RELEASE_INFO_PREFIX = b"sovereign-orchestrator/release/v1 "
WRAP_INFO_PREFIX = b"sovereign-orchestrator/wrap/v1 "
#: Software evidence: a site-signed statement, no hardware root of trust.
SOFTWARE_EVIDENCE_FORMAT = "software-site-signed/v1"
#: TEE evidence: the site-signed statement plus CPU (and GPU) TEE reports whose
#: user data binds it (see :mod:`orchestrator.nation.tee`).
TEE_EVIDENCE_FORMAT = "tee-bound-site-signed/v1"
#: Defaulted fields that may be absent from a JSON document.
_OPTIONAL_FIELDS = frozenset({"tee_evidence", "grant_id", "sealed_digest",
                              "output_rules"})


def _from_json(cls: Any, data: Any, what: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(f"{what} must be a JSON object")
    names = {f.name for f in fields(cls)}
    optional = {
        f.name
        for f in fields(cls)
        if f.name in _OPTIONAL_FIELDS and (f.default is not MISSING
                                           or f.default_factory is not MISSING)
    }
    missing = names - set(data) - optional
    extra = set(data) - names
    if missing or extra:
        raise ConfigError(
            f"{what} has missing fields {sorted(missing)} "
            f"or unknown fields {sorted(extra)}"
        )
    return cls(**data)


@dataclass(frozen=True)
class Evidence:
    """Attestation evidence for one enclave attempt.

    All binary values are base64 text. ``tee_mode`` is ``"none"`` for software
    evidence: it proves which registered site vouched for the attempt, not that a
    hardware TEE protects its memory. TEE evidence (``TEE_EVIDENCE_FORMAT``) also
    carries ``tee_evidence``: ``evidence_kind`` (``"hardware"`` or
    ``"synthetic-test"``), ``cpu`` (``type`` ``tdx``/``snp``, base64 ``report``,
    ``endorsement``) and optionally ``gpu`` (``eat`` token, ``endorsement``); it
    is omitted from the JSON (and so from every digest) when ``None``.
    """

    format: str
    tee_mode: str
    site: str
    job_id: str
    attempt_id: str
    code_measurement: str
    enclave_public_key: str
    hpke_suite: str
    nonce: str
    issued_at: str
    expires_at: str
    signer: str
    signature: str = ""
    tee_evidence: dict[str, Any] | None = None

    def claims(self) -> dict[str, Any]:
        """Every field except the signature (what the site signs)."""
        data = self.to_json()
        data.pop("signature")
        return data

    def signed_bytes(self) -> bytes:
        """Canonical JSON bytes of :meth:`claims`."""
        return canonical_bytes(self.claims())

    def with_signature(self, signature: str) -> Evidence:
        """Return a copy carrying ``signature`` (base64)."""
        return replace(self, signature=signature)

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict of every field (``tee_evidence`` only when set)."""
        data = asdict(self)
        if data["tee_evidence"] is None:
            data.pop("tee_evidence")
        return data

    @classmethod
    def from_json(cls, data: Any) -> Evidence:
        """Strictly parse; raises :class:`ConfigError` on missing or extra fields."""
        return _from_json(cls, data, "evidence")  # type: ignore[no-any-return]


@dataclass(frozen=True)
class JobRequest:
    """A job-level access request, pre-checked by each owner's custodian at submit."""

    job_id: str
    dataset_id: str
    site: str
    priority_area: str
    gpu_hours: float
    code_measurement: str

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> JobRequest:
        """Strictly parse; raises :class:`ConfigError` on missing or extra fields."""
        return _from_json(cls, data, "job request")  # type: ignore[no-any-return]


@dataclass(frozen=True)
class ReleaseRequest:
    """An enclave attempt's request for one dataset's DEK.

    ``sealed_digest`` is ``"sha256:<hex>"`` of the staged envelope the site
    verified before asking: the custodian releases only if it is the envelope it
    sealed (so a relabelled or re-encrypted copy gets no key).
    """

    job_id: str
    attempt_id: str
    task: str
    dataset_id: str
    site: str
    evidence: Evidence
    sealed_digest: str

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict with the evidence nested."""
        data = asdict(self)
        data["evidence"] = self.evidence.to_json()
        return data

    @classmethod
    def from_json(cls, data: Any) -> ReleaseRequest:
        """Strictly parse (evidence included); raises :class:`ConfigError`."""
        request = _from_json(cls, data, "release request")
        evidence = Evidence.from_json(request.evidence)
        return replace(request, evidence=evidence)  # type: ignore[no-any-return]

    def digest(self) -> str:
        """``sha256:<hex>`` of the canonical request (evidence signature included)."""
        return digest_of(self.to_json())

    def hpke_info(self) -> bytes:
        """HPKE ``info`` binding a grant to this exact request (RFC 9180 §5.1)."""
        return RELEASE_INFO_PREFIX + self.digest().encode("ascii")


@dataclass(frozen=True)
class Grant:
    """A released DEK, sealed with HPKE to the enclave key named in the evidence.

    ``sealed_dek`` is base64 of the HPKE ciphertext (``enc || ct``; 80 bytes for a
    32-byte DEK with the X25519 suite). ``expires_at`` bounds its use (RFC 3339):
    the grant is bound to (``job_id``, ``attempt_id``, ``request_digest``), and
    its ``grant_id`` must be presented, before it expires, in each
    :class:`WrapRequest` of that attempt to the same custodian.
    """

    grant_id: str
    owner: str
    dataset_id: str
    request_digest: str
    kek_id: str
    kek_version: int
    hpke_suite: str
    sealed_dek: str
    tee_mode: str
    expires_at: str
    log_index: int
    job_id: str = ""
    attempt_id: str = ""
    evidence_kind: str = "software"
    output_rules: OutputRules = field(default_factory=OutputRules)
    """What the owner lets the task return in clear (its agreement's terms)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict."""
        return {**asdict(self), "output_rules": self.output_rules.to_json()}

    @classmethod
    def from_json(cls, data: Any) -> Grant:
        """Strictly parse; raises :class:`ConfigError` on missing or extra fields."""
        if isinstance(data, dict) and "output_rules" in data:
            data = {**data, "output_rules": OutputRules.from_json(data["output_rules"])}
        return _from_json(cls, data, "grant")  # type: ignore[no-any-return]


@dataclass(frozen=True)
class WrapRequest:
    """An enclave's request that an owner wrap a fresh output DEK under its KEK.

    ``sealed_dek`` is the DEK HPKE-sealed to the owner custodian's public key with
    ``info`` = :meth:`hpke_info` (which covers every other field). ``grant_id``
    names the :class:`Grant` this attempt received from the same custodian;
    ``sealed_digest`` (``"sha256:<hex>"`` of the object's ciphertext, when the
    enclave sealed it already) lets the custodian keep the object's digest.
    """

    job_id: str
    attempt_id: str
    site: str
    object_id: str
    label: dict[str, Any]
    input_dataset_ids: tuple[str, ...]
    evidence: Evidence
    sealed_dek: str = ""
    grant_id: str = ""
    sealed_digest: str = ""

    def binding(self) -> dict[str, Any]:
        """Every field except ``sealed_dek`` (``sealed_digest`` only when set)."""
        data = asdict(self)
        data.pop("sealed_dek")
        if not data["sealed_digest"]:
            data.pop("sealed_digest")
        data["input_dataset_ids"] = list(self.input_dataset_ids)
        data["evidence"] = self.evidence.to_json()
        return data

    def hpke_info(self) -> bytes:
        """HPKE ``info`` binding the sealed DEK to this request."""
        return WRAP_INFO_PREFIX + digest_of(self.binding()).encode("ascii")

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict: :meth:`binding` plus ``sealed_dek``."""
        return {**self.binding(), "sealed_dek": self.sealed_dek}

    @classmethod
    def from_json(cls, data: Any) -> WrapRequest:
        """Strictly parse (evidence included); raises :class:`ConfigError`."""
        request = _from_json(cls, data, "wrap request")
        ids = request.input_dataset_ids
        if not isinstance(ids, list | tuple) or not all(
            isinstance(i, str) for i in ids
        ):
            raise ConfigError("wrap request: input_dataset_ids must be a list of ids")
        return replace(  # type: ignore[no-any-return]
            request,
            input_dataset_ids=tuple(ids),
            evidence=Evidence.from_json(request.evidence),
        )


@dataclass(frozen=True)
class WrappedKey:
    """A DEK wrapped under an owner's KEK (RFC 5649), base64 ``wrapped_dek``."""

    owner: str
    kek_id: str
    kek_version: int
    wrapped_dek: str

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict."""
        return asdict(self)

    @classmethod
    def from_json(cls, data: Any) -> WrappedKey:
        """Strictly parse; raises :class:`ConfigError` on missing or extra fields."""
        return _from_json(cls, data, "wrapped key")  # type: ignore[no-any-return]


class Custodian(Protocol):
    """One nation's custodian, in-process (embedded) or behind a network service.

    Every method that decides or releases records a custody event *before* it
    returns; if the event cannot be recorded durably it raises
    :class:`~orchestrator.errors.LedgerError` and releases nothing.
    """

    @property
    def nation(self) -> str:
        """ISO 3166-1 alpha-3 code of the nation this custodian serves."""
        ...

    def challenge(self) -> str:
        """Return a fresh single-use nonce (base64 of 32 random bytes)."""
        ...

    def decide(self, request: JobRequest) -> dict[str, Any]:
        """Evaluate and log the policy decision for a whole job; return its JSON.

        Raises
        ------
        PolicyDenied
            If the decision is not a permit (the reasons are attached and logged).
        """
        ...

    def release_key(self, request: ReleaseRequest) -> Grant:
        """Verify evidence and policy, log, and release the dataset's DEK.

        Raises
        ------
        AttestationError
            Evidence is badly signed, stale, replayed or bound to something else.
        PolicyDenied
            The policy does not permit this release.
        LedgerError
            The release could not be logged durably (nothing is released).
        """
        ...

    def wrap_key(self, request: WrapRequest) -> WrappedKey:
        """Wrap a fresh output DEK under this nation's KEK after checking evidence."""
        ...
