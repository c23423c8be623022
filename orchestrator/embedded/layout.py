"""Where the embedded default keeps each party: one directory per party.

The embedded default composes every party on one machine, each with its own
directory under the state directory (all ``0700``)::

    <state>/log/                   the custody log operator (log.key, custody.db, tls/)
    <state>/nations/<AUS>/         nation AUS's custodian (KEK, keys, stores, pki/)
    <state>/officers/<AUS>/        AUS's sovereignty officer (officer.key, trust.json)
    <state>/sites/<name>/          a site (site.key, tls/, checkpoints, staging/)
    <state>/orchestrator/          the orchestrator (orchestrator.key, registry.db,
                                   objects/, runinfo/, tls/)

No party's code reads another's directory: the composition root
(:mod:`orchestrator.embedded.deployment`) gives each party its own and connects
them through the same interfaces the separated deployment uses over the network.

The state directory is chosen by ``--state-dir``, else ``$SOVEREIGN_STATE_DIR``,
else ``./.sovereign``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "SOVEREIGN_STATE_DIR"
DEFAULT_DIR = ".sovereign"

__all__ = ["DEFAULT_DIR", "ENV_VAR", "StateDir", "resolve_state_dir"]


def resolve_state_dir(option: str | Path | None = None) -> Path:
    """Return the absolute state directory from option, environment or default."""
    chosen = option or os.environ.get(ENV_VAR) or DEFAULT_DIR
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class StateDir:
    """The parties' directories inside one state directory (no I/O until
    :meth:`ensure`)."""

    root: Path

    @property
    def log_dir(self) -> Path:
        """The custody log operator's directory."""
        return self.root / "log"

    @property
    def custody_db(self) -> Path:
        """The log operator's SQLite storage (for tests of its own files)."""
        return self.log_dir / "custody.db"

    def nation_dir(self, code: str) -> Path:
        """Nation ``code``'s custodian directory."""
        return self.root / "nations" / code

    def officer_dir(self, code: str) -> Path:
        """Nation ``code``'s officer's directory."""
        return self.root / "officers" / code

    def site_dir(self, name: str) -> Path:
        """Site ``name``'s directory."""
        return self.root / "sites" / name

    @property
    def orchestrator_dir(self) -> Path:
        """The orchestrator's directory."""
        return self.root / "orchestrator"

    @property
    def registry_db(self) -> Path:
        """The orchestrator's registry."""
        return self.orchestrator_dir / "registry.db"

    @property
    def orchestrator_key(self) -> Path:
        """The orchestrator's signing key."""
        return self.orchestrator_dir / "orchestrator.key"

    @property
    def datasets_dir(self) -> Path:
        """The orchestrator's sealed datasets."""
        return self.orchestrator_dir / "objects" / "datasets"

    @property
    def models_dir(self) -> Path:
        """The orchestrator's sealed models."""
        return self.orchestrator_dir / "objects" / "models"

    @property
    def runinfo_dir(self) -> Path:
        """Parent of the orchestrator's Parsl run directories."""
        return self.orchestrator_dir / "runinfo"

    def nations(self) -> list[str]:
        """Nations initialised here whose directories this user can read (in a
        separated deployment on one machine, another party's ``0700`` directory
        is not one of them)."""
        folder = self.root / "nations"
        if not folder.is_dir():
            return []
        found = []
        for path in folder.iterdir():
            try:
                if (path / "custodian.key").is_file():
                    found.append(path.name)
            except PermissionError:
                continue
        return sorted(found)

    def ensure(self) -> StateDir:
        """Create the party directories with mode ``0700``; return ``self``."""
        for path in (self.root, self.log_dir, self.root / "nations",
                     self.root / "officers", self.root / "sites",
                     self.orchestrator_dir):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self
