"""End to end in Chromium: sign in, record, watch progress live, review evidence, edit, sign,
export; a network drop during the upload; screenshots of every page at 1280 and 768 px."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.server import ServerProcess
from tests.web.conftest import sign_in

pytestmark = pytest.mark.slow

playwright_api = pytest.importorskip("playwright.sync_api")
Page = playwright_api.Page
Route = playwright_api.Route
expect = playwright_api.expect

WIDTHS = (1280, 768)


# Records each stage that the consultation page marks "current" while it is open (changes
# made by its live updates, not the first render), across the reload at completion.
WATCH_STAGES = """
document.addEventListener("DOMContentLoaded", () => {
  const stages = document.getElementById("stages");
  if (!stages) return;
  new MutationObserver(() => {
    const seen = JSON.parse(sessionStorage.getItem("liveStages") || "[]");
    const current = stages.querySelector("li.current");
    if (current && seen[seen.length - 1] !== current.dataset.stage) {
      seen.push(current.dataset.stage);
      sessionStorage.setItem("liveStages", JSON.stringify(seen));
    }
  }).observe(stages, { subtree: true, attributes: true });
});
"""


@pytest.fixture
def page(browser: Any, web_server: ServerProcess) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.grant_permissions(["microphone"], origin=web_server.base_url)
    context.add_init_script(WATCH_STAGES)
    page = context.new_page()
    page.set_default_timeout(20_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, web_server)
    yield page
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shoot(page: Any, folder: Path, name: str) -> None:
    """Screenshots of the page at each width (full page), back at 1280 afterwards."""
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.wait_for_timeout(150)
        page.screenshot(path=str(folder / f"{name}-{width}.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})


def consultation_count(server: ServerProcess) -> int:
    with server.client() as client:
        return len(client.get("/api/consultations", params={"limit": 100}).json()["items"])


def stored_recordings(page: Any) -> int:
    """Recordings kept in this browser's IndexedDB (not yet accepted by the server)."""
    return int(
        page.evaluate(
            """() => new Promise((resolve, reject) => {
                const open = indexedDB.open("clinscribe-recordings", 1);
                open.onerror = () => reject(open.error);
                open.onsuccess = () => {
                  const tx = open.result.transaction("recordings", "readonly");
                  const count = tx.objectStore("recordings").count();
                  count.onsuccess = () => resolve(count.result);
                };
              })"""
        )
    )


def record(page: Any, seconds: float, *, details: dict[str, str] | None = None) -> None:
    page.get_by_role("link", name="New consultation").first.click()
    page.wait_for_url("**/consultations/new")
    for label, value in (details or {}).items():
        page.get_by_label(label).fill(value)
    page.get_by_role("button", name="Start recording").click()
    expect(page.locator("#record-state")).to_have_text("Recording")
    page.wait_for_timeout(int(seconds * 1000))


