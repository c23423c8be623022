"""Shared helpers for the custody-log tests: test signers, keys and event chains."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from orchestrator.tlog.events import ZERO_HASH, CustodyEvent, SignedEntry
from orchestrator.tlog.verify import TrustedKey

#: (actor, kind) pairs cycled through by :func:`make_event`.
STEPS = [
    ("custodian:AUS", "dataset.sealed"),
    ("officer:AUS", "policy.decided"),
    ("custodian:AUS", "key.released"),
    ("site:local", "task.started"),
    ("site:local", "task.completed"),
    ("orchestrator", "job.completed"),
]


class KeySigner:
    """Ed25519 test signer satisfying :class:`orchestrator.tlog.Signer`."""

    def __init__(self, private: Ed25519PrivateKey | None = None) -> None:
        self._sk = private or Ed25519PrivateKey.generate()
        self.public_key = self._sk.public_key().public_bytes(Encoding.Raw,
                                                             PublicFormat.Raw)
        self._key_id = "ed25519:" + hashlib.sha256(self.public_key).hexdigest()[:16]

    @property
    def key_id(self) -> str:
        return self._key_id

    def sign(self, data: bytes) -> bytes:
        return self._sk.sign(data)

    def trusted(self, *actors: str) -> TrustedKey:
        return TrustedKey(self.key_id, self.public_key, frozenset(actors))


@dataclass
class World:
    """One signer per actor and the matching trusted-key table."""

    signers: dict[str, KeySigner] = field(default_factory=dict)
    keys: dict[str, TrustedKey] = field(default_factory=dict)

    def signer_for(self, event: CustodyEvent) -> KeySigner:
        return self.signers[event.actor]


def make_world() -> World:
    world = World()
    for actor in sorted({a for a, _ in STEPS}):
        signer = KeySigner()
        world.signers[actor] = signer
        world.keys[signer.key_id] = signer.trusted(actor)
    return world


def make_event(i: int, job_id: str = "job-1", *, event_id: str | None = None,
               note: str | None = None) -> CustodyEvent:
    actor, kind = STEPS[i % len(STEPS)]
    return CustodyEvent.create(
        kind, actor, {"job_id": job_id, "n": i, "note": note or f"entry-{i:04d}"},
        event_id=event_id, time=f"2026-01-01T00:{i // 60 % 60:02d}:{i % 60:02d}."
                                f"{i:06d}Z")


def chain(world: World, events: list[CustodyEvent]) -> list[SignedEntry]:
    """Sign ``events`` into a valid chain in memory (as the store would)."""
    out: list[SignedEntry] = []
    prev = ZERO_HASH
    for seq, event in enumerate(events):
        entry = SignedEntry.create(seq, prev, event, world.signer_for(event))
        out.append(entry)
        prev = entry.entry_hash()
    return out
