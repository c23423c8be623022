"""Agreements as the orchestrator sees them: for pre-checks and listings only.

The orchestrator keeps a copy of each agreement document it was given and reads
the officers' signatures and terminations from the public custody log; it
re-verifies them against the officer keys in the nations' cards it registered.
This view routes requests and explains refusals; only each owner's custodian,
on its own records, decides (:mod:`orchestrator.nation.decide`).
"""

from __future__ import annotations

from orchestrator.canonical import b64d
from orchestrator.policy.standing import Standing, effective_in, standings
from orchestrator.protocol.agreements import Agreement
from orchestrator.protocol.statements import statements_in
from orchestrator.submit.context import Orchestrator
from orchestrator.submit.registry import Registry

__all__ = ["effective_agreements", "load_standings"]


def load_standings(orch: Orchestrator) -> list[Standing]:
    """Every agreement version the orchestrator holds, with its standing."""
    registry = Registry(orch.registry_db)
    documents = [Agreement.from_json(d["document"], source=f"agreement {d['id']}")
                 for d in registry.agreement_documents()]
    keys: dict[str, bytes] = {}
    for nation in registry.nations():
        try:
            keys[nation.code] = b64d(nation.officer_public)
        except ValueError:
            continue  # a malformed key never verifies anything
    return standings(documents, statements_in(orch.log.find("agreement.signed")),
                     statements_in(orch.log.find("agreement.terminated")), keys)


def effective_agreements(orch: Orchestrator) -> tuple[list[Agreement], dict[str, str]]:
    """``(effective, ended)`` in the orchestrator's view."""
    return effective_in(load_standings(orch))
