"""A nation's custodian vouches, in the custody log, for the keys it admitted.

Officers verify actors' keys from their own pinned trust, never from the log
operator's word (:mod:`orchestrator.tlog.enrollment`): a key counts when a
pinned custodian admitted it. The custodian admits its own officer in
``nation.initialized`` and each site in ``site.accredited``; the orchestrator
(whose card the nation imports when it issues its client certificate) it admits
here, with one ``actor.admitted`` entry per key, logged when the custodian
first can (``nation serve`` and before each job decision).
"""

from __future__ import annotations

from orchestrator.canonical import b64e
from orchestrator.crypto import key_id_of
from orchestrator.nation.context import CustodianContext
from orchestrator.tlog.roles import ADMIT_KIND

__all__ = ["sync_admissions"]


def sync_admissions(ctx: CustodianContext) -> list[int]:
    """Log ``actor.admitted`` for every key the nation admitted and has not
    logged yet; return the new entries' indices.

    Raises
    ------
    LedgerError
        If the log does not acknowledge an entry (the rest are tried next time).
    """
    logged = {(str(e.event.body.get("actor")), str(e.event.body.get("key_id")))
              for e in ctx.journal.find(ADMIT_KIND)}
    done = []
    for actor, public in sorted(ctx.nation.admitted().items()):
        key_id = key_id_of(public)
        if (actor, key_id) in logged:
            continue
        done.append(ctx.record(ADMIT_KIND, {"actor": actor, "key_id": key_id,
                                            "public_key": b64e(public)}))
    return done
