"""Per-attempt grant state of one custodian (SQLite, in the nation's directory).

A grant released by :meth:`LocalCustodian.release_key` is recorded here, bound to
(job, attempt, request digest, dataset) with the attempt's lease expiry (48 h:
``ATTEMPT_LEASE_S``; the sealed DEK itself is for immediate use). When the
attempt later asks the same custodian to wrap an output DEK it must present that grant's
id; :meth:`GrantStore.use` refuses, with a specific reason, a grant that

* was not issued by this custodian (another nation's, or invented): *foreign*;
* belongs to another job or attempt: *foreign*;
* has expired (by the custodian's clock);
* was already used to wrap the same object: *replayed*.

The use is recorded in the same transaction as the check (``BEGIN IMMEDIATE``),
so two concurrent wraps of one object cannot both pass.
"""

from __future__ import annotations

import sqlite3
from datetime import datetime
from pathlib import Path

from orchestrator.errors import LedgerError, PolicyDenied
from orchestrator.timeutil import parse_rfc3339, rfc3339

__all__ = ["GrantStore"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS grants (grant_id TEXT PRIMARY KEY, job_id TEXT NOT "
    "NULL, attempt_id TEXT NOT NULL, dataset_id TEXT NOT NULL, request_digest TEXT "
    "NOT NULL, expires TEXT NOT NULL)",
    "CREATE TABLE IF NOT EXISTS grant_uses (grant_id TEXT NOT NULL, object_id TEXT "
    "NOT NULL, used TEXT NOT NULL, PRIMARY KEY (grant_id, object_id))",
)


class GrantStore:
    """Issue and check the grants of one custodian."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            for statement in _SCHEMA:
                con.execute(statement)
        except sqlite3.Error as exc:
            raise LedgerError(f"grant store unavailable: {exc}",
                              source=str(self.path)) from exc
        return con

    def issue(self, grant_id: str, *, job_id: str, attempt_id: str, dataset_id: str,
              request_digest: str, expires: datetime) -> None:
        """Record a released grant (before it is returned to the enclave)."""
        con = self._connect()
        try:
            con.execute("INSERT INTO grants VALUES (?,?,?,?,?,?)",
                        (grant_id, job_id, attempt_id, dataset_id, request_digest,
                         rfc3339(expires)))
        except sqlite3.Error as exc:
            raise LedgerError(f"cannot record grant: {exc}",
                              source=str(self.path)) from exc
        finally:
            con.close()

    def use(self, grant_id: str, *, job_id: str, attempt_id: str, object_id: str,
            now: datetime) -> None:
        """Check ``grant_id`` for this job, attempt and object; record its use.

        Raises
        ------
        PolicyDenied
            ``grant: ...`` naming why: missing, foreign, expired or replayed.
        """
        if not grant_id:
            raise PolicyDenied("wrap refused",
                               reasons=["grant: the request presents no grant id"])
        con = self._connect()
        try:
            con.execute("BEGIN IMMEDIATE")
            row = con.execute(
                "SELECT job_id, attempt_id, expires FROM grants WHERE grant_id=?",
                (grant_id,)).fetchone()
            reason = _refusal(grant_id, row, job_id, attempt_id, now)
            if reason is None:
                try:
                    con.execute("INSERT INTO grant_uses VALUES (?,?,?)",
                                (grant_id, object_id, rfc3339(now)))
                except sqlite3.IntegrityError:
                    reason = (f"grant: {grant_id} was already used to wrap "
                              f"{object_id} (replay)")
            con.execute("COMMIT" if reason is None else "ROLLBACK")
        except sqlite3.Error as exc:
            raise LedgerError(f"grant store unavailable: {exc}",
                              source=str(self.path)) from exc
        finally:
            con.close()
        if reason is not None:
            raise PolicyDenied("wrap refused", reasons=[reason])


def _refusal(grant_id: str, row: tuple[str, str, str] | None, job_id: str,
             attempt_id: str, now: datetime) -> str | None:
    if row is None:
        return f"grant: {grant_id} was not issued by this custodian (foreign)"
    if row[0] != job_id or row[1] != attempt_id:
        return (f"grant: {grant_id} belongs to job {row[0]} attempt {row[1]}, not "
                f"job {job_id} attempt {attempt_id} (foreign)")
    if now > parse_rfc3339(row[2]):
        return f"grant: {grant_id} expired at {row[2]}"
    return None
