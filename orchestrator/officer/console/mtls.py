"""Mutual TLS for the officers' console: only the nation's own officer gets in.

With ``sovereign console serve --client-ca CA`` the console's TLS context
requires a client certificate chaining to ``CA`` (the nation's CA: every
party's certificate from it carries a SPIFFE-style identity
``spiffe://<nation>/<role>/<name>``), and :class:`OfficerOnly` then admits a
request only when that identity is the nation's own officer
(``spiffe://aus/officer/aus`` for AUS's console). A certificate of another
role, or of another nation's officer issued by the same CA, gets 403 and a
one-line page; no certificate at all fails the TLS handshake. The browser login
(the officer key's signature over a challenge) still follows: the certificate
says which machine and account connects, the key who signs.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from orchestrator.net.service import peer_identity

__all__ = ["OfficerOnly"]


class OfficerOnly:
    """ASGI middleware admitting only ``nation``'s officer's client certificate.

    Parameters
    ----------
    app
        The console application.
    nation
        ISO 3166-1 alpha-3 code of the console's nation.
    """

    def __init__(self, app: ASGIApp, nation: str) -> None:
        self.app = app
        self.nation = nation.lower()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        peer = peer_identity(Request(scope))
        expected = f"spiffe://{self.nation}/officer/{self.nation}"
        if peer is None or str(peer) != expected:
            who: Any = peer if peer is not None else "no SPIFFE identity"
            response = PlainTextResponse(
                f"403: this console admits only {expected}, not {who}\n",
                status_code=403)
            await response(scope, receive, send)
            return
        await self.app(scope, receive, send)
