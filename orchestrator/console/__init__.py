"""The officers' web console: pending approvals, agreements, denials.

A small FastAPI application with server-rendered HTML (Jinja2, autoescaped), one
per nation: it is served for that nation's sovereignty officer only
(``sovereign console serve --as AUS``). Nothing is loaded from another host: the
CSS is inline (CSP nonce) and the only script is the same-origin
``/static/console.js``.

Officers authenticate with their Ed25519 signing key by challenge-response *in
the browser* (WebCrypto): the key file is read and used by the page and never
sent. Approvals are signed the same way, and recorded with
:func:`orchestrator.approvals.record_decision`, which re-verifies the signature
against the registered officer key.

Modules: :mod:`.app` (routes, headers), :mod:`.auth` (login challenges and
sessions), :mod:`.views` (what the dashboard shows).
"""

from __future__ import annotations

from orchestrator.console.app import create_app

__all__ = ["create_app"]
