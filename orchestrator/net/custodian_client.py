"""HTTP client of a nation's custodian service, over mutual TLS.

:class:`HttpCustodian` implements :class:`orchestrator.protocol.custodian.
CustodianApi`, so enclaves, the orchestrator and officers use it exactly like the
in-process :class:`~orchestrator.nation.custodian.LocalCustodian`. It pins the
nation's CA (never the system trust store), presents the caller's own client
certificate (whose SPIFFE identity the service authorises by role) and speaks
TLS 1.3 only (RFC 8446).

It fails closed: a refusal arrives as the same error class the custodian raised
(:class:`~orchestrator.errors.PolicyDenied` with its reasons, ...), and any
transport error, TLS failure, unexpected status or malformed answer raises
:class:`CustodianUnavailable`. No code path returns a key it could not check.
"""

from __future__ import annotations

import base64
import weakref
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from orchestrator.errors import ConfigError, IntegrityError, SovereignError
from orchestrator.net.tls import client_context
from orchestrator.protocol.log import SignedEvent
from orchestrator.protocol.release import (
    Grant,
    JobRequest,
    ReleaseRequest,
    WrappedKey,
    WrapRequest,
)
from orchestrator.protocol.statements import SignedStatement
from orchestrator.protocol.wire import error_from as wire_error_from
from orchestrator.timeutil import rfc3339
from orchestrator.tlog.events import SignedEntry

__all__ = ["CustodianUnavailable", "HttpCustodian", "NationEntry", "error_from"]

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


