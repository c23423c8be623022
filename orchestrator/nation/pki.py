"""A nation's certificate authority: the client certificates it grants.

The nation's CA (:class:`~orchestrator.net.ca.LocalCa` in ``<nation>/pki/``) signs
its custodian service's server certificate and one client certificate per party
it deals with, from that party's CSR (the party's TLS key never leaves it). The
certificate's SPIFFE URI names the role the nation grants
(``spiffe://aus/site/local``, ``spiffe://aus/orchestrator/submit``,
``spiffe://aus/officer/aus``, ``spiffe://aus/log/custody``); the custodian
service authorises every call by it (:mod:`orchestrator.nation.service`).
"""

from __future__ import annotations

import ssl

from orchestrator.nation.identity import NationState
from orchestrator.net import tls

__all__ = ["issue_client", "server_context"]


def issue_client(nation: NationState, csr_pem: bytes, *, role: str, name: str) -> bytes:
    """Issue a client certificate for ``csr_pem`` granting ``role`` to ``name``.

    Raises
    ------
    ConfigError
        Unknown role, a name that is not a plain identifier, or a malformed CSR.
    NotFound
        If the nation has no CA.
    """
    return nation.pki.sign_csr(csr_pem, tls.spiffe_id(nation.code, role, name))


def server_context(nation: NationState) -> ssl.SSLContext:
    """TLS 1.3 server context requiring a client certificate from the nation's CA.

    Raises
    ------
    ConfigError
        If the server certificate, key or CA cannot be loaded.
    """
    pki = nation.pki
    return tls.server_context(pki.server_cert, pki.server_key, pki.ca_cert)
