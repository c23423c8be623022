"""Agreement standings from a state directory's registry and custody log."""

from __future__ import annotations

from typing import Any

from orchestrator.canonical import b64d
from orchestrator.policy.standing import (
    AgreementStatus,
    Standing,
    effective_in,
    standings,
)
from orchestrator.protocol.agreements import Agreement
from orchestrator.protocol.statements import statements_in

__all__ = ["AgreementStatus", "Standing", "effective_agreements", "load_standings"]


def load_standings(state: Any) -> list[Standing]:
    """:func:`standings` over ``state``'s registry and custody log.

    ``state`` is a :class:`~orchestrator.state.StateDir`. Statements are read from
    the bodies of ``agreement.signed`` and ``agreement.terminated`` entries (a
    malformed body is ignored, as a bad signature is).
    """
    from orchestrator.log.store import CustodyLog
    from orchestrator.registry import Registry

    registry = Registry(state.registry_db)
    log = CustodyLog(state.custody_db)
    documents = [Agreement.from_json(d["document"], source=f"agreement {d['id']}")
                 for d in registry.agreement_documents()]
    keys: dict[str, bytes] = {}
    for nation in registry.nations():
        try:
            keys[nation.code] = b64d(nation.officer_public)
        except ValueError:
            continue  # a malformed key never verifies anything
    return standings(
        documents,
        statements_in(log.find("agreement.signed")),
        statements_in(log.find("agreement.terminated")),
        keys,
        {e.event.body["agreement_id"]: str(e.event.body.get("reason") or "revoked")
         for e in log.find("agreement.revoked")},
    )


def effective_agreements(state: Any) -> tuple[list[Agreement], dict[str, str]]:
    """:func:`~orchestrator.policy.standing.effective_in` over ``state``."""
    return effective_in(load_standings(state))
