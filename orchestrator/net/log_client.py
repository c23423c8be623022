"""HTTP client of the custody log service (:mod:`orchestrator.log.service`).

:class:`HttpLog` is what every party holds instead of the log's database: it
appends events its owner signs and reads entries, checkpoints, C2SP tlog-tiles
and proofs. It pins the log service's CA and speaks TLS 1.3 only.

It fails closed: a transport failure, a TLS failure or an answer it cannot read
raises :class:`~orchestrator.errors.LedgerError` (exit code 7 in the CLI), so a
custodian whose ``key.released`` was not acknowledged releases nothing. A write
the log refuses arrives as the log's own error class (``PolicyDenied`` for an
unenrolled actor or a wrong key, ``ConfigError`` for a malformed event).
"""

from __future__ import annotations

import base64
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from orchestrator.errors import LedgerError, NotFound, SovereignError
from orchestrator.net.tls import client_context
from orchestrator.protocol.log import SignedEvent
from orchestrator.protocol.wire import error_from
from orchestrator.tlog.events import CustodyEvent, SignedEntry, Signer
from orchestrator.tlog.tiles import (
    TILE_WIDTH,
    TilePath,
    parse_entry_bundle,
    tile_width,
)

__all__ = ["HttpLog"]

#: Seconds to establish TCP + TLS, and to wait for an answer (an append waits
#: for a durable commit).
CONNECT_TIMEOUT_S = 5.0
READ_TIMEOUT_S = 30.0
#: Seconds a request keeps trying a service that does not answer at the
#: transport level (refused, reset: a log service restarting), backing off from
#: 0.1 s to 2 s, before it fails closed. Safe to repeat: reads are idempotent,
#: an append is idempotent by event id (the service answers a replay with the
#: stored entry) and publishing a checkpoint again signs the same tree.
RETRY_S = 10.0


