"""HTTP client of a nation's custodian service, over mutual TLS.

:class:`HttpCustodian` implements :class:`orchestrator.protocol.release.Custodian`, so
the
enclave and the submit pipeline use it exactly like the in-process
:class:`~orchestrator.nation.custodian.LocalCustodian`. It pins the nation's CA
(never the system trust store), presents its client certificate and speaks
TLS 1.3 only (RFC 8446).

It fails closed: a refusal arrives as the same error class the custodian raised
(:class:`~orchestrator.errors.PolicyDenied` with its reasons,
:class:`~orchestrator.errors.AttestationError`, ...), and any transport error, TLS
failure, unexpected status or malformed answer raises
:class:`CustodianUnavailable`. No code path returns a key it could not check.
"""

from __future__ import annotations

import weakref
from pathlib import Path
from typing import Any

import httpx

from orchestrator.errors import ConfigError, IntegrityError, SovereignError
from orchestrator.nation.directory import NationEntry
from orchestrator.nation.pki import client_context
from orchestrator.protocol.release import (
    Grant,
    JobRequest,
    ReleaseRequest,
    WrappedKey,
    WrapRequest,
)
from orchestrator.protocol.wire import error_from as wire_error_from

#: Seconds to establish TCP + TLS.
CONNECT_TIMEOUT_S = 5.0
#: Seconds to wait for an answer (a release waits for a durable log append).
READ_TIMEOUT_S = 30.0


class CustodianUnavailable(SovereignError):
    """The custodian service could not be reached or answered unexpectedly.

    Covers refused connections, timeouts, TLS handshake and certificate
    verification failures, unexpected HTTP statuses and malformed bodies. Nothing
    was released to the caller.
    """

    exit_code = 7


def error_from(status: int, body: Any, nation: str) -> SovereignError:
    """Rebuild the custodian's error from an HTTP error answer (see
    :func:`orchestrator.protocol.wire.error_from`); anything unreadable is
    :class:`CustodianUnavailable`."""
    return wire_error_from(status, body, lambda what: CustodianUnavailable(
        f"custodian {nation} {what}"))


class HttpCustodian:
    """A nation's custodian service reached at ``url`` over mutual TLS.

    Parameters
    ----------
    nation
        ISO 3166-1 alpha-3 code the service must serve (checked in answers).
    url
        ``https://HOST:PORT`` of the service.
    ca
        PEM file of the nation's CA: the only trust anchor for the server.
    cert, key
        Client certificate and key to present (issued by the same CA).
    connect_timeout, read_timeout
        Timeouts in seconds.

    Raises
    ------
    ConfigError
        If the CA, certificate or key cannot be loaded.
    """

    def __init__(
        self,
        nation: str,
        url: str,
        *,
        ca: Path,
        cert: Path | None,
        key: Path | None,
        connect_timeout: float = CONNECT_TIMEOUT_S,
        read_timeout: float = READ_TIMEOUT_S,
    ) -> None:
        self._nation = nation
        self._url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self._url,
            verify=client_context(ca, cert, key),
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            trust_env=False,
            follow_redirects=False,
        )
        self._finalizer = weakref.finalize(self, self._http.close)

    @classmethod
    def from_entry(cls, entry: NationEntry, **timeouts: float) -> HttpCustodian:
        """Client for a nation directory entry."""
        return cls(
            entry.nation,
            entry.url,
            ca=entry.ca,
            cert=entry.cert,
            key=entry.key,
            **timeouts,
        )

    @property
    def nation(self) -> str:
        """ISO 3166-1 alpha-3 code of the nation this custodian serves."""
        return self._nation

    def close(self) -> None:
        """Close the HTTP connection pool."""
        self._finalizer()

    def __enter__(self) -> HttpCustodian:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    # -- transport -------------------------------------------------------------
    def _call(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise CustodianUnavailable(
                f"custodian {self._nation} at {self._url} unreachable: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200:
            raise error_from(response.status_code, data, self._nation)
        if not isinstance(data, dict):
            raise CustodianUnavailable(
                f"custodian {self._nation} answered {path} with a non-object body"
            )
        return data

    def _parse(self, what: str, parse: Any, data: Any) -> Any:
        try:
            return parse(data)
        except (ConfigError, TypeError) as exc:
            raise CustodianUnavailable(
                f"custodian {self._nation} sent a malformed {what}: {exc}"
            ) from exc

    # -- Custodian ---------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``GET /v1/health``: the service's nation, pid and counters.

        Raises
        ------
        CustodianUnavailable
            If the service is unreachable or serves another nation.
        """
        data = self._call("GET", "/v1/health")
        if data.get("nation") != self._nation:
            raise CustodianUnavailable(
                f"service at {self._url} serves {data.get('nation')!r}, "
                f"not {self._nation}"
            )
        return data

    def challenge(self) -> str:
        """``POST /v1/challenge``: a fresh single-use nonce (base64).

        Raises
        ------
        CustodianUnavailable
            On any transport, TLS or protocol failure.
        """
        nonce = self._call("POST", "/v1/challenge", {}).get("nonce")
        if not isinstance(nonce, str) or not nonce:
            raise CustodianUnavailable(f"custodian {self._nation} sent no nonce")
        return nonce

    def decide(self, request: JobRequest) -> dict[str, Any]:
        """``POST /v1/decide``; see
        :meth:`orchestrator.protocol.release.Custodian.decide`.

        Raises
        ------
        PolicyDenied
            With the custodian's reasons, unless the decision is a permit.
        NotFound
            If the custodian does not know the dataset or site.
        CustodianUnavailable
            On any transport, TLS or protocol failure.
        """
        return self._call("POST", "/v1/decide", request.to_json())

    def release_key(self, request: ReleaseRequest) -> Grant:
        """``POST /v1/release``; see :meth:`Custodian.release_key`.

        The grant must name this nation and this exact request.

        Raises
        ------
        AttestationError, PolicyDenied, LedgerError
            As raised by the custodian.
        IntegrityError
            If the grant is bound to another owner or request.
        CustodianUnavailable
            On any transport, TLS or protocol failure.
        """
        data = self._call("POST", "/v1/release", request.to_json())
        grant: Grant = self._parse("grant", Grant.from_json, data)
        if grant.owner != self._nation or grant.request_digest != request.digest():
            raise IntegrityError(
                f"grant from {self._nation} is bound to another owner or request",
                source=grant.grant_id,
            )
        return grant

    def wrap_key(self, request: WrapRequest) -> WrappedKey:
        """``POST /v1/wrap``; see :meth:`Custodian.wrap_key`.

        Raises
        ------
        AttestationError, PolicyDenied, IntegrityError
            As raised by the custodian.
        CustodianUnavailable
            On any transport, TLS or protocol failure.
        """
        data = self._call("POST", "/v1/wrap", request.to_json())
        key: WrappedKey = self._parse("wrapped key", WrappedKey.from_json, data)
        if key.owner != self._nation:
            raise IntegrityError(f"wrapped key from {self._nation} names {key.owner}")
        return key
