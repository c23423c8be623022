"""Which key signs for each actor, as the log and the verifier's own trust establish it.

A log operator holds the log's storage: it can append an ``actor.enrolled``
entry for any key it made itself. So a self-signed enrollment proves only that
someone holds the key; it does not say the key is the actor's. A
:class:`KeyBook` takes an actor's key as *anchored* only when

* the verifier pinned it (a nation's custodian key is the witness key the
  officer pinned for that nation), or
* a pinned custodian admitted it (:data:`ADMISSION_SOURCES`): its
  ``actor.admitted`` entry for any actor it may admit (:func:`may_admit`), its
  ``site.accredited`` entry (``site_key_id``) for a site, or its own
  ``nation.initialized`` entry (``officer_key_id``) for its nation's officer.

An actor enrolls one key; a second enrollment is a *rotation* and counts only
when it carries the previous key's signature over
:func:`rotation_message` (``body.rotates = {"key_id", "signature"}``). A key a
rotation replaces signs nothing after the rotation; an admitted key anchors the
keys rotated from it, never the ones before it.

Pure logic: entries in, :class:`EnrollmentError` or facts out.
"""

from __future__ import annotations

from base64 import b64decode
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from orchestrator.crypto import key_id_of, verify_signature
from orchestrator.errors import ConfigError, IntegrityError
from orchestrator.tlog.events import CustodyEvent, SignedEntry
from orchestrator.tlog.roles import ADMIT_KIND, ENROLL_KIND, parse_actor

__all__ = ["ADMISSION_SOURCES", "EnrollmentError", "KeyBook", "admissions_in",
           "may_admit", "rotation_message"]

#: Custodian event kinds that admit an actor's key, and the body field naming it.
ADMISSION_SOURCES = {ADMIT_KIND: "key_id", "site.accredited": "site_key_id",
                     "nation.initialized": "officer_key_id"}

_ROTATION_CONTEXT = b"sovereign-key-rotation/v1\n"


class EnrollmentError(ValueError):
    """An enrollment the key book refuses (the message says why)."""


def rotation_message(actor: str, new_key_id: str) -> bytes:
    """What an actor's current key signs to hand over to ``new_key_id``.

    ``b"sovereign-key-rotation/v1\\n" || actor || b"\\n" || new_key_id`` (UTF-8).
    """
    return _ROTATION_CONTEXT + actor.encode() + b"\n" + new_key_id.encode()


def may_admit(admitter: str, actor: str) -> bool:
    """Whether ``admitter`` may admit ``actor``'s key: a nation's custodian
    admits its own officer, any site it accredits and the orchestrator."""
    try:
        role, nation = parse_actor(admitter)
        target, name = parse_actor(actor)
    except ConfigError:  # not an actor name: admits nothing
        return False
    if role != "custodian":
        return False
    return target in ("site", "orchestrator") or (
        target == "officer" and name == nation)


def admissions_in(entry: SignedEntry) -> list[tuple[str, str]]:
    """The ``(actor, key_id)`` pairs a custodian's entry admits (none for
    another role or kind, or for an actor it may not admit)."""
    event, body = entry.event, entry.event.body
    key_field = ADMISSION_SOURCES.get(event.kind)
    if key_field is None or not event.actor.startswith("custodian:"):
        return []
    if event.kind == ADMIT_KIND:
        actor = str(body.get("actor", ""))
    elif event.kind == "site.accredited":
        actor = f"site:{body.get('site', '')}"
    else:
        actor = f"officer:{body.get('nation', '')}"
    key_id = body.get(key_field)
    if not isinstance(key_id, str) or not may_admit(event.actor, actor):
        return []
    return [(actor, key_id)]


class Enrollment(Protocol):
    """An enrollment as signed (a :class:`SignedEntry`, or the event before it
    is placed)."""

    @property
    def event(self) -> CustodyEvent: ...

    @property
    def signer(self) -> str: ...


@dataclass
class _Key:
    public: bytes
    key_id: str
    since: int
    """Index of the enrollment that made it the actor's key."""


