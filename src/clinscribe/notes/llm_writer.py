"""The LLM note writer: any OpenAI-compatible chat endpoint (Groq by default) writes the note.

Flow: cut the transcript into parts that fit ``CLINSCRIBE_LLM__CONTEXT_TOKENS`` -> for each part
ask for one JSON object (per section key, sentences with ``text`` and ``evidence`` ids) ->
validate it (JSON, schema, evidence ids shown in that request) -> if invalid, ask once more
with the problems listed -> merge the parts' sections in order, dropping repeated sentences.
The verifier then checks every sentence against its evidence, as for any writer.

Decisions (the prompt and schema are in docs/llm-note-writer.md, checked by a test):
- Structure problems (not JSON, wrong shape, unknown or missing section keys) get one
  correction request; if the corrected answer is still unusable the note fails with
  ``llm_invalid_output`` (the previous answer is used if only its citations were wrong).
- Citation problems (ids the request did not show, no ids, empty text) also trigger the
  correction request, but never fail a note: in the final answer unknown ids are dropped and
  the sentence is flagged ``needs_review`` (the verifier adds ``no_evidence`` if none remain).
- Tokens are estimated without the model's tokenizer (``estimate_tokens``: 4 characters per
  token for ASCII text, 1 per other character), erring towards smaller parts.
- Nothing of the transcript or the answers is logged or put in an error message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import structlog
from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model

from clinscribe.config import LlmSettings, RetrySettings
from clinscribe.errors import ConfigurationError, ProviderPermanentError
from clinscribe.notes.model import NoteDraft, NoteSection, NoteSentence, NoteTemplate, Utterance
from clinscribe.notes.templates import SOAP
from clinscribe.providers.llm.base import (
    ChatMessage,
    ChatModel,
    ModelOutputRejected,
    clip_tokens,
    estimate_tokens,
)
from clinscribe.providers.llm.openai_compat import OpenAICompatibleChat, require_api_key

log = structlog.get_logger("clinscribe.notes.llm")

WRITER_NAME = "llm"
SCHEMA_NAME = "clinical_note"
# Lines from the end of one part repeated (as context) before the next, so a question at the
# end of one part and its answer at the start of the next are read together.
OVERLAP_UTTERANCES = 2
# Room kept in each request for chat framing (role markers, the part heading).
FRAMING_TOKENS = 100
# Room kept for the correction request's list of problems.
REPAIR_TOKENS = 600
MAX_PROBLEMS_LISTED = 20
# A part with less room than this for transcript lines is not worth a request.
MIN_TRANSCRIPT_TOKENS = 400

SYSTEM_PROMPT = """\
You are a medical scribe. From the transcript of a consultation between a doctor and a \
patient, write a {title} as one JSON object.

Rules:
1. Use only what is said in the transcript. Never add a fact, number, dose, drug, diagnosis \
or negation that nobody said. When the transcript has nothing for a section, give it an empty \
list.
2. Write short, plain sentences, one fact each, in the language of the transcript. Copy \
numbers, units and drug names exactly as they were said.
3. Every sentence cites in "evidence" the ids of the transcript lines it rests on, for example \
["u3", "u4"]. Cite only ids that appear in the transcript.
4. Put each fact in one section only, where the section's description says it belongs. Leave \
out greetings and small talk.
5. Answer with the JSON object only: no markdown, no comments, no other text.

Transcript lines look like "[u12] doctor: text": the line's id in brackets, who spoke \
(doctor, patient, other, or unknown when the speaker was not identified), then what was said.

Sections (JSON key, title: what belongs there):
{sections}

