"""The /ui dashboard in headless Chromium (Selenium) against `hl7lake up`: log in as a dev user, send a
message, watch it appear on the overview, open it. Screenshots go to .run/artifacts/.

Needs Debian's chromium and chromium-driver (`make browser-tool` installs them as root). Selenium is
given both paths, so Selenium Manager never downloads a browser or driver."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from hl7lake.devusers import password_for
from tests.conftest import ROOT
from tests.e2e.running import RunningStack, running_stack

pytestmark = pytest.mark.e2e

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = ROOT / ".run" / "artifacts"
USER = "sender@hospital-a.example"
MESSAGE = (
    "MSH|^~\\&|LAB|HOSP_A|LAKE|AWS|20260101120000||ADT^A01^ADT_A01|UI-{n}|P|2.5.1\r"
    "PID|1||MRN-UI^^^HOSP_A||BROWSER^TEST||19700101|F\r"
)


def require_chromium() -> None:
    if CHROMIUM.exists() and CHROMEDRIVER.exists():
        return
    could_install = os.geteuid() == 0 and shutil.which("apt-get") is not None
    reason = f"{CHROMIUM} or {CHROMEDRIVER} missing (`make browser-tool` installs them as root with apt)"
    if os.environ.get("CI", "").lower() == "true" and could_install:
        pytest.fail(f"{reason}; CI=true and the install step could run as root: the browser test must run")
    pytest.skip(reason + ("" if could_install else "; cannot install here (not root or no apt)"))


@pytest.fixture
def browser() -> Iterator[object]:
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,1600"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    with running_stack(tmp_path_factory.mktemp("run")) as running:
        yield running


def test_log_in_send_watch_and_open_a_message(stack: RunningStack, browser: object, tmp_path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver = browser  # typed loosely: selenium is imported only once Chromium is known to be there
    ARTIFACTS.mkdir(parents=True, exist_ok=True)

    driver.get(f"{stack.url}/ui")
    assert driver.current_url.endswith("/ui/login")
    driver.find_element(By.ID, "username").send_keys(USER)
    driver.find_element(By.ID, "password").send_keys(password_for(USER) or "")
    driver.find_element(By.ID, "login").click()
    try:  # the click returns before the browser has followed the answer's redirect
        WebDriverWait(driver, 20).until(lambda d: d.current_url.rstrip("/").endswith("/ui"))
    finally:
        driver.save_screenshot(str(ARTIFACTS / "ui-after-login.png"))

    # Sent as a user would: `hl7lake send` (its own token for the dev user), then found by control id.
    n = time.time_ns()
    control_id = f"UI-{n}"
    message_file = tmp_path / "ui.hl7"
    message_file.write_text(MESSAGE.format(n=n))
    cli = [sys.executable, "-m", "hl7lake"]
    sent = subprocess.run(
        [*cli, "send", str(message_file), "--url", stack.url, "--user", USER],
        env=stack.env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert sent.returncode == 0, sent.stdout + sent.stderr
    listed = subprocess.run(
        [*cli, "ls", "--json", "--url", stack.url, "--user", USER, "--limit", "50"],
        env=stack.env, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    items = [json.loads(line) for line in listed.stdout.splitlines() if line.strip()]
    message_id = next(i["id"] for i in items if i.get("controlId") == control_id)

    deadline = time.monotonic() + 90
    while True:
        driver.get(f"{stack.url}/ui?status=parsed")
        links = driver.find_elements(By.LINK_TEXT, message_id)
        if links:
            break
        assert time.monotonic() < deadline, "the message never appeared parsed on the overview"
        time.sleep(1)
    driver.save_screenshot(str(ARTIFACTS / "ui-overview.png"))

    links[0].click()
    assert driver.find_element(By.ID, "status").text == "parsed"
    table = driver.find_element(By.ID, "segments").text
    assert "PID-3.1" in table and "Patient Identifier List" in table and "MRN-UI" in table
    assert "BROWSER" in driver.find_element(By.ID, "raw").text
    driver.save_screenshot(str(ARTIFACTS / "ui-message.png"))

    driver.find_element(By.ID, "logout").click()
    assert driver.current_url.endswith("/ui/login")
    driver.get(f"{stack.url}/ui")
    assert driver.current_url.endswith("/ui/login")
