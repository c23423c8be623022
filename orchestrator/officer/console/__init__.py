"""The officers' web console: pending approvals, agreements, denials.

A small FastAPI application with server-rendered HTML (Jinja2, autoescaped), one
per nation: it is served for that nation's sovereignty officer only
(``sovereign console serve --as AUS``). Nothing is loaded from another host: the
CSS is inline (CSP nonce) and the only script is the same-origin
``/static/console.js``.

Officers authenticate with their Ed25519 signing key by challenge-response *in
the browser* (WebCrypto): the key file is read and used by the page and never
sent. Approvals are signed the same way and handed to the nation's own
custodian (:func:`orchestrator.nation.approvals.accept_decision`), which
re-verifies the signature against the officer key it pinned. The console keeps
no key and no state but its sessions.

Modules: :mod:`.app` (routes, headers), :mod:`.auth` (login challenges and
sessions), :mod:`.views` (what the dashboard shows).
"""

from __future__ import annotations

from orchestrator.officer.console.app import create_app

__all__ = ["create_app"]
