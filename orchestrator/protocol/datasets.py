"""A sealed dataset as the owner hands it over: public descriptor and shares.

The data owner's steward seals a dataset at its own nation and hands the sealed
file to the orchestrator with a :class:`DatasetDescriptor`: the id, name, label,
manifest (row and column counts, the plaintext SHA-256, nothing of the values),
the SHA-256 of the sealed file and, for a jointly owned dataset, each co-owner's
DEK share as a ``dataset-share/v1`` statement (HPKE-sealed to that co-owner's
custodian, signed by the sealing custodian) that the orchestrator relays.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orchestrator.canonical import canonical_bytes
from orchestrator.errors import ConfigError

__all__ = ["DatasetDescriptor", "share_hpke_info"]

#: Domain-separation prefix of the HPKE ``info`` of a sealed DEK share.
SHARE_INFO_PREFIX = b"sovereign-dataset-share/v1\n"


@dataclass(frozen=True)
class DatasetDescriptor:
    """Public facts of one sealed dataset.

    Attributes
    ----------
    id, name
        ``ds-<16 hex>`` and the steward's name for it.
    label
        The security label (JSON).
    manifest
        The manifest bound into the envelope header (its digest).
    sealed_digest
        ``"sha256:<hex>"`` of the sealed file.
    shares
        Co-owner nation -> its signed ``dataset-share/v1`` statement (JSON).
    """

    id: str
    name: str
    label: dict[str, Any]
    manifest: dict[str, Any]
    sealed_digest: str
    shares: dict[str, dict[str, Any]] = field(default_factory=dict)

    def public_json(self) -> dict[str, Any]:
        """Every field but the shares."""
        return {"id": self.id, "name": self.name, "label": self.label,
                "manifest": self.manifest, "sealed_digest": self.sealed_digest}

    def to_json(self) -> dict[str, Any]:
        """Every field (the file a steward hands over)."""
        return {**self.public_json(), "shares": self.shares}

    @classmethod
    def from_json(cls, doc: dict[str, Any], *, source: str = "<descriptor>"
                  ) -> DatasetDescriptor:
        """Parse a descriptor.

        Raises
        ------
        ConfigError
            If a field is missing or of the wrong type (``source`` named).
        """
        try:
            out = cls(id=str(doc["id"]), name=str(doc["name"]),
                      label=dict(doc["label"]), manifest=dict(doc["manifest"]),
                      sealed_digest=str(doc["sealed_digest"]),
                      shares={str(k): dict(v) for k, v in
                              dict(doc.get("shares") or {}).items()})
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"malformed dataset descriptor: {exc}",
                              source=source) from exc
        if not out.id.startswith("ds-") or not out.sealed_digest.startswith("sha256:"):
            raise ConfigError("malformed dataset descriptor: id or digest",
                              source=source)
        return out


def share_hpke_info(descriptor: DatasetDescriptor, recipient: str) -> bytes:
    """HPKE ``info`` binding a sealed DEK share to one dataset and recipient."""
    return SHARE_INFO_PREFIX + canonical_bytes({"recipient": recipient,
                                                **descriptor.public_json()})
