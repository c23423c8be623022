"""Custodian-side KEK administration: audited lifecycle changes and bulk rewrap.

:func:`nation_keystore` opens a nation's KEK backend with an ``audit`` sink that
appends lifecycle custody events (``kek.rotated``, ``kek.disabled``, ...) signed by
the nation's custodian key, so a change persists only once its event is durable.
:func:`rewrap_all` moves every stored wrapped key of the nation (datasets and
models in the registry) to the primary KEK version, the Vault transit ``rewrap`` /
AWS KMS ``ReEncrypt`` pattern: the DEK is unwrapped and rewrapped inside the
backend and never returned; each record is updated in its own transaction, which
commits only after its ``key.rewrapped`` event is logged.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from orchestrator.canonical import b64d, b64e, sha256_hex
from orchestrator.errors import IntegrityError
from orchestrator.log.store import CustodyLog
from orchestrator.nation.identity import NationKeys
from orchestrator.nation.keystore import Audit, ManagedKeystore
from orchestrator.nation.lifecycle import KeyUnavailable
from orchestrator.registry import Registry, SealedObjectRecord
from orchestrator.state import StateDir
from orchestrator.timeutil import Clock, system_clock
from orchestrator.tlog.events import CustodyEvent


def custodian_audit(state: StateDir, nation: str) -> Audit:
    """An audit sink logging events as ``custodian:<nation>``, custodian-signed."""
    keys = NationKeys(state.nation_dir(nation), nation)
    log = CustodyLog(state.custody_db)

    def audit(kind: str, body: dict[str, Any]) -> int:
        event = CustodyEvent.create(
            kind, f"custodian:{nation}", {"nation": nation, **body}
        )
        entry = log.append(event, keys.custodian_signer())
        return entry.seq

    return audit


def nation_keystore(
    state: StateDir, nation: str, *, clock: Clock = system_clock
) -> ManagedKeystore:
    """Nation ``nation``'s KEK backend, auditing lifecycle changes to the log.

    Raises
    ------
    NotFound
        If the nation is not initialised.
    """
    Registry(state.registry_db).nation(nation)
    keys = NationKeys(state.nation_dir(nation), nation)
    return keys.keystore(clock=clock, audit=custodian_audit(state, nation))


@dataclass(frozen=True)
class RewrapOutcome:
    """What :func:`rewrap_all` did to one stored wrapped key."""

    object_id: str
    object_kind: str  # "dataset" or "model"
    from_version: int
    to_version: int
    status: str  # "rewrapped", "current" or "refused"
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        """JSON form for ``--json`` output."""
        return {
            "object_id": self.object_id,
            "object_kind": self.object_kind,
            "from_version": self.from_version,
            "to_version": self.to_version,
            "status": self.status,
            "reason": self.reason,
        }


def _swap_and_log(
    registry: Registry,
    table: str,
    record: SealedObjectRecord,
    nation: str,
    new_entry: dict[str, Any],
    log_event: Audit,
    event: dict[str, Any],
) -> None:
    """Replace ``record``'s wrapped key of ``nation`` if it is unchanged; commit
    only after ``log_event`` returns (no custody event, no change)."""
    old_entry = record.wrapped_keys[nation]
    with registry._connect() as con:
        con.execute("BEGIN IMMEDIATE")
        try:
            row = con.execute(
                f"SELECT wrapped_keys FROM {table} WHERE id=?", (record.id,)
            ).fetchone()
            keys = json.loads(row["wrapped_keys"]) if row is not None else {}
            if keys.get(nation) != old_entry:
                raise IntegrityError(
                    "wrapped key changed while it was being rewrapped",
                    source=record.id,
                    field=f"wrapped_keys.{nation}",
                )
            keys[nation] = new_entry
            con.execute(
                f"UPDATE {table} SET wrapped_keys=? WHERE id=?",
                (json.dumps(keys), record.id),
            )
            log_event("key.rewrapped", event)
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")


def rewrap_all(
    state: StateDir, nation: str, *, clock: Clock = system_clock
) -> list[RewrapOutcome]:
    """Rewrap every stored dataset/model key of ``nation`` to the primary version.

    Keys already under the primary are left (``current``); keys the lifecycle
    refuses (a version below ``min_decryption_version``, a disabled KEK, ...) are
    reported as ``refused`` with the reason and left unchanged.

    Raises
    ------
    IntegrityError
        If a wrapped key does not authenticate, or changed concurrently.
    LedgerError
        If a ``key.rewrapped`` event cannot be logged (that record is unchanged).
    """
    keystore = nation_keystore(state, nation, clock=clock)
    audit = custodian_audit(state, nation)
    registry = Registry(state.registry_db)
    kek_id = keystore.kek_id
    outcomes: list[RewrapOutcome] = []
    objects = [("datasets", "dataset", r) for r in registry.datasets()]
    objects += [("models", "model", r) for r in registry.models()]
    for table, kind, record in objects:
        entry = record.wrapped_keys.get(nation)
        if entry is None or entry.get("kek_id") != kek_id:
            continue
        version = int(entry["kek_version"])
        primary = keystore.primary_version
        if version == primary:
            outcomes.append(RewrapOutcome(record.id, kind, version, version, "current"))
            continue
        try:
            new_version, blob = keystore.rewrap(
                kek_id, version, b64d(entry["wrapped_dek"])
            )
        except KeyUnavailable as exc:
            outcomes.append(
                RewrapOutcome(record.id, kind, version, version, "refused", exc.message)
            )
            continue
        new_entry = {**entry, "kek_version": new_version, "wrapped_dek": b64e(blob)}
        event = {
            "object_id": record.id,
            "object_kind": kind,
            "owner": nation,
            "kek_id": kek_id,
            "from_version": version,
            "to_version": new_version,
            "wrapped_dek_sha256": sha256_hex(blob),
        }
        _swap_and_log(registry, table, record, nation, new_entry, audit, event)
        outcomes.append(
            RewrapOutcome(record.id, kind, version, new_version, "rewrapped")
        )
    return outcomes
