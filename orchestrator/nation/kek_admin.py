"""Custodian-side KEK administration: audited lifecycle changes and bulk rewrap.

:func:`nation_keystore` opens a nation's KEK backend with an ``audit`` sink that
records lifecycle custody events (``kek.rotated``, ``kek.disabled``, ...) signed
by the nation's custodian key, so a change persists only once its event is
durable. :func:`rewrap_all` moves every wrapped key the custodian holds (its
datasets and the objects it keyed) to the primary KEK version, the Vault
transit ``rewrap`` / AWS KMS ``ReEncrypt`` pattern: the DEK is unwrapped and
rewrapped inside the backend and never returned; each record is replaced only
after its ``key.rewrapped`` event is recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from orchestrator.canonical import b64d, b64e, sha256_hex
from orchestrator.nation.context import CustodianContext
from orchestrator.nation.keystore import Audit, ManagedKeystore
from orchestrator.nation.lifecycle import KeyUnavailable

__all__ = ["RewrapOutcome", "custodian_audit", "nation_keystore", "rewrap_all"]


def custodian_audit(ctx: CustodianContext) -> Audit:
    """An audit sink recording events as the custodian, with the nation named."""

    def audit(kind: str, body: dict[str, Any]) -> int:
        return ctx.record(kind, {"nation": ctx.code, **body})

    return audit


def nation_keystore(ctx: CustodianContext) -> ManagedKeystore:
    """The nation's KEK backend, auditing lifecycle changes to the log."""
    return ctx.keys.keystore(clock=ctx.clock, audit=custodian_audit(ctx))


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
        return {"object_id": self.object_id, "object_kind": self.object_kind,
                "from_version": self.from_version, "to_version": self.to_version,
                "status": self.status, "reason": self.reason}


def rewrap_all(ctx: CustodianContext) -> list[RewrapOutcome]:
    """Rewrap every wrapped key this custodian holds to the primary version.

    Keys already under the primary are left (``current``); keys the lifecycle
    refuses (a version below ``min_decryption_version``, a disabled KEK, ...) are
    reported as ``refused`` with the reason and left unchanged.

    Raises
    ------
    IntegrityError
        If a wrapped key does not authenticate.
    LedgerError
        If a ``key.rewrapped`` event cannot be recorded (that record is unchanged).
    """
    keystore = nation_keystore(ctx)
    audit = custodian_audit(ctx)
    kek_id = keystore.kek_id
    outcomes: list[RewrapOutcome] = []
    items: list[tuple[str, str, dict[str, Any]]] = [
        ("dataset", d.id, d.wrapped) for d in ctx.store.datasets()]
    items += [("model" if o.kind != "checkpoint" else "checkpoint", o.id, o.wrapped)
              for o in ctx.store.objects()]
    for kind, object_id, entry in items:
        if entry.get("kek_id") != kek_id:
            continue
        version = int(entry["kek_version"])
        if version == keystore.primary_version:
            outcomes.append(RewrapOutcome(object_id, kind, version, version, "current"))
            continue
        try:
            new_version, blob = keystore.rewrap(kek_id, version,
                                                b64d(entry["wrapped_dek"]))
        except KeyUnavailable as exc:
            outcomes.append(RewrapOutcome(object_id, kind, version, version,
                                          "refused", exc.message))
            continue
        new_entry = {**entry, "kek_version": new_version, "wrapped_dek": b64e(blob)}
        audit("key.rewrapped", {
            "object_id": object_id, "object_kind": kind, "owner": ctx.code,
            "kek_id": kek_id, "from_version": version, "to_version": new_version,
            "wrapped_dek_sha256": sha256_hex(blob)})
        if kind == "dataset":
            ctx.store.rewrap_dataset(object_id, new_entry)
        else:
            ctx.store.rewrap_object(object_id, new_entry)
        outcomes.append(RewrapOutcome(object_id, kind, version, new_version,
                                      "rewrapped"))
    return outcomes
