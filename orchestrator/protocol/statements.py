"""Officer-signed statements: agreement signatures, terminations, approvals, consents.

A sovereignty officer's decision is a small JSON *statement* signed with the
officer's Ed25519 key (``officer.key``, registered at ``nation init``). The signed
bytes are the domain-separated canonical JSON::

    b"sovereign-statement/v1\\n" + canonical_bytes(statement)

(:func:`signing_input`), so a statement can never be confused with a custody-log
entry, a checkpoint note or an attestation, and the bytes can be produced and
signed anywhere that has the key, including a browser's WebCrypto (the officer
console sends them base64-encoded; Ed25519 is RFC 8032).

Every statement has ``type`` (one of :data:`STATEMENT_TYPES`), ``nation`` (the
signing officer's nation, ISO 3166-1 alpha-3) and ``issued_at`` (RFC 3339 UTC).
A :class:`SignedStatement` travels inside custody-log event bodies (``statement``,
``signature``, ``key_id``), so the log holds the officer's own signature, which
any custodian re-verifies against the registered officer key before relying on it
(:func:`verify_statement`). This module only builds, signs and checks statements;
what each one *means* is decided by :mod:`orchestrator.policy.standing`,
:mod:`orchestrator.nation.approvals` and :mod:`orchestrator.policy.transfer`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.canonical import b64d, b64e, canonical_bytes, digest_of
from orchestrator.crypto import SigningKey, key_id_of, verify_signature
from orchestrator.errors import ConfigError, IntegrityError

__all__ = ["DOMAIN", "STATEMENT_TYPES", "SignedStatement", "sign_statement",
           "signing_input", "statements_in", "verify_statement"]

#: Domain-separation prefix of every signed statement.
DOMAIN = b"sovereign-statement/v1\n"

#: Statement types and the fields each must carry (besides type/nation/issued_at).
STATEMENT_TYPES: dict[str, frozenset[str]] = {
    # An officer signs exactly one version of an agreement document.
    "agreement-signature/v1": frozenset({"agreement_id", "version", "digest"}),
    # An officer terminates an agreement (all versions) at once.
    "agreement-termination/v1": frozenset({"agreement_id", "reason"}),
    # An owner's officer approves or denies one pending case-by-case request.
    "approval/v1": frozenset({"approval_id", "request_id", "request_digest",
                              "job_id", "agreement_id", "decision", "expires_at"}),
    # An officer acknowledges an oversight notification (for the oversight body).
    "notification-ack/v1": frozenset({"notification_id", "agreement_id"}),
    # An owner's officer consents to one model transfer.
    "transfer-consent/v1": frozenset({"consent_id", "model_id", "model_digest",
                                      "recipient", "end_use", "expires_at"}),
    # An officer answers a console login challenge.
    "console-login/v1": frozenset({"challenge", "origin"}),
    # Statements of the parties themselves (:mod:`orchestrator.protocol.parties`),
    # signed by the party's own key rather than an officer's:
    # a nation's public identity, signed by its custodian key;
    "nation-card/v1": frozenset({"kek_id", "custodian_public", "hpke_public",
                                 "officer_public", "ca_pem"}),
    # a site's description of itself, signed by the site key (``nation`` is the
    # operator it claims);
    "site-description/v1": frozenset({"site", "public_key", "accreditation",
                                      "config_digest", "tee_kinds"}),
    # a log operator's, orchestrator's, officer's or site's own card, signed by
    # its own key (:mod:`orchestrator.protocol.cards`);
    "party-card/v1": frozenset({"party", "actor", "public_key", "csr_pem"}),
    # a nation's accreditation of one site key, signed by its custodian key;
    "site-accreditation/v1": frozenset({"accreditation_id", "site",
                                        "site_public_key", "operator_nation",
                                        "ceiling", "tee_kinds", "expires_at"}),
    # a co-owner's share of a dataset DEK, HPKE-sealed to the recipient
    # custodian, signed by the sealing nation's custodian key.
    "dataset-share/v1": frozenset({"dataset_id", "recipient", "descriptor",
                                   "sealed_share", "share"}),
}


def signing_input(statement: Mapping[str, Any]) -> bytes:
    """The exact bytes an officer signs for ``statement`` (see module docstring).

    Raises
    ------
    ValueError
        If ``statement`` is not JSON-serialisable (NaN, bytes, ...).
    """
    return DOMAIN + canonical_bytes(dict(statement))


@dataclass(frozen=True)
class SignedStatement:
    """A statement and its officer's Ed25519 signature.

    Attributes
    ----------
    statement
        The JSON object that was signed.
    signature
        64-byte Ed25519 signature over :func:`signing_input` of ``statement``.
    key_id
        Key id (:func:`orchestrator.crypto.key_id_of`) of the signing key.
    """

    statement: dict[str, Any]
    signature: bytes
    key_id: str

    @property
    def type(self) -> str:
        """The statement's ``type``."""
        return str(self.statement.get("type", ""))

    @property
    def nation(self) -> str:
        """The signing officer's nation as the statement claims it."""
        return str(self.statement.get("nation", ""))

    def digest(self) -> str:
        """``"sha256:<hex>"`` of the canonical statement (not the signature)."""
        return digest_of(self.statement)

    def to_json(self) -> dict[str, Any]:
        """``{"statement", "signature" (base64), "key_id"}`` for event bodies."""
        return {"statement": self.statement, "signature": b64e(self.signature),
                "key_id": self.key_id}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any], *, source: str = "<statement>"
                  ) -> SignedStatement:
        """Read :meth:`to_json` output.

        Raises
        ------
        IntegrityError
            If the document is not an object with a ``statement`` object, a base64
            ``signature`` and a string ``key_id`` (``source`` is named).
        """
        try:
            statement = doc["statement"]
            signature = b64d(doc["signature"], what="signature")
            key_id = doc["key_id"]
        except (KeyError, TypeError, ValueError) as exc:
            raise IntegrityError(f"malformed signed statement: {exc}",
                                 source=source) from exc
        if not isinstance(statement, dict) or not isinstance(key_id, str):
            raise IntegrityError("malformed signed statement: statement must be an "
                                 "object and key_id a string", source=source)
        return cls(statement=dict(statement), signature=signature, key_id=key_id)


