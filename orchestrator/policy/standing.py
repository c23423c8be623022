"""Which agreement versions are in force: signatures, supersession, termination.

An agreement document (:class:`~orchestrator.protocol.agreements.Agreement`) takes
effect
only when **every party's officer** has signed **that exact version** (an
``agreement-signature/v1`` statement over its digest,
:mod:`orchestrator.protocol.statements`).
Of the fully signed versions of one id, the highest is *effective* and the lower
ones are *superseded*. A signed ``agreement-termination/v1`` by one party (clause
``termination = "any-party"``) or by every party (``"all-parties"``) ends the
agreement, every version, at once; so does the orchestrator-level
``agreement.revoked`` of issue 4.

:func:`standings` is pure (no I/O, no clock): it takes the documents, the signed
statements found in the custody log and the registered officer keys, re-verifies
every signature, and classifies each version. A statement that does not verify
(altered, foreign key, wrong digest) never counts: it is reported in the
standing's ``problems`` and the version stays unsigned by that party (fail
closed). :func:`effective_in` picks the effective versions; the parties that hold the
documents and statements load them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from orchestrator.errors import ConfigError, IntegrityError
from orchestrator.protocol.agreements import Agreement
from orchestrator.protocol.statements import (
    SignedStatement,
    verify_statement,
)

__all__ = ["AgreementStatus", "Standing", "effective_in", "standings"]


class AgreementStatus(StrEnum):
    """Where one agreement version stands."""

    AWAITING_SIGNATURES = "awaiting-signatures"
    """Not every party's officer has signed this version."""
    EFFECTIVE = "effective"
    """The highest fully signed version, not terminated or revoked."""
    SUPERSEDED = "superseded"
    """Fully signed, but a higher version is fully signed too."""
    TERMINATED = "terminated"
    """Ended by signed termination(s) under its termination clause."""
    REVOKED = "revoked"
    """Ended by the orchestrator-level ``agreement.revoked``."""


@dataclass(frozen=True)
class Standing:
    """One agreement version's status and why.

    Attributes
    ----------
    agreement
        The document.
    status
        See :class:`AgreementStatus`.
    signed_by
        Parties whose valid signature over this version's digest was found.
    missing
        Parties that have not (validly) signed.
    detail
        One line for officers and policy reasons.
    problems
        Statements that were found but refused, with the reason.
    """

    agreement: Agreement
    status: AgreementStatus
    signed_by: tuple[str, ...]
    missing: tuple[str, ...]
    detail: str
    problems: tuple[str, ...] = field(default=())

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Standing:
        """Read a custodian's answer (:meth:`to_json` plus ``document``, the
        agreement; what ``GET /v1/agreements`` returns).

        Raises
        ------
        ConfigError
            If the document or a field is malformed.
        """
        try:
            return cls(agreement=Agreement.from_json(doc["document"]),
                       status=AgreementStatus(doc["status"]),
                       signed_by=tuple(doc["signed_by"]),
                       missing=tuple(doc["missing"]), detail=str(doc["detail"]),
                       problems=tuple(doc.get("problems", ())))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed agreement standing: {exc}",
                              field="standing") from exc

    def to_json(self) -> dict[str, Any]:
        """JSON-ready summary (CLI ``--json``, reports)."""
        return {"agreement_id": self.agreement.id, "version": self.agreement.version,
                "digest": self.agreement.digest(), "status": self.status.value,
                "signed_by": list(self.signed_by), "missing": list(self.missing),
                "detail": self.detail, "problems": list(self.problems),
                "parties": list(self.agreement.parties)}


def _verified(statements: Iterable[SignedStatement], kind: str,
              officer_keys: Mapping[str, bytes], problems: list[tuple[str, str]]
              ) -> list[dict[str, Any]]:
    """Verified statements; each refused one goes to ``problems`` as
    ``(agreement id it names, why)``."""
    out = []
    for signed in statements:
        nation = signed.nation
        about = str(signed.statement.get("agreement_id", ""))
        key = officer_keys.get(nation)
        if key is None:
            problems.append((about, f"{kind} statement by unknown nation {nation!r} "
                                    "ignored"))
            continue
        try:
            out.append(verify_statement(signed, public_key=key, expected_type=kind,
                                        expected_nation=nation))
        except IntegrityError as exc:
            problems.append((about, f"{kind} statement ignored: {exc.message}"))
    return out


