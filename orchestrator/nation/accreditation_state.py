"""A custodian's accreditation state, signed and checked against its journal.

Which sites a nation accredits decides where its keys go, so the state of each
accreditation (live, or revoked when and why) is not a bare column: every row
carries the custodian's Ed25519 signature over :func:`row_message`, and every
revocation is also the custodian's signed ``site.accreditation.revoked`` entry
in its journal (the custody log's copy). Before relying on any accreditation
the custodian checks *all* rows (:func:`check_rows`): a row whose signature
fails (edited), or that says live while the journal revoked it (an old signed
row put back), stops every release of this nation with the row named, until
its operator resolves it (:func:`reconcile`: the state re-derived from the
journal, rows re-signed, the repair logged). Doubt means deny.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable

from orchestrator.canonical import b64d, b64e, canonical_bytes
from orchestrator.crypto import key_id_of, verify_signature
from orchestrator.errors import IntegrityError
from orchestrator.nation.journal import Journal
from orchestrator.nation.store import AccreditationRow
from orchestrator.tlog.events import SignedEntry

__all__ = ["REVOKED_KIND", "check_rows", "journal_revocations", "reconcile",
           "row_message", "signed_row"]

_logger = logging.getLogger(__name__)

#: The custodian's event that revokes accreditations (``accreditation_ids``).
REVOKED_KIND = "site.accreditation.revoked"

_CONTEXT = b"sovereign-accreditation-row/v1\n"


def row_message(row: AccreditationRow) -> bytes:
    """The bytes the custodian signs for a row: context string, then the
    canonical JSON of its id, site, SHA-256 of its document, revocation time and
    reason."""
    return _CONTEXT + canonical_bytes({
        "id": row.id, "site": row.site,
        "document_sha256": hashlib.sha256(canonical_bytes(row.document)).hexdigest(),
        "revoked": row.revoked, "reason": row.reason})


def signed_row(row: AccreditationRow, sign: Callable[[bytes], bytes]
               ) -> AccreditationRow:
    """``row`` with the custodian's signature of its state."""
    return AccreditationRow(row.id, row.site, row.document, row.issued, row.revoked,
                            row.reason, b64e(sign(row_message(row))))


def journal_revocations(journal: Journal, custodian: str, public: bytes
                        ) -> dict[str, SignedEntry]:
    """Accreditation id -> the custodian's journalled revocation of it; entries
    not signed by ``public`` as ``custodian`` are ignored and logged."""
    out: dict[str, SignedEntry] = {}
    for entry in journal.find(REVOKED_KIND):
        try:
            if entry.event.actor != custodian or entry.signer != key_id_of(public):
                raise IntegrityError("not this custodian's")
            verify_signature(public, entry.signature, entry.signed_bytes())
        except IntegrityError as exc:
            _logger.error("journal entry %d (%s) ignored: %s", entry.seq,
                          REVOKED_KIND, exc.message)
            continue
        for acc_id in entry.event.body.get("accreditation_ids", []):
            out.setdefault(str(acc_id), entry)
    return out


def check_rows(rows: list[AccreditationRow], revocations: dict[str, SignedEntry],
               public: bytes, *, source: str) -> None:
    """Refuse the accreditation state unless every row is signed by the
    custodian and agrees with the journal.

    Raises
    ------
    IntegrityError
        Naming the first bad row (``field`` = ``accreditations.<id>``).
    """
    for row in rows:
        field = f"accreditations.{row.id}"
        try:
            if row.sig is None:
                raise IntegrityError("unsigned")
            verify_signature(public, b64d(row.sig, what=field), row_message(row))
        except (IntegrityError, ValueError) as exc:
            raise IntegrityError(
                f"accreditation row {row.id} (site {row.site}) is not as the custodian "
                f"signed it ({exc}); releases stop until the operator resolves it "
                "(sovereign nation reconcile)", source=source, field=field) from exc
        revoked = revocations.get(row.id)
        if revoked is not None and row.revoked is None:
            raise IntegrityError(
                f"accreditation row {row.id} (site {row.site}) says live, but the "
                f"custodian revoked it (journal entry {revoked.seq}); releases stop "
                "until the operator resolves it (sovereign nation reconcile)",
                source=source, field=field)
        if revoked is None and row.revoked is not None:
            raise IntegrityError(
                f"accreditation row {row.id} (site {row.site}) says revoked, with no "
                "revocation in the custodian's journal; releases stop until the "
                "operator resolves it (sovereign nation reconcile)", source=source,
                field=field)


def reconcile(rows: list[AccreditationRow], revocations: dict[str, SignedEntry],
              sign: Callable[[bytes], bytes]) -> list[AccreditationRow]:
    """The rows whose state the journal says otherwise (or whose signature is
    missing or bad), re-derived from the journal and re-signed.

    A row the journal revoked is revoked (at that entry's time, for its
    reason); every other row is live.
    """
    fixed = []
    for row in rows:
        entry = revocations.get(row.id)
        revoked, reason = None, None
        if entry is not None:  # the journal's revocation; the row's time if it has one
            revoked = row.revoked or entry.event.time
            reason = row.reason or str(entry.event.body.get("reason"))
        want = signed_row(AccreditationRow(row.id, row.site, row.document,
                                           row.issued, revoked, reason), sign)
        if want != row:
            fixed.append(want)
    return fixed