class HttpLog:
    """The custody log service at ``url`` (``https://HOST:PORT``).

    Parameters
    ----------
    url
        Base URL of the service.
    ca
        The log service's CA (a PEM file, or PEM bytes): the only trust anchor.
    retry_s
        Seconds to keep retrying transport failures (:data:`RETRY_S`; 0: none).

    Raises
    ------
    ConfigError
        If the CA cannot be loaded.
    """

    def __init__(self, url: str, *, ca: Path | bytes,
                 connect_timeout: float = CONNECT_TIMEOUT_S,
                 read_timeout: float = READ_TIMEOUT_S,
                 retry_s: float = RETRY_S) -> None:
        self.url = url.rstrip("/")
        self.retry_s = retry_s
        self.ca: Path | bytes = ca if isinstance(ca, bytes) else Path(ca)
        self.path: str = self.url  # the ``source`` of errors, like CustodyLog.path
        self._http = httpx.Client(
            base_url=self.url, verify=client_context(self.ca, None, None),
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            trust_env=False, follow_redirects=False)
        self._finalizer = weakref.finalize(self, self._http.close)

    def __getstate__(self) -> dict[str, Any]:
        return {"url": self.url, "ca": self.ca, "retry_s": self.retry_s}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["url"], ca=state["ca"],  # type: ignore[misc]
                      retry_s=float(state.get("retry_s", RETRY_S)))

    def close(self) -> None:
        """Close the connection pool."""
        self._finalizer()

    def __repr__(self) -> str:
        return f"HttpLog({self.url!r})"

    # -- transport -------------------------------------------------------------------
    def _unavailable(self, what: str) -> SovereignError:
        return LedgerError(f"custody log at {self.url} {what}", source=self.url)

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        deadline = time.monotonic() + self.retry_s
        delay = 0.1
        while True:
            try:
                return self._http.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                if time.monotonic() + delay > deadline:
                    raise LedgerError(f"custody log at {self.url} unreachable: "
                                      f"{type(exc).__name__}: {exc}",
                                      source=self.url) from exc
                time.sleep(delay)
                delay = min(2 * delay, 2.0)
            except httpx.HTTPError as exc:
                raise LedgerError(f"custody log at {self.url} unreachable: "
                                  f"{type(exc).__name__}: {exc}",
                                  source=self.url) from exc

    def _ok(self, response: httpx.Response) -> httpx.Response:
        if response.status_code == 200:
            return response
        try:
            body = response.json()
        except ValueError:
            body = None
        raise error_from(response.status_code, body, self._unavailable)

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._ok(self._request(method, path, **kwargs))
        try:
            return response.json()
        except ValueError as exc:
            raise self._unavailable(f"sent a non-JSON answer to {path}") from exc

    def _entry(self, data: Any) -> SignedEntry:
        try:
            return SignedEntry.from_leaf(base64.b64decode(data["leaf"],
                                                          validate=True))
        except (KeyError, TypeError, ValueError) as exc:
            raise self._unavailable(f"sent a malformed entry: {exc}") from exc

    # -- writing ---------------------------------------------------------------------
    def append(self, event: CustodyEvent, signer: Signer) -> SignedEntry:
        """Sign ``event`` and append it; see :meth:`submit`."""
        return self.submit(SignedEvent.create(event, signer))

    def submit(self, signed: SignedEvent) -> SignedEntry:
        """Append an event its actor signed; return the entry once durable.

        The same event submitted again (a retry after a lost answer) returns the
        stored entry.

        Raises
        ------
        LedgerError
            Unreachable, unreadable answer, or the event id is recorded with
            other content.
        PolicyDenied, ConfigError
            The log refused the entry (nothing recorded).
        """
        response = self._request("POST", "/v1/entries", json=signed.to_json())
        if response.status_code == 409:
            try:
                body = response.json()
                seq, same = int(body["seq"]), bool(body["same"])
            except (ValueError, KeyError, TypeError) as exc:
                raise self._unavailable("sent a malformed 409") from exc
            if not same:
                raise LedgerError(f"custody log already holds event "
                                  f"{signed.event.event_id} with different content "
                                  f"(entry {seq})", source=self.url)
            return self.get(seq)
        response = self._ok(response)
        try:
            return self._entry(response.json())
        except ValueError as exc:
            raise self._unavailable("sent a non-JSON answer") from exc

    # -- reading ---------------------------------------------------------------------
    def health(self) -> dict[str, Any]:
        """``GET /v1/health``: origin, vkey, size."""
        data = self._json("GET", "/v1/health")
        if not isinstance(data, dict):
            raise self._unavailable("sent a malformed health answer")
        return data

    def size(self) -> int:
        """Entries durable now."""
        return int(self.health()["size"])

    def get(self, seq: int) -> SignedEntry:
        """Entry ``seq``, read from its C2SP tlog-tiles entry bundle.

        Raises
        ------
        NotFound
            If the log has no entry ``seq`` yet.
        """
        size = self.size()
        if not 0 <= int(seq) < size:
            raise NotFound(f"the custody log has no entry {seq} (size {size})",
                           source=self.url)
        return next(self.entries(int(seq), int(seq) + 1))

    def find(self, kind: str | None = None, **body_matches: str) -> list[SignedEntry]:
        """Entries of ``kind`` whose body has every ``key=value``, in log order,
        read through the entry bundles (the log serves no query API: what any
        reader gets is what C2SP tlog-tiles serves)."""
        return [e for e in self.entries() if (kind is None or e.event.kind == kind)
                and all(e.event.body.get(k) == v for k, v in body_matches.items())]

    def checkpoint(self) -> bytes:
        """``GET /checkpoint``: the latest signed note (not verified here)."""
        return self._ok(self._request("GET", "/checkpoint")).content

    def publish(self, timeout_s: float = 30.0) -> bytes:
        """A checkpoint covering every entry durable now: the log operator
        publishes on its own schedule (``log serve --checkpoint-interval``), so
        this waits, polling ``GET /checkpoint`` every 0.1 s, until the latest
        covers them; returns it.

        Raises
        ------
        LedgerError
            If none does within ``timeout_s`` seconds, or the log is unreachable.
        """
        from orchestrator.tlog.checkpoint import parse_note

        size = self.size()
        deadline = time.monotonic() + timeout_s
        while True:
            note = self.checkpoint()
            try:
                covered = parse_note(note).checkpoint.size
            except SovereignError as exc:
                raise self._unavailable(f"sent a malformed checkpoint: {exc}") from exc
            if covered >= size:
                return note
            if time.monotonic() > deadline:
                raise LedgerError(f"custody log at {self.url} published no checkpoint "
                                  f"covering {size} entries within {timeout_s:.0f} s",
                                  source=self.url)
            time.sleep(0.1)

    def tile(self, tile: TilePath) -> bytes:
        """The bytes of a hash tile or entry bundle (not verified here)."""
        return self._ok(self._request("GET", "/" + tile.path())).content

    def _hashes(self, path: str, params: dict[str, int]) -> list[bytes]:
        text = self._ok(self._request("GET", path, params=params)).text
        try:
            return [base64.b64decode(line, validate=True)
                    for line in text.splitlines() if line]
        except ValueError as exc:
            raise self._unavailable(f"sent a malformed proof: {exc}") from exc

    def consistency_proof(self, old: int, new: int) -> list[bytes]:
        """RFC 9162 consistency proof between sizes ``old`` and ``new``."""
        return self._hashes("/v1/proof/consistency", {"old": old, "new": new})

    def inclusion_proof(self, index: int, size: int) -> list[bytes]:
        """RFC 9162 inclusion proof of entry ``index`` in the tree of ``size``."""
        return self._hashes("/v1/proof/inclusion", {"index": index, "size": size})

    def leaves(self, start: int, stop: int) -> Iterator[bytes]:
        """The raw leaves ``start <= i < stop`` through the entry bundles of
        tlog-tiles (each bundle fetched once; ``stop`` must be a size the log
        has reached)."""
        index = start // TILE_WIDTH
        while index * TILE_WIDTH < stop:
            width = tile_width(stop, 0, index)
            bundle = self.tile(TilePath(-1, index, width))
            leaves = parse_entry_bundle(bundle, width,
                                        source=f"{self.url} entry bundle {index}")
            first = index * TILE_WIDTH
            for i, leaf in enumerate(leaves):
                if start <= first + i < stop:
                    yield leaf
            index += 1

    def entries(self, start: int = 0, stop: int | None = None
                ) -> Iterator[SignedEntry]:
        """Entries ``start <= seq < stop`` (default: up to the current size),
        read through the entry bundles."""
        end = self.size() if stop is None else stop
        for i, leaf in enumerate(self.leaves(start, end)):
            try:
                entry = SignedEntry.from_leaf(leaf)
            except ValueError as exc:
                raise self._unavailable(f"sent a malformed leaf {start + i}: "
                                        f"{exc}") from exc
            yield entry
