"""The KEK lifecycle: a small, pure state machine with KMS semantics.

A nation's KEK has numbered versions and one lifecycle state; every function here
takes the current :class:`KekState` and the time ``now`` (an injected clock) and
either returns the next state or raises. Nothing here touches key material, files
or the custody log: the keystores (:mod:`orchestrator.nation.keystore`,
:mod:`orchestrator.nation.pkcs11_keystore`) persist the state beside their key
material and enforce it on every wrap and unwrap.

States and transitions::

    enabled  --disable-->  disabled  --enable-->  enabled
    enabled|disabled  --schedule_deletion(7..30 days)-->  pending_deletion
    pending_deletion  --cancel_deletion-->  disabled
    pending_deletion  --(deletion date reached)-->  destroyed   (terminal)

* **Versions and rotation.** :func:`rotate` adds version N+1 and makes it primary;
  older versions stay available for unwrapping (AWS KMS rotation keeps older key
  material "in perpetuity"; Vault transit ``rotate``).
* **Minimum decryption version** (Vault transit ``min_decryption_version``):
  unwrapping (and rewrapping) a version below it is refused; it never exceeds the
  primary version, so new wraps always satisfy it.
* **Disable** (AWS KMS ``DisableKey``): every wrap and unwrap is refused.
* **Scheduled deletion** (AWS KMS ``ScheduleKeyDeletion``): a waiting period of 7
  to 30 days during which every cryptographic use is refused; ``CancelKeyDeletion``
  returns the key to *disabled*; once the date passes the key material is destroyed
  and nothing wrapped under it can ever be unwrapped again.

References
----------
.. [1] AWS KMS, "Deleting AWS KMS keys" (ScheduleKeyDeletion, PendingWindowInDays
   7-30, CancelKeyDeletion), https://docs.aws.amazon.com/kms/latest/developerguide/
   deleting-keys.html
.. [2] HashiCorp Vault, Transit secrets engine (``rotate``, ``rewrap``,
   ``min_decryption_version``), https://developer.hashicorp.com/vault/api-docs/
   secret/transit
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

from orchestrator.errors import ConfigError, IntegrityError, PolicyDenied
from orchestrator.timeutil import parse_rfc3339, rfc3339

#: AWS KMS ScheduleKeyDeletion's allowed waiting period, in days (inclusive).
MIN_DELETION_DAYS = 7
MAX_DELETION_DAYS = 30


class KeyState(StrEnum):
    """Lifecycle state of a KEK (all of its versions share it)."""

    ENABLED = "enabled"
    DISABLED = "disabled"
    PENDING_DELETION = "pending_deletion"
    DESTROYED = "destroyed"


class KeyUnavailable(PolicyDenied):
    """A wrap, unwrap or rewrap refused by the KEK's lifecycle state.

    A refusal by the custodian (exit code 4, never retried by the driver);
    ``reason`` is one of ``disabled``, ``pending_deletion``, ``destroyed`` or
    ``below_min_decryption_version``.
    """

    reason = "unavailable"

    def __init__(self, message: str, *, kek_id: str) -> None:
        super().__init__(message)
        self.kek_id = kek_id


class KekDisabled(KeyUnavailable):
    """The KEK is disabled (AWS KMS ``DisableKey``)."""

    reason = "disabled"


class KekPendingDeletion(KeyUnavailable):
    """The KEK is scheduled for deletion (AWS KMS ``PendingDeletion``)."""

    reason = "pending_deletion"


class KekDestroyed(KeyUnavailable):
    """The KEK's material is destroyed: nothing wrapped under it can be unwrapped."""

    reason = "destroyed"


class KeyVersionRetired(KeyUnavailable):
    """The version is below ``min_decryption_version`` (Vault transit)."""

    reason = "below_min_decryption_version"


class KeyStateError(ConfigError):
    """A lifecycle operation is not allowed in the KEK's current state."""


