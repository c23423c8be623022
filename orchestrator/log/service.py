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
  nothing); 400 for a malformed body; 413 above 1 MiB; 503 if storage failed.
* ``POST /v1/checkpoint``: publish a checkpoint over every durable entry now;
  answers the signed note.
* ``GET /v1/proof/consistency?old=M&new=N`` and ``GET
  /v1/proof/inclusion?index=I&size=N``: RFC 9162 proofs, one base64 hash per
  line (``text/plain``), as in tlog-witness and tlog-proof.
* ``GET /v1/entries?kind=K&<key>=<value>...``: entries whose body matches, as
  ``[{"seq", "leaf"}]`` (base64 leaves: a convenience query; every answer is
  checkable against the tiles); ``GET /v1/entries/<seq>``; ``GET /v1/actors``;
  ``GET /v1/health``.

Clients authenticate the service by its certificate; writes are authenticated
by the actors' signatures, so no client certificate is needed.
"""

from __future__ import annotations

import os
import re
from typing import Annotated, Any

from fastapi import Body, FastAPI, Query, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from orchestrator.canonical import b64e
from orchestrator.errors import ConfigError, NotFound
from orchestrator.log.operator import LogOperator
from orchestrator.net.service import install_common
from orchestrator.protocol.log import SignedEvent
from orchestrator.tlog.tiles import parse_tile_path

__all__ = ["create_app"]

JsonBody = Annotated[Any, Body()]
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TEXT = "text/plain; charset=utf-8"


def _lines(hashes: list[bytes]) -> str:
    return "".join(b64e(h) + "\n" for h in hashes)


def create_app(operator: LogOperator) -> FastAPI:
    """The FastAPI application serving ``operator`` (TLS: see the ``serve``
    command)."""
    app = FastAPI(title="custody log", docs_url=None, redoc_url=None,
                  openapi_url=None)
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
        entry = operator.submit(signed)
        return JSONResponse({"seq": entry.seq, "leaf": b64e(entry.leaf_bytes())})

    @app.post("/v1/checkpoint")
    def publish() -> Response:
        return PlainTextResponse(operator.publish(), media_type=_TEXT)

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

    @app.get("/v1/entries")
    def find(request: Request) -> list[dict[str, Any]]:
        params = dict(request.query_params)
        kind = params.pop("kind", None)
        for key in params:
            if not _KEY.match(key):
                raise ConfigError(f"query key {key!r} is not an identifier",
                                  field=key)
        return [{"seq": e.seq, "leaf": b64e(e.leaf_bytes())}
                for e in operator.find(kind, **params)]

    @app.get("/v1/entries/{seq}")
    def get(seq: int) -> dict[str, Any]:
        entry = operator.get(seq)
        return {"seq": entry.seq, "leaf": b64e(entry.leaf_bytes())}

    @app.get("/v1/actors")
    def actors() -> dict[str, str]:
        return operator.actors()

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return {"status": "ok", "origin": operator.origin, "vkey": operator.vkey,
                "size": operator.size(), "pid": os.getpid()}

    return app
