"""What a note is, independent of storage and of the writer that made it.

A note is a list of sections; a section is a list of sentences; every sentence carries the ids
of the transcript utterances it rests on (``evidence``) and review ``flags``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol, get_args

Speaker = Literal["doctor", "patient", "other", "unknown"]

# Flags a sentence can carry. `unsupported`: a fact in the sentence is not in its evidence.
# `no_evidence`: the sentence cites nothing (or only ids that do not exist).
SentenceFlag = Literal["unsupported", "no_evidence", "needs_review"]


@dataclass(frozen=True)
class Utterance:
    """One stretch of speech; ``id`` is stable within a consultation (u1, u2, ...)."""

    id: str
    start: float
    end: float
    speaker: Speaker
    text: str


@dataclass
class NoteSentence:
    text: str
    evidence: list[str]
    flags: list[str] = field(default_factory=list)


@dataclass
class NoteSection:
    key: str
    title: str
    sentences: list[NoteSentence] = field(default_factory=list)


@dataclass
class NoteDraft:
    template: str
    writer: str
    sections: list[NoteSection]
    omissions: list[dict[str, object]] = field(default_factory=list)
    codes: list[dict[str, object]] = field(default_factory=list)

    def section(self, key: str) -> NoteSection:
        for section in self.sections:
            if section.key == key:
                return section
        raise KeyError(key)


# What a piece of a consultation is about. Rule-based writers sort what they extract into
# these kinds; a template section says which kinds it collects (LLM writers read `guidance`).
FactKind = Literal[
    "chief_complaint",
    "history",
    "past_history",
    "medications",
    "allergies",
    "social_family",
    "review_of_systems",
    "vitals",
    "exam",
    "results",
    "assessment",
    "plan",
    "follow_up",
]
FACT_KINDS: tuple[FactKind, ...] = get_args(FactKind)


@dataclass(frozen=True)
class SectionSpec:
    key: str
    title: str
    guidance: str
    collects: tuple[FactKind, ...] = ()


@dataclass(frozen=True)
class NoteTemplate:
    key: str
    title: str
    sections: tuple[SectionSpec, ...]
    style: str = ""  # how the note should read (for LLM writers), e.g. "terse, metric units"

    def section_for(self, kind: FactKind) -> SectionSpec | None:
        """The first section that collects this kind of fact (None: the template has none)."""
        for section in self.sections:
            if kind in section.collects:
                return section
        return None


class NoteWriter(Protocol):
    """Turns a transcript into a note draft following a template."""

    name: str

    async def write(self, utterances: list[Utterance], template: NoteTemplate) -> NoteDraft: ...