def test_record_watch_review_edit_sign_and_export(
    page: Any, web_server: ServerProcess, screenshot_dir: Path, tmp_path: Path
) -> None:
    shoot(page, screenshot_dir, "list-empty")
    record(page, 3, details={"Patient reference (optional)": "MRN-0042",
                              "Title (optional)": "Sore throat"})  # fmt: skip
    # Pause: the timer stops; resume: it runs again. The meter shows the microphone's level.
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#record-state")).to_have_text("Paused")
    paused_at = page.locator("#timer").text_content()
    page.wait_for_timeout(1500)
    assert page.locator("#timer").text_content() == paused_at
    page.get_by_role("button", name="Resume").click()
    levels = [float(page.locator("#level").evaluate("m => m.value")) for _ in range(10)]
    assert max(levels) > 0.01, levels
    page.wait_for_timeout(14_000)  # the whole 16 s visit reaches the recording
    shoot(page, screenshot_dir, "recording")
    assert stored_recordings(page) == 1  # kept on the device while recording
    page.get_by_role("button", name="Stop and upload").click()

    # The consultation page follows the stages live (Server-Sent Events) until completed.
    page.wait_for_url(re.compile(r"/consultations/[0-9a-f]{32}$"), timeout=60_000)
    consultation_id = page.url.rstrip("/").rsplit("/", 1)[-1]
    page.wait_for_selector("#open-note", state="visible", timeout=120_000)
    expect(page.locator("#open-note")).to_be_visible()
    expect(page.locator("#status-badge")).to_have_text("Completed")
    # Every stage after the first became "current" on the open page, pushed by the server.
    seen = page.evaluate("() => JSON.parse(sessionStorage.getItem('liveStages') || '[]')")
    assert [s for s in seen if s != "preparing_audio"][:3] == [
        "transcribing",
        "writing_note",
        "verifying_note",
    ], seen
    assert stored_recordings(page) == 0  # accepted: removed from the device
    transcript = " ".join(page.locator("#transcript .text").all_text_contents()).lower()
    # What Chromium's fake microphone played, heard by tiny.en through the browser's Opus.
    # (tiny.en hears espeak through Opus imperfectly: "cough" came back as "calf" once.)
    heard = ("brings you in", "temperature is 38.5 degrees")
    assert all(w in transcript for w in heard), transcript
    shoot(page, screenshot_dir, "consultation")

    # Click an utterance's time: the recording plays from there.
    third = page.locator("#transcript .utterance").nth(2)
    start = float(third.get_attribute("data-start") or 0)
    third.locator(".play").click()
    page.wait_for_function("() => !document.getElementById('player').paused")
    at = float(page.locator("#player").evaluate("p => p.currentTime"))
    assert start <= at < start + 3, (start, at)
    page.locator("#player").evaluate("p => p.pause()")
    # Correct who spoke an utterance: stored at once.
    page.locator("select.speaker").nth(1).select_option("patient")
    expect(page.locator("#toast")).to_have_text("Speaker corrected.")
    with web_server.client() as client:
        utterances = client.get(f"/api/consultations/{consultation_id}/transcript").json()
    assert utterances["utterances"][1]["speaker"] == "patient"

    # Note review: a sentence's evidence lights up in the transcript, by mouse and keyboard.
    page.get_by_role("link", name="Review note").click()
    page.wait_for_url(f"**/consultations/{consultation_id}/note")
    sentence = page.locator(".sentence[data-evidence]:not([data-evidence=''])").first
    evidence = (sentence.get_attribute("data-evidence") or "").split()
    assert evidence
    sentence.hover()
    for utterance_id in evidence:
        expect(page.locator(f"#utt-{utterance_id}")).to_have_class(re.compile(r"\bevidence\b"))
    page.mouse.move(0, 0)
    expect(page.locator(".utterance.evidence")).to_have_count(0)
    sentence.focus()
    expect(page.locator(".utterance.evidence")).to_have_count(len(set(evidence)))
    # At 768 px the transcript is below the note: the evidence is quoted under the sentence.
    page.set_viewport_size({"width": 768, "height": 900})
    sentence.blur()
    sentence.focus()
    expect(sentence.locator(".evidence-inline q")).to_have_count(len(set(evidence)))
    page.set_viewport_size({"width": 1280, "height": 900})
    sentence.blur()
    sentence.focus()
    expect(sentence.locator(".evidence-inline")).to_have_count(0)
    shoot(page, screenshot_dir, "note-review")

    # Edit one sentence: saved as version 2, re-verified, version 1 unchanged.
    page.get_by_role("button", name="Edit").click()
    first = page.locator("#note textarea").first
    original = first.input_value()
    first.fill("Sore throat and fever for two days, no cough.")
    page.get_by_role("button", name="Save as new version").click()
    page.wait_for_url("**/note?version=2")
    expect(page.locator(".sentence-text").first).to_have_text(
        "Sore throat and fever for two days, no cough."
    )
    with web_server.client() as client:
        v1 = client.get(f"/api/consultations/{consultation_id}/note", params={"version": 1}).json()
    assert next(x["text"] for sec in v1["sections"] for x in sec["sentences"]) == original

    # Sign: locked, signer and time shown; then export the PDF.
    page.get_by_role("button", name="Sign note").click()
    expect(page.locator("h1 .status")).to_have_text("Signed")
    expect(page.locator(".page-head p")).to_contain_text("signed by")
    assert page.get_by_role("button", name="Sign note").count() == 0
    page.locator(".export summary").click()
    with page.expect_download() as download_info:
        page.locator("#export-pdf").click()
    pdf = tmp_path / "note.pdf"
    download_info.value.save_as(pdf)
    assert pdf.read_bytes().startswith(b"%PDF")
    text = subprocess.run(
        ["pdftotext", "-layout", str(pdf), "-"], capture_output=True, text=True, check=True
    ).stdout
    for title in page.locator(".note-section h2").all_text_contents():
        assert title in text, (title, text[:500])
    assert "Sore throat and fever for two days, no cough." in text
    page.goto(f"{web_server.base_url}/")
    expect(page.locator("tr[data-id] .status").first).to_have_text("Completed")
    shoot(page, screenshot_dir, "list")


