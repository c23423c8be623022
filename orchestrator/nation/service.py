"""A nation's custodian as a network service: FastAPI over mutual TLS.

``sovereign custodian serve --nation AUS`` runs :func:`serve`: a uvicorn server
whose TLS 1.3 context (RFC 8446) presents the custodian's server certificate and
*requires* a client certificate issued by the nation's own CA
(:mod:`orchestrator.nation.pki`); a client without one fails the handshake. Behind
it sits one :class:`~orchestrator.nation.custodian.LocalCustodian` over the
nation's state, so this process is the only one that reads the nation's KEK.

Endpoints (JSON bodies, the messages of :mod:`orchestrator.protocol.release`):

* ``POST /v1/challenge`` ``{}`` -> ``{"nonce": ...}``;
* ``POST /v1/decide`` :class:`~orchestrator.protocol.release.JobRequest` -> decision
JSON;
* ``POST /v1/release`` :class:`~orchestrator.protocol.release.ReleaseRequest` ->
``Grant``;
* ``POST /v1/wrap`` :class:`~orchestrator.protocol.release.WrapRequest` ->
``WrappedKey``;
* ``GET /v1/health`` -> ``{"status", "nation", "pid", "served": {op: count}}``.

Refusals keep their class: ``PolicyDenied`` and ``AttestationError`` are 403,
``IntegrityError`` 422, ``NotFound`` 404, ``LedgerError`` 503, malformed requests
(``ConfigError``) 400, with body ``{"error", "message", "reasons", "source",
"field"}`` (see :func:`orchestrator.protocol.wire.error_body`). Any other failure
is a bare 500: nothing is released.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from typing import Annotated, Any

from fastapi import Body, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from orchestrator.errors import ConfigError, SovereignError
from orchestrator.protocol.release import (
    Custodian,
    JobRequest,
    ReleaseRequest,
    WrapRequest,
)
from orchestrator.protocol.wire import error_body
from orchestrator.state import StateDir

#: Default bind address: loopback only.
DEFAULT_HOST = "127.0.0.1"
#: Default TCP port.
DEFAULT_PORT = 8443

JsonBody = Annotated[dict[str, Any], Body()]


def create_app(custodian: Custodian) -> FastAPI:
    """The FastAPI application serving ``custodian`` (no TLS: see :func:`serve`).

    Parameters
    ----------
    custodian
        Any :class:`~orchestrator.protocol.release.Custodian`; the service uses a
        :class:`~orchestrator.nation.custodian.LocalCustodian`.
    """
    app = FastAPI(
        title=f"{custodian.nation} custodian",
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    served: Counter[str] = Counter()
    lock = threading.Lock()

    def count(name: str) -> None:
        with lock:
            served[name] += 1

    @app.exception_handler(SovereignError)
    async def sovereign_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, SovereignError)
        status, body = error_body(exc)
        return JSONResponse(body, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def bad_request(_: Request, exc: Exception) -> JSONResponse:
        status, body = error_body(ConfigError("request body must be a JSON object"))
        return JSONResponse(body, status_code=status)

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        with lock:
            counts = dict(served)
        return {
            "status": "ok",
            "nation": custodian.nation,
            "pid": os.getpid(),
            "served": counts,
        }

    @app.post("/v1/challenge")
    def challenge(_: JsonBody) -> dict[str, Any]:
        nonce = custodian.challenge()
        count("challenge")
        return {"nonce": nonce}

    @app.post("/v1/decide")
    def decide(body: JsonBody) -> dict[str, Any]:
        decision = custodian.decide(JobRequest.from_json(body))
        count("decide")
        return decision

    @app.post("/v1/release")
    def release(body: JsonBody) -> dict[str, Any]:
        grant = custodian.release_key(_parse(ReleaseRequest.from_json, body))
        count("release")
        return grant.to_json()

    @app.post("/v1/wrap")
    def wrap(body: JsonBody) -> dict[str, Any]:
        wrapped = custodian.wrap_key(_parse(WrapRequest.from_json, body))
        count("wrap")
        return wrapped.to_json()

    return app


def _parse(parse: Any, body: dict[str, Any]) -> Any:
    try:
        return parse(body)
    except (TypeError, AttributeError) as exc:
        raise ConfigError(f"malformed request: {exc}") from exc


def serve(
    state: StateDir,
    nation: str,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    log_level: str = "warning",
) -> None:
    """Run nation ``nation``'s custodian service until interrupted (SIGINT/SIGTERM).

    Parameters
    ----------
    state
        The state directory holding the nation's keys and PKI.
    nation
        ISO 3166-1 alpha-3 code.
    host, port
        Bind address (loopback by default) and TCP port.
    log_level
        uvicorn log level (access lines are logged at ``info``).

    Raises
    ------
    NotFound
        If the nation is not initialised.
    ConfigError
        If the nation's PKI (``custodian pki init``) is missing or unreadable.
    """
    import uvicorn

    from orchestrator.nation.custodian import LocalCustodian
    from orchestrator.nation.pki import NationPki, server_context
    from orchestrator.registry import Registry

    Registry(state.registry_db).nation(nation)
    pki = NationPki.of(state, nation)
    if not pki.ca_cert.is_file():
        raise ConfigError(
            f"{nation} has no PKI; run 'sovereign custodian pki init {nation}'",
            source=str(pki.directory),
        )
    context = server_context(pki)
    app = create_app(LocalCustodian(state, nation))
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        lifespan="off",
        ssl_context_factory=lambda _config, _default: context,
        timeout_keep_alive=30,
    )
    uvicorn.Server(config).run()


def free_port(host: str = DEFAULT_HOST) -> int:
    """A TCP port free on ``host`` right now (for tests and benchmarks)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ServiceProcess:
    """``python -m orchestrator custodian serve`` as a child process.

    Used by tests and benchmarks: :meth:`start` spawns the service on ``port``
    and waits until ``GET /v1/health`` answers over mTLS with the orchestrator's
    client certificate; :meth:`stop` sends SIGTERM (uvicorn shuts down
    gracefully) and kills after ``grace_s`` seconds.

    Parameters
    ----------
    state
        State directory of the nation (its PKI must exist).
    nation
        ISO 3166-1 alpha-3 code.
    port
        TCP port on 127.0.0.1; a free one by default.
    """

    def __init__(self, state: StateDir, nation: str, port: int | None = None) -> None:
        self.state = state
        self.nation = nation
        self.port = port or free_port()
        self.url = f"https://{DEFAULT_HOST}:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = state.root / f"custodian-{nation}-{self.port}.log"

    def start(self, timeout_s: float = 30.0) -> dict[str, Any]:
        """Spawn the service and wait for it to be healthy; return the health JSON.

        Raises
        ------
        CustodianUnavailable
            If it does not answer within ``timeout_s`` seconds or exits early
            (the message carries the tail of its log).
        """
        from orchestrator.nation.client import CustodianUnavailable, HttpCustodian
        from orchestrator.nation.pki import NationPki

        pki = NationPki.of(self.state, self.nation)
        env = {**os.environ, "SOVEREIGN_STATE_DIR": str(self.state.root)}
        with self.log.open("ab") as log:
            command = [sys.executable, "-m", "orchestrator", "custodian", "serve"]
            command += ["--nation", self.nation, "--port", str(self.port)]
            self.proc = subprocess.Popen(
                [*command, "--log-level", "info"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        probe = HttpCustodian(
            self.nation,
            self.url,
            ca=pki.ca_cert,
            cert=pki.client_cert("orchestrator"),
            key=pki.client_key("orchestrator"),
            connect_timeout=1.0,
        )
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    tail = self.log.read_text(errors="replace")[-2000:]
                    self.stop()
                    raise CustodianUnavailable(
                        f"custodian {self.nation} service did not start:\n{tail}"
                    )
                try:
                    return probe.health()
                except CustodianUnavailable:
                    time.sleep(0.1)
        finally:
            probe.close()

    def stop(self, grace_s: float = 10.0) -> None:
        """Terminate the service (SIGTERM, then SIGKILL after ``grace_s`` s)."""
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(grace_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ServiceProcess:
        self.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop()