def _check_shape(statement: Mapping[str, Any], source: str) -> None:
    kind = statement.get("type")
    if kind not in STATEMENT_TYPES:
        raise IntegrityError(f"unknown statement type {kind!r}", source=source)
    missing = (STATEMENT_TYPES[str(kind)] | {"nation", "issued_at"}) - set(statement)
    if missing:
        raise IntegrityError(f"{kind} statement lacks {', '.join(sorted(missing))}",
                             source=source)


def sign_statement(statement: Mapping[str, Any], key: SigningKey) -> SignedStatement:
    """Sign ``statement`` with an officer's ``key``.

    Raises
    ------
    ConfigError
        If the statement's type is unknown or a required field is missing (a
        programming or input error: nothing is signed).
    """
    try:
        _check_shape(statement, "<new statement>")
    except IntegrityError as exc:
        raise ConfigError(exc.message, source=exc.source) from exc
    body = dict(statement)
    return SignedStatement(statement=body, signature=key.sign(signing_input(body)),
                           key_id=key.key_id)


def verify_statement(signed: SignedStatement, *, public_key: bytes,
                     expected_type: str, expected_nation: str,
                     source: str = "<statement>",
                     signer: str = "officer") -> dict[str, Any]:
    """Check ``signed`` and return its statement; fail closed on any doubt.

    Parameters
    ----------
    signed
        The statement and signature as received.
    public_key
        The 32-byte Ed25519 officer key registered for ``expected_nation``.
    expected_type
        The statement type the caller is about to rely on.
    expected_nation
        The nation whose officer must have signed.
    signer
        Who signs this type, for messages (``officer``, ``custodian``, ``site``).

    Raises
    ------
    IntegrityError
        If the type differs (a statement of one kind replayed as another), the
        claimed nation differs (a foreign officer's statement), the key id is not
        that of ``public_key``, a required field is missing, or the signature does
        not verify (an altered statement). The message names what failed.
    """
    statement = signed.statement
    _check_shape(statement, source)
    if statement["type"] != expected_type:
        raise IntegrityError(f"expected a {expected_type} statement, got "
                             f"{statement['type']}", source=source)
    if statement["nation"] != expected_nation:
        raise IntegrityError(f"statement is signed for {statement['nation']!r}, not "
                             f"{expected_nation}", source=source)
    if signed.key_id != key_id_of(public_key):
        raise IntegrityError(f"statement key {signed.key_id} is not the registered "
                             f"{expected_nation} {signer} key", source=source)
    try:
        data = signing_input(statement)
    except ValueError as exc:
        raise IntegrityError(f"statement is not canonical JSON: {exc}",
                             source=source) from exc
    try:
        verify_signature(public_key, signed.signature, data)
    except IntegrityError as exc:
        raise IntegrityError(f"{expected_nation} {signer} signature does not verify "
                             f"({exc.message})", source=source) from exc
    return statement


def statements_in(entries: Iterable[Any]) -> list[SignedStatement]:
    """The signed statements carried by custody-log ``entries`` (unverified).

    An entry whose body is not a well-formed signed statement is skipped, as a
    statement that does not verify would be: the caller verifies the rest.
    """
    out = []
    for entry in entries:
        try:
            out.append(SignedStatement.from_json(entry.event.body,
                                                 source=f"entry {entry.seq}"))
        except IntegrityError:
            continue
    return out
