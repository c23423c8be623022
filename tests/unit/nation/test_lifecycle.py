"""The KEK lifecycle: the pure state machine, and a hypothesis model of it on the
file keystore (random sequences of operations and clock advances)."""

from __future__ import annotations

import json
import shutil
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from orchestrator.crypto import new_dek
from orchestrator.errors import ConfigError, IntegrityError, LedgerError
from orchestrator.nation import lifecycle
from orchestrator.nation.keystore import FileKeystore
from orchestrator.nation.lifecycle import (
    KekDestroyed,
    KekDisabled,
    KekPendingDeletion,
    KekState,
    KeyState,
    KeyStateError,
    KeyUnavailable,
    KeyVersionRetired,
)

T0 = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    now: datetime = T0

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class Audit:
    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    fail: bool = False

    def __call__(self, kind: str, body: dict[str, Any]) -> int:
        if self.fail:
            raise LedgerError("custody log unavailable")
        self.events.append((kind, body))
        return len(self.events)


# -- the pure state machine ----------------------------------------------------
def test_rotation_and_min_decryption_version() -> None:
    s = KekState.new("kek:AUS:1", T0)
    s = lifecycle.rotate(lifecycle.rotate(s, T0), T0)
    assert s.primary_version == 3 and sorted(s.versions) == [1, 2, 3]
    lifecycle.check_unwrap(s, "kek:AUS:1", 1, T0)
    s = lifecycle.set_min_decryption_version(s, 2, T0)
    with pytest.raises(KeyVersionRetired, match="below the minimum decryption"):
        lifecycle.check_unwrap(s, "kek:AUS:1", 1, T0)
    lifecycle.check_unwrap(s, "kek:AUS:1", 2, T0)
    with pytest.raises(ConfigError, match="primary version 3, not 4") as err:
        lifecycle.set_min_decryption_version(s, 4, T0)
    assert err.value.field == "version"
    with pytest.raises(IntegrityError, match="version 9 does not exist"):
        lifecycle.check_unwrap(s, "kek:AUS:1", 9, T0)
    with pytest.raises(IntegrityError, match="not under"):
        lifecycle.check_unwrap(s, "kek:GBR:2", 2, T0)


def test_disable_enable() -> None:
    s = lifecycle.disable(KekState.new("kek:AUS:1", T0), T0)
    with pytest.raises(KekDisabled, match="is disabled"):
        lifecycle.check_wrap(s, T0)
    with pytest.raises(KekDisabled):
        lifecycle.check_unwrap(s, "kek:AUS:1", 1, T0)
    with pytest.raises(KeyStateError, match="cannot rotate"):
        lifecycle.rotate(s, T0)
    with pytest.raises(KeyStateError, match="cannot disable"):
        lifecycle.disable(s, T0)
    s = lifecycle.enable(s, T0)
    assert lifecycle.check_wrap(s, T0) == 1


@pytest.mark.parametrize("days", [0, 6, 31, 365])
def test_waiting_period_is_7_to_30_days(days: int) -> None:
    with pytest.raises(ConfigError, match="7 to 30 days") as err:
        lifecycle.schedule_deletion(KekState.new("k", T0), days, T0)
    assert err.value.field == "days"


def test_scheduled_deletion_cancel_and_destruction() -> None:
    s = lifecycle.schedule_deletion(KekState.new("k", T0), 7, T0)
    until = s.deletion_date
    assert until == "2026-11-28T12:00:00.000000Z"
    for moment in (T0, T0 + timedelta(days=6, hours=23)):
        with pytest.raises(KekPendingDeletion, match=f"pending deletion until {until}"):
            lifecycle.check_unwrap(s, "k", 1, moment)
        with pytest.raises(KekPendingDeletion):
            lifecycle.check_wrap(s, moment)
    cancelled = lifecycle.cancel_deletion(s, T0 + timedelta(days=3))
    assert cancelled.state is KeyState.DISABLED and cancelled.deletion_date is None
    later = T0 + timedelta(days=7)
    assert s.effective(later).state is KeyState.DESTROYED
    with pytest.raises(KekDestroyed, match="unrecoverable"):
        lifecycle.check_unwrap(s, "k", 1, later)
    with pytest.raises(KeyStateError, match="cannot cancel deletion: KEK k is destr"):
        lifecycle.cancel_deletion(s, later)
    for op in (lifecycle.enable, lifecycle.disable, lifecycle.rotate):
        with pytest.raises(KeyStateError):
            op(s, later)


def test_state_json_round_trip_and_old_files() -> None:
    s = lifecycle.schedule_deletion(
        lifecycle.rotate(KekState.new("k", T0), T0), 30, T0
    )
    assert KekState.from_json(s.to_json(), source="x") == s
    old = {"kek_id": "k", "primary_version": 1, "versions": {"1": "2026"}}
    assert KekState.from_json(old, source="x").state is KeyState.ENABLED
    with pytest.raises(ConfigError) as err:
        KekState.from_json({**old, "state": "melted"}, source="kek.json")
    assert err.value.field == "state" and err.value.source == "kek.json"


# -- the model, on the file keystore --------------------------------------------
@dataclass
class Wrapped:
    dek: bytes
    kek_id: str
    version: int
    blob: bytes