def test_a_network_drop_during_upload_loses_nothing_and_uploads_once(
    page: Any, web_server: ServerProcess
) -> None:
    before = consultation_count(web_server)
    attempts: list[str] = []

    def drop_the_first_answers(route: Any) -> None:
        """1st attempt: the network is down. 2nd: the server gets the upload but the answer
        is lost on the way back. 3rd and later: the network works."""
        if route.request.method != "POST":
            route.continue_()
            return
        attempts.append(route.request.headers.get("idempotency-key", ""))
        if len(attempts) == 1:
            route.abort("internetdisconnected")
        elif len(attempts) == 2:
            route.fetch()  # reaches the server, which creates the consultation
            route.abort("connectionreset")
        else:
            route.continue_()

    page.route("**/api/consultations", drop_the_first_answers)
    record(page, 4, details={"Title (optional)": "Network drop"})
    page.get_by_role("button", name="Stop and upload").click()
    expect(page.locator("#upload-message")).to_contain_text("safe on this device")
    assert stored_recordings(page) == 1
    page.wait_for_url(re.compile(r"/consultations/[0-9a-f]{32}$"), timeout=30_000)
    assert len(attempts) == 3 and len(set(attempts)) == 1, attempts  # one key, every attempt
    assert stored_recordings(page) == 0
    assert consultation_count(web_server) == before + 1
    consultation_id = page.url.rsplit("/", 1)[-1]
    assert web_server.wait_terminal(consultation_id, 120)["status"] == "completed"


def test_a_recording_left_by_a_closed_tab_uploads_from_the_next_page(
    browser: Any, page: Any, web_server: ServerProcess
) -> None:
    before = consultation_count(web_server)
    record(page, 3, details={"Title (optional)": "Closed tab"})
    page.context.set_offline(True)
    page.get_by_role("button", name="Stop and upload").click()
    expect(page.locator("#upload-message")).to_contain_text("network is unavailable")
    assert stored_recordings(page) == 1
    page.close()  # the tab is closed while offline: only IndexedDB has the recording
    page.context.set_offline(False)
    again = page.context.new_page()
    again.goto(f"{web_server.base_url}/")
    expect(again.get_by_text("An earlier recording has reached the server.")).to_be_visible()
    expect(again.locator("tr[data-id]").filter(has_text="Closed tab")).to_have_count(1)
    assert stored_recordings(again) == 0
    assert consultation_count(web_server) == before + 1


@pytest.mark.parametrize("path", ["/", "/consultations/new"])
def test_every_form_control_has_a_label_and_pages_fit_768px(
    page: Any, web_server: ServerProcess, path: str
) -> None:
    page.set_viewport_size({"width": 768, "height": 900})
    page.goto(f"{web_server.base_url}{path}")
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll("input:not([type=hidden]), select, textarea")]
            .filter(e => !e.labels?.length && !e.getAttribute("aria-label"))
            .map(e => e.id || e.name)"""
    )
    assert unlabelled == []
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 768px"