@dataclass(frozen=True)
class KekState:
    """Lifecycle metadata of one KEK (no key material).

    Parameters
    ----------
    kek_id
        Stable identifier shared by all versions (``kek:AUS:<hex>``).
    versions
        Version number -> RFC 3339 creation time, for every version ever created.
    primary_version
        The version new wraps use (the highest).
    state
        The stored :class:`KeyState`; see :meth:`effective` for the state at a time.
    min_decryption_version
        Versions below it are refused for unwrapping.
    deletion_date
        RFC 3339 time at which a pending deletion destroys the key material.
    destroyed_at
        When the material was destroyed (``None`` before).
    """

    kek_id: str
    versions: Mapping[int, str]
    primary_version: int = 1
    state: KeyState = KeyState.ENABLED
    min_decryption_version: int = 1
    deletion_date: str | None = None
    destroyed_at: str | None = None
    material_destroyed: bool = field(default=False)

    @staticmethod
    def new(kek_id: str, now: datetime) -> KekState:
        """A fresh enabled KEK with version 1."""
        return KekState(kek_id=kek_id, versions={1: rfc3339(now)})

    def to_json(self) -> dict[str, Any]:
        """JSON form, stored by the keystores."""
        return {
            "kek_id": self.kek_id,
            "primary_version": self.primary_version,
            "versions": {str(v): c for v, c in sorted(self.versions.items())},
            "state": self.state.value,
            "min_decryption_version": self.min_decryption_version,
            "deletion_date": self.deletion_date,
            "destroyed_at": self.destroyed_at,
            "material_destroyed": self.material_destroyed,
        }

    @staticmethod
    def from_json(doc: Mapping[str, Any], *, source: str) -> KekState:
        """Parse :meth:`to_json` output (missing lifecycle fields take defaults).

        Raises
        ------
        ConfigError
            If a field is missing or malformed (named in ``field``).
        """
        name = "kek_id"
        try:
            kek_id = str(doc["kek_id"])
            name = "versions"
            versions = {int(v): str(c) for v, c in dict(doc["versions"]).items()}
            name = "primary_version"
            primary = int(doc["primary_version"])
            name = "state"
            state = KeyState(doc.get("state", KeyState.ENABLED.value))
            name = "min_decryption_version"
            minimum = int(doc.get("min_decryption_version", 1))
            name = "deletion_date"
            deletion = doc.get("deletion_date")
            if deletion is not None:
                parse_rfc3339(str(deletion))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(
                "missing or malformed", source=source, field=name
            ) from exc
        if primary not in versions and state is not KeyState.DESTROYED:
            raise ConfigError(
                f"version {primary} is not listed", source=source, field=name
            )
        return KekState(
            kek_id=kek_id,
            versions=versions,
            primary_version=primary,
            state=state,
            min_decryption_version=minimum,
            deletion_date=None if deletion is None else str(deletion),
            destroyed_at=doc.get("destroyed_at"),
            material_destroyed=bool(doc.get("material_destroyed", False)),
        )

    def effective(self, now: datetime) -> KekState:
        """The state at ``now``: a pending deletion past its date is *destroyed*."""
        if deletion_due(self, now):
            return replace(
                self,
                state=KeyState.DESTROYED,
                destroyed_at=self.deletion_date,
            )
        return self


def deletion_due(state: KekState, now: datetime) -> bool:
    """Whether a pending deletion's waiting period has ended at ``now``."""
    return (
        state.state is KeyState.PENDING_DELETION
        and state.deletion_date is not None
        and now >= parse_rfc3339(state.deletion_date)
    )


def _refuse_unusable(state: KekState) -> None:
    if state.state is KeyState.DISABLED:
        raise KekDisabled(f"KEK {state.kek_id} is disabled", kek_id=state.kek_id)
    if state.state is KeyState.PENDING_DELETION:
        raise KekPendingDeletion(
            f"KEK {state.kek_id} is pending deletion until {state.deletion_date}",
            kek_id=state.kek_id,
        )
    if state.state is KeyState.DESTROYED:
        raise KekDestroyed(
            f"KEK {state.kek_id} was destroyed at {state.destroyed_at}; "
            "its data keys are unrecoverable",
            kek_id=state.kek_id,
        )


def check_wrap(state: KekState, now: datetime) -> int:
    """Return the version a new wrap uses, or raise :class:`KeyUnavailable`."""
    current = state.effective(now)
    _refuse_unusable(current)
    return current.primary_version


