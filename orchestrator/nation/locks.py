"""The custodian's lock: agreement state changes and key releases, in one order."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["agreement_state_lock"]


@contextlib.contextmanager
def agreement_state_lock(path: Path) -> Iterator[None]:
    """Hold the exclusive lock that serialises agreement state and key releases.

    An exclusive ``flock(2)`` on ``path`` (created 0600), taken through a fresh
    open file description, so it excludes other threads of this process as well
    as other processes on the host. Revoking an agreement (append
    ``agreement.revoked``) and a custodian's release decision (read the live
    agreements and revocations, evaluate, append ``key.released``) both run
    inside it; hence in custody-log order no ``key.released`` relying on an
    agreement can follow that agreement's ``agreement.revoked``.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing the description releases the lock
