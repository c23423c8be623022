"""Plaintext DEKs and KEKs never appear outside their boundary (plan test 13).

A full job runs through the real CLI and Parsl workers. The test then collects
every DEK (unwrapping every key each owner's custodian wrapped, from its own
store, with its keystore) and every KEK version (read from each nation's
``kek.json``), and searches every artifact for their raw, hex and base64 forms:

* every file of every party's directory (the orchestrator's registry, sealed
  objects and Parsl run dirs, the log, each custodian's store, journal, nonce
  and grant DBs, the site's staging area and checkpoints), ``kek.json``
  excepted for KEKs only (it is where they live);
* stdout and stderr of every CLI invocation;
* every custody-log entry (its leaf bytes).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from testkit import ROOT, CliResult, Sovereign, ctx_of

from orchestrator.canonical import b64d
from orchestrator.crypto import combine_dek_shares
from orchestrator.embedded.layout import StateDir
from orchestrator.log.store import CustodyLog

pytestmark = pytest.mark.slow


def _forms(secret: bytes) -> list[bytes]:
    b64 = base64.b64encode(secret)
    url = base64.urlsafe_b64encode(secret)
    return [secret, secret.hex().encode(), secret.hex().upper().encode(), b64,
            b64.rstrip(b"="), url, url.rstrip(b"=")]


def test_no_dek_or_kek_outside_its_boundary(tmp_path: Path) -> None:
    cli = Sovereign(tmp_path / "state")
    outputs: list[CliResult] = []

    def run(*args: str) -> CliResult:
        result = cli(*args)
        outputs.append(result)
        return result

    for nation in ("AUS", "GBR", "USA"):
        run("nation", "init", nation)
    run("site", "register", "site_configs/local.toml")
    run("site", "accredit", "local", "--by", "AUS")
    run("site", "accredit", "local", "--by", "GBR")
    run("site", "accredit", "local", "--by", "USA")
    run("dataset", "seal", "data/sonar/sonar.csv", "--name", "uci-sonar",
        "--owner", "AUS", "--classification", "SECRET", "--rel-to", "AUS,GBR,USA")
    run("agreement", "add", "agreements/aus-usa.toml",
        "--sign-as", "AUS,USA")
    job = run("submit", "workflows/sonar_classification.toml", "--site", "local",
              "--json").json()
    assert job["models"], "the job produced no model to scan for"
    state = StateDir(cli.state)
    shares_of: dict[str, list[bytes]] = {}  # every key each custodian wrapped
    for nation in ("AUS", "GBR", "USA"):
        ctx = ctx_of(state, nation)
        keystore = ctx.keys.keystore()
        for record in [*ctx.store.datasets(), *ctx.store.objects()]:
            wrapped = record.wrapped
            shares_of.setdefault(record.id, []).append(keystore.unwrap(
                wrapped["kek_id"], int(wrapped["kek_version"]),
                b64d(wrapped["wrapped_dek"])))
    deks: list[bytes] = []
    for shares in shares_of.values():
        deks.extend(shares)
        if len(shares) > 1:
            deks.append(combine_dek_shares(shares))
    keks: list[bytes] = []
    kek_files = sorted(state.root.glob("nations/*/kek.json"))
    for path in kek_files:
        for version in json.loads(path.read_text())["versions"].values():
            keks.append(b64d(version["key"]))
    assert len(deks) >= 2 and len(keks) >= 3

    dek_forms = [f for d in deks for f in _forms(d)]
    kek_forms = [f for k in keks for f in _forms(k)]
    files = [p for p in state.root.rglob("*") if p.is_file()]
    assert any("runinfo" in str(p) for p in files), "Parsl run dir not scanned"
    hits: list[str] = []
    for path in files:
        blob = path.read_bytes()
        hits += [f"DEK in {path}" for f in dek_forms if f in blob]
        if path not in kek_files:
            hits += [f"KEK in {path}" for f in kek_forms if f in blob]
    for i, out in enumerate(outputs):
        blob = (out.out + out.err).encode()
        hits += [f"secret in CLI output {i}" for f in dek_forms + kek_forms
                 if f in blob]
    entries = list(CustodyLog(state.custody_db).entries())
    assert any(e.event.kind == "key.released" for e in entries)
    for entry in entries:
        blob = entry.leaf_bytes()
        hits += [f"secret in custody entry {entry.seq}"
                 for f in dek_forms + kek_forms if f in blob]
    assert hits == []


def _party_of(state: StateDir, path: Path) -> str:
    """``log``, ``nations/AUS``, ``officers/AUS``, ``sites/local`` or
    ``orchestrator``: whose directory holds ``path``."""
    parts = path.relative_to(state.root).parts
    return "/".join(parts[:2]) if parts[0] in ("nations", "officers", "sites") \
        else parts[0]


@pytest.fixture(scope="module")
def ran(tmp_path_factory: pytest.TempPathFactory) -> StateDir:
    """A small job run through the CLI (2 folds, no final model)."""
    root = tmp_path_factory.mktemp("who-holds-what")
    cli = Sovereign(root / "state")
    for nation in ("AUS", "GBR", "USA"):
        cli("nation", "init", nation)
    cli("site", "register", "site_configs/local.toml")
    for nation in ("AUS", "USA"):
        cli("site", "accredit", "local", "--by", nation)
    cli("dataset", "seal", "data/sonar/sonar.csv", "--name", "uci-sonar",
        "--owner", "AUS", "--classification", "SECRET", "--rel-to", "AUS,GBR,USA")
    cli("agreement", "add", "agreements/aus-usa.toml", "--sign-as", "AUS,USA")
    text = (ROOT / "workflows" / "sonar_classification.toml").read_text()
    workflow = root / "small.toml"
    workflow.write_text(text.replace('code = "sonar_classification.py"',
                                     f'code = "{ROOT / "workflows"}/'
                                     'sonar_classification.py"')
                        .replace("folds = 13", "folds = 2")
                        .replace("epochs = 300", "epochs = 20"))
    cli("submit", str(workflow), "--site", "local")
    return StateDir(cli.state)


def test_every_private_key_stays_in_its_partys_directory(ran: StateDir) -> None:
    """Issue "Parties apart", item 1: each party's keys exist only in its own
    directory; the orchestrator holds no private key but its own, the site none
    but its own."""
    state = ran
    files = [p for p in state.root.rglob("*") if p.is_file()]
    private = [p for p in files if b"PRIVATE KEY-----" in p.read_bytes()]
    held: dict[str, set[str]] = {}
    for path in private:
        held.setdefault(_party_of(state, path), set()).add(
            str(path.relative_to(state.root / _party_of(state, path))))
    assert held["orchestrator"] == {"orchestrator.key", "tls/client.key"}
    assert held["sites/local"] == {"site.key", "tls/client.key"}
    assert held["log"] == {"log.key", "tls/ca.key", "tls/server.key",
                           "client/client.key"}
    for code in ("AUS", "GBR", "USA"):
        assert held[f"nations/{code}"] == {"custodian.key", "pki/ca.key",
                                           "pki/server.key"}
        assert held[f"officers/{code}"] == {"officer.key", "tls/client.key"}
    # The key material itself (PEM bodies; the raw HPKE keys and KEKs) appears in
    # no file of another party: not in the registry, run dirs, staging, logs.
    secrets: list[tuple[str, bytes]] = []
    for path in private:
        body = b"".join(line for line in path.read_bytes().splitlines()
                        if line and not line.startswith(b"-----"))
        secrets.append((_party_of(state, path), body))
    for code in ("AUS", "GBR", "USA"):
        nation = state.nation_dir(code)
        raw = (nation / "hpke.key").read_bytes()
        secrets += [(f"nations/{code}", f) for f in _forms(raw)]
        versions = json.loads((nation / "kek.json").read_text())["versions"]
        for version in versions.values():
            secrets += [(f"nations/{code}", f) for f in _forms(b64d(version["key"]))]
    leaks = [f"{owner} secret in {path.relative_to(state.root)}"
             for path in files for owner, secret in secrets
             if _party_of(state, path) != owner and secret in path.read_bytes()]
    assert leaks == []