class FileLifecycleMachine(RuleBasedStateMachine):
    """Random operations and clock advances against a model of the KMS rules."""

    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="kek-lifecycle-"))
        self.clock = FakeClock()
        self.audit = Audit()
        path = self.dir / "kek.json"
        FileKeystore.create(path, "AUS", "2026-11-21T12:00:00.000000Z")
        self.store = FileKeystore(path, clock=self.clock, audit=self.audit)
        self.kek_id = self.store.kek_id
        self.state = "enabled"
        self.deletion_at: datetime | None = None
        self.primary = 1
        self.min_version = 1
        self.wrapped: list[Wrapped] = []

    def teardown(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    def _state(self) -> str:
        if self.state == "pending" and self.deletion_at is not None:
            if self.clock.now >= self.deletion_at:
                self.state = "destroyed"
        return self.state

    def _change(self, fn: Any, allowed: bool, *args: Any) -> bool:
        """Run a lifecycle op; with ``fail`` the audit raises and nothing changes."""
        before = self.store.status()
        if not allowed:
            with pytest.raises(ConfigError):
                fn(*args)
            return False
        if self.audit.fail:
            with pytest.raises(LedgerError):
                fn(*args)
            after = FileKeystore(self.store.path, clock=self.clock).status()
            assert after == before
            return False
        fn(*args)
        return True

    @rule(fail=st.booleans())
    def toggle_audit_failure(self, fail: bool) -> None:
        self.audit.fail = fail and self._state() != "destroyed"

    @rule()
    def rotate(self) -> None:
        if self._change(self.store.rotate, self._state() == "enabled"):
            self.primary += 1

    @rule()
    def disable(self) -> None:
        if self._change(self.store.disable, self._state() == "enabled"):
            self.state = "disabled"

    @rule()
    def enable(self) -> None:
        if self._change(self.store.enable, self._state() == "disabled"):
            self.state = "enabled"

    @rule(days=st.integers(min_value=0, max_value=40))
    def schedule_deletion(self, days: int) -> None:
        ok = 7 <= days <= 30 and self._state() in ("enabled", "disabled")
        if self._change(self.store.schedule_deletion, ok, days):
            self.state = "pending"
            self.deletion_at = self.clock.now + timedelta(days=days)

    @rule()
    def cancel_deletion(self) -> None:
        if self._change(self.store.cancel_deletion, self._state() == "pending"):
            self.state, self.deletion_at = "disabled", None

    @rule(version=st.integers(min_value=0, max_value=6))
    def set_min(self, version: int) -> None:
        ok = self._state() in ("enabled", "disabled") and 1 <= version <= self.primary
        if self._change(self.store.set_min_decryption_version, ok, version):
            self.min_version = version

    @rule(days=st.integers(min_value=0, max_value=20), hours=st.integers(0, 23))
    def advance(self, days: int, hours: int) -> None:
        self.clock.advance(days=days, hours=hours)

    @rule()
    def wrap(self) -> None:
        dek = new_dek()
        if self._state() != "enabled":
            with pytest.raises(KeyUnavailable):
                self.store.wrap(dek)
            return
        version, blob = self.store.wrap(dek)
        assert version == self.primary and len(blob) == 40
        self.wrapped.append(Wrapped(dek, self.kek_id, version, blob))

    @rule(index=st.integers(min_value=0, max_value=50))
    def rewrap(self, index: int) -> None:
        if not self.wrapped:
            return
        item = self.wrapped[index % len(self.wrapped)]
        ok = self._state() == "enabled" and item.version >= self.min_version
        if not ok:
            with pytest.raises(KeyUnavailable):
                self.store.rewrap(item.kek_id, item.version, item.blob)
            return
        version, blob = self.store.rewrap(item.kek_id, item.version, item.blob)
        assert version == self.primary
        assert self.store.unwrap(item.kek_id, version, blob) == item.dek
        self.wrapped.append(Wrapped(item.dek, item.kek_id, version, blob))

    @invariant()
    def every_unwrap_follows_the_rules(self) -> None:
        state = self._state()
        for item in self.wrapped:
            if state == "enabled" and item.version >= self.min_version:
                assert self.store.unwrap(item.kek_id, item.version, item.blob) == (
                    item.dek
                )
                continue
            with pytest.raises(KeyUnavailable) as err:
                self.store.unwrap(item.kek_id, item.version, item.blob)
            expected = {
                "disabled": KekDisabled,
                "pending": KekPendingDeletion,
                "destroyed": KekDestroyed,
                "enabled": KeyVersionRetired,
            }[state]
            assert isinstance(err.value, expected)

    @invariant()
    def destroyed_means_no_key_material(self) -> None:
        if self._state() == "destroyed" and not self.audit.fail:
            self.store.status()  # an audited use destroys due material
            doc = json.loads(self.store.path.read_text())
            assert all("key" not in v for v in doc["versions"].values())
            assert self.audit.events[-1][0] == "kek.destroyed" or any(
                kind == "kek.destroyed" for kind, _ in self.audit.events
            )


FileLifecycleMachine.TestCase.settings = settings(
    max_examples=150,
    stateful_step_count=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestFileLifecycle = FileLifecycleMachine.TestCase
