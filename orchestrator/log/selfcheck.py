"""The log operator's self-check: stored rows against the leaves they hold.

Besides what every verifier checks (:mod:`orchestrator.tlog.verify`), the
operator can check its own storage: each row's leaf parses and its indexed
columns agree with the leaf, which catches rows edited directly in the
database.
"""

from __future__ import annotations

from collections.abc import Mapping

from orchestrator.log.store import CustodyLog
from orchestrator.tlog.events import SignedEntry, leaf_hash
from orchestrator.tlog.verify import ChainVerifier, TrustedKey, VerifyReport

__all__ = ["verify_log"]


def verify_log(log: CustodyLog, keys: Mapping[str, TrustedKey], *,
               expected_size: int | None = None,
               expected_head: str | None = None) -> VerifyReport:
    """Verify a stored custody log, including its raw rows.

    Besides :func:`verify_entries`, checks that each row's leaf parses and that its
    ``seq``, ``event_id``, ``kind``, ``actor``, ``time`` and ``entry_hash`` columns
    agree with the leaf (catches rows edited directly in the database).

    Raises
    ------
    LedgerVerificationError
        At the first bad entry (0-based position in the log).
    LedgerError
        If the file cannot be read.
    """
    source = str(log.path)
    verifier = ChainVerifier(keys, source)
    for i, row in enumerate(log.rows()):
        try:
            entry = SignedEntry.from_leaf(row.leaf)
        except ValueError as exc:
            raise verifier.fail(i, f"stored leaf does not parse: {exc}") from exc
        stored = (row.seq, row.event_id, row.kind, row.actor, row.time)
        parsed = (entry.seq, entry.event.event_id, entry.event.kind,
                  entry.event.actor, entry.event.time)
        names = ("seq", "event_id", "kind", "actor", "time")
        for name, col, val in zip(names, stored, parsed, strict=True):
            if col != val:
                raise verifier.fail(i, f"stored {name} column {col!r} disagrees with "
                                       f"the leaf ({val!r})")
        if row.entry_hash != leaf_hash(row.leaf):
            raise verifier.fail(i, f"stored entry_hash {row.entry_hash} is not the "
                                   "hash of the stored leaf")
        verifier.check(entry)
    return verifier.finish(expected_size, expected_head)
