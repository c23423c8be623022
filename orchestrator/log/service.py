"""``sovereign log serve``: the custody log as an HTTPS service.

Reads follow C2SP tlog-tiles, so any tlog client can audit the log:

* ``GET /checkpoint``: the latest checkpoint, a C2SP signed note (with the
  witnesses' cosignatures collected so far), ``text/plain; charset=utf-8``;
* ``GET /tile/<L>/<N>[.p/<W>]``: Merkle tree tiles; ``GET
  /tile/entries/<N>[.p/<W>]``: entry bundles (``application/octet-stream``).

Writes and the rest (JSON unless stated):

* ``POST /v1/entries`` ``{"event", "signer", "sig"}``: append an event its
  actor signed (:mod:`orchestrator.protocol.log`). 200 ``{"seq", "leaf"}`` once
  the entry is durable; 403 for an unenrolled actor, a wrong key, a bad
  signature or a kind the actor's role does not write; 409 ``AlreadyRecorded``
  with the stored ``seq`` for an event already in the log (a replay changes
  nothing); 400 for a malformed body or an event time more than
  :data:`MAX_SKEW_S` from the log's clock; 413 above 1 MiB; 503 if storage
  failed.
* no one but the operator makes the log sign: it publishes a checkpoint on its
  own schedule (every :data:`CHECKPOINT_INTERVAL_S` seconds while it grows);
* ``GET /v1/proof/consistency?old=M&new=N`` and ``GET
  /v1/proof/inclusion?index=I&size=N``: RFC 9162 proofs, one base64 hash per
  line (``text/plain``), as in tlog-witness and tlog-proof.
* ``GET /v1/health``: origin, verifier key, size. There is no query API:
  what any reader gets is what C2SP tlog-tiles serves (parties read entries
  through the entry bundles, :class:`~orchestrator.net.log_client.HttpLog`).

Clients authenticate the service by its certificate; writes are authenticated
by the actors' signatures, so no client certificate is needed.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from orchestrator.canonical import b64e
from orchestrator.errors import ConfigError, NotFound, SovereignError
from orchestrator.log.operator import LogOperator
from orchestrator.net.service import install_common
from orchestrator.protocol.log import SignedEvent
from orchestrator.timeutil import Clock, parse_rfc3339, system_clock
from orchestrator.tlog.tiles import parse_tile_path

__all__ = ["create_app"]

JsonBody = Annotated[Any, Body()]
_TEXT = "text/plain; charset=utf-8"


def _lines(hashes: list[bytes]) -> str:
    return "".join(b64e(h) + "\n" for h in hashes)


#: Seconds an event's ``time`` may differ from the log's clock (either way):
#: clocks of NTP-synchronised hosts agree within well under a second; five
#: minutes, the skew Kerberos tolerates (RFC 4120, section 1.6), leaves room for
#: a retried append, and no room to backdate an event by days.
MAX_SKEW_S = 300.0


#: Seconds between the operator's checkpoint publications (when the log grew).
CHECKPOINT_INTERVAL_S = 1.0

_log = logging.getLogger(__name__)


def _publish_while(operator: LogOperator, interval_s: float,
                   stop: threading.Event) -> None:
    """The log operator's own schedule: every ``interval_s`` seconds, sign a
    checkpoint over every durable entry if the log grew."""
    published = -1
    while not stop.wait(interval_s):
        try:
            size = operator.size()
            if size != published:
                operator.publish()
                published = size
        except SovereignError as exc:  # storage hiccup: try again next round
            _log.warning("checkpoint not published: %s", exc)


def create_app(operator: LogOperator, *, max_skew_s: float = MAX_SKEW_S,
               clock: Clock = system_clock,
               checkpoint_interval_s: float = CHECKPOINT_INTERVAL_S) -> FastAPI:
    """The FastAPI application serving ``operator`` (TLS: see the ``serve``
    command). An appended event whose time lies more than ``max_skew_s``
    seconds from ``clock()`` is refused with 400 (a replay of a stored event is
    answered 409 as before, whatever its age). While it serves, the operator
    publishes a checkpoint every ``checkpoint_interval_s`` seconds if the log
    grew (0: never; nobody else can make it sign one)."""

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        stop = threading.Event()
        worker = threading.Thread(target=_publish_while, daemon=True,
                                  args=(operator, checkpoint_interval_s, stop),
                                  name="checkpoint-publisher")
        if checkpoint_interval_s > 0:
            worker.start()
        try:
            yield
        finally:
            stop.set()
            if worker.is_alive():
                worker.join(10)

    app = FastAPI(title="custody log", docs_url=None, redoc_url=None,
                  openapi_url=None, lifespan=lifespan)
    install_common(app)

    @app.get("/checkpoint")
    def checkpoint() -> Response:
        return PlainTextResponse(operator.checkpoint(), media_type=_TEXT,
                                 headers={"Cache-Control": "no-cache"})

    @app.get("/tile/{path:path}")
    def tile(path: str) -> Response:
        try:
            parsed = parse_tile_path("tile/" + path)
        except ConfigError as exc:
            raise NotFound(exc.message, source=path) from exc
        data = operator.tile(parsed)
        cache = "no-cache" if parsed.partial else "public, max-age=31536000, immutable"
        return Response(data, media_type="application/octet-stream",
                        headers={"Cache-Control": cache})

    @app.post("/v1/entries")
    def append(body: JsonBody) -> Response:
        signed = SignedEvent.from_json(body)
        stored = operator.log.by_event_id(signed.event.event_id)
        if stored is not None:
            return JSONResponse(
                {"error": "AlreadyRecorded", "seq": stored.seq,
                 "same": SignedEvent.of_entry(stored) == signed,
                 "message": f"event {signed.event.event_id} is already entry "
                            f"{stored.seq}"}, status_code=409)
        try:
            skew = (parse_rfc3339(signed.event.time) - clock()).total_seconds()
        except ValueError as exc:
            raise ConfigError(f"event time is not RFC 3339: {exc}",
                              field="event.time") from exc
        if abs(skew) > max_skew_s:
            raise ConfigError(f"event time {signed.event.time} is {abs(skew):.0f} s "
                              f"{'behind' if skew < 0 else 'ahead of'} the log's "
                              f"clock (at most {max_skew_s:.0f} s)", field="event.time")
        entry = operator.submit(signed)
        return JSONResponse({"seq": entry.seq, "leaf": b64e(entry.leaf_bytes())})

    @app.get("/v1/proof/consistency")
    def consistency(old: Annotated[int, Query()],
                    new: Annotated[int, Query()]) -> Response:
        return PlainTextResponse(_lines(operator.consistency_proof(old, new)),
                                 media_type=_TEXT)

    @app.get("/v1/proof/inclusion")
    def inclusion(index: Annotated[int, Query()],
                  size: Annotated[int, Query()]) -> Response:
        return PlainTextResponse(_lines(operator.inclusion_proof(index, size)),
                                 media_type=_TEXT)

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "origin": operator.origin, "vkey": operator.vkey,
                "size": operator.size(), "pid": os.getpid()}

    return app
