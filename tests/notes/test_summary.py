"""Patient summary: offline the plan items as written; with the LLM, reworded in the
patient's language, each line keeping its item's evidence."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from clinscribe.config import LlmSettings, RetrySettings
from clinscribe.notes.model import NoteDraft, NoteSection, NoteSentence
from clinscribe.notes.summary import (
    LANGUAGE_NAMES,
    llm_summary,
    offline_summary,
    plan_items,
    summary_from_json,
    summary_to_json,
)
from clinscribe.notes.templates import HISTORY_AND_PHYSICAL, SOAP
from clinscribe.providers.llm.openai_compat import OpenAICompatibleChat
from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.audio import SHORT_WAV
from tests.support.server import ServerProcess

DRAFT = NoteDraft(
    template="soap",
    writer="extractive",
    sections=[
        NoteSection("subjective", "Subjective", [NoteSentence("Cough for a week.", ["u1"])]),
        NoteSection("assessment", "Assessment", [NoteSentence("Chest infection.", ["u8"])]),
        NoteSection(
            "plan",
            "Plan",
            [
                NoteSentence("Start amoxicillin 500 milligrams three times a day.", ["u9"]),
                NoteSentence("Come back if the chest pain worsens.", ["u10"]),
            ],
        ),
    ],
)


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key="key") as server:
        yield server


def test_offline_summary_is_the_plan_as_written_with_evidence() -> None:
    summary = offline_summary(DRAFT, SOAP)
    assert summary.language == "en" and summary.writer == "extractive"
    assert [(i.text, i.evidence) for i in summary.items] == [
        ("Start amoxicillin 500 milligrams three times a day.", ["u9"]),
        ("Come back if the chest pain worsens.", ["u10"]),
    ]
    assert summary_from_json(json.loads(json.dumps(summary_to_json(summary)))) == summary
    # Templates that name their plan section differently still find it.
    assert [i.text for i in plan_items(DRAFT, HISTORY_AND_PHYSICAL)] == [
        i.text for i in summary.items
    ]


async def test_llm_summary_in_the_patients_language_keeps_evidence(
    fake: FakeOpenAIServer,
) -> None:
    answer = {
        "intro": "இன்றைய சந்திப்பின் சுருக்கம்.",
        "items": [
            {"text": "அமாக்ஸிசிலின் 500 மி.கி. தினமும் மூன்று முறை எடுத்துக்கொள்ளுங்கள்.", "item": 1},
            {"text": "நெஞ்சு வலி அதிகமானால் மீண்டும் வாருங்கள்.", "item": 2},
            {"text": "An invented line.", "item": 7},  # no such item: dropped
        ],
    }
    fake.chat_replies.append(json.dumps(answer, ensure_ascii=False))
    settings = LlmSettings(base_url=fake.base_url, api_key=SecretStr("key"))
    chat = OpenAICompatibleChat(settings, RetrySettings(max_attempts=2, base_delay_s=0.01))
    try:
        items = plan_items(DRAFT, SOAP)
        summary = await llm_summary(chat, items, "ta", max_tokens=512)
    finally:
        await chat.aclose()
    assert summary.language == "ta" and summary.writer == "llm"
    assert [i.evidence for i in summary.items] == [["u9"], ["u10"]]
    request = fake.chat_requests()[-1].json
    assert LANGUAGE_NAMES["ta"] in request["messages"][0]["content"]
    assert "1. Start amoxicillin" in request["messages"][1]["content"]


async def test_an_unusable_llm_answer_falls_back_to_the_offline_summary(
    fake: FakeOpenAIServer,
) -> None:
    fake.chat_replies.append("not json at all")
    settings = LlmSettings(base_url=fake.base_url, api_key=SecretStr("key"))
    chat = OpenAICompatibleChat(settings, RetrySettings(max_attempts=2, base_delay_s=0.01))
    try:
        summary = await llm_summary(chat, plan_items(DRAFT, SOAP), "hi", max_tokens=512)
    finally:
        await chat.aclose()
    assert summary.writer == "extractive" and len(summary.items) == 2


def test_summary_through_the_api_is_made_once_and_kept(fake_server: ServerProcess) -> None:
    response = fake_server.upload(SHORT_WAV)
    consultation_id = response.json()["id"]
    assert fake_server.wait_terminal(consultation_id)["status"] == "completed"
    base = f"/api/consultations/{consultation_id}"
    with fake_server.client() as client:
        first = client.get(f"{base}/note/summary")
        assert first.status_code == 200, first.text
        body = first.json()
        assert body["version"] == 1 and body["writer"] == "extractive"
        note = client.get(f"{base}/note").json()
        plan = [s for sec in note["sections"] if sec["key"] == "plan" for s in sec["sentences"]]
        assert [i["text"] for i in body["items"]] == [s["text"] for s in plan]
        assert body["items"] and all(i["evidence"] for i in body["items"])
        assert client.get(f"{base}/note/summary").json() == body
