"""The offline, deterministic extractive note writer (v2): never invents.

With no model and no key, the only note we can stand behind is made of what was said. v2 reads
facts out of the transcript (:mod:`facts`) and writes each as a short note line from fixed
templates: a question answered "no" becomes "Denies fever."; "I've had a cough for three days"
becomes "The patient has had a cough for three days."; "your temperature is 38.2 degrees"
becomes "Temperature 38.2 degrees."; "I'll increase your lisinopril to 40 milligrams a day"
becomes "Plan: increase lisinopril to 40 milligrams a day.". Every word of a line is the
speakers' own, apart from the template words in :data:`TEMPLATE_WORDS` ("Reports", "Denies",
"Plan:", "the patient" and the verb forms agreeing with it); numbers, units, drug names and
negations are copied as said, so the verifier finds each of them in the cited utterances.

Each fact has a kind (chief complaint, history, vitals, plan, ...); a template places it in
the first section that collects that kind (``template.section_for``), so SOAP, APSO, H&P,
progress and clinic-defined templates all get the same facts. Within a section lines follow
the order of the kinds the section collects, then the transcript. A line said twice is kept
once, citing every place it was said. Pure and fast: no I/O, no model, milliseconds a note
(the drug dictionary loads once per process, about three seconds, on first use).
"""

from __future__ import annotations

from clinscribe.notes.facts import TEMPLATE_WORDS, extract_facts
from clinscribe.notes.model import NoteDraft, NoteSection, NoteSentence, NoteTemplate, Utterance
from clinscribe.notes.spoken import merge_ids, split_sentences, tidy_sentence

WRITER_NAME = "extractive"

__all__ = [
    "TEMPLATE_WORDS",
    "WRITER_NAME",
    "ExtractiveNoteWriter",
    "build_note",
    "split_sentences",
    "tidy_sentence",
]


class ExtractiveNoteWriter:
    """The offline default ``NoteWriter``: deterministic, no network, never invents."""

    name = WRITER_NAME

    async def write(self, utterances: list[Utterance], template: NoteTemplate) -> NoteDraft:
        # Pure and fast (milliseconds for an hour of speech), so no worker thread is needed.
        return build_note(utterances, template)


def build_note(utterances: list[Utterance], template: NoteTemplate) -> NoteDraft:
    """Build an extractive note; every sentence cites the utterances it rests on (sync, pure)."""
    placed: dict[str, list[tuple[int, int, NoteSentence]]] = {s.key: [] for s in template.sections}
    seen: dict[str, NoteSentence] = {}
    for position, fact in enumerate(extract_facts(utterances)):
        spec = template.section_for(fact.kind)
        if spec is None:  # a template without a place for this kind: leave it out
            continue
        key = fact.text.lower()
        if key in seen:  # said twice: keep the first, but cite every place it was said
            seen[key].evidence = list(merge_ids(seen[key].evidence, fact.evidence))
            continue
        sentence = NoteSentence(text=fact.text, evidence=list(fact.evidence))
        seen[key] = sentence
        placed[spec.key].append((spec.collects.index(fact.kind), position, sentence))
    sections = [
        NoteSection(spec.key, spec.title, [s for *_, s in sorted(placed[spec.key])])
        for spec in template.sections
    ]
    return NoteDraft(template=template.key, writer=WRITER_NAME, sections=sections)
