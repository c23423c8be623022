"""An officer's trust configuration: the only keys its verification trusts.

``<officer>/trust.json``::

    {"log": {"origin": "...", "vkey": "<origin>+<hint>+<key>"},
     "witnesses": {"AUS": "witness-AUS+<hint>+<key>", "GBR": "..."},
     "quorum": ["AUS", "GBR"]}

``custody verify`` and ``verify-bundle`` take keys from here (or explicit flags),
never from the log or a bundle: keys a bundle carries are only *matched* against
these. The witnesses are the nations' custodians (their cosignature/v1 keys are
their custodian keys), so a log operator that forks or rolls back the log cannot
satisfy a quorum of parties that do not run the log.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.crypto import atomic_write_bytes
from orchestrator.errors import ConfigError
from orchestrator.timeutil import rfc3339, system_clock
from orchestrator.tlog.names import witness_key_name
from orchestrator.tlog.note import ALG_COSIGNATURE_V1, ALG_ED25519, NoteVerifier

__all__ = ["TRUST_CHANGES", "TrustConfig", "replace_pinned_log"]

_logger = logging.getLogger(__name__)

#: An officer's record of every change to its pinned log key (JSON lines).
TRUST_CHANGES = "trust-changes.jsonl"


@dataclass
class TrustConfig:
    """Pinned log and witness keys and the cosigner quorum.

    Attributes
    ----------
    log_vkey
        The log's verifier key (its key name is its origin), or ``""``.
    witnesses
        Nation -> its witness verifier key.
    quorum
        Nations whose cosignature every verified checkpoint must carry.
    """

    log_vkey: str = ""
    witnesses: dict[str, str] = field(default_factory=dict)
    quorum: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> TrustConfig:
        """Read ``path``; an absent file is an empty configuration.

        Raises
        ------
        ConfigError
            If it is malformed or a key does not parse (file and field named).
        """
        try:
            doc = json.loads(path.read_bytes())
        except FileNotFoundError:
            return cls()
        except ValueError as exc:
            raise ConfigError("not JSON", source=str(path)) from exc
        if not isinstance(doc, dict):
            raise ConfigError("not a JSON object", source=str(path))
        config = cls(log_vkey=str((doc.get("log") or {}).get("vkey", "")),
                     witnesses={str(k): str(v) for k, v in
                                dict(doc.get("witnesses") or {}).items()},
                     quorum=[str(q) for q in doc.get("quorum") or []])
        config.check(source=str(path))
        return config

    def check(self, *, source: str = "<trust>") -> None:
        """Refuse malformed keys, wrong key types or names, or a quorum naming an
        unpinned witness.

        Raises
        ------
        ConfigError
            On the first problem (``field`` named).
        """
        if self.log_vkey:
            try:
                log = NoteVerifier.from_vkey(self.log_vkey)
            except Exception as exc:
                raise ConfigError(f"log key does not parse: {exc}", source=source,
                                  field="log.vkey") from exc
            if log.alg != ALG_ED25519:
                raise ConfigError("the log key must be Ed25519 (type 0x01)",
                                  source=source, field="log.vkey")
        for nation, vkey in self.witnesses.items():
            try:
                w = NoteVerifier.from_vkey(vkey)
            except Exception as exc:
                raise ConfigError(f"witness key does not parse: {exc}",
                                  source=source, field=f"witnesses.{nation}") from exc
            if w.alg != ALG_COSIGNATURE_V1 or w.name != witness_key_name(nation):
                raise ConfigError(
                    f"not the cosignature/v1 key {witness_key_name(nation)}",
                    source=source, field=f"witnesses.{nation}")
        unknown = [q for q in self.quorum if q not in self.witnesses]
        if unknown:
            raise ConfigError(f"quorum names unpinned witness(es) {', '.join(unknown)}",
                              source=source, field="quorum")

    def save(self, path: Path) -> None:
        """Write the configuration (0600) after :meth:`check`."""
        self.check(source=str(path))
        doc: dict[str, Any] = {"log": {"vkey": self.log_vkey,
                                       "origin": self.origin},
                               "witnesses": dict(sorted(self.witnesses.items())),
                               "quorum": sorted(set(self.quorum))}
        atomic_write_bytes(path, json.dumps(doc, indent=1).encode(), mode=0o600)

    @property
    def origin(self) -> str:
        """The pinned log's origin (its key name)."""
        return NoteVerifier.from_vkey(self.log_vkey).name if self.log_vkey else ""

    def log_verifier(self) -> NoteVerifier:
        """The pinned log key.

        Raises
        ------
        ConfigError
            If none is pinned.
        """
        if not self.log_vkey:
            raise ConfigError("no log key is pinned (sovereign officer trust "
                              "--log-key VKEY)", field="log.vkey")
        return NoteVerifier.from_vkey(self.log_vkey)

    def witness_verifiers(self) -> dict[str, NoteVerifier]:
        """Pinned witness keys by nation."""
        return {n: NoteVerifier.from_vkey(v) for n, v in self.witnesses.items()}


def replace_pinned_log(root: Path, old_vkey: str, new_vkey: str, source: str) -> Path:
    """Record, in the officer's directory ``root``, that its operator re-pinned
    the log from ``old_vkey`` to ``new_vkey`` by hand; keep the trusted
    checkpoint of the old log aside (the new log is verified from first use).
    Returns where the old checkpoint went.

    A log's key is its identity (its origin, C2SP tlog-checkpoint): a new key is
    a new log, so nothing it shows can be checked against the old one.
    """
    now = system_clock()
    kept = root / f"checkpoint.{now.strftime('%Y%m%dT%H%M%SZ')}.replaced.json"
    current = root / "checkpoint.json"
    if current.exists():
        current.replace(kept)
    line = json.dumps({"at": rfc3339(now), "change": "log key re-pinned by hand",
                       "old": old_vkey, "new": new_vkey, "from": source,
                       "old_checkpoint": kept.name}, sort_keys=True)
    with open(root / TRUST_CHANGES, "a", encoding="utf-8") as out:
        out.write(line + "\n")
    _logger.warning("officer trust: the pinned log key changed by hand from %s to "
                    "%s; the new log is trusted on first use", old_vkey, new_vkey)
    return kept