@dataclass(frozen=True)
class NationEntry:
    """How one party reaches one nation's custodian service.

    Attributes
    ----------
    nation
        ISO 3166-1 alpha-3 code.
    url
        ``https://HOST:PORT``.
    ca
        The nation's CA certificate (PEM file): the only trust anchor.
    cert, key
        The caller's own client certificate (issued by that CA) and key.
    """

    nation: str
    url: str
    ca: Path
    cert: Path | None = None
    key: Path | None = None

    def to_json(self) -> dict[str, Any]:
        """JSON-able dict (paths as text, absent client identity omitted)."""
        data: dict[str, Any] = {"url": self.url, "ca": str(self.ca)}
        if self.cert is not None and self.key is not None:
            data["cert"] = str(self.cert)
            data["key"] = str(self.key)
        return data


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

    def __init__(self, nation: str, url: str, *, ca: Path | bytes, cert: Path | None,
                 key: Path | None, connect_timeout: float = CONNECT_TIMEOUT_S,
                 read_timeout: float = READ_TIMEOUT_S) -> None:
        self._nation = nation
        self._url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self._url, verify=client_context(ca, cert, key),
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            trust_env=False, follow_redirects=False)
        self._finalizer = weakref.finalize(self, self._http.close)

    @classmethod
    def from_entry(cls, entry: NationEntry, **timeouts: float) -> HttpCustodian:
        """Client for a directory entry."""
        return cls(entry.nation, entry.url, ca=entry.ca, cert=entry.cert,
                   key=entry.key, **timeouts)

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
    def _response(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise CustodianUnavailable(
                f"custodian {self._nation} at {self._url} unreachable: "
                f"{type(exc).__name__}: {exc}") from exc

    def _call(self, method: str, path: str, body: Any = None,
              params: dict[str, Any] | None = None) -> Any:
        response = self._response(method, path, json=body, params=params)
        try:
            data = response.json()
        except ValueError:
            data = None
        if response.status_code != 200:
            raise error_from(response.status_code, data, self._nation)
        if not isinstance(data, dict | list):
            raise CustodianUnavailable(
                f"custodian {self._nation} answered {path} with a non-JSON body")
        return data

    def _dict(self, method: str, path: str, body: Any = None) -> dict[str, Any]:
        data = self._call(method, path, body)
        if not isinstance(data, dict):
            raise CustodianUnavailable(f"custodian {self._nation} answered {path} "
                                       "with a non-object body")
        return data

    def _list(self, path: str, params: dict[str, Any] | None = None
              ) -> list[dict[str, Any]]:
        data = self._call("GET", path, params=params)
        if not isinstance(data, list):
            raise CustodianUnavailable(f"custodian {self._nation} answered {path} "
                                       "with a non-list body")
        return data

    def _parse(self, what: str, parse: Any, data: Any) -> Any:
        try:
            return parse(data)
        except (ConfigError, TypeError, ValueError, KeyError) as exc:
            raise CustodianUnavailable(
                f"custodian {self._nation} sent a malformed {what}: {exc}") from exc

    def _entry(self, data: dict[str, Any]) -> SignedEntry:
        entry: SignedEntry = self._parse("entry", lambda d: SignedEntry.from_leaf(
            base64.b64decode(d["leaf"], validate=True)), data)
        return entry

    def _dek(self, data: dict[str, Any]) -> bytes:
        dek: bytes = self._parse("key", lambda d: base64.b64decode(d["dek"],
                                                                   validate=True), data)
        return dek

    # -- key release -------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``GET /v1/health``: the service's nation, pid and counters.

        Raises
        ------
        CustodianUnavailable
            If the service is unreachable or serves another nation.
        """
        data = self._dict("GET", "/v1/health")
        if data.get("nation") != self._nation:
            raise CustodianUnavailable(f"service at {self._url} serves "
                                       f"{data.get('nation')!r}, not {self._nation}")
        return data

    def challenge(self) -> str:
        """``POST /v1/challenge``: a fresh single-use nonce (base64)."""
        nonce = self._dict("POST", "/v1/challenge", {}).get("nonce")
        if not isinstance(nonce, str) or not nonce:
            raise CustodianUnavailable(f"custodian {self._nation} sent no nonce")
        return nonce

    def decide(self, request: JobRequest) -> dict[str, Any]:
        """``POST /v1/decide``; see
        :meth:`orchestrator.protocol.release.Custodian.decide`."""
        return self._dict("POST", "/v1/decide", request.to_json())

    def release_key(self, request: ReleaseRequest) -> Grant:
        """``POST /v1/release``; the grant must name this nation and request.

        Raises
        ------
        IntegrityError
            If the grant is bound to another owner or request.
        """
        data = self._dict("POST", "/v1/release", request.to_json())
        grant: Grant = self._parse("grant", Grant.from_json, data)
        if grant.owner != self._nation or grant.request_digest != request.digest():
            raise IntegrityError(
                f"grant from {self._nation} is bound to another owner or request",
                source=grant.grant_id)
        return grant

    def wrap_key(self, request: WrapRequest) -> WrappedKey:
        """``POST /v1/wrap``; see :meth:`Custodian.wrap_key`."""
        data = self._dict("POST", "/v1/wrap", request.to_json())
        key: WrappedKey = self._parse("wrapped key", WrappedKey.from_json, data)
        if key.owner != self._nation:
            raise IntegrityError(f"wrapped key from {self._nation} names {key.owner}")
        return key

    # -- the rest of CustodianApi ----------------------------------------------
    def card(self) -> dict[str, Any]:
        """``GET /v1/card``."""
        return self._dict("GET", "/v1/card")

    def add_agreement(self, document: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/agreements``."""
        return self._dict("POST", "/v1/agreements", document)

    def standings(self) -> list[dict[str, Any]]:
        """``GET /v1/agreements``."""
        return self._list("/v1/agreements")

    def accept(self, signed: SignedEvent) -> SignedEntry:
        """``POST /v1/events``."""
        return self._entry(self._dict("POST", "/v1/events", signed.to_json()))

    def accept_allocation(self, seq: int) -> SignedEntry:
        """``POST /v1/allocations``: the custodian reads entry ``seq`` back from the
        log and journals it; returns that entry."""
        entry = self._entry(self._dict("POST", "/v1/allocations", {"seq": seq}))
        if entry.seq != seq:
            raise CustodianUnavailable(f"custodian {self._nation} journaled entry "
                                       f"{entry.seq}, not {seq}")
        return entry

    def accept_dataset_share(self, share: dict[str, Any]) -> str:
        """``POST /v1/datasets/shares``."""
        return str(self._dict("POST", "/v1/datasets/shares", share)["dataset_id"])

    def cancel_job(self, job_id: str, reason: str) -> list[str]:
        """``POST /v1/jobs/<id>/cancel``."""
        data = self._dict("POST", f"/v1/jobs/{job_id}/cancel", {"reason": reason})
        return [str(x) for x in data.get("cancelled", [])]

    def export_model_key(self, request: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/transfers/export``."""
        return self._dict("POST", "/v1/transfers/export", request)

    def import_model_key(self, sealed: dict[str, Any]) -> dict[str, Any]:
        """``POST /v1/transfers/import``."""
        return self._dict("POST", "/v1/transfers/import", sealed)

    def approvals(self, status: str | None = None) -> list[dict[str, Any]]:
        """``GET /v1/approvals``."""
        return self._list("/v1/approvals",
                          {"status": status} if status is not None else None)

    def decide_approval(self, signed: SignedStatement) -> dict[str, Any]:
        """``POST /v1/approvals/decisions``."""
        return self._dict("POST", "/v1/approvals/decisions", signed.to_json())

    def console_login(self, signed: SignedStatement) -> int:
        """``POST /v1/console/logins``."""
        return int(self._dict("POST", "/v1/console/logins", signed.to_json())["seq"])

    def accredit(self, description: dict[str, Any], *, ceiling: str,
                 tee_kinds: list[str], expires_at: datetime,
                 operator_nation: str | None = None) -> dict[str, Any]:
        """``POST /v1/accreditations``."""
        return self._dict("POST", "/v1/accreditations", {
            "description": description, "ceiling": ceiling, "tee_kinds": tee_kinds,
            "expires_at": rfc3339(expires_at), "operator_nation": operator_nation})

    def revoke_accreditation(self, site: str, reason: str) -> list[str]:
        """``POST /v1/accreditations/<site>/revoke``."""
        data = self._dict("POST", f"/v1/accreditations/{site}/revoke",
                          {"reason": reason})
        return [str(x) for x in data.get("revoked", [])]

    def accreditations(self, site: str | None = None) -> list[dict[str, Any]]:
        """``GET /v1/accreditations``."""
        return self._list("/v1/accreditations",
                          {"site": site} if site is not None else None)

    def open_model_key(self, object_id: str) -> bytes:
        """``POST /v1/objects/<id>/open``."""
        return self._dek(self._dict("POST", f"/v1/objects/{object_id}/open", {}))

    def open_transferred_key(self, transfer_id: str, model_id: str,
                             model_digest: str) -> bytes:
        """``POST /v1/transfers/<id>/open``."""
        return self._dek(self._dict("POST", f"/v1/transfers/{transfer_id}/open",
                                    {"model_id": model_id,
                                     "model_digest": model_digest}))

    def witness_history(self, origin: str) -> bytes:
        """``GET /v1/witness/history?origin=``: the witness's first cosigned
        checkpoint of that log (``b""`` if none)."""
        data = self._call("GET", "/v1/witness/history", params={"origin": origin})
        note = data.get("note") if isinstance(data, dict) else None
        if not isinstance(note, str):
            raise CustodianUnavailable(f"custodian {self._nation} answered its "
                                       "witness history without a note")
        return note.encode("utf-8")

    def witness(self, body: bytes) -> bytes:
        """``POST /add-checkpoint`` (C2SP tlog-witness): the cosignature lines.

        Raises
        ------
        WitnessRefusal
            With the witness's status (and size, for a 409).
        """
        from orchestrator.tlog.witness_api import SIZE_MEDIA_TYPE, WitnessRefusal

        response = self._response("POST", "/add-checkpoint", content=body,
                                  headers={"content-type": "text/plain"})
        if response.status_code == 200:
            return response.content
        size = None
        if response.status_code == 409 and response.headers.get(
                "content-type", "") == SIZE_MEDIA_TYPE:  # exactly (tlog-witness)
            try:
                size = int(response.text.strip())
            except ValueError:
                size = None
        if response.status_code == 403 and response.headers.get(
                "content-type", "").startswith("application/json"):
            try:
                raise error_from(403, response.json(), self._nation)
            except ValueError:
                pass
        raise WitnessRefusal(response.status_code, response.text.strip(), size=size)
