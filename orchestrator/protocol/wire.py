"""How errors cross the wire between parties: one HTTP status per error class.

Every service answers a refusal with its class's status and the JSON body
``{"error", "message", "reasons", "outcome", "source", "field"}``; every client
rebuilds the same class from it (:func:`error_from`), so a refusal reads the same
whether the party is in-process or across the network. Anything else a client
cannot read is the caller's "unavailable" error: it fails closed.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.errors import (
    AlreadyExists,
    AttestationError,
    ConfigError,
    DecisionPending,
    IntegrityError,
    LedgerError,
    NotFound,
    PolicyDenied,
    SovereignError,
)

__all__ = ["WIRE_ERRORS", "error_body", "error_from"]

#: Error classes carried over the wire and their HTTP status, most specific first.
WIRE_ERRORS: tuple[tuple[type[SovereignError], int], ...] = (
    (DecisionPending, 409),
    (AlreadyExists, 409),
    (PolicyDenied, 403),
    (AttestationError, 403),
    (IntegrityError, 422),
    (NotFound, 404),
    (LedgerError, 503),
    (ConfigError, 400),
)


def error_body(exc: SovereignError) -> tuple[int, dict[str, Any]]:
    """HTTP status and JSON body for ``exc`` (used by services).

    Returns
    -------
    tuple
        ``(status, body)``; errors outside :data:`WIRE_ERRORS` become
        ``(500, {"error": "SovereignError", ...})``.
    """
    for cls, code in WIRE_ERRORS:
        if isinstance(exc, cls):
            status, name = code, cls.__name__
            break
    else:
        status, name = 500, "SovereignError"
    return status, {
        "error": name,
        "message": exc.message,
        "reasons": list(getattr(exc, "reasons", [])),
        "outcome": getattr(exc, "outcome", None),
        "source": exc.source,
        "field": exc.field,
    }


def error_from(status: int, body: Any,
               unavailable: Callable[[str], SovereignError]) -> SovereignError:
    """Rebuild a service's error from an HTTP error answer.

    A body naming a known class with its expected status gives that class (same
    message, reasons, source and field); anything else gives
    ``unavailable(description)``.
    """
    if isinstance(body, dict):
        name, message = body.get("error"), body.get("message")
        for cls, expected in WIRE_ERRORS:
            if cls.__name__ != name or expected != status or not isinstance(
                    message, str):
                continue
            source, field = body.get("source"), body.get("field")
            source = source if isinstance(source, str) else None
            field = field if isinstance(field, str) else None
            if issubclass(cls, PolicyDenied):
                reasons = body.get("reasons")
                clean = [str(r) for r in reasons] if isinstance(reasons, list) else []
                if cls is DecisionPending:
                    outcome = body.get("outcome")
                    return DecisionPending(
                        message, reasons=clean, source=source, field=field,
                        outcome=outcome if outcome in ("needs-approval", "held")
                        else "needs-approval")
                return PolicyDenied(message, reasons=clean, source=source,
                                    field=field)
            return cls(message, source=source, field=field)
    detail = body.get("message") if isinstance(body, dict) else None
    return unavailable(f"answered HTTP {status}"
                       + (f": {detail}" if isinstance(detail, str) else ""))
