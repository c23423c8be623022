"""A sealed model's build provenance: an in-toto Statement signed in a DSSE envelope.

The site that trained a model describes how it was made as an in-toto Statement v1
whose predicate is a SLSA Provenance v1 document:

* ``subject``: the model id and the SHA-256 of its sealed ciphertext (the bytes the
  registry stores and the ``model.sealed`` custody event names);
* ``buildDefinition``: the workflow, task and priority area (external parameters),
  the site and ``tee_mode`` (internal parameters), and one resolved dependency per
  input dataset (its sealed digest) plus the workflow code (its measurement);
* ``runDetails``: the builder (``site:<name>``) and the invocation (job/attempt,
  start and finish times).

The statement is serialised as canonical JSON and signed with the site's Ed25519
key in a DSSE v1 envelope (payload type ``application/vnd.in-toto+json``); the
signature covers the pre-authentication encoding
``PAE(type, body) = "DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, so the
payload type cannot be swapped.

References
----------
.. [1] in-toto Attestation Framework, Statement v1,
   https://github.com/in-toto/attestation/blob/main/spec/v1/statement.md
.. [2] SLSA Provenance v1, https://slsa.dev/spec/v1.0/provenance
.. [3] DSSE v1 (Dead Simple Signing Envelope), protocol and envelope,
   https://github.com/secure-systems-lab/dsse/blob/master/protocol.md
.. [4] RFC 8032 (Ed25519); RFC 4648 section 4 and 5 (base64, base64url).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from orchestrator.canonical import b64e, canonical_bytes
from orchestrator.crypto import SigningKey, verify_signature
from orchestrator.errors import ConfigError, IntegrityError

__all__ = [
    "BUILD_TYPE",
    "PAYLOAD_TYPE",
    "PREDICATE_TYPE",
    "STATEMENT_TYPE",
    "ProvenanceError",
    "build_statement",
    "dsse_sign",
    "dsse_verify",
    "pae",
    "statement_digest",
    "subject_digest",
]

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
"""``_type`` of an in-toto Statement v1."""
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
"""``predicateType`` of SLSA Provenance v1."""
PAYLOAD_TYPE = "application/vnd.in-toto+json"
"""DSSE payload type of in-toto statements."""
BUILD_TYPE = "https://sovereign-orchestrator.example/enclave-training/v1"
"""SLSA ``buildType`` of one enclave training attempt."""

_HEX64 = re.compile(r"[0-9a-f]{64}")
_MAX_ENVELOPE = 1 << 20


class ProvenanceError(IntegrityError):
    """A DSSE envelope or its statement failed verification.

    ``reason`` is one of ``"malformed"``, ``"payload-type"``, ``"unknown-key"``,
    ``"bad-signature"``, ``"statement"``.
    """

    def __init__(self, message: str, *, reason: str, source: str | None = None):
        super().__init__(f"provenance {reason}: {message}", source=source)
        self.reason = reason


def _hex_digest(value: str, what: str) -> str:
    """Return the bare lowercase hex of ``value`` (``sha256:`` prefix allowed)."""
    text = value.removeprefix("sha256:") if isinstance(value, str) else ""
    if not _HEX64.fullmatch(text):
        raise ConfigError(f"{what} {value!r} is not a SHA-256 digest")
    return text


def build_statement(
    *,
    model_id: str,
    model_digest: str,
    workflow: str,
    task: str,
    priority_area: str,
    site: str,
    datasets: Iterable[tuple[str, str]],
    code_measurement: str,
    job_id: str,
    attempt_id: str,
    started_on: str,
    finished_on: str,
    tee_mode: str = "none",
) -> dict[str, Any]:
    """Return the in-toto Statement v1 with a SLSA Provenance v1 predicate.

    Parameters
    ----------
    model_id
        The sealed model's object id (the subject's ``name``).
    model_digest
        SHA-256 of the sealed model ciphertext (hex, ``sha256:`` prefix allowed).
    workflow, task, priority_area
        External parameters: what the researcher asked for.
    site, tee_mode
        Internal parameters: where it ran and with which memory protection.
    datasets
        ``(dataset_id, sealed_digest)`` of every input, in order.
    code_measurement
        SHA-256 measurement of the workflow code the enclave executed.
    job_id, attempt_id
        The invocation (``invocationId`` is ``"<job>/<attempt>"``).
    started_on, finished_on
        RFC 3339 UTC times of the attempt.

    Raises
    ------
    ConfigError
        If a digest is not SHA-256 hex.
    """
    deps: list[dict[str, Any]] = [
        {"uri": f"dataset:{ds_id}", "digest": {"sha256": _hex_digest(d, ds_id)}}
        for ds_id, d in datasets
    ]
    deps.append(
        {
            "uri": f"workflow:{workflow}",
            "digest": {"sha256": _hex_digest(code_measurement, "code measurement")},
        }
    )
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {
                "name": model_id,
                "digest": {"sha256": _hex_digest(model_digest, model_id)},
            }
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {
                    "workflow": workflow,
                    "task": task,
                    "priority_area": priority_area,
                },
                "internalParameters": {"site": site, "tee_mode": tee_mode},
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": f"site:{site}"},
                "metadata": {
                    "invocationId": f"{job_id}/{attempt_id}",
                    "startedOn": started_on,
                    "finishedOn": finished_on,
                },
            },
        },
    }


def pae(payload_type: str, body: bytes) -> bytes:
    """Return the DSSE v1 pre-authentication encoding of ``(type, body)``.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`` with lengths in bytes
    as ASCII decimals (DSSE protocol, "Signature Definition").

    Examples
    --------
    >>> pae("http://example.com/HelloWorld", b"hello world")
    b'DSSEv1 29 http://example.com/HelloWorld 11 hello world'
    """
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %s %d %s" % (len(kind), kind, len(body), body)


def statement_digest(envelope: Mapping[str, Any]) -> str:
    """Return ``"sha256:<hex>"`` of the envelope's decoded payload (the statement).

    The ``model.sealed`` custody event carries this as ``provenance_digest``.

    Raises
    ------
    ProvenanceError
        If the payload is not base64.
    """
    return "sha256:" + hashlib.sha256(_payload_bytes(envelope)).hexdigest()


def dsse_sign(
    statement: Mapping[str, Any],
    signer: SigningKey,
    *,
    payload_type: str = PAYLOAD_TYPE,
) -> dict[str, Any]:
    """Sign ``statement`` (canonical JSON) in a DSSE envelope with ``signer``.

    Returns ``{"payloadType", "payload", "signatures": [{"keyid", "sig"}]}`` with
    the payload and signature in standard base64 and ``keyid`` the signer's key id.
    """
    body = canonical_bytes(dict(statement))
    sig = signer.sign(pae(payload_type, body))
    return {
        "payloadType": payload_type,
        "payload": b64e(body),
        "signatures": [{"keyid": signer.key_id, "sig": b64e(sig)}],
    }


def _b64_any(text: object, what: str) -> bytes:
    """Decode standard or URL-safe base64 (DSSE verifiers must accept both)."""
    if not isinstance(text, str):
        raise ProvenanceError(f"{what} is not a string", reason="malformed")
    try:
        return base64.b64decode(
            text.replace("-", "+").replace("_", "/").encode("ascii"), validate=True
        )
    except (binascii.Error, ValueError, UnicodeEncodeError) as exc:
        raise ProvenanceError(f"{what} is not base64", reason="malformed") from exc


def _payload_bytes(envelope: Mapping[str, Any]) -> bytes:
    if not isinstance(envelope, Mapping):
        raise ProvenanceError("envelope is not a JSON object", reason="malformed")
    return _b64_any(envelope.get("payload"), "payload")


def _check_statement(statement: object) -> dict[str, Any]:
    if not isinstance(statement, dict):
        raise ProvenanceError("payload is not a JSON object", reason="statement")
    if statement.get("_type") != STATEMENT_TYPE:
        raise ProvenanceError(
            f"_type is {statement.get('_type')!r}, not {STATEMENT_TYPE}",
            reason="statement",
        )
    subjects = statement.get("subject")
    if not isinstance(subjects, list) or not subjects or not all(
        isinstance(s, dict)
        and isinstance(s.get("name"), str)
        and isinstance(s.get("digest"), dict)
        for s in subjects
    ):
        raise ProvenanceError("subject is not a list of {name, digest}",
                              reason="statement")
    if not isinstance(statement.get("predicateType"), str) or not isinstance(
        statement.get("predicate", {}), dict
    ):
        raise ProvenanceError("predicateType/predicate malformed", reason="statement")
    return statement


def dsse_verify(
    envelope: Mapping[str, Any],
    public_keys_by_keyid: Mapping[str, bytes],
    *,
    payload_type: str = PAYLOAD_TYPE,
) -> dict[str, Any]:
    """Verify a DSSE envelope and return its in-toto statement.

    Follows the DSSE protocol's verification: decode, pick candidate keys by
    ``keyid`` (a hint only: with no or an unknown ``keyid`` every trusted key is
    tried), verify the signature over ``PAE(payloadType, payload)``, check the
    payload type, then parse the statement. At least one signature must verify.

    Parameters
    ----------
    envelope
        The parsed envelope JSON.
    public_keys_by_keyid
        Trusted raw Ed25519 public keys (32 bytes) by key id.
    payload_type
        The only payload type accepted.

    Raises
    ------
    ProvenanceError
        ``malformed`` (not an envelope, bad base64, payload not JSON),
        ``unknown-key`` (no signature by a trusted key), ``bad-signature``
        (signatures present but none verifies), ``payload-type`` (not
        ``payload_type``) or ``statement`` (not an in-toto Statement v1).
    """
    if not isinstance(envelope, Mapping):
        raise ProvenanceError("envelope is not a JSON object", reason="malformed")
    body = _payload_bytes(envelope)
    if len(body) > _MAX_ENVELOPE:
        raise ProvenanceError("payload larger than 1 MiB", reason="malformed")
    kind = envelope.get("payloadType")
    if not isinstance(kind, str):
        raise ProvenanceError("payloadType is not a string", reason="malformed")
    sigs = envelope.get("signatures")
    if not isinstance(sigs, list) or not sigs:
        raise ProvenanceError("envelope has no signatures", reason="malformed")
    if not public_keys_by_keyid:
        raise ProvenanceError("no trusted key to verify with", reason="unknown-key")
    message = pae(kind, body)
    tried = False
    for i, item in enumerate(sigs):
        if not isinstance(item, Mapping):
            raise ProvenanceError(f"signature {i} is not an object", reason="malformed")
        sig = _b64_any(item.get("sig"), f"signature {i}")
        keyid = item.get("keyid")
        if isinstance(keyid, str) and keyid:
            if keyid not in public_keys_by_keyid:
                continue
            candidates = [public_keys_by_keyid[keyid]]
        else:
            candidates = list(public_keys_by_keyid.values())
        for key in candidates:
            tried = True
            try:
                verify_signature(key, sig, message)
            except IntegrityError:
                continue
            if kind != payload_type:
                raise ProvenanceError(
                    f"payloadType is {kind!r}, expected {payload_type!r}",
                    reason="payload-type",
                )
            try:
                statement = json.loads(body.decode("utf-8"))
            except (UnicodeDecodeError, json.JSONDecodeError) as exc:
                raise ProvenanceError("payload is not UTF-8 JSON",
                                      reason="malformed") from exc
            return _check_statement(statement)
    if not tried:
        names = ", ".join(str(s.get("keyid")) for s in sigs if isinstance(s, Mapping))
        raise ProvenanceError(f"no signature is from a trusted key (keyid {names})",
                              reason="unknown-key")
    raise ProvenanceError("no signature verifies over PAE(payloadType, payload)",
                          reason="bad-signature")


def subject_digest(statement: Mapping[str, Any], name: str) -> str:
    """Return the ``sha256`` hex digest of subject ``name`` in ``statement``.

    Raises
    ------
    ProvenanceError
        If no subject has that name and a SHA-256 digest (``statement``).
    """
    for subject in statement.get("subject", []):
        if isinstance(subject, Mapping) and subject.get("name") == name:
            digest = subject.get("digest", {}).get("sha256")
            if isinstance(digest, str) and _HEX64.fullmatch(digest):
                return digest
    raise ProvenanceError(f"no subject {name!r} with a sha256 digest",
                          reason="statement")
