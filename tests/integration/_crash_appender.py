"""Appender killed by ``test_ledger_crash.py``: appends numbered events forever.

Usage: ``python _crash_appender.py TARGET SEED_HEX``, then one line ``START`` on
stdin (so the parent can start the interpreter, and pay for its imports, while it
is still checking the log after the previous kill).

Appends event ``n = START, START + 1, ...`` (event id ``crash-<n>``, content a pure
function of ``n``, so a retry after a kill is the same event) signed by the Ed25519
key with the 32-byte ``SEED_HEX``, and prints ``<seq> <event_id>`` on stdout,
flushed, only after :meth:`CustodyLog.append` has returned, i.e. after the entry is
durable. The first event it appends is the one the previous run was working on when
it was killed (the parent passes the last acknowledged ``n`` plus one).
"""

from __future__ import annotations

import sys

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from orchestrator.log.store import CustodyLog
from orchestrator.tlog.events import CustodyEvent

ACTOR = "site:crash"


class SeedSigner:
    """Ed25519 signer from a fixed seed, with ``key_id`` ``ed25519:crash``."""

    key_id = "ed25519:crash"

    def __init__(self, seed: bytes) -> None:
        self._sk = Ed25519PrivateKey.from_private_bytes(seed)

    def sign(self, data: bytes) -> bytes:
        return self._sk.sign(data)


def event(n: int) -> CustodyEvent:
    """The ``n``-th event: same id and content on every retry."""
    return CustodyEvent(
        event_id=f"crash-{n:07d}", kind="task.started", actor=ACTOR,
        time=f"2026-01-01T{n // 3600 % 24:02d}:{n // 60 % 60:02d}:{n % 60:02d}."
             f"{n % 1_000_000:06d}Z",
        body={"n": n, "job_id": "crash"})


def main() -> None:
    target, seed_hex = sys.argv[1], sys.argv[2]
    start = int(sys.stdin.readline())
    log = CustodyLog(target, timeout=10)
    signer = SeedSigner(bytes.fromhex(seed_hex))
    out = sys.stdout
    n = start
    while True:
        entry = log.append(event(n), signer)
        out.write(f"{entry.seq} {entry.event.event_id}\n")
        out.flush()
        n += 1


if __name__ == "__main__":
    main()
