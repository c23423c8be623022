"""Custody log: signed, hash-linked records of every step of a sovereign job.

See :mod:`orchestrator.ledger.events` (events and entries),
:mod:`orchestrator.ledger.store` (the SQLite log) and
:mod:`orchestrator.ledger.verify` (offline verification).
"""

from orchestrator.ledger.events import (
    EVENT_KINDS,
    ZERO_HASH,
    CustodyEvent,
    SignedEntry,
    Signer,
    leaf_hash,
    new_event_id,
    signed_bytes_for,
    utc_now,
)
from orchestrator.ledger.store import CustodyLog, StoredRow
from orchestrator.ledger.verify import (
    TrustedKey,
    VerifyReport,
    verify_entries,
    verify_log,
)

__all__ = [
    "EVENT_KINDS",
    "ZERO_HASH",
    "CustodyEvent",
    "CustodyLog",
    "SignedEntry",
    "Signer",
    "StoredRow",
    "TrustedKey",
    "VerifyReport",
    "leaf_hash",
    "new_event_id",
    "signed_bytes_for",
    "utc_now",
    "verify_entries",
    "verify_log",
]
