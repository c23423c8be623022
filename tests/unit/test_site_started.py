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
from orchestrator.submit.channel import (
    channel_certificates,
    install_site_channel,
    server_public,
)
from orchestrator.submit.providers import build_executor, to_parsl_config
from orchestrator.submit.siteconfig import load_site_config

SITE_STARTED = ROOT / "site_configs" / "local-site-started.toml"


def _channel(tmp_path: Path, site: str = "local") -> Path:
    from orchestrator.net.channel import new_key_pair

    return install_site_channel(tmp_path, site, new_key_pair(tmp_path / site, "client"))


def test_the_interchange_listens_on_the_sites_port_and_starts_no_blocks(
        tmp_path: Path) -> None:
    config = load_site_config(SITE_STARTED)
    _channel(tmp_path)
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
    with pytest.raises(NotFound, match="register the site from its card"):
        channel_certificates(tmp_path, "local")


def test_only_public_keys_cross_and_each_site_has_its_own_interchange_keys(
        tmp_path: Path) -> None:
    import zmq.auth

    root = tmp_path / "orch"
    site_pub = {}
    for site in ("local", "other"):
        from orchestrator.net.channel import new_key_pair

        site_pub[site] = new_key_pair(tmp_path / site, "client")
        install_site_channel(root, site, site_pub[site])
    first = channel_certificates(root, "local")
    assert first.stat().st_mode & 0o777 == 0o700  # Parsl refuses anything else
    accepted = {k.decode() for k in zmq.auth.load_certificates(str(first))}
    assert site_pub["local"] in accepted and site_pub["other"] not in accepted
    assert channel_certificates(root, "local") == first  # stable
    # the site's copy of the server certificate: the real public key and a
    # placeholder secret of its own (Parsl's loader demands one)
    from orchestrator.site.identity import SiteState

    site_dir = tmp_path / "local"
    site = SiteState(site_dir.parent / "site-local")
    site.trust_channel(server_public(root))
    public, secret = zmq.auth.load_certificate(
        str(site.channel_dir / "server.key_secret"))
    real_public, real_secret = zmq.auth.load_certificate(
        str(first / "server.key_secret"))
    assert public == real_public and secret not in (None, real_secret)
    with pytest.raises(ConfigError, match="Z85"):
        install_site_channel(root, "bad", "not a key")


def test_the_pool_command_reads_only_the_sites_directory(tmp_path: Path) -> None:
    site = init_site(tmp_path / "site", name="local", operator_nation="USA",
                     accreditation="SECRET", config_digest="sha256:" + "0" * 64)
    with pytest.raises(NotFound) as err:
        pool_command(site, PoolSettings("127.0.0.1", 54390))
    assert "orchestrator's channel key" in err.value.message
    certs = site.channel_dir
    assert (certs / "client.key_secret").is_file()  # made at init, at the site
    from orchestrator.net.channel import new_key_pair

    site.trust_channel(new_key_pair(tmp_path / "orch", "server"))
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
