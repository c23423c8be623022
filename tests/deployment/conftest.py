"""Fixtures of the deployment test: the parties as Unix users (``parties``)."""

from __future__ import annotations

import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from parties import (
    USERS,
    Deployed,
    ensure_user,
    need_root,
    python_ok,
    set_up,
    shared_python,
)


@pytest.fixture(scope="module")
def deployed() -> Iterator[Deployed]:
    """Every party set up by its own user, the log and both custodians serving
    (see :func:`parties.set_up`); stopped and removed at the end."""
    why = need_root()
    if why:
        pytest.fail(why)
    for user in USERS.values():
        ensure_user(user)
    base = Path(tempfile.mkdtemp(prefix="sov-deploy-", dir="/tmp"))
    base.chmod(0o755)
    python, project = shared_python(base)
    d = Deployed(base, python, project)
    try:
        why = python_ok(d)
        if why:
            pytest.fail(f"another user cannot import the project: {why}")
        set_up(d)
        yield d
    finally:
        d.stop()
        shutil.rmtree(base, ignore_errors=True)