def check_unwrap(state: KekState, kek_id: str, version: int, now: datetime) -> None:
    """Allow unwrapping ``version`` of ``kek_id`` at ``now``, or raise.

    Raises
    ------
    IntegrityError
        If ``kek_id`` is another KEK or the version never existed.
    KeyUnavailable
        If the KEK is disabled, pending deletion or destroyed, or ``version`` is
        below ``min_decryption_version``.
    """
    if kek_id != state.kek_id:
        raise IntegrityError(
            f"data key is wrapped under {kek_id}, not under "
            f"this custodian's {state.kek_id}"
        )
    current = state.effective(now)
    _refuse_unusable(current)
    if version not in current.versions:
        raise IntegrityError(
            f"KEK version {version} does not exist", source=state.kek_id
        )
    if version < current.min_decryption_version:
        raise KeyVersionRetired(
            f"KEK {state.kek_id} version {version} is below the minimum decryption "
            f"version {current.min_decryption_version}",
            kek_id=state.kek_id,
        )


def _require(state: KekState, op: str, *allowed: KeyState) -> None:
    if state.state not in allowed:
        detail = state.state.value.replace("_", " ")
        if state.state is KeyState.PENDING_DELETION:
            detail += f" until {state.deletion_date}"
        raise KeyStateError(
            f"cannot {op}: KEK {state.kek_id} is {detail}", field="state"
        )


def rotate(state: KekState, now: datetime) -> KekState:
    """Add version N+1 and make it primary (the KEK must be enabled)."""
    current = state.effective(now)
    _require(current, "rotate", KeyState.ENABLED)
    version = max(current.versions) + 1
    return replace(
        current,
        versions={**current.versions, version: rfc3339(now)},
        primary_version=version,
    )


def disable(state: KekState, now: datetime) -> KekState:
    """Enabled -> disabled: every wrap and unwrap is refused."""
    current = state.effective(now)
    _require(current, "disable", KeyState.ENABLED)
    return replace(current, state=KeyState.DISABLED)


def enable(state: KekState, now: datetime) -> KekState:
    """Disabled -> enabled."""
    current = state.effective(now)
    _require(current, "enable", KeyState.DISABLED)
    return replace(current, state=KeyState.ENABLED)


def schedule_deletion(state: KekState, days: int, now: datetime) -> KekState:
    """Enabled or disabled -> pending deletion, destroyed after ``days`` (7-30).

    Raises
    ------
    ConfigError
        If ``days`` is outside 7-30 (field ``days``).
    KeyStateError
        If the KEK is already pending deletion or destroyed.
    """
    if not MIN_DELETION_DAYS <= days <= MAX_DELETION_DAYS:
        raise ConfigError(
            f"waiting period must be {MIN_DELETION_DAYS} to {MAX_DELETION_DAYS} "
            f"days, not {days}",
            field="days",
        )
    current = state.effective(now)
    _require(
        current, "schedule deletion", KeyState.ENABLED, KeyState.DISABLED
    )
    return replace(
        current,
        state=KeyState.PENDING_DELETION,
        deletion_date=rfc3339(now + timedelta(days=days)),
    )


def cancel_deletion(state: KekState, now: datetime) -> KekState:
    """Pending deletion -> disabled (AWS KMS ``CancelKeyDeletion``)."""
    current = state.effective(now)
    _require(current, "cancel deletion", KeyState.PENDING_DELETION)
    return replace(current, state=KeyState.DISABLED, deletion_date=None)


def set_min_decryption_version(
    state: KekState, version: int, now: datetime
) -> KekState:
    """Set the minimum version allowed to unwrap (1 to the primary version).

    Raises
    ------
    ConfigError
        If ``version`` is outside 1..primary (field ``version``).
    KeyStateError
        If the KEK is pending deletion or destroyed.
    """
    current = state.effective(now)
    _require(
        current,
        "set the minimum decryption version",
        KeyState.ENABLED,
        KeyState.DISABLED,
    )
    if not 1 <= version <= current.primary_version:
        raise ConfigError(
            f"must be 1 to the primary version {current.primary_version}, "
            f"not {version}",
            field="version",
        )
    return replace(current, min_decryption_version=version)


def mark_destroyed(state: KekState, now: datetime) -> KekState:
    """The state after the backend destroyed the material of a due deletion."""
    current = state.effective(now)
    _require(current, "destroy", KeyState.DESTROYED)
    return replace(current, material_destroyed=True)
