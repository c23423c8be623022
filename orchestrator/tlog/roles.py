"""Who may write what in the custody log: actors, roles and the kinds they write.

Every entry's actor is ``<role>:<name>`` (``custodian:AUS``, ``officer:AUS``,
``site:local``) or ``orchestrator``; its key is published by the actor's own
``actor.enrolled`` entry; and each role writes only its own kinds of event
(:data:`ROLE_KINDS`): a site cannot write ``key.released``, the orchestrator
cannot write ``task.completed``. The log checks it on every append and every
verifier checks it again (:class:`orchestrator.tlog.verify.EnrollingVerifier`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from orchestrator.errors import ConfigError

__all__ = ["ADMIT_KIND", "ENROLL_KIND", "ROLES", "ROLE_KINDS", "check_writer",
           "parse_actor"]

#: The enrollment entry: an actor publishes the key it signs with.
ENROLL_KIND = "actor.enrolled"

#: A nation's custodian vouches for another actor's enrolled key (its officer,
#: the orchestrator): see :mod:`orchestrator.tlog.enrollment`.
ADMIT_KIND = "actor.admitted"

#: Actor roles.
ROLES = ("custodian", "officer", "site", "orchestrator")

#: Event kinds each role writes (prefix ``x.*`` = every kind starting ``x.``).
ROLE_KINDS: Mapping[str, frozenset[str]] = {
    "custodian": frozenset({
        ENROLL_KIND, ADMIT_KIND, "nation.initialized", "dataset.sealed",
        "policy.decided",
        "key.*", "kek.*", "notification.recorded", "approval.requested",
        "approval.used", "approval.refused", "approval.cancelled",
        "approval.granted", "approval.denied", "console.login",
        "agreement.effective", "agreement.superseded", "site.accredited",
        "site.accreditation.revoked", "site.accreditation.reconciled",
        "model.opened", "model.open.denied",
        "transfer.decided", "transfer.denied", "transfer.completed",
        "transfer.opened", "access.denied",
    }),
    "officer": frozenset({
        ENROLL_KIND, "agreement.signed", "agreement.terminated",
        "notification.acknowledged", "transfer.consented", "code.approved",
        "code.revoked",
    }),
    "site": frozenset({
        ENROLL_KIND, "site.registered", "task.started", "task.completed",
        "task.refused",
        "task.failed", "checkpoint.sealed", "checkpoint.restored",
    }),
    "orchestrator": frozenset({
        ENROLL_KIND, "request.submitted", "job.*", "model.sealed",
        "agreement.added", "allocation.recorded", "task.retried",
    }),
}

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def parse_actor(actor: str) -> tuple[str, str]:
    """Split an actor name into ``(role, name)``; ``orchestrator`` has name ``""``.

    Raises
    ------
    ConfigError
        If the role is unknown or the name is not a plain identifier.
    """
    if actor == "orchestrator":
        return "orchestrator", ""
    role, sep, name = actor.partition(":")
    if not sep or role not in ROLES or role == "orchestrator" or not _NAME.match(name):
        raise ConfigError(f"actor {actor!r} is not <role>:<name> with role one of "
                          f"{', '.join(ROLES)}", field="actor")
    return role, name


def _allowed(kinds: frozenset[str], kind: str) -> bool:
    return kind in kinds or any(
        k.endswith(".*") and kind.startswith(k[:-1]) for k in kinds)


def check_writer(actor: str, kind: str) -> None:
    """Refuse an event kind the actor's role does not write.

    Raises
    ------
    ConfigError
        If the actor name is malformed.
    PermissionError
        If ``kind`` is not one of :data:`ROLE_KINDS` for the actor's role.
    """
    role, _ = parse_actor(actor)
    if not _allowed(ROLE_KINDS[role], kind):
        raise PermissionError(f"a {role} does not write {kind} events")
