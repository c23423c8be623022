"""Pytest fixtures shared by every test directory (helpers live in ``testkit``)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from testkit import sovereign, world

__all__ = ["sovereign", "world"]
