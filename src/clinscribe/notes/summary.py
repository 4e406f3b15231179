"""The patient summary: after-visit instructions in words a patient can act on.

Offline (the extractive writer), it is the plan and follow-up sentences of the latest note
version, in English, each citing its evidence: nothing is reworded, so nothing is invented.
With the LLM writer, the same items are rewritten plainly in the consultation's language
(:func:`llm_summary`). Every line keeps the evidence of the plan item it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from clinscribe.notes.model import NoteDraft, NoteSentence, NoteTemplate
from clinscribe.providers.llm.base import ChatMessage, ChatModel

log = structlog.get_logger("clinscribe.notes")

OFFLINE_INTRO = "What we agreed today:"


@dataclass
class PatientSummary:
    language: str
    writer: str
    intro: str
    items: list[NoteSentence] = field(default_factory=list)


def summary_to_json(summary: PatientSummary) -> dict[str, Any]:
    return {
        "language": summary.language,
        "writer": summary.writer,
        "intro": summary.intro,
        "items": [{"text": i.text, "evidence": list(i.evidence)} for i in summary.items],
    }


def summary_from_json(data: dict[str, Any]) -> PatientSummary:
    return PatientSummary(
        language=str(data["language"]),
        writer=str(data["writer"]),
        intro=str(data["intro"]),
        items=[NoteSentence(text=i["text"], evidence=list(i["evidence"])) for i in data["items"]],
    )


def plan_items(draft: NoteDraft, template: NoteTemplate) -> list[NoteSentence]:
    """The note's sentences from sections that collect the plan or follow-up, in order."""
    keys = {s.key for s in template.sections if {"plan", "follow_up"} & set(s.collects)}
    return [
        NoteSentence(text=sentence.text, evidence=list(sentence.evidence))
        for section in draft.sections
        if section.key in keys
        for sentence in section.sentences
    ]


def offline_summary(draft: NoteDraft, template: NoteTemplate) -> PatientSummary:
    return PatientSummary(
        language="en", writer="extractive", intro=OFFLINE_INTRO, items=plan_items(draft, template)
    )


# --- with the LLM writer: the same items, plainly, in the patient's language ------------------
LANGUAGE_NAMES: dict[str, str] = {
    "en": "English", "hi": "Hindi", "ta": "Tamil", "te": "Telugu", "kn": "Kannada",
    "ml": "Malayalam", "mr": "Marathi", "bn": "Bengali", "gu": "Gujarati", "pa": "Punjabi",
    "or": "Odia", "as": "Assamese", "ur": "Urdu",
}  # fmt: skip
SUMMARY_SCHEMA_NAME = "patient_summary"


class _SummaryItem(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=600)
    item: int = Field(ge=1)


class _SummaryAnswer(BaseModel):
    model_config = ConfigDict(extra="forbid")
    intro: str = Field(max_length=300)
    items: list[_SummaryItem]


def summary_prompt(language: str) -> str:
    name = LANGUAGE_NAMES.get(language, language)
    return (
        "You write after-visit instructions for a patient from the numbered plan items of "
        f"their clinical note. Write in {name}, in plain words a patient understands, "
        "addressing the patient as 'you'. Rewrite each item that tells the patient what to "
        "do or expect as one or two short sentences, and give the number of the item it comes "
        "from. Use only what the items say: add no medicine, dose, number, test or advice "
        "that is not in them; if an item is unclear, leave it out. Start with a one-sentence "
        "intro. Answer with JSON only, matching the schema."
    )


def summary_schema() -> dict[str, Any]:
    return _SummaryAnswer.model_json_schema()


async def llm_summary(
    chat: ChatModel, items: list[NoteSentence], language: str, max_tokens: int
) -> PatientSummary:
    """The plan items rewritten by the LLM; each line keeps the evidence of its item.

    An unusable answer falls back to the offline summary rather than failing a clinician's
    request (the note itself is unaffected).
    """
    if not items:
        return PatientSummary(language=language, writer="llm", intro="", items=[])
    numbered = "\n".join(f"{i}. {item.text}" for i, item in enumerate(items, start=1))
    messages = [
        ChatMessage("system", summary_prompt(language)),
        ChatMessage("user", f"Plan items:\n{numbered}"),
    ]
    result = await chat.complete(
        messages,
        json_schema=summary_schema(),
        schema_name=SUMMARY_SCHEMA_NAME,
        max_tokens=max_tokens,
    )
    try:
        answer = _SummaryAnswer.model_validate_json(result.content)
    except ValidationError:
        log.info("patient summary answer unusable; offline summary used")
        return PatientSummary(language="en", writer="extractive", intro=OFFLINE_INTRO, items=items)
    lines = [
        NoteSentence(text=line.text.strip(), evidence=list(items[line.item - 1].evidence))
        for line in answer.items
        if line.item <= len(items) and line.text.strip()
    ]
    return PatientSummary(language=language, writer="llm", intro=answer.intro.strip(), items=lines)