def standings(documents: Sequence[Agreement],
              signatures: Iterable[SignedStatement],
              terminations: Iterable[SignedStatement],
              officer_keys: Mapping[str, bytes],
              revoked: Mapping[str, str] | None = None) -> list[Standing]:
    """Classify every agreement version (pure; see the module docstring).

    Parameters
    ----------
    documents
        Every recorded version of every agreement.
    signatures, terminations
        ``agreement-signature/v1`` and ``agreement-termination/v1`` statements as
        found (unverified).
    officer_keys
        Nation -> registered 32-byte Ed25519 officer public key.
    revoked
        Agreement id -> reason, from ``agreement.revoked`` events.

    Returns
    -------
    list[Standing]
        One per document, ordered by id then version. Never raises for bad
        statements: they are ignored and listed in ``problems``.
    """
    revoked = revoked or {}
    problems: list[tuple[str, str]] = []
    sigs = _verified(signatures, "agreement-signature/v1", officer_keys, problems)
    ends = _verified(terminations, "agreement-termination/v1", officer_keys, problems)
    by_id: dict[str, list[Agreement]] = {}
    for doc in documents:
        by_id.setdefault(doc.id, []).append(doc)
    out: list[Standing] = []
    for agreement_id in sorted(by_id):
        versions = sorted(by_id[agreement_id], key=lambda a: a.version)
        signed: dict[int, tuple[str, ...]] = {}
        for doc in versions:
            parties = set(doc.parties)
            signed[doc.version] = tuple(sorted(
                {s["nation"] for s in sigs
                 if s["agreement_id"] == doc.id and s["version"] == doc.version
                 and s["digest"] == doc.digest() and s["nation"] in parties}))
        complete = [d for d in versions if set(signed[d.version]) == set(d.parties)]
        top = complete[-1] if complete else None
        governing = top or versions[-1]
        enders = sorted({e["nation"] for e in ends
                         if e["agreement_id"] == agreement_id
                         and e["nation"] in governing.parties})
        reasons = [f"{e['nation']} officer on {str(e['issued_at'])[:10]}: "
                   f"{e['reason'] or 'no reason given'}"
                   for e in ends if e["agreement_id"] == agreement_id
                   and e["nation"] in governing.parties]
        needed = (set(governing.parties) if governing.termination == "all-parties"
                  else None)
        terminated = bool(enders) and (needed is None or set(enders) == needed)
        own_problems = tuple(p for about, p in problems if about == agreement_id)
        for doc in versions:
            who = signed[doc.version]
            missing = tuple(sorted(set(doc.parties) - set(who)))
            if agreement_id in revoked:
                status, detail = AgreementStatus.REVOKED, (
                    f"agreement {agreement_id} revoked: {revoked[agreement_id]}")
            elif terminated:
                status, detail = AgreementStatus.TERMINATED, (
                    f"agreement {agreement_id} terminated by " + "; ".join(reasons))
            elif missing:
                status, detail = AgreementStatus.AWAITING_SIGNATURES, (
                    f"agreement {agreement_id} v{doc.version} awaits the signature "
                    f"of {', '.join(missing)} officer(s)")
            elif top is not None and doc.version < top.version:
                status, detail = AgreementStatus.SUPERSEDED, (
                    f"agreement {agreement_id} v{doc.version} superseded by "
                    f"v{top.version}")
            else:
                status, detail = AgreementStatus.EFFECTIVE, (
                    f"agreement {agreement_id} v{doc.version} signed by "
                    f"{', '.join(who)}")
            if (not terminated and enders and needed is not None
                    and status is AgreementStatus.EFFECTIVE):
                detail += (f"; termination signed by {', '.join(enders)}, awaiting "
                           f"{', '.join(sorted(needed - set(enders)))}")
            out.append(Standing(doc, status, who, missing, detail, own_problems))
    return out


def effective_in(found: Sequence[Standing]) -> tuple[list[Agreement], dict[str, str]]:
    """The agreements in force among ``found``, and why the others do not apply.

    Returns
    -------
    tuple
        ``(effective, ended)``: the effective version of every agreement in force,
        and agreement id -> detail for every id with no effective version
        (terminated, revoked or awaiting signatures), for policy reasons.
    """
    effective: list[Agreement] = []
    ended: dict[str, str] = {}
    for standing in found:
        if standing.status is AgreementStatus.EFFECTIVE:
            effective.append(standing.agreement)
        elif standing.status is not AgreementStatus.SUPERSEDED:
            ended[standing.agreement.id] = standing.detail
    for agreement in effective:
        ended.pop(agreement.id, None)
    return effective, ended
