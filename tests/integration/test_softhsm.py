"""The PKCS#11 KEK backend against a real SoftHSM2 token.

The session fixture runs ``scripts/softhsm-init.sh`` (which installs SoftHSM2 when
missing) into a fresh token directory; it never skips: if the token cannot be made,
every test here fails with the script's output.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pkcs11
import pytest
from pkcs11 import Attribute, KeyType, ObjectClass
from pkcs11.exceptions import AttributeSensitive
from testkit import ROOT, SONAR, Sovereign

from orchestrator.crypto import new_dek, wrap_dek
from orchestrator.errors import ConfigError, IntegrityError, LedgerError
from orchestrator.nation.identity import pkcs11_config
from orchestrator.nation.lifecycle import (
    KekDestroyed,
    KekDisabled,
    KekPendingDeletion,
    KeyVersionRetired,
)
from orchestrator.nation.pkcs11_keystore import (
    SOFTHSM_MODULE,
    Pkcs11Config,
    Pkcs11Keystore,
)

pytestmark = pytest.mark.softhsm

LABEL = "sovereign-test"
USER_PIN = "4711-user"
PIN_ENV = "SOVEREIGN_TEST_PKCS11_PIN"


@dataclass(frozen=True)
class Token:
    conf: Path
    config: Pkcs11Config

    def session(self) -> Any:
        token = pkcs11.lib(SOFTHSM_MODULE).get_token(token_label=LABEL)
        return token.open(user_pin=USER_PIN, rw=True)


@pytest.fixture(scope="session")
def token(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Token]:
    conf = tmp_path_factory.mktemp("softhsm") / "softhsm2.conf"
    env = {
        **os.environ,
        "SOFTHSM2_CONF": str(conf),
        "SOFTHSM_TOKEN_LABEL": LABEL,
        "SOFTHSM_SO_PIN": "0815-so-pin",
        "SOFTHSM_USER_PIN": USER_PIN,
    }
    script = ROOT / "scripts" / "softhsm-init.sh"
    proc = subprocess.run(
        ["bash", str(script)],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    last = proc.stdout.strip().splitlines()[-1:] or [""]
    if proc.returncode != 0 or last[0] != str(conf):
        pytest.fail(
            f"scripts/softhsm-init.sh failed (exit {proc.returncode}):\n"
            f"{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}",
            pytrace=False,
        )
    saved = {k: os.environ.get(k) for k in ("SOFTHSM2_CONF", PIN_ENV)}
    os.environ["SOFTHSM2_CONF"] = str(conf)
    os.environ[PIN_ENV] = USER_PIN
    try:
        yield Token(conf, pkcs11_config("TST", token_label=LABEL, pin_env=PIN_ENV))
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class Clock:
    def __init__(self) -> None:
        from orchestrator.timeutil import system_clock

        self.now = system_clock()

    def __call__(self) -> Any:
        return self.now


def _objects(tok: Token, prefix: str) -> list[str]:
    with tok.session() as session:
        labels = [
            str(o[Attribute.LABEL])
            for o in session.get_objects({Attribute.CLASS: ObjectClass.SECRET_KEY})
        ]
    return sorted(label for label in labels if label.startswith(prefix))


def test_script_is_idempotent(token: Token) -> None:
    env = {
        **os.environ,
        "SOFTHSM_SO_PIN": "0815-so-pin",
        "SOFTHSM_USER_PIN": USER_PIN,
        "SOFTHSM_TOKEN_LABEL": LABEL,
    }
    proc = subprocess.run(
        ["bash", str(ROOT / "scripts" / "softhsm-init.sh")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    assert proc.stdout.strip().splitlines()[-1] == str(token.conf)
    assert "already initialised" in proc.stderr


def test_kek_is_generated_in_the_token_and_never_extractable(
    token: Token, tmp_path: Path
) -> None:
    store = Pkcs11Keystore.create(tmp_path, "TST", token.config)
    label = f"{store.kek_id}:v1"
    assert _objects(token, store.kek_id) == [label]
    with token.session() as session:
        kek = session.get_key(object_class=ObjectClass.SECRET_KEY, label=label)
        assert kek.key_type == KeyType.AES and kek[Attribute.VALUE_LEN] == 32
        assert kek[Attribute.EXTRACTABLE] is False
        assert kek[Attribute.SENSITIVE] is True
        assert kek[Attribute.NEVER_EXTRACTABLE] is True
        assert kek[Attribute.LOCAL] is True  # generated inside the token
        with pytest.raises(AttributeSensitive):
            kek[Attribute.VALUE]
    meta = (tmp_path / "kek-meta.json").read_text()
    assert json.loads(meta)["backend"] == "pkcs11" and "key" not in meta


def test_concurrent_use_from_many_threads(token: Token, tmp_path: Path) -> None:
    """The custodian service serves requests on several threads: PKCS#11 login is
    per application, so concurrent sessions must not collide (regression:
    ``UserAlreadyLoggedIn`` under concurrent releases)."""
    from concurrent.futures import ThreadPoolExecutor

    store = Pkcs11Keystore.create(tmp_path, "TST", token.config)

    def round_trip(_: int) -> bool:
        dek = new_dek()
        version, blob = store.wrap(dek)
        return store.unwrap(store.kek_id, version, blob) == dek

    with ThreadPoolExecutor(max_workers=8) as pool:
        assert all(pool.map(round_trip, range(64)))


def test_wrap_unwrap_round_trip_and_tampering(token: Token, tmp_path: Path) -> None:
    store = Pkcs11Keystore.create(tmp_path, "TST", token.config)
    dek = new_dek()
    version, blob = store.wrap(dek)
    assert (version, len(blob)) == (1, 40)  # RFC 5649: 32-byte key -> 40 bytes
    assert store.unwrap(store.kek_id, 1, blob) == dek
    with pytest.raises(IntegrityError, match="does not authenticate"):
        store.unwrap(store.kek_id, 1, blob[:-1] + bytes([blob[-1] ^ 1]))
    with pytest.raises(IntegrityError, match="not under"):
        store.unwrap("kek:TST:other", 1, blob)


@pytest.mark.parametrize("size", [8, 16, 24, 32, 64])
def test_rfc5649_format_matches_the_file_keystore(
    token: Token, tmp_path: Path, size: int
) -> None:
    """A *separate test object* holds a known AES-256 key (importable, unlike a KEK);
    wrapping through the keystore's PKCS#11 path must give ``wrap_dek``'s bytes."""
    known = bytes(range(100, 132))
    kek_id = f"kek:TST:interop{size}"
    meta = {"kek_id": kek_id, "primary_version": 1, "versions": {"1": "t"}}
    (tmp_path / "kek-meta.json").write_text(json.dumps(meta))
    with token.session() as session:
        session.create_object(
            {
                Attribute.CLASS: ObjectClass.SECRET_KEY,
                Attribute.KEY_TYPE: KeyType.AES,
                Attribute.VALUE: known,
                Attribute.TOKEN: True,
                Attribute.PRIVATE: True,
                Attribute.LABEL: f"{kek_id}:v1",
                Attribute.WRAP: True,
                Attribute.UNWRAP: True,
            }
        )
    try:
        store = Pkcs11Keystore(tmp_path, token.config)
        dek = os.urandom(size)
        _, blob = store.wrap(dek)
        assert blob == wrap_dek(known, dek)
        assert store.unwrap(kek_id, 1, wrap_dek(known, dek)) == dek
    finally:
        with token.session() as session:
            for obj in session.get_objects({Attribute.LABEL: f"{kek_id}:v1"}):
                obj.destroy()


@pytest.mark.parametrize("size", [0, 1, 9, 31])
def test_key_lengths_softhsm_would_pad_are_refused(
    token: Token, tmp_path: Path, size: int
) -> None:
    """SoftHSM2 zero-pads key data to a multiple of 8 before RFC 5649 wrapping
    (softhsm/SoftHSMv2#307), which changes the length field: refuse such keys."""
    store = Pkcs11Keystore.create(tmp_path, "TST", token.config)
    with pytest.raises(ConfigError, match=f"not {size}"):
        store.wrap(os.urandom(size))


def test_lifecycle_on_the_token(token: Token, tmp_path: Path) -> None:
    clock, events = Clock(), []

    def audit(kind: str, body: dict[str, Any]) -> None:
        events.append(kind)

    Pkcs11Keystore.create(tmp_path, "TST", token.config)
    store = Pkcs11Keystore(tmp_path, token.config, clock=clock, audit=audit)
    kek_id = store.kek_id
    dek = new_dek()
    _, v1 = store.wrap(dek)
    store.rotate()
    assert _objects(token, kek_id) == [f"{kek_id}:v1", f"{kek_id}:v2"]
    version, v2 = store.rewrap(kek_id, 1, v1)  # inside the token
    assert version == 2 and store.unwrap(kek_id, 2, v2) == dek
    assert store.unwrap(kek_id, 1, v1) == dek  # older versions stay usable
    store.set_min_decryption_version(2)
    with pytest.raises(KeyVersionRetired):
        store.unwrap(kek_id, 1, v1)
    store.disable()
    with pytest.raises(KekDisabled):
        store.unwrap(kek_id, 2, v2)
    with pytest.raises(KekDisabled):
        store.wrap(dek)
    store.enable()

    def failing(kind: str, body: dict[str, Any]) -> None:
        raise LedgerError("log down")

    with pytest.raises(LedgerError):
        Pkcs11Keystore(tmp_path, token.config, clock=clock, audit=failing).rotate()
    assert len(_objects(token, kek_id)) == 2  # the new version was destroyed again
    assert store.status()["primary_version"] == 2

    store.schedule_deletion(7)
    clock.now += timedelta(days=6)
    with pytest.raises(KekPendingDeletion, match="pending deletion until"):
        store.unwrap(kek_id, 2, v2)
    assert _objects(token, kek_id)  # material still there during the wait
    clock.now += timedelta(days=1)
    with pytest.raises(KekDestroyed):
        store.unwrap(kek_id, 2, v2)
    assert _objects(token, kek_id) == []  # C_DestroyObject on every version
    assert events[-1] == "kek.destroyed"
    assert store.status()["state"] == "destroyed"
    with pytest.raises(KekDestroyed):
        Pkcs11Keystore(tmp_path, token.config, clock=clock).unwrap(kek_id, 2, v2)


def test_pin_and_token_errors_name_the_field(token: Token, tmp_path: Path) -> None:
    store = Pkcs11Keystore.create(tmp_path, "TST", token.config)
    wrong = Pkcs11Config(SOFTHSM_MODULE, LABEL, "SOVEREIGN_NO_SUCH_PIN_VAR")
    with pytest.raises(ConfigError) as err:
        Pkcs11Keystore(tmp_path, wrong).wrap(new_dek())
    assert err.value.field == "pin_env"
    os.environ["SOVEREIGN_BAD_PIN"] = "9999-wrong"
    try:
        bad = Pkcs11Config(SOFTHSM_MODULE, LABEL, "SOVEREIGN_BAD_PIN")
        with pytest.raises(ConfigError, match="incorrect") as err:
            Pkcs11Keystore(tmp_path, bad).wrap(new_dek())
        assert err.value.field == "pin_env"
    finally:
        del os.environ["SOVEREIGN_BAD_PIN"]
    pin_file = tmp_path / "pin"
    pin_file.write_text(USER_PIN + "\n")
    pin_file.chmod(0o600)
    by_file = Pkcs11Config(SOFTHSM_MODULE, LABEL, "SOVEREIGN_UNSET", str(pin_file))
    assert Pkcs11Keystore(tmp_path, by_file).wrap(new_dek())[0] == 1
    pin_file.chmod(0o644)
    with pytest.raises(ConfigError, match="too open"):
        Pkcs11Keystore(tmp_path, by_file).wrap(new_dek())
    nolabel = Pkcs11Config(SOFTHSM_MODULE, "no-such-token", PIN_ENV)
    with pytest.raises(ConfigError) as err:
        Pkcs11Keystore(tmp_path, nolabel).wrap(new_dek())
    assert err.value.field == "token_label"
    assert store.primary_version == 1


def _init_nations_with_pkcs11_aus(cli: Sovereign) -> None:
    """AUS with its KEK in the SoftHSM token; GBR and USA with file keystores."""
    cli(
        "nation",
        "init",
        "AUS",
        "--keystore",
        "pkcs11",
        "--pkcs11-module",
        SOFTHSM_MODULE,
        "--token-label",
        LABEL,
        "--pin-env",
        PIN_ENV,
    )
    for nation in ("GBR", "USA"):
        cli("nation", "init", nation)


@pytest.mark.slow
def test_sonar_job_on_a_pkcs11_backed_nation(token: Token, tmp_path: Path) -> None:
    cli = Sovereign(tmp_path / "state")
    _init_nations_with_pkcs11_aus(cli)
    aus_dir = tmp_path / "state" / "nations" / "AUS"
    config = json.loads((aus_dir / "keystore.json").read_text())
    assert config["backend"] == "pkcs11" and config["pin_env"] == PIN_ENV
    assert USER_PIN not in (aus_dir / "keystore.json").read_text()
    assert not (aus_dir / "kek.json").exists()
    status = cli("key", "status", "AUS", "--json").json()
    assert status["backend"] == "pkcs11"
    cli("site", "register", "site_configs/local.toml")
    cli("site", "accredit", "local", "--by", "AUS")
    cli("site", "accredit", "local", "--by", "GBR")
    cli("site", "accredit", "local", "--by", "USA")
    cli(
        "dataset",
        "seal",
        str(SONAR),
        "--name",
        "uci-sonar",
        "--owner",
        "AUS",
        "--classification",
        "SECRET",
        "--rel-to",
        "AUS,GBR,USA",
    )
    cli("agreement", "add", "agreements/aus-usa.toml",
        "--sign-as", "AUS,USA")
    job = cli(
        "submit", "workflows/sonar_classification.toml", "--site", "local", "--json"
    ).json()
    assert job["summary"]["mean_test_accuracy"] >= 0.8
    model_id = job["models"][0]
    cli("model", "open", model_id, "--as", "AUS", "--out", str(tmp_path / "a.pt"))
    cli("key", "rotate", "AUS")
    rewrapped = cli("key", "rewrap", "AUS", "--json").json()
    # every key the AUS custodian wrapped: the dataset's, the model's and the
    # sealed training checkpoints'
    kinds_rewrapped = sorted({o["object_kind"] for o in rewrapped})
    assert kinds_rewrapped == ["checkpoint", "dataset", "model"], kinds_rewrapped
    assert {o["status"] for o in rewrapped} == {"rewrapped"}
    cli("key", "set-min-decryption-version", "AUS", "2")
    cli("model", "open", model_id, "--as", "AUS", "--out", str(tmp_path / "b.pt"))
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    cli("key", "disable", "AUS")
    refused = cli(
        "model",
        "open",
        model_id,
        "--as",
        "AUS",
        "--out",
        str(tmp_path / "c.pt"),
        ok=False,
    )
    assert refused.code == 4 and "is disabled" in refused.err
    cli("custody", "checkpoint")  # the log operator publishes over every entry
    kinds = cli("custody", "verify", "--json").json()["kinds"]
    assert kinds["key.released"] == 14 and kinds["key.rewrapped"] == len(rewrapped)
    assert kinds["kek.rotated"] == 1 and kinds["model.open.denied"] == 1


@pytest.mark.slow
def test_sonar_job_with_aus_as_a_softhsm_backed_service(
    token: Token, tmp_path: Path
) -> None:
    """Issue 4's done-means: the AUS custodian runs as a separate mTLS service whose
    KEK lives in the SoftHSM token; the Parsl workers reach it only over HTTPS."""
    from services import custodian_service

    from orchestrator.embedded.layout import StateDir
    from orchestrator.log.store import CustodyLog
    from orchestrator.net.custodian_client import HttpCustodian

    state = StateDir(tmp_path / "state")
    cli = Sovereign(state.root)
    _init_nations_with_pkcs11_aus(cli)
    cli("site", "register", "site_configs/local.toml")
    cli("site", "accredit", "local", "--by", "AUS")
    cli("site", "accredit", "local", "--by", "GBR")
    cli("site", "accredit", "local", "--by", "USA")
    cli(
        "dataset",
        "seal",
        str(SONAR),
        "--name",
        "uci-sonar",
        "--owner",
        "AUS",
        "--classification",
        "SECRET",
        "--rel-to",
        "AUS,GBR,USA",
    )
    cli("agreement", "add", "agreements/aus-usa.toml",
        "--sign-as", "AUS,USA")
    service = custodian_service(state, "AUS")  # the token's PIN is in the env
    ca = state.nation_dir("AUS") / "pki" / "ca.pem"
    try:
        cli("custodian", "register", "AUS", "--url", service.url, "--ca", str(ca))
        job = cli(
            "submit", "workflows/sonar_classification.toml", "--site", "local", "--json"
        ).json()
        assert job["summary"]["mean_test_accuracy"] >= 0.847
        tls = state.orchestrator_dir / "tls"
        with HttpCustodian("AUS", service.url, ca=ca, cert=tls / "AUS.pem",
                           key=tls / "client.key") as aus:
            health = aus.health()
        assert health["served"]["release"] == 14 and health["served"]["decide"] == 1
        released = CustodyLog(state.custody_db).find(
            "key.released", job_id=job["job_id"]
        )
        assert len(released) == 14
        assert {e.event.actor for e in released} == {"custodian:AUS"}
        # No key release was recorded by anyone but the service process's custodian,
        # and the KEK never left the token: there is no kek.json for AUS.
        assert not (state.nation_dir("AUS") / "kek.json").exists()
    finally:
        service.stop()
