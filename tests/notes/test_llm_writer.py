"""The LLM note writer against the fake OpenAI-compatible (Groq) server on 127.0.0.1."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr

from clinscribe.config import LlmSettings, RetrySettings, Settings
from clinscribe.doctor import _note_writer
from clinscribe.errors import ConfigurationError, ProviderPermanentError, ProviderTransientError
from clinscribe.notes.evidence import verify_note
from clinscribe.notes.llm_writer import (
    LlmNoteWriter,
    Window,
    estimate_tokens,
    note_schema,
    repair_message,
    system_prompt,
    transcript_message,
)
from clinscribe.notes.model import NoteDraft, Utterance
from clinscribe.notes.templates import APSO, SOAP
from clinscribe.providers.registry import build_note_writer
from tests.fakes.openai_compat import CANNED_CONSULTATION, ChatReply, FakeFault, FakeOpenAIServer
from tests.support.audio import SHORT_WAV
from tests.support.server import ServerProcess, fake_stt_env

API_KEY = "gsk_test_key"
FAST_RETRY = RetrySettings(max_attempts=3, base_delay_s=0.01, max_delay_s=0.05)
DOC = Path(__file__).resolve().parents[2] / "docs" / "llm-note-writer.md"

# The fake's canned consultation, doctor and patient taking turns: u1 ... u10.
TRANSCRIPT = [
    Utterance(f"u{i}", 5.0 * (i - 1), 5.0 * i, "doctor" if i % 2 else "patient", text)
    for i, text in enumerate(CANNED_CONSULTATION, start=1)
]
IDS = {u.id for u in TRANSCRIPT}
# Words of the transcript that must never reach an error message.
PHI_WORDS = ("cough", "phlegm", "38.2", "penicillin", "amoxicillin", "crackles", "130 over 85")


def answer(**sections: list[tuple[str, list[str]]]) -> str:
    """A model answer for the SOAP template: every section present, ``(text, evidence)`` pairs."""
    body = {spec.key: [] for spec in SOAP.sections} | {
        key: [{"text": text, "evidence": ids} for text, ids in sentences]
        for key, sentences in sections.items()
    }
    return json.dumps(body)


GOOD = answer(
    subjective=[("Cough for about a week, and chest pain when breathing in deeply.", ["u2"])],
    objective=[
        ("Temperature 38.2 degrees last night.", ["u4"]),
        ("Blood pressure 130 over 85, pulse 92.", ["u5"]),
    ],
    assessment=[("Chest infection.", ["u9"])],
    plan=[("Amoxicillin 500 milligrams three times a day for five days.", ["u9"])],
)


@pytest.fixture
def fake() -> Iterator[FakeOpenAIServer]:
    with FakeOpenAIServer(api_key=API_KEY) as server:
        yield server


def llm_settings(fake: FakeOpenAIServer, **overrides: Any) -> LlmSettings:
    return LlmSettings(**({"base_url": fake.base_url, "api_key": SecretStr(API_KEY)} | overrides))


def make_writer(
    fake: FakeOpenAIServer, retry: RetrySettings = FAST_RETRY, **overrides: Any
) -> LlmNoteWriter:
    return LlmNoteWriter(llm_settings(fake, **overrides), retry)


def messages(fake: FakeOpenAIServer, index: int) -> list[dict[str, str]]:
    request = fake.chat_requests()[index].json
    assert request is not None
    return list(request["messages"])


def sentences(draft: NoteDraft) -> list[tuple[str, str, list[str], list[str]]]:
    return [
        (section.key, s.text, s.evidence, s.flags)
        for section in draft.sections
        for s in section.sentences
    ]


# --- (1) a valid answer ----------------------------------------------------------------------
async def test_a_valid_answer_becomes_a_note_citing_the_transcript(
    fake: FakeOpenAIServer,
) -> None:
    fake.chat_replies.append(GOOD)
    draft = await make_writer(fake).write(TRANSCRIPT, SOAP)

    assert draft.writer == "llm" and draft.template == "soap"
    assert [s.key for s in draft.sections] == ["subjective", "objective", "assessment", "plan"]
    assert sentences(draft) == [
        (
            "subjective",
            "Cough for about a week, and chest pain when breathing in deeply.",
            ["u2"],
            [],
        ),
        ("objective", "Temperature 38.2 degrees last night.", ["u4"], []),
        ("objective", "Blood pressure 130 over 85, pulse 92.", ["u5"], []),
        ("assessment", "Chest infection.", ["u9"], []),
        ("plan", "Amoxicillin 500 milligrams three times a day for five days.", ["u9"], []),
    ]
    assert all(set(s.evidence) <= IDS for section in draft.sections for s in section.sentences)
    (request,) = fake.chat_requests()
    assert request.status == 200 and request.json is not None
    assert request.json["temperature"] == 0 and isinstance(request.json["seed"], int)
    assert request.json["max_completion_tokens"] == LlmSettings().max_output_tokens
    # llama-3.3-70b-versatile on Groq has no json_schema mode: JSON mode, schema in the prompt.
    assert request.json["response_format"] == {"type": "json_object"}
    assert json.dumps(note_schema(SOAP), separators=(",", ":")) in messages(fake, 0)[0]["content"]


async def test_strict_json_schema_for_models_that_support_it(fake: FakeOpenAIServer) -> None:
    fake.chat_replies.append(GOOD)
    draft = await make_writer(fake, model="openai/gpt-oss-120b").write(TRANSCRIPT, SOAP)

    assert len(sentences(draft)) == 5
    (request,) = fake.chat_requests()
    assert request.json is not None
    # The fake refuses a strict schema that breaks strict mode's rules: 200 means it passed.
    assert request.status == 200
    assert request.json["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "clinical_note", "schema": note_schema(SOAP), "strict": True},
    }


async def test_the_template_decides_sections_and_order(fake: FakeOpenAIServer) -> None:
    fake.chat_replies.append(GOOD)  # same keys, another order
    draft = await make_writer(fake).write(TRANSCRIPT, APSO)
    assert [s.key for s in draft.sections] == ["assessment", "plan", "subjective", "objective"]
    assert draft.sections[0].sentences[0].text == "Chest infection."


async def test_an_empty_transcript_costs_no_request(fake: FakeOpenAIServer) -> None:
    draft = await make_writer(fake).write([], SOAP)
    assert [s.sentences for s in draft.sections] == [[], [], [], []]
    assert fake.chat_requests() == []


# --- (2) invalid answers: one correction request ---------------------------------------------
async def test_invalid_json_is_corrected_by_a_second_request(fake: FakeOpenAIServer) -> None:
    broken = GOOD[:-20]  # cut off mid-object
    fake.chat_replies.extend([broken, GOOD])
    draft = await make_writer(fake).write(TRANSCRIPT, SOAP)

    assert len(sentences(draft)) == 5
    assert len(fake.chat_requests()) == 2
    first, second = messages(fake, 0), messages(fake, 1)
    assert second[:2] == first
    assert second[2] == {"role": "assistant", "content": broken}
    assert second[3]["role"] == "user"
    assert second[3]["content"].startswith("Your answer cannot be used as it is:\n- ")
    assert "The answer is not valid JSON" in second[3]["content"]


async def test_schema_invalid_json_is_corrected_with_the_errors_listed(
    fake: FakeOpenAIServer,
) -> None:
    wrong = json.loads(GOOD)
    del wrong["plan"]
    wrong["diagnosis"] = []
    wrong["objective"][0]["evidence"] = "u4"
    fake.chat_replies.extend([json.dumps(wrong), GOOD])
    draft = await make_writer(fake).write(TRANSCRIPT, SOAP)

    assert len(sentences(draft)) == 5
    assert len(fake.chat_requests()) == 2
    correction = messages(fake, 1)[-1]["content"]
    assert "- objective[0].evidence: Input should be a valid list." in correction
    assert "- plan: Field required." in correction
    assert "- diagnosis: Extra inputs are not permitted." in correction


async def test_an_answer_the_endpoint_rejects_as_invalid_json_is_asked_again(
    fake: FakeOpenAIServer,
) -> None:
    # Groq's JSON mode answers 400 json_validate_failed, quoting the failed generation.
    error = {
        "message": "Failed to generate JSON. Please adjust your prompt.",
        "type": "invalid_request_error",
        "code": "json_validate_failed",
        "failed_generation": "Patient has a cough",
    }
    fake.faults.append(FakeFault(400, {"error": error}))
    fake.chat_replies.append(GOOD)
    draft = await make_writer(fake).write(TRANSCRIPT, SOAP)

    assert len(sentences(draft)) == 5
    assert [r.status for r in fake.chat_requests()] == [400, 200]
    second = messages(fake, 1)
    assert [m["role"] for m in second] == ["system", "user", "user"]  # nothing to quote back
    assert "not valid JSON" in second[-1]["content"]


async def test_invalid_twice_fails_with_a_stable_code_and_no_transcript_text(
    fake: FakeOpenAIServer,
) -> None:
    quoting = json.dumps({"subjective": [{"text": CANNED_CONSULTATION[8], "evidence": ["u9"]}]})
    fake.chat_replies.extend([quoting, f"Sure! {CANNED_CONSULTATION[1]}"])
    with pytest.raises(ProviderPermanentError) as raised:
        await make_writer(fake).write(TRANSCRIPT, SOAP)

    assert len(fake.chat_requests()) == 2
    error = raised.value
    assert error.code == "llm_invalid_output" and error.provider == "llm"
    shown = f"{error} {json.dumps(error.to_json())}".lower()
    assert not [word for word in PHI_WORDS if word in shown]
    assert "missing" in error.message and "invalid_json" in error.message
    assert "CLINSCRIBE_NOTE_PROVIDER=extractive" in error.message  # says what to do


async def test_a_cut_off_answer_says_to_raise_the_output_limit(fake: FakeOpenAIServer) -> None:
    fake.chat_replies.extend([ChatReply(GOOD[:40], "length"), ChatReply(GOOD[:40], "length")])
    with pytest.raises(ProviderPermanentError) as raised:
        await make_writer(fake).write(TRANSCRIPT, SOAP)
    assert raised.value.code == "llm_invalid_output"
    assert "CLINSCRIBE_LLM__MAX_OUTPUT_TOKENS" in raised.value.message
    assert "cut off at the length limit" in messages(fake, 1)[-1]["content"]


async def test_unknown_evidence_is_corrected_or_else_dropped_and_flagged(
    fake: FakeOpenAIServer,
) -> None:
    invented = answer(
        objective=[("Temperature 38.2 degrees last night.", ["u4", "u99"])],
        plan=[("Amoxicillin 500 milligrams three times a day.", ["[u9]", "u77"])],
        assessment=[("Chest infection.", [])],
    )
    fake.chat_replies.extend([invented, invented])
    draft = verify_note(await make_writer(fake).write(TRANSCRIPT, SOAP), TRANSCRIPT)

    assert len(fake.chat_requests()) == 2
    correction = messages(fake, 1)[-1]["content"]
    assert 'objective[0].evidence cites "u99", not a transcript line id' in correction
    assert "assessment[0].evidence is empty" in correction
    assert sentences(draft) == [
        ("objective", "Temperature 38.2 degrees last night.", ["u4"], ["needs_review"]),
        ("assessment", "Chest infection.", [], ["no_evidence"]),
        ("plan", "Amoxicillin 500 milligrams three times a day.", ["u9"], ["needs_review"]),
    ]


async def test_the_first_answer_stands_when_the_correction_is_worse(
    fake: FakeOpenAIServer,
) -> None:
    invented = answer(objective=[("Temperature 38.2 degrees last night.", ["u4", "u99"])])
    fake.chat_replies.extend([invented, "not json at all"])
    draft = await make_writer(fake).write(TRANSCRIPT, SOAP)
    assert sentences(draft) == [
        ("objective", "Temperature 38.2 degrees last night.", ["u4"], ["needs_review"])
    ]


# --- (3, 4) rate limits, outages, timeouts ---------------------------------------------------
@pytest.mark.parametrize("fault", [FakeFault.rate_limited(0.3), FakeFault.unavailable()])
async def test_429_and_5xx_are_retried_then_succeed(
    fake: FakeOpenAIServer, fault: FakeFault
) -> None:
    fake.faults.append(fault)
    fake.chat_replies.append(GOOD)
    draft = await make_writer(fake).write(TRANSCRIPT, SOAP)

    assert len(sentences(draft)) == 5
    first, second = fake.chat_requests()
    assert (first.status, second.status) == (fault.status, 200)
    if "retry-after" in fault.headers:
        assert second.received_at - first.received_at >= 0.3


async def test_a_timeout_is_a_transient_error_after_the_bounded_retries(
    fake: FakeOpenAIServer,
) -> None:
    fake.latency_s = 1.0
    retry = RetrySettings(max_attempts=2, base_delay_s=0.01, max_delay_s=0.02)
    with pytest.raises(ProviderTransientError) as raised:
        await make_writer(fake, retry, timeout_s=0.2).write(TRANSCRIPT, SOAP)
    assert raised.value.code == "provider_timeout"
    assert len(fake.chat_requests()) == 2


async def test_a_wrong_key_fails_at_once(fake: FakeOpenAIServer) -> None:
    writer = LlmNoteWriter(
        LlmSettings(base_url=fake.base_url, api_key=SecretStr("wrong")), FAST_RETRY
    )
    with pytest.raises(ProviderPermanentError) as raised:
        await writer.write(TRANSCRIPT, SOAP)
    assert raised.value.code == "provider_auth_failed"
    assert len(fake.chat_requests()) == 1


# --- (5) long transcripts --------------------------------------------------------------------
LINE = re.compile(r"^\[(u\d+)\] \w+: ", re.M)


def part_lines(user_message: str) -> list[str]:
    """Ids of the lines a request asks to write up (after the context lines, if any)."""
    return LINE.findall(user_message.split("Write the note for these lines:", 1)[-1])


def one_sentence_per_part(payload: dict[str, Any]) -> str:
    ids = part_lines(payload["messages"][1]["content"])
    return answer(
        subjective=[(f"Said in {ids[0]} to {ids[-1]}.", [ids[0]]), ("Said in every part.", ids)]
    )


async def test_a_long_transcript_is_split_and_merged_in_order(fake: FakeOpenAIServer) -> None:
    long = [
        Utterance(f"u{i}", float(i), i + 1.0, "unknown", f"{CANNED_CONSULTATION[i % 10]} " * 3)
        for i in range(1, 41)
    ]
    fake.chat = one_sentence_per_part
    settings = {"context_tokens": 2600, "max_output_tokens": 256}
    draft = await make_writer(fake, **settings).write(long, SOAP)

    requests = [messages(fake, i) for i in range(len(fake.chat_requests()))]
    assert 3 <= len(requests) <= 6
    parts = [part_lines(r[1]["content"]) for r in requests]
    assert [uid for part in parts for uid in part] == [u.id for u in long]  # each line once
    for number, request in enumerate(requests, start=1):
        assert f"part {number} of {len(requests)}" in request[1]["content"]
        text = "".join(m["content"] for m in request)
        assert estimate_tokens(text) + settings["max_output_tokens"] <= settings["context_tokens"]
        if number > 1:  # overlap: the end of the previous part comes first, as context
            context = LINE.findall(request[1]["content"].split("Transcript, part")[0])
            assert context == parts[number - 2][-2:]
    expected = [f"Said in {part[0]} to {part[-1]}." for part in parts]
    subjective = draft.section("subjective").sentences
    assert [s.text for s in subjective] == [expected[0], "Said in every part.", *expected[1:]]
    assert subjective[1].evidence == [u.id for u in long]  # merged once, citing every part


async def test_too_many_parts_fail_before_any_request(fake: FakeOpenAIServer) -> None:
    long = [Utterance(f"u{i}", 0.0, 1.0, "unknown", "word " * 400) for i in range(1, 6)]
    writer = make_writer(fake, context_tokens=2600, max_output_tokens=256, max_windows=2)
    with pytest.raises(ConfigurationError) as raised:
        await writer.write(long, SOAP)
    assert raised.value.code == "llm_transcript_too_long"
    assert "CLINSCRIBE_LLM__MAX_WINDOWS" in raised.value.message
    assert fake.chat_requests() == []


def test_settings_that_leave_no_room_for_the_transcript_are_refused_at_start() -> None:
    settings = LlmSettings(api_key=SecretStr("k"), context_tokens=2048, max_output_tokens=1024)
    with pytest.raises(ConfigurationError) as raised:
        LlmNoteWriter(settings, FAST_RETRY)
    assert raised.value.code == "llm_context_too_small"
    assert "CLINSCRIBE_LLM__CONTEXT_TOKENS" in raised.value.message


# --- (6) the prompt --------------------------------------------------------------------------
async def test_the_prompt_carries_the_ids_and_the_template_guidance(
    fake: FakeOpenAIServer,
) -> None:
    fake.chat_replies.append(GOOD)
    await make_writer(fake).write(TRANSCRIPT, SOAP)

    system, user = messages(fake, 0)
    assert system["role"] == "system" and user["role"] == "user"
    for spec in SOAP.sections:
        assert f'- "{spec.key}", {spec.title}: {spec.guidance}' in system["content"]
    assert "Cite only ids that appear in the transcript" in system["content"]
    assert user["content"].splitlines() == [
        "Transcript:",
        *(f"[{u.id}] {u.speaker}: {u.text}" for u in TRANSCRIPT),
    ]


# --- wiring: registry, doctor, docs ----------------------------------------------------------
def test_the_registry_builds_the_llm_writer_and_names_a_missing_key() -> None:
    with pytest.raises(ConfigurationError) as raised:
        build_note_writer(Settings(_env_file=None, note_provider="llm"))  # type: ignore[call-arg]
    assert raised.value.code == "missing_api_key"
    assert "CLINSCRIBE_LLM__API_KEY" in raised.value.message
    keyed = Settings(
        _env_file=None,  # type: ignore[call-arg]
        note_provider="llm",
        llm=LlmSettings(api_key=SecretStr("gsk_x")),
    )
    assert build_note_writer(keyed).name == "llm"
    assert build_note_writer(Settings(_env_file=None)).name == "extractive"  # type: ignore[call-arg]


def test_doctor_checks_the_llm_endpoint(fake: FakeOpenAIServer) -> None:
    def check(**overrides: Any) -> tuple[bool, str]:
        settings = Settings(
            _env_file=None,  # type: ignore[call-arg]
            note_provider="llm",
            llm=llm_settings(fake, **overrides),
        )
        result = _note_writer(settings)
        return result.ok, result.detail

    assert check() == (True, f"model llama-3.3-70b-versatile at {fake.base_url}")
    ok, detail = check(model="llama-9000")
    assert not ok and "model 'llama-9000' is not offered" in detail
    ok, detail = check(api_key=SecretStr("wrong"))
    assert not ok and "CLINSCRIBE_LLM__API_KEY" in detail


SAMPLE = [
    Utterance("u1", 0.0, 2.5, "doctor", "What brings you in today?"),
    Utterance("u2", 2.5, 6.0, "patient", "A sore throat since Monday, and a temperature of 38."),
    Utterance("u3", 6.0, 9.0, "doctor", "Take paracetamol 500 mg up to four times a day."),
]


def documented_blocks() -> dict[str, str]:
    """What docs/llm-note-writer.md must show, generated from the code."""
    parts = [Window(1, (), tuple(SAMPLE[:2])), Window(2, (SAMPLE[1],), (SAMPLE[2],))]
    return {
        "system-prompt": system_prompt(SOAP),
        "user-message": transcript_message(Window(1, (), tuple(SAMPLE)), 1),
        "user-message-parts": "\n\n---\n\n".join(transcript_message(w, 2) for w in parts),
        "repair-message": repair_message(
            [
                "The answer is not valid JSON: Expecting ',' delimiter (line 3, column 5).",
                'plan[0].evidence cites "u7", not a transcript line id. Cite only the ids in '
                "brackets at the start of the transcript lines.",
            ]
        ),
        "schema": json.dumps(note_schema(SOAP), indent=2, ensure_ascii=False),
    }


def test_the_doc_shows_the_exact_prompt_and_schema() -> None:
    """Regenerate after a prompt, schema or SOAP template change:
    CLINSCRIBE_UPDATE_DOCS=1 .venv/bin/pytest tests/notes/test_llm_writer.py -k doc"""
    text = DOC.read_text(encoding="utf-8")
    updated = text
    for name, content in documented_blocks().items():
        fence = "json" if name == "schema" else "text"
        block = re.compile(
            rf"(<!-- generated: {name} -->\n)```\w*\n(?:.*?\n)?```(\n<!-- end: {name} -->)", re.S
        )
        assert block.search(updated), f"docs/llm-note-writer.md lacks the {name} block"
        replacement = f"```{fence}\n{content}\n```"
        updated = block.sub(lambda m, new=replacement: f"{m[1]}{new}{m[2]}", updated)
    if updated != text and os.environ.get("CLINSCRIBE_UPDATE_DOCS") == "1":
        DOC.write_text(updated, encoding="utf-8")
        return
    assert updated == text, (
        "docs/llm-note-writer.md no longer shows the prompt the code sends; regenerate it: "
        "CLINSCRIBE_UPDATE_DOCS=1 .venv/bin/pytest tests/notes/test_llm_writer.py -k doc"
    )


# --- end to end through the real service -----------------------------------------------------
def scripted_note(payload: dict[str, Any]) -> str:
    """The LLM's answer for the canned consultation, citing the ids the prompt shows; one
    sentence puts a number its evidence does not hold."""
    transcript = payload["messages"][1]["content"]
    lines = dict(re.findall(r"^\[(u\d+)\] \w+: (.*)$", transcript, re.M))
    fever = next(uid for uid, text in lines.items() if "38.2" in text)
    cough = next(uid for uid, text in lines.items() if "cough for about a week" in text)
    orders = next(uid for uid, text in lines.items() if "amoxicillin" in text)
    return answer(
        subjective=[("Cough for about a week, and chest pain when breathing in deeply.", [cough])],
        objective=[
            ("Temperature 38.2 degrees last night.", [fever]),
            ("Temperature 39.5 degrees this morning.", [fever]),
        ],
        assessment=[("Chest infection.", [orders])],
        plan=[("Amoxicillin 500 milligrams three times a day for five days.", [orders])],
    )


@pytest.mark.slow
def test_the_service_writes_the_note_with_the_llm(tmp_path: Path) -> None:
    with FakeOpenAIServer() as fake:
        fake.chat = scripted_note
        env = fake_stt_env(fake.base_url) | {
            "CLINSCRIBE_NOTE_PROVIDER": "llm",
            "CLINSCRIBE_LLM__BASE_URL": fake.base_url,
            "CLINSCRIBE_LLM__API_KEY": "test-key",
        }
        server = ServerProcess(tmp_path / "svc", env)
        server.start()
        try:
            response = server.upload(SHORT_WAV)
            assert response.status_code == 202, response.text
            consultation_id = response.json()["id"]
            body = server.wait_terminal(consultation_id)
            assert body["status"] == "completed", body
            with server.client() as client:
                base = f"/api/consultations/{consultation_id}"
                ids = {u["id"] for u in client.get(f"{base}/transcript").json()["utterances"]}
                note = client.get(f"{base}/note").json()
        finally:
            server.kill()
        (request,) = fake.chat_requests()

    assert note["writer"] == "llm"
    written = [
        (section["key"], s["text"], s["flags"])
        for section in note["sections"]
        for s in section["sentences"]
    ]
    assert written == [
        ("subjective", "Cough for about a week, and chest pain when breathing in deeply.", []),
        ("objective", "Temperature 38.2 degrees last night.", []),
        ("objective", "Temperature 39.5 degrees this morning.", ["unsupported"]),
        ("assessment", "Chest infection.", []),
        ("plan", "Amoxicillin 500 milligrams three times a day for five days.", []),
    ]
    cited = [s["evidence"] for section in note["sections"] for s in section["sentences"]]
    assert all(evidence and set(evidence) <= ids for evidence in cited)
    assert request.json is not None and request.json["response_format"]["type"] == "json_object"
    log = server.log_text().lower()
    # No transcript or note text ("38.2" alone also matches a timestamp's seconds).
    assert "amoxicillin" not in log and "38.2 degrees" not in log
