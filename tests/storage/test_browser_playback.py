"""Chromium plays the stored FLAC and seeks in it with byte ranges (S3 backend behind)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fakes.openai_compat import FakeOpenAIServer
from tests.storage.conftest import S3Server
from tests.support.accounts import bearer
from tests.support.audio import CONSULTATION_WAV
from tests.support.browser import chromium_path
from tests.support.server import ServerProcess, fake_stt_env

pytestmark = pytest.mark.slow

PLAY_AND_SEEK = """async (src) => {
  const player = new Audio();
  const ready = new Promise((ok, fail) => {
    player.onloadedmetadata = ok;
    player.onerror = () => fail(new Error("media error " + player.error?.code));
  });
  player.src = src;
  await ready;
  const seeked = new Promise((ok) => { player.onseeked = ok; });
  player.currentTime = 30;
  await seeked;
  return {duration: player.duration, position: player.currentTime};
}"""


def test_browser_plays_and_seeks_the_flac(
    tmp_path: Path, s3_server: S3Server, fake_stt: FakeOpenAIServer
) -> None:
    chromium = chromium_path()
    sync_api = pytest.importorskip("playwright.sync_api")
    env = fake_stt_env(fake_stt.base_url) | s3_server.env(s3_server.new_bucket())
    server = ServerProcess(tmp_path / "svc", env)
    server.start()
    try:
        consultation_id = server.upload(CONSULTATION_WAV).json()["id"]
        assert server.wait_terminal(consultation_id, timeout_s=120)["status"] == "completed"
        ranges: list[str] = []
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(
                executable_path=chromium,
                args=[
                    "--no-sandbox",
                    "--disable-background-networking",
                    "--disable-component-update",
                    "--no-first-run",
                    "--autoplay-policy=no-user-gesture-required",
                ],
            )
            try:
                context = browser.new_context(extra_http_headers=bearer(server.account))
                page = context.new_page()
                page.on("request", lambda r: ranges.append(r.headers.get("range", "")))
                page.goto(f"{server.base_url}/readyz")
                seen = page.evaluate(PLAY_AND_SEEK, f"/api/consultations/{consultation_id}/audio")
            finally:
                browser.close()
    finally:
        server.stop()
    assert seen["duration"] == pytest.approx(51.03, abs=0.1)
    assert seen["position"] == pytest.approx(30, abs=0.5)
    assert any(r.startswith("bytes=") for r in ranges), ranges
