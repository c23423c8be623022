"""Composition root of the embedded default: in-process custodians over a state dir.

A nation listed in the nation directory (``sovereign custodian register``) is
reached as a network service over mutual TLS instead; nothing else changes.
"""

from __future__ import annotations

from orchestrator.nation.custodian import LocalCustodian
from orchestrator.nation.directory import load_directory
from orchestrator.protocol.release import Custodian
from orchestrator.site.enclave import CustodianConnector
from orchestrator.state import StateDir


def custodian_connector(state: StateDir) -> CustodianConnector:
    """Return a function mapping a nation code to its custodian.

    A nation listed in the nation directory (``<state>/nations.toml``, see
    :mod:`orchestrator.nation.directory`) is reached over mutual TLS by an
    :class:`~orchestrator.nation.client.HttpCustodian` (one connection per
    connector, i.e. per enclave attempt); any other by an in-process
    :class:`LocalCustodian`.

    Raises
    ------
    ConfigError
        If the nation directory is malformed.
    """
    directory = load_directory(state)
    clients: dict[str, Custodian] = {}

    def connect(nation: str) -> Custodian:
        entry = directory.get(nation)
        if entry is None:
            return LocalCustodian(state, nation)
        if nation not in clients:
            from orchestrator.nation.client import HttpCustodian  # httpx: lazily

            clients[nation] = HttpCustodian.from_entry(entry)
        return clients[nation]

    return connect
