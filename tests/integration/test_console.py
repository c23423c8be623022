"""The officer console end to end: ``sovereign console serve`` in a subprocess,
driven by Debian's headless Chromium through Selenium (``/usr/bin/chromedriver``,
never Selenium Manager).

The officer signs in and approves a pending case-by-case request by choosing the
key file, exactly as a person would; the signing happens in the page (WebCrypto).
The custody log must then hold ``approval.granted`` (recorded by the AUS
custodian) whose statement verifies against the AUS officer's key. Another
nation's officer key is refused.

Skips only when Chromium or chromedriver cannot be installed
(``scripts/install-chromium.sh``).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from testkit import ROOT, World, ctx_of, make_world

from orchestrator.canonical import sha256_hex
from orchestrator.crypto import load_private_key
from orchestrator.embedded import approval_requests
from orchestrator.log.store import CustodyLog
from orchestrator.nation.approvals import request_approval
from orchestrator.protocol.approvals import request_id_for
from orchestrator.protocol.statements import SignedStatement, verify_statement

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

AGREEMENT = "AUS-USA-SONAR-2026"


@pytest.fixture(scope="session")
def browser_binaries() -> tuple[str, str]:
    """(chromium, chromedriver), installed by scripts/install-chromium.sh."""
    proc = subprocess.run(["bash", str(ROOT / "scripts" / "install-chromium.sh")],
                          capture_output=True, text=True, timeout=900, check=False)
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    if proc.returncode != 0 or browser is None or driver is None:
        pytest.skip("chromium/chromedriver unavailable: "
                    f"{proc.stderr.strip()[-300:]}")
    return browser, driver


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def world(tmp_path: Path) -> World:
    world = make_world(tmp_path)
    request_approval(
        ctx_of(world.state, "AUS"),
        request_id=request_id_for("job-case-1", "AUS", world.site), owner="AUS",
        job_id="job-case-1", request_digest="sha256:" + sha256_hex(b"job-case-1"),
        dataset_id=world.dataset_id, site=world.site, priority_area="quantum-sensing",
        gpu_hours=42.5, agreement_id=AGREEMENT,
        reasons=[f"tier: quantum-sensing is case-by-case under {AGREEMENT}"])
    return world


@pytest.fixture
def console_url(world: World, tmp_path: Path) -> Iterator[str]:
    """``sovereign console serve --as AUS`` on a free loopback port."""
    port = _free_port()
    log = (tmp_path / "console.log").open("w")
    env = {**os.environ, "NO_COLOR": "1", "COLUMNS": "200"}
    server = subprocess.Popen(
        [sys.executable, "-m", "orchestrator", "console", "serve", "--as", "AUS",
         "--port", str(port), "--state-dir", str(world.state.root)],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if server.poll() is not None:
                pytest.fail(f"console exited {server.returncode}:\n"
                            f"{(tmp_path / 'console.log').read_text()}")
            try:
                if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("console did not start in 60 s:\n"
                            f"{(tmp_path / 'console.log').read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)
        log.close()


@pytest.fixture
def driver(browser_binaries: tuple[str, str], tmp_path: Path) -> Iterator[Any]:
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    browser, chromedriver = browser_binaries
    options = Options()
    options.binary_location = browser
    for arg in ("--headless=new", "--no-sandbox", "--disable-gpu",
                "--disable-dev-shm-usage", "--no-first-run",
                "--disable-background-networking", "--disable-component-update",
                "--disable-sync", "--window-size=1400,1000",
                f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        options.add_argument(arg)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    service = Service(executable_path=chromedriver,
                      log_output=str(tmp_path / "chromedriver.log"))
    chrome = webdriver.Chrome(service=service, options=options)
    chrome.set_page_load_timeout(30)
    try:
        yield chrome
    finally:
        chrome.quit()


def _wait_for(chrome: Any, element_id: str) -> Any:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    try:
        return WebDriverWait(chrome, 20).until(
            ec.presence_of_element_located((By.ID, element_id)))
    except Exception as exc:
        status = chrome.find_elements(By.ID, "sign-status")
        raise AssertionError(
            f"#{element_id} never appeared at {chrome.current_url}; status: "
            f"{status[0].text if status else '-'}; page:\n"
            f"{chrome.page_source[-3000:]}") from exc


def _sign_with(chrome: Any, key_file: Path) -> None:
    from selenium.webdriver.common.by import By

    chrome.find_element(By.ID, "key-file").send_keys(str(key_file))
    chrome.find_element(By.ID, "sign-button").click()


def test_officer_approves_in_headless_chromium(world: World, console_url: str,
                                               driver: Any) -> None:
    from selenium.webdriver.common.by import By

    state = world.state
    rid = request_id_for("job-case-1", "AUS", world.site)
    aus_key = state.officer_dir("AUS") / "officer.key"

    # Another nation's officer cannot sign in to the AUS console.
    driver.get(f"{console_url}/login")
    _sign_with(driver, state.officer_dir("GBR") / "officer.key")
    assert _wait_for(driver, "error-title").text == "Login refused"
    reason = driver.find_element(By.ID, "error-reason").text
    assert "not the registered AUS officer key" in reason, reason
    driver.get(f"{console_url}/")
    assert driver.current_url == f"{console_url}/login"
    assert not CustodyLog(state.custody_db).find("console.login")

    # A file that is not a key never leaves the page.
    _sign_with(driver, ROOT / "agreements" / "aus-usa.toml")
    status = driver.find_element(By.ID, "sign-status")
    deadline = time.monotonic() + 10
    while "Could not sign" not in status.text and time.monotonic() < deadline:
        time.sleep(0.1)
    assert "not a PKCS#8 PEM private key" in status.text

    # The AUS officer signs in with the key file ...
    driver.get(f"{console_url}/login")
    _sign_with(driver, aus_key)
    row = _wait_for(driver, f"pending-{rid}")
    assert driver.current_url == f"{console_url}/"
    aus_key_id = load_private_key(aus_key).key_id
    assert driver.find_element(By.ID, "officer-key-id").text == aus_key_id
    assert "quantum-sensing" in row.text and "42.5" in row.text
    (login,) = CustodyLog(state.custody_db).find("console.login")
    assert login.event.body["key_id"] == aus_key_id
    assert login.event.body["origin"] == console_url

    # ... clicks Approve, reviews the statement and signs it.
    row.find_element(By.CSS_SELECTOR, "button.approve").click()
    statement_text = _wait_for(driver, "approval-statement").text
    assert f'"request_id": "{rid}"' in statement_text
    assert '"decision": "approve"' in statement_text
    _sign_with(driver, aus_key)
    flash = _wait_for(driver, "flash").text
    assert f"{rid} approved by the AUS officer" in flash, flash
    decided = driver.find_element(By.ID, f"decided-{rid}")
    assert decided.find_element(By.CLASS_NAME, "decision-status").text == "approved"
    assert driver.find_elements(By.ID, "pending-empty")

    # The custody log holds the officer's own signature over the statement.
    (granted,) = CustodyLog(state.custody_db).find("approval.granted",
                                                   request_id=rid)
    signed = SignedStatement.from_json(granted.event.body)
    public = load_private_key(aus_key).public_bytes()
    statement = verify_statement(signed, public_key=public,
                                 expected_type="approval/v1", expected_nation="AUS")
    assert statement["decision"] == "approve" and statement["request_id"] == rid
    assert signed.key_id == aus_key_id
    assert [r.status for r in approval_requests(state, nation="AUS")] == ["approved"]

    # Strict CSP held on every page: no violation was reported.
    messages = [entry["message"] for entry in driver.get_log("browser")]
    assert not [m for m in messages if "Content Security Policy" in m], messages
