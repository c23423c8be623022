"""Group commit: many concurrent appenders share one durable commit (one fsync).

A durable commit costs one fsync of the write-ahead log (SQLite WAL with
``synchronous=FULL``, [1]_; PostgreSQL with ``synchronous_commit=on``, [2]_),
several milliseconds on ordinary disks, which caps one-at-a-time appends at a few
hundred entries/s. :class:`GroupCommitter` lets the threads of one process queue
their appends: one of them (the leader) waits up to ``max_wait`` seconds, or until
``max_batch`` appends are queued, then commits them all in one transaction through
:meth:`~orchestrator.log.store.CustodyLog.commit_batch`, while the appends that
arrive meanwhile queue up for the next batch. Each caller returns only once the
batch holding its append is durable.

Across processes the log's own lock still serialises batches, so several
processes, each with its own committer, are safe.

References
----------
.. [1] SQLite, "Write-Ahead Logging", https://sqlite.org/wal.html
.. [2] PostgreSQL 15 documentation, "synchronous_commit",
   https://www.postgresql.org/docs/15/runtime-config-wal.html#GUC-SYNCHRONOUS-COMMIT
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass

from orchestrator.errors import LedgerError
from orchestrator.log.store import CustodyLog
from orchestrator.tlog.events import CustodyEvent, SignedEntry, Signer

__all__ = ["GroupCommitter"]


@dataclass
class _Request:
    event: CustodyEvent
    signer: Signer
    entry: SignedEntry | None = None
    error: BaseException | None = None
    done: bool = False


class GroupCommitter:
    """Thread-safe front of a :class:`CustodyLog` that batches durable commits.

    Parameters
    ----------
    log
        The log to append to.
    max_batch
        Most appends committed in one transaction.
    max_wait
        Seconds the leader waits for more appends before committing (0 commits at
        once whatever is queued; appends that arrive during a commit still share
        the next one).

    Notes
    -----
    There is no background thread: the first waiting caller leads. A committer
    holds a lock, so it must not be pickled or used across ``fork()``; make one
    per process.
    """

    def __init__(self, log: CustodyLog, *, max_batch: int = 256,
                 max_wait: float = 0.001) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self.log = log
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait)
        self._cond = threading.Condition()
        self._pending: deque[_Request] = deque()
        self._leading = False
        #: Batches committed and appends they held (for statistics).
        self.batches = 0
        self.committed = 0

    def append(self, event: CustodyEvent, signer: Signer) -> SignedEntry:
        """Append ``event`` signed by ``signer``; return once its batch is durable.

        Same semantics as :meth:`CustodyLog.append` (idempotent on ``event_id``).

        Raises
        ------
        LedgerError
            If the batch could not be committed (nothing of it is recorded), or on
            an ``event_id`` conflict for this event.
        Exception
            Whatever ``signer.sign`` raised for this event (the rest of the batch
            is still committed).
        """
        request = _Request(event, signer)
        with self._cond:
            self._pending.append(request)
            self._cond.notify_all()
            while not request.done:
                if self._leading:
                    self._cond.wait()
                    continue
                self._leading = True
                try:
                    self._lead()
                finally:
                    self._leading = False
                    self._cond.notify_all()
        if request.error is not None:
            raise request.error
        assert request.entry is not None
        return request.entry

    def _lead(self) -> None:
        """Collect a batch, commit it with the lock released, hand out outcomes.

        Called with ``self._cond`` held; returns with it held.
        """
        deadline = time.monotonic() + self.max_wait
        while len(self._pending) < self.max_batch:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            self._cond.wait(left)
        batch = [self._pending.popleft()
                 for _ in range(min(self.max_batch, len(self._pending)))]
        self._cond.release()
        try:
            outcomes = self.log.commit_batch([(r.event, r.signer) for r in batch])
            for request, outcome in zip(batch, outcomes, strict=True):
                if isinstance(outcome, SignedEntry):
                    request.entry = outcome
                else:
                    request.error = outcome
            self.batches += 1
            self.committed += len(batch)
        except BaseException as exc:
            error = exc if isinstance(exc, LedgerError) else LedgerError(
                f"custody log batch commit failed: {exc!r}",
                source=str(self.log.path))
            for request in batch:
                request.error = error
            if not isinstance(exc, Exception):
                raise
        finally:
            self._cond.acquire()
            for request in batch:
                request.done = True
