"""Fixtures for the integration tests: a real, throwaway PostgreSQL server.

``pg_server_url`` (session) runs ``scripts/postgres-start.sh`` (which installs the
server when missing), yields its URL and runs ``scripts/postgres-stop.sh`` at the
end. It never skips: if the server cannot be started the test fails with the
script's output. Set ``SOVEREIGN_PG_URL`` to use an already running server instead
(it is then neither started nor stopped).

``pg_url`` (function) gives each test its own empty schema on that server, through
the ``search_path`` in the URL's ``options``.
"""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

ROOT = Path(__file__).resolve().parents[2]
START = ROOT / "scripts" / "postgres-start.sh"
STOP = ROOT / "scripts" / "postgres-stop.sh"


@pytest.fixture(scope="session")
def pg_server_url() -> Iterator[str]:
    given = os.environ.get("SOVEREIGN_PG_URL")
    if given:
        yield given
        return
    proc = subprocess.run(["bash", str(START)], capture_output=True, text=True,
                          timeout=900, check=False)
    if proc.returncode != 0 or not proc.stdout.strip():
        pytest.fail(f"scripts/postgres-start.sh failed (exit {proc.returncode}):\n"
                    f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}", pytrace=False)
    try:
        yield proc.stdout.strip().splitlines()[-1]
    finally:
        subprocess.run(["bash", str(STOP)], capture_output=True, timeout=120,
                       check=False)


def with_schema(url: str, schema: str) -> str:
    """Return ``url`` with ``options=-csearch_path=<schema>`` added."""
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}')}"


@pytest.fixture
def pg_url(pg_server_url: str) -> Iterator[str]:
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(pg_server_url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
    try:
        yield with_schema(pg_server_url, schema)
    finally:
        with psycopg.connect(pg_server_url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")
