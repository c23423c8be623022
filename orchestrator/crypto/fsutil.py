"""Crash-safe file writes for keys, sealed objects and records."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

__all__ = ["atomic_write_bytes", "fsync_dir"]


def fsync_dir(directory: Path) -> None:
    """``fsync`` a directory so a rename inside it survives a crash (POSIX only).

    Platforms that cannot open a directory (Windows) are silently skipped.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: Path, data: bytes, *, mode: int = 0o600) -> None:
    """Replace ``path`` with ``data`` atomically and durably.

    Writes a temporary file in the same directory, created with ``mode`` from the
    start (``os.open`` with ``O_CREAT | O_EXCL``, then ``fchmod`` so the umask cannot
    widen or narrow it), ``fsync``\\ s it, ``os.replace``\\ s it over ``path`` and
    ``fsync``\\ s the directory. Readers see either the old or the new contents,
    never a mix; the file is never readable with wider permissions than ``mode``.

    Parameters
    ----------
    path
        Destination; its parent directory must exist.
    data
        Complete new contents.
    mode
        Permission bits of the new file (default ``0o600``).

    Raises
    ------
    OSError
        If the directory is not writable, the disk is full, etc.; the temporary file
        is removed and ``path`` is left unchanged.
    """
    path = Path(path)
    directory = path.parent
    tmp = directory / f".{path.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    fd = os.open(tmp, flags, mode & 0o777)
    try:
        try:
            os.fchmod(fd, mode & 0o777)
            view = memoryview(data)
            while view:
                written = os.write(fd, view)
                view = view[written:]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    fsync_dir(directory)
