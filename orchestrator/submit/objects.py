"""The orchestrator's object store over HTTP: where sites stage sealed datasets.

Tasks receive a dataset as a Parsl :class:`~parsl.data_provider.files.File`
with an ``http://`` URL, which Parsl's
:class:`~parsl.data_provider.http.HTTPInTaskStaging` fetches into the site's own
staging directory before the task runs: the site never reads the
orchestrator's directory. :class:`ObjectServer` serves exactly the sealed
datasets of the registry, read-only, as ``GET /datasets/<id>/<file name>``
(the name makes each task's staged copy distinct). What it serves is ciphertext;
the site checks every byte against the registered SHA-256 before it asks for a
key (:func:`orchestrator.site.runner.verify_staged`), so the transport needs no
confidentiality or integrity of its own.
"""

from __future__ import annotations

import re
import shutil
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = ["ObjectServer"]

_PATH = re.compile(r"^/datasets/(ds-[0-9a-f]{16})/[A-Za-z0-9._-]{1,200}$")


class ObjectServer:
    """Serves ``datasets_dir/<id>.sealed`` at ``http://host:port/datasets/<id>/...``.

    Parameters
    ----------
    datasets_dir
        The orchestrator's sealed datasets.
    host
        Bind address (loopback by default; a site on another host needs the
        orchestrator's address on their network).
    port
        TCP port (0: any free one).
    """

    def __init__(self, datasets_dir: Path, *, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        folder = Path(datasets_dir)

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                match = _PATH.match(self.path)
                target = folder / f"{match.group(1)}.sealed" if match else None
                if target is None or not target.is_file():
                    self.send_error(HTTPStatus.NOT_FOUND)
                    return
                self.send_response(HTTPStatus.OK)
                self.send_header("Content-Type", "application/octet-stream")
                self.send_header("Content-Length", str(target.stat().st_size))
                self.end_headers()
                with target.open("rb") as src:
                    shutil.copyfileobj(src, self.wfile, 1 << 20)

            def log_message(self, format: str, *args: Any) -> None:
                return  # quiet: the custody log records what matters

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        daemon=True, name="object-server")

    @property
    def url(self) -> str:
        """Base URL, e.g. ``http://127.0.0.1:43117``."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> ObjectServer:
        """Start serving in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ObjectServer:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()
