"""Officer login for the console: single-use challenges, verification, sessions.

Challenge-response with the officer's registered Ed25519 key:

1. :meth:`ChallengeStore.issue` makes a fresh random challenge (32 bytes,
   base64url) valid :data:`CHALLENGE_TTL_S` seconds and the exact
   ``console-login/v1`` statement (:mod:`orchestrator.protocol.statements`) the officer
   must sign: ``type``, ``nation`` (the console's), ``issued_at``, ``challenge``,
   ``origin`` (the console's origin, so a signature made for another console or
   a phishing host does not log in here).
2. The browser signs :func:`~orchestrator.protocol.statements.signing_input` of that
   statement with the key file it holds (WebCrypto) and posts it back.
3. :func:`verify_login` checks that the challenge is known, unused and unexpired
   and that the statement is exactly the one issued; the nation's custodian
   checks the signature against the officer key *it pinned* and logs
   ``console.login``; then the challenge is consumed.

:class:`SessionStore` keeps the sessions that follow: a random 32-byte bearer
token (the cookie; only its SHA-256 is stored), a per-session CSRF token, the
approval statements prepared for signing and one flash message.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from orchestrator.canonical import b64d
from orchestrator.errors import IntegrityError, PolicyDenied
from orchestrator.protocol.custodian import CustodianApi
from orchestrator.protocol.statements import SignedStatement
from orchestrator.timeutil import Clock, rfc3339

__all__ = ["CHALLENGE_TTL_S", "LOGIN_TYPE", "SESSION_TTL_S", "ChallengeStore",
           "Session", "SessionStore", "parse_signature", "verify_login"]

#: Statement type an officer signs to log in.
LOGIN_TYPE = "console-login/v1"
#: Seconds a login challenge stays valid.
CHALLENGE_TTL_S = 120
#: Seconds a console session lasts (absolute, from login).
SESSION_TTL_S = 3600
#: Most challenges kept at once (the oldest are dropped first).
MAX_CHALLENGES = 4096


@dataclass
class _Challenge:
    statement: dict[str, Any]
    expires: datetime
    used: bool = False


class ChallengeStore:
    """Single-use login challenges of one console (in memory, thread-safe).

    Parameters
    ----------
    nation
        The console's nation: the ``nation`` of every statement issued.
    origin
        The console's origin (``http://127.0.0.1:8765``), bound into statements.
    clock
        Returns the current aware UTC time.
    ttl_s
        Lifetime of a challenge in seconds.
    """

    def __init__(self, nation: str, origin: str, clock: Clock,
                 ttl_s: int = CHALLENGE_TTL_S) -> None:
        self.nation = nation
        self.origin = origin
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_s)
        self._items: dict[str, _Challenge] = {}
        self._lock = threading.Lock()

    def issue(self) -> dict[str, Any]:
        """A fresh challenge's unsigned ``console-login/v1`` statement."""
        now = self._clock()
        value = secrets.token_urlsafe(32)
        statement = {"type": LOGIN_TYPE, "nation": self.nation,
                     "issued_at": rfc3339(now), "challenge": value,
                     "origin": self.origin}
        with self._lock:
            self._prune(now)
            while len(self._items) >= MAX_CHALLENGES:
                self._items.pop(next(iter(self._items)))
            self._items[value] = _Challenge(statement, now + self._ttl)
        return statement

    def _prune(self, now: datetime) -> None:
        for key in [k for k, c in self._items.items() if c.expires <= now]:
            del self._items[key]

    def _live(self, value: str) -> _Challenge:
        item = self._items.get(value)
        if item is None:
            raise PolicyDenied("login challenge is unknown or has expired; reload "
                               "the login page")
        if item.used:
            raise PolicyDenied("login challenge was already used (replay refused)")
        if item.expires <= self._clock():
            raise PolicyDenied(f"login challenge expired (valid "
                               f"{int(self._ttl.total_seconds())} s); reload the "
                               "login page")
        return item

    def issued(self, value: str) -> dict[str, Any]:
        """The statement issued with challenge ``value``.

        Raises
        ------
        PolicyDenied
            If the challenge is unknown, already used or expired.
        """
        with self._lock:
            return dict(self._live(value).statement)

    def consume(self, value: str) -> None:
        """Mark challenge ``value`` used (atomically: a racing second use fails).

        Raises
        ------
        PolicyDenied
            If the challenge is unknown, already used or expired.
        """
        with self._lock:
            self._live(value).used = True


