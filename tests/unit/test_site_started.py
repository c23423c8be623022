"""A site that starts its own Parsl worker pools, and the orchestrator's log entry.

The orchestrator's side (an HTEX interchange on the configured worker port,
no blocks of its own, the per-site CurveZMQ channel) and the site's side (the
``process_worker_pool`` command it runs under its own account) are checked
here without running workers; ``tests/integration/test_separated_job.py`` runs
the sonar job through them.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from testkit import ROOT

from orchestrator.errors import ConfigError, NotFound
from orchestrator.net.log_directory import load_log_entry, register_log, unregister_log
from orchestrator.site.identity import init_site
from orchestrator.site.workers import PoolSettings, pool_command
from orchestrator.submit.providers import (
    build_executor,
    channel_certificates,
    to_parsl_config,
)
from orchestrator.submit.siteconfig import load_site_config

SITE_STARTED = ROOT / "site_configs" / "local-site-started.toml"


def test_the_interchange_listens_on_the_sites_port_and_starts_no_blocks(
        tmp_path: Path) -> None:
    config = load_site_config(SITE_STARTED)
    certs = channel_certificates(tmp_path, "local")
    htex = build_executor(config, cert_dir=str(certs))
    assert htex.worker_port == 54390
    assert htex.cert_dir == str(certs) and htex.encrypted
    assert (htex.provider.init_blocks, htex.provider.max_blocks) == (0, 0)
    parsl_config = to_parsl_config(config, tmp_path / "run",
                                   cert_dirs={"local": str(certs)})
    assert parsl_config.executors[0].cert_dir == str(certs)


def test_a_site_started_site_needs_its_channel(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        build_executor(load_site_config(SITE_STARTED))
    assert err.value.field == "provider.type"


def test_the_channel_is_made_once_per_site_and_private(tmp_path: Path) -> None:
    first = channel_certificates(tmp_path, "local")
    secret = (first / "server.key_secret").read_bytes()
    again = channel_certificates(tmp_path, "local")
    assert again == first and (again / "server.key_secret").read_bytes() == secret
    other = channel_certificates(tmp_path, "other")
    assert (other / "client.key_secret").read_bytes() != (
        first / "client.key_secret").read_bytes()
    assert first.stat().st_mode & 0o777 == 0o700  # Parsl refuses anything else


def test_the_pool_command_reads_only_the_sites_directory(tmp_path: Path) -> None:
    site = init_site(tmp_path / "site", name="local", operator_nation="USA",
                     accreditation="SECRET", config_digest="sha256:" + "0" * 64)
    with pytest.raises(NotFound) as err:
        pool_command(site, PoolSettings("127.0.0.1", 54390))
    assert "channel certificates" in err.value.message
    certs = site.root / "parsl" / "certificates"
    certs.mkdir(parents=True, mode=0o700)
    (certs / "client.key_secret").write_text("x")
    cmd = pool_command(site, PoolSettings("127.0.0.1", 54390, max_workers=2))
    assert cmd[1:3] == ["-m", "parsl.executors.high_throughput.process_worker_pool"]
    assert cmd[cmd.index("--cert_dir") + 1] == str(certs)
    assert cmd[cmd.index("--port") + 1] == "54390"
    assert cmd[cmd.index("--max_workers_per_node") + 1] == "2"
    assert cmd[cmd.index("--logdir") + 1].startswith(str(site.root))


def test_an_uninitialised_site_runs_no_pool(tmp_path: Path) -> None:
    from orchestrator.site.identity import SiteState

    with pytest.raises(NotFound):
        pool_command(SiteState(tmp_path / "nothing"), PoolSettings("127.0.0.1", 54390))


def _ca(tmp_path: Path) -> Path:
    from orchestrator.log.operator import LogState

    state = LogState(tmp_path / "log")
    state.root.mkdir(mode=0o700)
    state.tls.init()
    return state.tls.ca_cert


def test_the_log_entry_round_trips_and_is_removed(tmp_path: Path) -> None:
    ca = _ca(tmp_path)
    assert load_log_entry(tmp_path) is None
    entry = register_log(tmp_path, "https://127.0.0.1:8444/", ca)
    assert entry.url == "https://127.0.0.1:8444"
    assert load_log_entry(tmp_path) == entry
    assert (tmp_path / "log.toml").stat().st_mode & 0o777 == 0o600
    unregister_log(tmp_path)
    assert load_log_entry(tmp_path) is None
    with pytest.raises(NotFound):
        unregister_log(tmp_path)


@pytest.mark.parametrize(("url", "fragment"), [
    ("http://127.0.0.1:8444", "https://HOST:PORT"),
    ("https://127.0.0.1:8444/v1", "https://HOST:PORT"),
    ("https://", "https://HOST:PORT"),
])
def test_a_bad_log_url_is_refused_and_nothing_written(tmp_path: Path, url: str,
                                                      fragment: str) -> None:
    with pytest.raises(ConfigError) as err:
        register_log(tmp_path, url, _ca(tmp_path))
    assert err.value.field == "log.url" and fragment in err.value.message
    assert not (tmp_path / "log.toml").exists()


def test_a_ca_that_is_not_a_ca_is_refused(tmp_path: Path) -> None:
    from orchestrator.log.operator import LogState

    _ca(tmp_path)
    leaf = LogState(tmp_path / "log").tls.server_cert
    with pytest.raises(ConfigError) as err:
        register_log(tmp_path, "https://127.0.0.1:1", leaf)
    assert "not a CA" in err.value.message
    with pytest.raises(NotFound):
        register_log(tmp_path, "https://127.0.0.1:1", tmp_path / "missing.pem")


@pytest.mark.parametrize(("text", "field"), [
    ("[log\n", None),
    ("x = 1\n", "log"),
    ('[log]\nurl = "https://h:1"\n', "log.ca"),
    ('[log]\nurl = "https://h:1"\nca = "c"\nport = 1\n', "log"),
    ('[log]\nurl = 5\nca = "c"\n', "log.url"),
])
def test_a_malformed_log_entry_names_its_field(tmp_path: Path, text: str,
                                               field: str | None) -> None:
    (tmp_path / "log.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_log_entry(tmp_path)
    assert err.value.source == str(tmp_path / "log.toml")
    assert err.value.field == field
    (tmp_path / "log.toml").write_bytes(b"\xff\xfe")
    with pytest.raises(ConfigError, match="UTF-8"):
        load_log_entry(tmp_path)
