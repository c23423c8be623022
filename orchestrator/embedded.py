"""Composition root of the embedded default: in-process custodians over a state dir.

A network deployment swaps :func:`custodian_connector` for one that returns HTTP
clients of each nation's custodian service; nothing else changes.
"""

from __future__ import annotations

from orchestrator.nation.custodian import LocalCustodian
from orchestrator.release import Custodian
from orchestrator.site.enclave import CustodianConnector
from orchestrator.state import StateDir


def custodian_connector(state: StateDir) -> CustodianConnector:
    """Return a function mapping a nation code to its (local) custodian."""

    def connect(nation: str) -> Custodian:
        return LocalCustodian(state, nation)

    return connect