JSON schema of the answer:
{schema}"""

CONTEXT_HEADING = (
    "Context: the end of part {previous}, already written up. Do not write sentences from "
    "these lines alone; cite them only with a line of this part."
)
PART_HEADING = "Transcript, part {part} of {parts}. Write the note for these lines:"
WHOLE_HEADING = "Transcript:"
REPAIR_PROMPT = """\
Your answer cannot be used as it is:
{problems}
Answer again with the corrected JSON object only, following the rules and the JSON schema."""


class LlmSentence(BaseModel):
    # One note sentence as the model must write it. No docstring or field descriptions: they
    # would enter the schema once per section, and the prompt's rules already say it.
    model_config = ConfigDict(extra="forbid")

    text: str
    evidence: list[str]


class LlmNoteWriter:
    """A ``NoteWriter`` backed by an OpenAI-compatible chat endpoint."""

    name = WRITER_NAME

    def __init__(self, settings: LlmSettings, retry: RetrySettings) -> None:
        # Refuse unusable settings when the process starts, not after paying for transcription.
        require_api_key(settings)
        transcript_budget(settings, SOAP)
        self._settings = settings
        self._retry = retry

    async def write(self, utterances: list[Utterance], template: NoteTemplate) -> NoteDraft:
        windows = split_transcript(utterances, transcript_budget(self._settings, template))
        if len(windows) > self._settings.max_windows:
            raise ConfigurationError(
                f"The transcript needs {len(windows)} requests to the LLM, more than "
                f"CLINSCRIBE_LLM__MAX_WINDOWS ({self._settings.max_windows}). Raise "
                "CLINSCRIBE_LLM__CONTEXT_TOKENS (if the model's context window allows) or "
                "CLINSCRIBE_LLM__MAX_WINDOWS, or use CLINSCRIBE_NOTE_PROVIDER=extractive, then "
                "retry the consultation.",
                code="llm_transcript_too_long",
            )
        parts: list[dict[str, list[NoteSentence]]] = []
        if windows:  # an empty transcript makes an empty note, at no cost
            # One client per note: the writer outlives event loops, an HTTP client must not.
            chat = OpenAICompatibleChat(self._settings, self._retry)
            try:
                for window in windows:
                    parts.append(await self._write_part(chat, template, window, len(windows)))
            finally:
                await chat.aclose()
        return NoteDraft(
            template=template.key, writer=WRITER_NAME, sections=merge_parts(template, parts)
        )

    async def _write_part(
        self, chat: ChatModel, template: NoteTemplate, window: Window, parts: int
    ) -> dict[str, list[NoteSentence]]:
        messages = [
            ChatMessage("system", system_prompt(template)),
            ChatMessage("user", transcript_message(window, parts)),
        ]
        known = {u.id for u in (*window.context, *window.lines)}
        first = await self._ask(chat, messages, template, known, window.part, attempt=1)
        if not first.problems:
            return first.sections or {}
        retry = [*messages]
        if first.content is not None:
            limit = self._settings.max_output_tokens
            retry.append(ChatMessage("assistant", clip_tokens(first.content, limit)))
        retry.append(ChatMessage("user", repair_message(first.problems)))
        second = await self._ask(chat, retry, template, known, window.part, attempt=2)
        if second.sections is not None:
            return second.sections
        if first.sections is not None:  # the first answer's only fault was its citations
            return first.sections
        raise invalid_output_error([*first.kinds, *second.kinds])

    async def _ask(
        self,
        chat: ChatModel,
        messages: list[ChatMessage],
        template: NoteTemplate,
        known: set[str],
        part: int,
        *,
        attempt: int,
    ) -> CheckedAnswer:
        try:
            result = await chat.complete(
                messages,
                json_schema=note_schema(template),
                schema_name=SCHEMA_NAME,
                max_tokens=self._settings.max_output_tokens,
            )
        except ModelOutputRejected:
            checked = CheckedAnswer(None, None, ["The answer was not valid JSON."], ["rejected"])
        else:
            checked = check_answer(result.content, template, known)
            if checked.sections is None and result.finish_reason == "length":
                checked.problems.append(
                    "The answer was cut off at the length limit: write fewer, shorter sentences."
                )
                checked.kinds.append("truncated")
        log.info(
            "llm note part answered",
            part=part,
            attempt=attempt,
            usable=checked.sections is not None,
            problems=sorted(set(checked.kinds)),
        )
        return checked


# --- the schema ----------------------------------------------------------------------------
def _section_fields(template: NoteTemplate) -> tuple[tuple[str, str], ...]:
    return tuple((spec.key, spec.guidance) for spec in template.sections)


@lru_cache(maxsize=32)
def _answer_model(sections: tuple[tuple[str, str], ...]) -> type[BaseModel]:
    # Field names are placeholders and section keys aliases: a key need not be an identifier
    # and cannot shadow a BaseModel attribute.
    fields: dict[str, Any] = {
        f"s{i}": (list[LlmSentence], Field(alias=key, description=guidance))
        for i, (key, guidance) in enumerate(sections)
    }
    return create_model("ClinicalNote", __config__=ConfigDict(extra="forbid"), **fields)


def note_schema(template: NoteTemplate) -> dict[str, Any]:
    """The JSON schema of an answer, ready for strict mode: every field required, no extras,
    no ``$ref`` (inlined) and no titles."""
    raw = _answer_model(_section_fields(template)).model_json_schema()
    definitions = raw.pop("$defs", {})

    def inline(node: Any, *, names: bool = False) -> Any:
        if isinstance(node, list):
            return [inline(item) for item in node]
        if not isinstance(node, dict):
            return node
        if names:  # the keys of "properties" are names, not keywords
            return {key: inline(value) for key, value in node.items()}
        if "$ref" in node:
            target = definitions[str(node["$ref"]).rsplit("/", 1)[-1]]
            extra = {key: value for key, value in node.items() if key != "$ref"}
            return inline({**target, **extra})
        return {
            key: inline(value, names=key == "properties")
            for key, value in node.items()
            if key != "title"
        }

    schema: dict[str, Any] = inline(raw)
    return schema


# --- the prompt ----------------------------------------------------------------------------
def system_prompt(template: NoteTemplate) -> str:
    sections = "\n".join(f'- "{s.key}", {s.title}: {s.guidance}' for s in template.sections)
    schema = json.dumps(note_schema(template), separators=(",", ":"), ensure_ascii=False)
    return SYSTEM_PROMPT.format(title=template.title, sections=sections, schema=schema)


def transcript_line(utterance: Utterance) -> str:
    return f"[{utterance.id}] {utterance.speaker}: {' '.join(utterance.text.split())}"


def transcript_message(window: Window, parts: int) -> str:
    lines: list[str] = []
    if window.context:
        lines += [CONTEXT_HEADING.format(previous=window.part - 1)]
        lines += [transcript_line(u) for u in window.context] + [""]
    heading = PART_HEADING.format(part=window.part, parts=parts) if parts > 1 else WHOLE_HEADING
    lines += [heading, *(transcript_line(u) for u in window.lines)]
    return "\n".join(lines)


def repair_message(problems: Sequence[str]) -> str:
    listed = [f"- {problem}" for problem in problems[:MAX_PROBLEMS_LISTED]]
    if len(problems) > MAX_PROBLEMS_LISTED:
        listed.append(f"- ... and {len(problems) - MAX_PROBLEMS_LISTED} more like these.")
    return REPAIR_PROMPT.format(problems="\n".join(listed))


# --- long transcripts ----------------------------------------------------------------------
def transcript_budget(settings: LlmSettings, template: NoteTemplate) -> int:
    """Tokens of transcript lines one request may carry.

    The rest of ``context_tokens`` is kept for the instructions, the answer, and a correction
    request (which repeats everything plus the first answer, hence the answer counts twice).
    """
    instructions = estimate_tokens(system_prompt(template)) + FRAMING_TOKENS
    reserved = instructions + 2 * settings.max_output_tokens + REPAIR_TOKENS
    budget = settings.context_tokens - reserved
    if budget < MIN_TRANSCRIPT_TOKENS:
        raise ConfigurationError(
            f"CLINSCRIBE_LLM__CONTEXT_TOKENS ({settings.context_tokens}) leaves no room for the "
            f"transcript: about {reserved} tokens go to the instructions and twice "
            f"CLINSCRIBE_LLM__MAX_OUTPUT_TOKENS ({settings.max_output_tokens}). Raise the "
            "first (up to the model's context window) or lower the second.",
            code="llm_context_too_small",
        )
    return budget


@dataclass(frozen=True)
class Window:
    """One request's share of the transcript: new ``lines``, after ``context`` lines repeated
    from the previous part."""

    part: int
    context: tuple[Utterance, ...]
    lines: tuple[Utterance, ...]


def split_transcript(
    utterances: Sequence[Utterance], budget_tokens: int, overlap: int = OVERLAP_UTTERANCES
) -> list[Window]:
    """Consecutive windows of whole utterances within ``budget_tokens`` each (context lines
    included). A single utterance over the budget still gets a window of its own."""
    costs = [estimate_tokens(transcript_line(u)) + 1 for u in utterances]
    windows: list[Window] = []
    start = 0
    while start < len(utterances):
        context_start = max(0, start - overlap) if windows else start
        used = sum(costs[context_start:start])
        end = start
        while end < len(utterances) and (end == start or used + costs[end] <= budget_tokens):
            used += costs[end]
            end += 1
        context, lines = utterances[context_start:start], utterances[start:end]
        windows.append(Window(len(windows) + 1, tuple(context), tuple(lines)))
        start = end
    return windows


def merge_parts(
    template: NoteTemplate, parts: Sequence[dict[str, list[NoteSentence]]]
) -> list[NoteSection]:
    """Sections in template order, each part's sentences in part order; a sentence written
    again (same words) is kept once, citing every place it came from."""
    sections: list[NoteSection] = []
    for spec in template.sections:
        kept: dict[str, NoteSentence] = {}
        for part in parts:
            for sentence in part.get(spec.key, []):
                key = _same_words(sentence.text)
                if key not in kept:
                    kept[key] = sentence
                    continue
                first = kept[key]
                first.evidence = list(dict.fromkeys([*first.evidence, *sentence.evidence]))
                first.flags = sorted({*first.flags, *sentence.flags})
        sections.append(NoteSection(spec.key, spec.title, list(kept.values())))
    return sections


def _same_words(text: str) -> str:
    return " ".join(re.findall(r"\w+(?:[.,/']\w+)*", text.casefold()))


# --- validation ----------------------------------------------------------------------------
@dataclass
class CheckedAnswer:
    """An answer after validation. ``sections`` is None when its structure is unusable;
    ``problems`` are for the model (they may quote its answer), ``kinds`` are stable codes
    safe to log and to show."""

    content: str | None
    sections: dict[str, list[NoteSentence]] | None
    problems: list[str] = field(default_factory=list)
    kinds: list[str] = field(default_factory=list)


_FENCE = re.compile(r"^\s*```(?:json)?\s*\n?(.*?)\n?\s*```\s*$", re.S | re.I)


def check_answer(content: str, template: NoteTemplate, known_ids: set[str]) -> CheckedAnswer:
    """Validate an answer: JSON, the schema, then each sentence's text and evidence."""
    checked = CheckedAnswer(content, None)
    fenced = _FENCE.match(content)  # a markdown fence around the JSON costs nothing to forgive
    try:
        data = json.loads(fenced.group(1) if fenced else content)
    except json.JSONDecodeError as error:
        checked.problems.append(
            f"The answer is not valid JSON: {error.msg} (line {error.lineno}, column "
            f"{error.colno})."
        )
        checked.kinds.append("invalid_json")
        return checked
    model = _answer_model(_section_fields(template))
    try:
        answer = model.model_validate(data)
    except ValidationError as error:
        for problem in error.errors(include_url=False, include_input=False):
            where = _json_path(problem["loc"])
            checked.problems.append(f"{where}: {problem['msg']}." if where else problem["msg"])
            checked.kinds.append(str(problem["type"]))
        return checked
    checked.sections = {}
    for i, spec in enumerate(template.sections):
        drafts: list[LlmSentence] = getattr(answer, f"s{i}")
        checked.sections[spec.key] = [
            sentence
            for n, draft in enumerate(drafts)
            if (sentence := _check_sentence(draft, f"{spec.key}[{n}]", known_ids, checked))
        ]
    return checked


