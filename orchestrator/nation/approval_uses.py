"""A custodian's durable record of consumed approvals (single use)."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path

from orchestrator.errors import PolicyDenied
from orchestrator.timeutil import rfc3339

__all__ = ["ApprovalUses"]


class ApprovalUses:
    """A custodian's durable record of consumed approvals (single use).

    SQLite at ``<nation dir>/approvals.db`` (WAL, ``synchronous=FULL``): one row
    per approval id with the job, request digest and agreement it admitted.
    Survives custodian restarts. An approval admits exactly one job: presented
    for any other job it is refused as a replay. Deciding the *same* job again
    (when a co-owner's officer approves later and the job resumes) re-uses that
    admission, checked as of the instant of use, and consumes nothing.
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        with self._db() as con:
            con.execute("CREATE TABLE IF NOT EXISTS used (approval_id TEXT PRIMARY KEY,"
                        " job_id TEXT NOT NULL, request_digest TEXT NOT NULL,"
                        " used_at TEXT NOT NULL, expires_at TEXT NOT NULL,"
                        " agreement_id TEXT NOT NULL)")

    @contextmanager
    def _db(self) -> Iterator[sqlite3.Connection]:
        with closing(sqlite3.connect(self.path, timeout=30,
                                     isolation_level=None)) as con:
            con.execute("PRAGMA journal_mode=WAL")
            con.execute("PRAGMA synchronous=FULL")
            yield con

    def use(self, approval_id: str, *, job_id: str, request_digest: str,
            expires_at: datetime, now: datetime, agreement_id: str = "") -> None:
        """Consume ``approval_id`` for ``job_id``.

        Raises
        ------
        PolicyDenied
            If it was already used (by any job): a replay.
        """
        with self._db() as con:
            try:
                con.execute("INSERT INTO used VALUES (?,?,?,?,?,?)",
                            (approval_id, job_id, request_digest, rfc3339(now),
                             rfc3339(expires_at), agreement_id))
            except sqlite3.IntegrityError:
                row = con.execute("SELECT job_id, used_at FROM used WHERE "
                                  "approval_id=?", (approval_id,)).fetchone()
                raise PolicyDenied("approval replayed", reasons=[
                    f"approval: {approval_id} was already used by job {row[0]} at "
                    f"{row[1]} (single use)"]) from None

    def used_for(self, job_id: str) -> list[tuple[str, str, str, str, str]]:
        """``(approval_id, request_digest, used_at, expires_at, agreement_id)`` of
        the approvals ``job_id`` used."""
        with self._db() as con:
            rows = con.execute("SELECT approval_id, request_digest, used_at, "
                               "expires_at, agreement_id FROM used WHERE job_id=?",
                               (job_id,)).fetchall()
        return [(str(a), str(d), str(t), str(e), str(g)) for a, d, t, e, g in rows]

    def used_for_approval(self, approval_id: str) -> list[tuple[str, str]]:
        """``(job_id, used_at)`` if ``approval_id`` was used, else ``[]``."""
        with self._db() as con:
            rows = con.execute("SELECT job_id, used_at FROM used WHERE approval_id=?",
                               (approval_id,)).fetchall()
        return [(str(j), str(t)) for j, t in rows]