def verify_login(custodian: CustodianApi, challenges: ChallengeStore,
                 signed: SignedStatement) -> str:
    """Check an officer's signed login statement, then have the nation's
    custodian verify it again under its pinned officer key and log
    ``console.login``. Returns the officer's key id. The challenge is consumed
    only when everything verified.

    Raises
    ------
    PolicyDenied
        The challenge is unknown, already used (a replay) or expired.
    IntegrityError
        The statement is not the one issued (other origin, nation or fields), or
        the custodian does not accept its signature (a wrong key, another
        nation's officer, an altered statement).
    """
    statement = signed.statement
    issued = challenges.issued(str(statement.get("challenge", "")))
    if statement.get("origin") != challenges.origin:
        raise IntegrityError(f"login statement is for origin "
                             f"{statement.get('origin')!r}, not {challenges.origin}")
    if statement != issued:
        raise IntegrityError("login statement differs from the one issued with "
                             "its challenge")
    if signed.nation != challenges.nation:
        raise IntegrityError(f"login statement is signed for {signed.nation}, not "
                             f"{challenges.nation}")
    custodian.console_login(signed)
    challenges.consume(str(statement["challenge"]))
    return signed.key_id


@dataclass
class Session:
    """One logged-in officer.

    Attributes
    ----------
    nation, key_id
        Whose officer key logged in.
    csrf
        Token every POST of this session must carry (form field ``csrf``).
    expires
        Absolute end of the session (aware UTC).
    prepared
        Approval id -> the unsigned ``approval/v1`` statement shown for signing.
    flash
        A one-time message for the next dashboard view.
    """

    nation: str
    key_id: str
    csrf: str
    expires: datetime
    prepared: dict[str, dict[str, Any]] = field(default_factory=dict)
    flash: str | None = None

    def csrf_ok(self, token: str | None) -> bool:
        """True if ``token`` is this session's CSRF token (constant time)."""
        return token is not None and hmac.compare_digest(token.encode(),
                                                         self.csrf.encode())


class SessionStore:
    """Console sessions by bearer token (in memory, thread-safe).

    Only the SHA-256 of each token is kept, so the store itself holds nothing
    that could be replayed as a cookie.
    """

    def __init__(self, clock: Clock, ttl_s: int = SESSION_TTL_S) -> None:
        self._clock = clock
        self._ttl = timedelta(seconds=ttl_s)
        self._items: dict[str, Session] = {}
        self._lock = threading.Lock()

    @property
    def ttl_s(self) -> int:
        """Session lifetime in seconds."""
        return int(self._ttl.total_seconds())

    @staticmethod
    def _key(token: str) -> str:
        return hashlib.sha256(token.encode()).hexdigest()

    def create(self, nation: str, key_id: str) -> tuple[str, Session]:
        """Start a session; return ``(token, session)`` (token: 32 random bytes)."""
        token = secrets.token_urlsafe(32)
        session = Session(nation, key_id, secrets.token_urlsafe(32),
                          self._clock() + self._ttl)
        with self._lock:
            now = self._clock()
            for key in [k for k, s in self._items.items() if s.expires <= now]:
                del self._items[key]
            self._items[self._key(token)] = session
        return token, session

    def get(self, token: str | None) -> Session | None:
        """The live session of ``token``, or ``None`` (unknown or expired)."""
        if not token:
            return None
        with self._lock:
            session = self._items.get(self._key(token))
            if session is not None and session.expires <= self._clock():
                del self._items[self._key(token)]
                return None
            return session

    def drop(self, token: str | None) -> None:
        """End the session of ``token`` (no error if there is none)."""
        if token:
            with self._lock:
                self._items.pop(self._key(token), None)


def parse_signature(text: str) -> bytes:
    """Decode a base64 Ed25519 signature from a form field.

    Raises
    ------
    IntegrityError
        If it is not base64 of 64 bytes.
    """
    try:
        raw = b64d(text, what="signature")
    except ValueError as exc:
        raise IntegrityError(f"malformed signature: {exc}") from exc
    if len(raw) != 64:
        raise IntegrityError(f"signature must be 64 bytes, got {len(raw)}")
    return raw
