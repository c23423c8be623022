"""Everything other parties may ask of a nation's custodian, and who may ask.

:class:`CustodianApi` is implemented in-process by
:class:`~orchestrator.nation.custodian.LocalCustodian` and over mutual TLS by
:class:`~orchestrator.net.custodian_client.HttpCustodian`; the service
(:mod:`orchestrator.nation.service`) serves it and refuses any operation the
caller's role (the SPIFFE identity in its client certificate) does not hold,
with 403 and a logged denial (:data:`ROLE_OPERATIONS`).

Officers' signed events may come through the officer or be relayed by the
orchestrator: they are authenticated by the officer's signature against the key
the custodian pinned, not by who carried them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Protocol

from orchestrator.protocol.log import SignedEvent
from orchestrator.protocol.release import Custodian
from orchestrator.protocol.statements import SignedStatement
from orchestrator.tlog.events import SignedEntry

__all__ = ["OPERATIONS", "OPERATION_SCOPE", "ROLE_OPERATIONS", "CustodianApi"]

#: Operation -> the roles that may call it.
ROLE_OPERATIONS: Mapping[str, frozenset[str]] = {
    "challenge": frozenset({"site"}),
    "release": frozenset({"site"}),
    "wrap": frozenset({"site"}),
    "decide": frozenset({"orchestrator"}),
    "card": frozenset({"orchestrator", "site", "officer", "log", "custodian"}),
    "add_agreement": frozenset({"orchestrator", "officer"}),
    "accept": frozenset({"officer", "orchestrator"}),
    "accept_allocation": frozenset({"orchestrator"}),
    "accept_dataset_share": frozenset({"orchestrator"}),
    "cancel_job": frozenset({"orchestrator"}),
    "export_model_key": frozenset({"orchestrator"}),
    "import_model_key": frozenset({"orchestrator"}),
    "approvals": frozenset({"officer"}),
    "decide_approval": frozenset({"officer"}),
    "console_login": frozenset({"officer"}),
    "standings": frozenset({"officer", "orchestrator"}),
    "accredit": frozenset({"officer"}),
    "revoke_accreditation": frozenset({"officer"}),
    "accreditations": frozenset({"officer", "orchestrator", "site"}),
    "open_model_key": frozenset({"officer"}),
    "open_transferred_key": frozenset({"officer"}),
    "witness": frozenset({"log"}),
    "witness_history": frozenset({"officer"}),
}
#: Every operation.
OPERATIONS = frozenset(ROLE_OPERATIONS)

#: Operation -> whose it is, checked against the caller's certificate once its
#: role may call it (refused with 403 and ``access.denied`` otherwise; README,
#: "Who may do what at a custodian"):
#:
#: ``own-nation``  an officer acts only for the custodian's own nation;
#: ``own-site``    a site acts only for the site its certificate names;
#: ``owner``       an officer of a nation among the object's owners;
#: ``own-events``  an officer delivers only events in its own name (the
#:                 orchestrator relays any: each is verified by its signature);
#: ``any``         any caller of a role that may call it.
OPERATION_SCOPE: Mapping[str, str] = {
    "challenge": "any", "release": "own-site", "wrap": "own-site",
    "decide": "any", "card": "any", "add_agreement": "any",
    "accept": "own-events", "accept_allocation": "any",
    "accept_dataset_share": "any", "cancel_job": "any",
    "export_model_key": "any", "import_model_key": "any",
    "approvals": "own-nation", "decide_approval": "own-nation",
    "console_login": "own-nation", "standings": "any",
    "accredit": "own-nation", "revoke_accreditation": "own-nation",
    "accreditations": "any", "open_model_key": "owner",
    "open_transferred_key": "own-nation", "witness": "any",
    "witness_history": "any",
}


class CustodianApi(Custodian, Protocol):
    """A nation's custodian beyond key release (see the module docstring)."""

    def card(self) -> dict[str, Any]:
        """The nation's signed card (``nation-card/v1``)."""
        ...

    def add_agreement(self, document: dict[str, Any]) -> dict[str, Any]:
        """Keep an agreement document; return its standing here."""
        ...

    def accept(self, signed: SignedEvent) -> SignedEntry:
        """Check and record an officer's signed event."""
        ...

    def accept_allocation(self, seq: int) -> SignedEntry:
        """Journal the orchestrator's ``allocation.recorded`` at log index ``seq``."""
        ...

    def accept_dataset_share(self, share: dict[str, Any]) -> str:
        """Accept a co-owner's DEK share of a dataset; return the dataset id."""
        ...

    def cancel_job(self, job_id: str, reason: str) -> list[str]:
        """Cancel a failed job's open approval requests; return their ids."""
        ...

    def export_model_key(self, request: dict[str, Any]) -> dict[str, Any]:
        """As an owner: decide a transfer and seal the DEK to the recipient."""
        ...

    def import_model_key(self, sealed: dict[str, Any]) -> dict[str, Any]:
        """As the recipient: wrap a transferred DEK under this KEK."""
        ...

    def approvals(self, status: str | None = None) -> list[dict[str, Any]]:
        """This nation's approval requests (latest round each)."""
        ...

    def decide_approval(self, signed: SignedStatement) -> dict[str, Any]:
        """Record this nation's officer's signed ``approval/v1`` decision."""
        ...

    def console_login(self, signed: SignedStatement) -> int:
        """Record an officer's console login; return its log index."""
        ...

    def standings(self) -> list[dict[str, Any]]:
        """Standing of every agreement version held here."""
        ...

    def accredit(self, description: dict[str, Any], *, ceiling: str,
                 tee_kinds: list[str], expires_at: datetime,
                 operator_nation: str | None = None) -> dict[str, Any]:
        """Sign and keep an accreditation of a site key; return it."""
        ...

    def revoke_accreditation(self, site: str, reason: str) -> list[str]:
        """Revoke a site's accreditations; return their ids."""
        ...

    def accreditations(self, site: str | None = None) -> list[dict[str, Any]]:
        """The accreditations held here, with revocation status."""
        ...

    def open_model_key(self, object_id: str) -> bytes:
        """For this nation's officer: the DEK of a model it owns (logged)."""
        ...

    def open_transferred_key(self, transfer_id: str, model_id: str,
                             model_digest: str) -> bytes:
        """For this nation's officer: the DEK of a model transferred to it."""
        ...

    def witness(self, body: bytes) -> bytes:
        """C2SP tlog-witness ``add-checkpoint``: cosignature lines."""
        ...

    def witness_history(self, origin: str) -> bytes:
        """The first checkpoint this nation's witness cosigned for the log
        ``origin`` (the log's note with its cosignature line), or ``b""``."""
        ...