@dataclass
class KeyBook:
    """Actors' keys in log order (see the module docstring).

    Parameters
    ----------
    pinned
        Actor -> 32-byte Ed25519 key the verifier trusts on its own (e.g. the
        nations' custodian keys from the officer's witness keys).
    require_pinned_roles
        Roles whose keys must be pinned (``custodian``), never merely admitted.
    """

    pinned: Mapping[str, bytes] = field(default_factory=dict)
    require_pinned_roles: frozenset[str] = frozenset({"custodian"})
    history: dict[str, list[_Key]] = field(default_factory=dict)
    admitted: dict[str, dict[str, str]] = field(default_factory=dict)
    """Actor -> key id -> the custodian that admitted it."""

    def enroll(self, entry: Enrollment, *, dry_run: bool = False) -> bytes:
        """Take the key an ``actor.enrolled`` entry at ``entry.seq`` names and
        return it; enrolling the current key again changes nothing. With
        ``dry_run``, only check it (an event not placed yet has no ``seq``).

        Raises
        ------
        EnrollmentError
            A malformed enrollment, one not signed by the key it names, a key
            other than the pinned one, or a second key without a rotation
            signed by the current key.
        """
        event = entry.event
        body = event.body
        actor = event.actor
        if event.kind != ENROLL_KIND:
            raise EnrollmentError(f"{event.kind} is not an enrollment")
        try:
            public = b64decode(str(body["public_key"]), validate=True)
        except (KeyError, ValueError) as exc:
            raise EnrollmentError(f"malformed enrollment of {actor}") from exc
        kid = key_id_of(public) if len(public) == 32 else ""
        if (body.get("actor") != actor or not kid or body.get("key_id") != kid
                or entry.signer != kid):
            raise EnrollmentError(f"enrollment of {actor} is not signed by the key "
                                  "it names")
        pinned = self.pinned.get(actor)
        if pinned is not None and pinned != public:
            raise EnrollmentError(f"{actor} enrolled a key other than the one pinned "
                                  "for it")
        keys = self.history.setdefault(actor, [])
        if keys and keys[-1].public == public:
            return public
        if keys:
            self._check_rotation(actor, keys[-1], kid, body.get("rotates"))
        if not dry_run:
            keys.append(_Key(public, kid, int(getattr(entry, "seq", -1))))
        elif not keys:
            del self.history[actor]
        return public

    @staticmethod
    def _check_rotation(actor: str, current: _Key, kid: str, rotates: object) -> None:
        if not isinstance(rotates, Mapping) or rotates.get("key_id") != current.key_id:
            raise EnrollmentError(f"{actor} enrolled a second key ({kid}) without a "
                                  f"rotation signed by its key {current.key_id}")
        try:
            signature = b64decode(str(rotates.get("signature")), validate=True)
            verify_signature(current.public, signature, rotation_message(actor, kid))
        except (ValueError, IntegrityError) as exc:
            raise EnrollmentError(f"{actor}'s rotation to key {kid} is not signed by "
                                  f"its key {current.key_id}") from exc

    def key_at(self, actor: str, index: int) -> bytes | None:
        """The key that signs for ``actor`` at log ``index`` (the one enrolled
        last at or before it), or ``None``."""
        found = None
        for key in self.history.get(actor, []):
            if key.since <= index:
                found = key.public
        return found

    def current(self, actor: str) -> bytes | None:
        """``actor``'s newest enrolled key, or ``None``."""
        keys = self.history.get(actor)
        return keys[-1].public if keys else None

    def admit(self, entry: SignedEntry) -> None:
        """Record what a custodian's (verified) entry admits."""
        for actor, key_id in admissions_in(entry):
            self.admitted.setdefault(actor, {}).setdefault(key_id, entry.event.actor)

    def unanchored(self, actor: str, key_id: str) -> str | None:
        """Why ``actor``'s key ``key_id`` is not anchored, or ``None`` if it is."""
        role = actor.partition(":")[0]
        pinned = self.pinned.get(actor)
        if pinned is not None:
            return None if key_id_of(pinned) == key_id else (
                f"{actor} signs with key {key_id}, not the pinned one")
        if role in self.require_pinned_roles:
            return (f"{actor}'s key is not pinned in the verifier's trust (pin its "
                    "nation's card)")
        admitted = self.admitted.get(actor, {})
        for key in self.history.get(actor, []):
            if key.key_id in admitted:
                return None  # an admitted key anchors the keys rotated from it
            if key.key_id == key_id:
                break
        return (f"{actor}'s key {key_id} was admitted by no pinned custodian "
                "(actor.admitted, site.accredited or nation.initialized)")