def _check_sentence(
    draft: LlmSentence, where: str, known_ids: set[str], checked: CheckedAnswer
) -> NoteSentence | None:
    text = " ".join(draft.text.split())
    if not text:
        checked.problems.append(f"{where}.text is empty: leave the sentence out instead.")
        checked.kinds.append("empty_text")
        return None
    cited = list(dict.fromkeys(uid.strip().strip("[]").strip() for uid in draft.evidence))
    unknown = [uid for uid in cited if uid not in known_ids]
    if unknown:
        shown = ", ".join(json.dumps(uid[:20]) for uid in unknown[:5])
        checked.problems.append(
            f"{where}.evidence cites {shown}, not a transcript line id. Cite only the ids in "
            "brackets at the start of the transcript lines."
        )
        checked.kinds.append("unknown_evidence")
    elif not cited:
        checked.problems.append(
            f"{where}.evidence is empty: cite the lines the sentence rests on, or leave it out."
        )
        checked.kinds.append("no_evidence")
    evidence = [uid for uid in cited if uid in known_ids]
    # A dropped citation must stay visible to the reviewer: the verifier recomputes its own
    # flags but keeps this one.
    return NoteSentence(text=text, evidence=evidence, flags=["needs_review"] if unknown else [])


def _json_path(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def invalid_output_error(kinds: Sequence[str]) -> ProviderPermanentError:
    """The error of a note whose answers stayed unusable; names problem kinds, never text."""
    if "truncated" in kinds:
        hint = "raise CLINSCRIBE_LLM__MAX_OUTPUT_TOKENS (the answer was cut off)"
    else:
        hint = (
            "choose a model that follows JSON instructions better (CLINSCRIBE_LLM__MODEL; "
            "CLINSCRIBE_LLM__RESPONSE_FORMAT=json_schema where the model supports it)"
        )
    return ProviderPermanentError(
        "The LLM did not answer with a note in the required JSON format, even after a "
        f"correction request (problems: {', '.join(sorted(set(kinds)))}). Retry the "
        f"consultation; if it fails again, {hint}, or use CLINSCRIBE_NOTE_PROVIDER=extractive.",
        provider=WRITER_NAME,
        code="llm_invalid_output",
    )
