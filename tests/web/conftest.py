"""The web app in Debian's Chromium, driven by Playwright (no browser download, ever).

Chromium gets a fake microphone that plays tests/data/visit_en.wav, so recording in the
browser is real: MediaRecorder, IndexedDB, the upload, then the real service with real
local whisper (tiny.en) behind it.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from clinscribe.models import Role
from tests.support.accounts import TEST_PASSWORD, Account
from tests.support.browser import chromium_path
from tests.support.server import ServerProcess

pytestmark = pytest.mark.slow

MIC_WAV = Path(__file__).resolve().parents[1] / "data" / "visit_en.wav"
REPO = Path(__file__).resolve().parents[2]
CLINICIAN_EMAIL = "dr.rao@clinic.test"


@pytest.fixture(scope="session")
def screenshot_dir() -> Path:
    """Where the tests leave screenshots of each page (kept out of git)."""
    folder = Path(os.environ.get("CLINSCRIBE_SCREENSHOT_DIR", REPO / "build" / "screenshots"))
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture(scope="module")
def web_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """The real service with local whisper, and a clinician who signs in with a password."""
    server = ServerProcess(tmp_path_factory.mktemp("web") / "svc")
    server.provision(role=Role.CLINICIAN, email=CLINICIAN_EMAIL)
    server.start()
    try:
        yield server
    finally:
        server.kill()


@pytest.fixture(scope="module")
def browser(web_server: ServerProcess) -> Iterator[object]:
    # After the server: Playwright's sync API keeps an event loop running in this thread,
    # and provisioning accounts (asyncio.run) must happen before it starts.
    sync_api = pytest.importorskip("playwright.sync_api")
    executable = chromium_path()
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--use-fake-ui-for-media-stream",
                "--use-fake-device-for-media-stream",
                f"--use-file-for-fake-audio-capture={MIC_WAV}",
                "--autoplay-policy=no-user-gesture-required",
            ],
        )
        try:
            yield browser
        finally:
            browser.close()


def sign_in(page: object, server: ServerProcess) -> None:
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto(f"{server.base_url}/")
    page.get_by_label("Email").fill(CLINICIAN_EMAIL)
    page.get_by_label("Password").fill(TEST_PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(f"{server.base_url}/")


def api_account(server: ServerProcess) -> Account:
    return server.account
