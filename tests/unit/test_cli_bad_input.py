"""Bad input at the CLI gets a one-line error naming the field or file and a
non-zero exit, never a traceback, and changes nothing (issue 17's three crashes
fixed at their cause, plus the console's plain-HTTP bind)."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner, Result

from orchestrator.cli import app
from orchestrator.errors import ConfigError
from orchestrator.net.directory import load_directory

ROOT = Path(__file__).resolve().parents[2]
SONAR = ROOT / "data/sonar/sonar.csv"


def clean(result: Result) -> None:
    """Refused without a traceback: a SystemExit with a non-zero code."""
    assert result.exit_code not in (0, None), result.output
    assert isinstance(result.exception, SystemExit), result.exception


@pytest.fixture(scope="module")
def state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "state"
    result = CliRunner().invoke(app, ["nation", "init", "AUS", "--state-dir",
                                      str(root)])
    assert result.exit_code == 0, result.output
    return root


def _datasets(state: Path) -> list[str]:
    result = CliRunner().invoke(app, ["dataset", "list", "--json", "--state-dir",
                                      str(state)])
    assert result.exit_code == 0, result.output
    return [line for line in result.output.splitlines() if '"id"' in line]


@pytest.mark.parametrize("column", ["--1", "-", "1-", "+-3", "--", "99", "-99",
                                    "no-such-header"])
def test_a_bad_label_column_is_refused_by_name(state: Path, column: str) -> None:
    before = _datasets(state)
    result = CliRunner().invoke(app, [
        "dataset", "seal", str(SONAR), "--name", "x", "--owner", "AUS",
        "--classification", "SECRET", "--rel-to", "AUS",
        f"--label-column={column}", "--state-dir", str(state)])
    clean(result)
    assert result.exit_code == 2
    assert "column" in result.output
    assert _datasets(state) == before


def test_a_nations_toml_that_is_not_utf8_names_the_file(state: Path) -> None:
    path = state / "orchestrator" / "nations.toml"
    path.write_bytes(b"\xff\xfe[nations.AUS]\n")
    try:
        result = CliRunner().invoke(app, ["custodian", "list", "--state-dir",
                                          str(state)])
        clean(result)
        assert result.exit_code == 2
        assert "nations.toml" in result.output and "UTF-8" in result.output
    finally:
        path.unlink()


@settings(max_examples=400, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=200))
def test_any_nations_toml_bytes_parse_or_raise_config_error(tmp_path: Path,
                                                           data: bytes) -> None:
    (tmp_path / "nations.toml").write_bytes(data)
    try:
        load_directory(tmp_path)
    except ConfigError as exc:
        assert "nations.toml" in str(exc.source)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.10", "console.example"])
def test_the_console_refuses_plain_http_off_loopback(state: Path, host: str) -> None:
    result = CliRunner().invoke(app, ["console", "serve", "--as", "AUS", "--host",
                                      host, "--state-dir", str(state)])
    clean(result)
    assert result.exit_code == 2
    assert "refusing to serve plain HTTP" in result.output


def test_the_console_needs_both_tls_files(state: Path, tmp_path: Path) -> None:
    cert = tmp_path / "c.pem"
    cert.write_text("x")
    result = CliRunner().invoke(app, ["console", "serve", "--as", "AUS", "--host",
                                      "0.0.0.0", "--tls-cert", str(cert),
                                      "--state-dir", str(state)])
    clean(result)
    assert "--tls-cert and --tls-key go together" in result.output
    result = CliRunner().invoke(app, ["console", "serve", "--as", "AUS", "--tls-cert",
                                      str(cert), "--tls-key", str(tmp_path / "none"),
                                      "--state-dir", str(state)])
    clean(result)
    assert "no such file" in result.output
