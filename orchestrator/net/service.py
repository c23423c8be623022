"""What every party's HTTP service shares: errors, limits, peer identity, serving.

* :func:`install_common` gives a FastAPI app the wire error mapping
  (:mod:`orchestrator.protocol.wire`), a request body limit (413 above it, before
  anything is parsed) and JSON-only 400s for malformed bodies.
* :func:`peer_identity` reads the client certificate of a mutually authenticated
  connection. uvicorn does not put it in the ASGI scope, so :func:`serve` runs
  uvicorn's h11 protocol with :class:`PeerCertProtocol`, which stores the peer's
  DER certificate in the connection's ``scope["state"]``.
* :class:`ServiceThread` runs a service in a background thread of this process
  (the embedded default, tests); :func:`serve` runs it in the foreground (the
  ``serve`` commands).
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from orchestrator.crypto.x509 import spiffe_id_of
from orchestrator.errors import ConfigError, SovereignError
from orchestrator.net.tls import PeerIdentity
from orchestrator.protocol.wire import error_body

__all__ = [
    "DEFAULT_HOST",
    "MAX_BODY_BYTES",
    "PeerCertProtocol",
    "ServiceThread",
    "free_port",
    "install_common",
    "peer_identity",
    "serve",
]

#: Default bind address: loopback only.
DEFAULT_HOST = "127.0.0.1"
#: Largest request body a service reads (bytes); larger ones get 413.
MAX_BODY_BYTES = 1 << 20
_PEER_CERT = "sovereign.peer_cert_der"


class PeerCertProtocol(H11Protocol):
    """uvicorn's h11 protocol, recording the TLS peer certificate per connection.

    The DER bytes (or ``None``) land in ``scope["state"]`` of every request on
    the connection, where :func:`peer_identity` finds them.
    """

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        ssl_object = transport.get_extra_info("ssl_object")
        der = ssl_object.getpeercert(binary_form=True) if ssl_object else None
        self.app_state = {**self.app_state, _PEER_CERT: der}


def peer_identity(request: Request) -> PeerIdentity | None:
    """The SPIFFE identity in the client certificate, or ``None`` without one."""
    der = request.scope.get("state", {}).get(_PEER_CERT)
    if not der:
        return None
    try:
        return PeerIdentity.parse(spiffe_id_of(bytes(der)))
    except ConfigError:
        return None


class _BodyLimit:
    """ASGI middleware answering 413 to a body over ``limit`` bytes."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.limit:
            await _too_large(self.limit, send)
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await _too_large(self.limit, send)


class _TooLarge(Exception):
    pass


async def _too_large(limit: int, send: Send) -> None:
    _, body = error_body(ConfigError(f"request body over {limit} bytes"))
    response = JSONResponse({**body, "error": "TooLarge"}, status_code=413)
    await response({"type": "http"}, _no_receive, send)


async def _no_receive() -> Message:
    return {"type": "http.disconnect"}


def install_common(app: FastAPI, *, max_body: int = MAX_BODY_BYTES) -> None:
    """Error mapping, body limit and 400 for malformed bodies on ``app``."""

    @app.exception_handler(SovereignError)
    async def sovereign_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SovereignError)
        status, body = error_body(exc)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: Exception) -> JSONResponse:
        status, body = error_body(ConfigError("request body must be a JSON object"))
        return JSONResponse(body, status_code=status)

    app.add_middleware(_BodyLimit, limit=max_body)


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port free on ``host`` right now (for tests and the embedded default)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def _config(app: FastAPI, host: str, port: int, context: Any,
            log_level: str) -> Any:
    import uvicorn

    return uvicorn.Config(
        app, host=host, port=port, log_level=log_level, lifespan="on",
        http=PeerCertProtocol,
        ssl_context_factory=(None if context is None
                             else lambda _config, _default: context),
        timeout_keep_alive=30,
        # Idle keep-alive TLS connections would hold a graceful shutdown for
        # asyncio's 30 s TLS close timeout; in-flight requests get this long.
        timeout_graceful_shutdown=3,
    )


def serve(app: FastAPI, *, host: str, port: int, context: Any,
          log_level: str = "warning") -> None:
    """Run ``app`` in the foreground until SIGINT/SIGTERM (graceful shutdown).

    ``context`` is an :class:`ssl.SSLContext` (:mod:`orchestrator.net.tls`).
    """
    import uvicorn

    uvicorn.Server(_config(app, host, port, context, log_level)).run()


class ServiceThread:
    """A service running in a daemon thread of this process, on loopback.

    Parameters
    ----------
    app
        The FastAPI app.
    context
        Its server TLS context.
    port
        TCP port on 127.0.0.1 (a free one by default).
    """

    def __init__(self, app: FastAPI, context: Any, port: int | None = None) -> None:
        import uvicorn

        self.port = port or free_port()
        self.url = f"https://{DEFAULT_HOST}:{self.port}"
        self._server = uvicorn.Server(_config(app, DEFAULT_HOST, self.port, context,
                                              "warning"))
        self._thread = threading.Thread(target=self._server.run, daemon=True,
                                        name=f"service-{self.port}")

    def start(self, timeout_s: float = 20.0) -> ServiceThread:
        """Start serving; return once the socket accepts connections.

        Raises
        ------
        ConfigError
            If the server did not start within ``timeout_s`` seconds.
        """
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigError(f"service on port {self.port} did not start")
            time.sleep(0.01)
        return self

    def stop(self, grace_s: float = 0.5) -> None:
        """Stop accepting connections, give requests in flight ``grace_s``
        seconds, then close what is left (idle keep-alive connections would
        otherwise wait out asyncio's TLS close timeout); wait for the thread."""
        self._server.should_exit = True
        self._thread.join(timeout=grace_s)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout=30)

    def __enter__(self) -> ServiceThread:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

