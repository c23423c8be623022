"""``sovereign key ...``: the KEK lifecycle from the command line (real CLI)."""

from __future__ import annotations

import json

from testkit import Sovereign


def test_key_commands_walk_the_lifecycle(sovereign: Sovereign) -> None:
    sovereign("nation", "init", "AUS")
    nation_dir = sovereign.state / "nations" / "AUS"
    assert json.loads((nation_dir / "keystore.json").read_text()) == {
        "backend": "file"
    }
    status = sovereign("key", "status", "AUS", "--json").json()
    assert (status["backend"], status["state"], status["primary_version"]) == (
        "file",
        "enabled",
        1,
    )
    assert "rotated" in sovereign("key", "rotate", "AUS").out
    sovereign("key", "set-min-decryption-version", "AUS", "2")
    sovereign("key", "disable", "AUS")
    sovereign("key", "schedule-deletion", "AUS", "--days", "7")
    status = sovereign("key", "status", "AUS", "--json").json()
    assert status["state"] == "pending_deletion" and status["deletion_date"]
    sovereign("key", "cancel-deletion", "AUS")
    sovereign("key", "enable", "AUS")
    status = sovereign("key", "status", "AUS", "--json").json()
    assert (status["state"], status["primary_version"]) == ("enabled", 2)
    assert status["min_decryption_version"] == 2
    assert "0 rewrapped, 0 refused" in sovereign("key", "rewrap", "AUS").out
    log = sovereign("custody", "log", "--json").json()
    kinds = [e["event"]["kind"] for e in log]
    assert kinds[-6:] == [
        "kek.rotated",
        "kek.min_decryption_version.set",
        "kek.disabled",
        "kek.deletion.scheduled",
        "kek.deletion.cancelled",
        "kek.enabled",
    ]
    assert "key" not in json.dumps(status["versions"])  # no key material shown


def test_key_errors_are_one_line_naming_the_field(sovereign: Sovereign) -> None:
    sovereign("nation", "init", "AUS")
    bad = sovereign("key", "schedule-deletion", "AUS", "--days", "3", ok=False)
    assert bad.code == 2
    assert bad.err.strip().splitlines() == [
        "error: days: waiting period must be 7 to 30 days, not 3"
    ]
    bad = sovereign("key", "set-min-decryption-version", "AUS", "5", ok=False)
    assert bad.code == 2 and "version: must be 1 to the primary version 1" in bad.err
    sovereign("key", "disable", "AUS")
    bad = sovereign("key", "rotate", "AUS", ok=False)
    assert bad.code == 2 and "state: cannot rotate" in bad.err
    assert "is disabled" in bad.err
    assert sovereign("key", "status", "GBR", ok=False).code == 5
    assert sovereign("key", "status", "XX1", ok=False).code == 2
    bad = sovereign("nation", "init", "GBR", "--keystore", "tpm", ok=False)
    assert bad.code == 2 and "--keystore: unknown backend 'tpm'" in bad.err
