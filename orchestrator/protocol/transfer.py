"""What the orchestrator relays between custodians in a model transfer.

The transfer request an owner's custodian decides on, the HPKE ``info`` that binds
a DEK sealed to the recipient custodian to one transfer. (The refusal, which
carries the custodian's decision, is
:class:`orchestrator.policy.transfer.TransferDenied`.)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from orchestrator.canonical import canonical_bytes, digest_of
from orchestrator.errors import ConfigError, SovereignError
from orchestrator.protocol.statements import SignedStatement

__all__ = [
    "HPKE_INFO_PREFIX",
    "TransferCustodian",
    "TransferRequest",
    "transfer_hpke_info",
]

#: Domain-separation prefix of the HPKE ``info`` of a transferred DEK.
HPKE_INFO_PREFIX = b"sovereign-transfer/v1\n"


def transfer_hpke_info(transfer_id: str, model_id: str, recipient: str,
                       model_digest: str) -> bytes:
    """HPKE ``info`` binding a sealed DEK to one transfer, model and recipient."""
    return HPKE_INFO_PREFIX + canonical_bytes(
        {"transfer_id": transfer_id, "model_id": model_id, "recipient": recipient,
         "model_digest": model_digest})


@dataclass(frozen=True)
class TransferRequest:
    """What the orchestrator asks an owner's custodian (JSON on the wire).

    Attributes
    ----------
    transfer_id
        Fresh id, ``"xfer-<16 hex>"``.
    model_id, model_digest
        The model and the sealed digest the orchestrator sees.
    recipient, end_use
        Receiving nation and declared end use.
    sender
        Non-owner nation re-transferring, or ``None``.
    consents
        Signed consents, unverified (the custodian verifies each).
    """

    transfer_id: str
    model_id: str
    model_digest: str
    recipient: str
    end_use: str
    sender: str | None = None
    consents: tuple[SignedStatement, ...] = ()

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"transfer_id": self.transfer_id, "model_id": self.model_id,
                "model_digest": self.model_digest, "recipient": self.recipient,
                "end_use": self.end_use, "sender": self.sender,
                "consents": [c.to_json() for c in self.consents]}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> TransferRequest:
        """Read :meth:`to_json` output.

        Raises
        ------
        ConfigError
            If a field is missing or not text (malformed consents are dropped
            here and cannot count).
        """
        try:
            text = {k: doc[k] for k in ("transfer_id", "model_id", "model_digest",
                                        "recipient", "end_use")}
            consents_doc = doc.get("consents", [])
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"malformed transfer request: {exc}") from exc
        if not all(isinstance(v, str) for v in text.values()):
            raise ConfigError("malformed transfer request: fields must be text")
        sender = doc.get("sender")
        if sender is not None and not isinstance(sender, str):
            raise ConfigError("malformed transfer request: sender must be text")
        consents = []
        for item in consents_doc if isinstance(consents_doc, list) else []:
            try:
                consents.append(SignedStatement.from_json(item))
            except SovereignError:
                continue
        return cls(sender=sender, consents=tuple(consents), **text)

    def digest(self) -> str:
        """``"sha256:<hex>"`` of :meth:`to_json`."""
        return digest_of(self.to_json())


@runtime_checkable
class TransferCustodian(Protocol):
    """The custodian operations a transfer needs (JSON in, JSON out).

    Implemented by :class:`orchestrator.nation.custodian.LocalCustodian` through
    :class:`orchestrator.nation.transfer_keys.TransferKeys`.
    """

    def export_model_key(self, request: dict[str, Any]) -> dict[str, Any]: ...

    def import_model_key(self, sealed: dict[str, Any]) -> dict[str, Any]: ...

    def open_transferred_key(self, transfer: dict[str, Any]) -> bytes: ...
