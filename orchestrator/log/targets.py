"""Which storage backend a custody log target names (a path or a database URL).

See :mod:`orchestrator.log.backends` for the targets accepted; PostgreSQL's
backend is imported only when a ``postgresql://`` URL asks for it.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote

from orchestrator.log.backends import Backend, SQLiteBackend

__all__ = ["open_backend"]


def open_backend(target: Path | str, timeout: float) -> Backend:
    """Return the backend for ``target`` (see the module docstring).

    Raises
    ------
    ValueError
        If ``target`` is a URL of an unsupported scheme.
    """
    if isinstance(target, Path):
        return SQLiteBackend(target, timeout)
    text = str(target)
    scheme, sep, rest = text.partition(":")
    if not sep or "/" in scheme or len(scheme) < 2:  # a plain path (or C:\...)
        return SQLiteBackend(Path(text), timeout)
    scheme = scheme.lower()
    if scheme == "sqlite":
        path = rest[2:] if rest.startswith("//") else rest
        if path.startswith("//"):  # sqlite:////abs/path (SQLAlchemy's spelling)
            path = "/" + path.lstrip("/")
        if not path:
            raise ValueError(f"database URL {text!r} names no file")
        return SQLiteBackend(Path(unquote(path)), timeout)
    if scheme in ("postgresql", "postgres"):
        from orchestrator.log.postgres import PostgresBackend

        return PostgresBackend(text, timeout)
    raise ValueError(f"unsupported custody log URL scheme {scheme!r} in {text!r}")
