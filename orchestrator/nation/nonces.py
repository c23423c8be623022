"""Single-use attestation nonces issued by one custodian (SQLite, 0600)."""

from __future__ import annotations

import secrets
import sqlite3
from datetime import datetime, timedelta
from pathlib import Path

from orchestrator.canonical import b64e
from orchestrator.errors import AttestationError, LedgerError
from orchestrator.timeutil import rfc3339

#: How long an issued nonce may wait for its evidence (seconds).
NONCE_LIFETIME_S = 300


class NonceStore:
    """Issue and consume nonces; each is 32 random bytes, usable exactly once."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _connect(self) -> sqlite3.Connection:
        try:
            con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            con.execute("PRAGMA journal_mode=WAL")
            con.execute(
                "CREATE TABLE IF NOT EXISTS nonces (nonce TEXT PRIMARY KEY, "
                "expires TEXT NOT NULL, used INTEGER NOT NULL DEFAULT 0)"
            )
        except sqlite3.Error as exc:
            raise LedgerError(
                f"nonce store unavailable: {exc}", source=str(self.path)
            ) from exc
        return con

    def issue(self, now: datetime) -> str:
        """Return a fresh nonce (base64 of 32 bytes) valid for ``NONCE_LIFETIME_S``."""
        nonce = b64e(secrets.token_bytes(32))
        con = self._connect()
        try:
            con.execute(
                "INSERT INTO nonces (nonce, expires) VALUES (?, ?)",
                (nonce, rfc3339(now + timedelta(seconds=NONCE_LIFETIME_S))),
            )
        finally:
            con.close()
        return nonce

    def consume(self, nonce: str, now: datetime) -> None:
        """Mark ``nonce`` used.

        Raises
        ------
        AttestationError
            If the nonce was never issued here, has expired, or was already used.
        """
        con = self._connect()
        try:
            cur = con.execute(
                "UPDATE nonces SET used=1 WHERE nonce=? AND used=0 AND expires>=?",
                (nonce, rfc3339(now)),
            )
            if cur.rowcount == 1:
                return
            row = con.execute(
                "SELECT used, expires FROM nonces WHERE nonce=?", (nonce,)
            ).fetchone()
        finally:
            con.close()
        if row is None:
            raise AttestationError("evidence nonce was not issued by this custodian")
        if row[0]:
            raise AttestationError("evidence nonce was already used (replay)")
        raise AttestationError(f"evidence nonce expired at {row[1]}")
