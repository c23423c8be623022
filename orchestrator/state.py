"""The embedded default's state directory: where every file of a deployment lives.

Layout (all created ``0700``; key files ``0600``)::

    <state>/registry.db              sites, datasets, agreements, jobs, models (SQLite)
    <state>/custody.db               the custody log (SQLite, WAL, synchronous=FULL)
    <state>/orchestrator.key         the orchestrator's Ed25519 signing key
    <state>/nations/<AUS>/           a local custodian per nation (KEK stays there)
    <state>/sites/<name>/site.key    a registered site's Ed25519 signing identity
    <state>/objects/datasets/        sealed datasets (ciphertext only)
    <state>/objects/models/          sealed models (ciphertext only)
    <state>/runinfo/                 Parsl run directories

The directory is chosen by ``--state-dir``, else ``$SOVEREIGN_STATE_DIR``, else
``./.sovereign``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

ENV_VAR = "SOVEREIGN_STATE_DIR"
DEFAULT_DIR = ".sovereign"


def resolve_state_dir(option: str | Path | None = None) -> Path:
    """Return the absolute state directory from option, environment or default."""
    chosen = option or os.environ.get(ENV_VAR) or DEFAULT_DIR
    return Path(chosen).expanduser().resolve()


@dataclass(frozen=True)
class StateDir:
    """Paths inside one state directory (no I/O until :meth:`ensure`)."""

    root: Path

    @property
    def registry_db(self) -> Path:
        """SQLite file of the registry."""
        return self.root / "registry.db"

    @property
    def custody_db(self) -> Path:
        """SQLite file of the custody log."""
        return self.root / "custody.db"

    @property
    def log_dir(self) -> Path:
        """Directory of the custody log operator (its key and storage)."""
        return self.root / "log"

    @property
    def orchestrator_key(self) -> Path:
        """The orchestrator's signing key file."""
        return self.root / "orchestrator.key"

    def nation_dir(self, code: str) -> Path:
        """Directory of nation ``code``'s local custodian."""
        return self.root / "nations" / code

    def site_dir(self, name: str) -> Path:
        """Directory of site ``name``'s identity."""
        return self.root / "sites" / name

    @property
    def datasets_dir(self) -> Path:
        """Where sealed datasets are stored."""
        return self.root / "objects" / "datasets"

    @property
    def models_dir(self) -> Path:
        """Where sealed models are stored."""
        return self.root / "objects" / "models"

    @property
    def runinfo_dir(self) -> Path:
        """Parent of Parsl run directories."""
        return self.root / "runinfo"

    def ensure(self) -> StateDir:
        """Create the directory tree with mode ``0700``; return ``self``."""
        for path in (
            self.root,
            self.datasets_dir,
            self.models_dir,
            self.runinfo_dir,
            self.root / "nations",
            self.root / "sites",
        ):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self
