"""Request and response bodies of the consultations API (see API.md; snake_case JSON)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from clinscribe.models import Consultation, Note, Transcript


class ErrorInfo(BaseModel):
    code: str
    message: str
    retryable: bool


class ConsultationOut(BaseModel):
    id: str
    status: Literal["queued", "processing", "completed", "failed", "cancelled"]
    stage: str | None
    language: str
    template: str
    patient_ref: str | None
    title: str | None
    duration_s: float | None
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None
    error: ErrorInfo | None

    @classmethod
    def of(cls, row: Consultation) -> ConsultationOut:
        error = None
        if row.error_code:
            error = ErrorInfo(
                code=row.error_code,
                message=row.error_message or "",
                retryable=bool(row.error_retryable),
            )
        return cls(
            id=row.id,
            status=row.status,
            stage=row.stage,
            language=row.language,
            template=row.template,
            patient_ref=row.patient_ref,
            title=row.title,
            duration_s=row.duration_s,
            created_at=row.created_at,
            updated_at=row.updated_at,
            completed_at=row.completed_at,
            error=error,
        )


class ConsultationPage(BaseModel):
    items: list[ConsultationOut]
    next_cursor: str | None


class UtteranceOut(BaseModel):
    id: str
    start: float
    end: float
    speaker: Literal["doctor", "patient", "other", "unknown"]
    text: str


class TranscriptOut(BaseModel):
    language: str
    duration_s: float
    provider: str
    model: str
    utterances: list[UtteranceOut]

    @classmethod
    def of(cls, row: Transcript) -> TranscriptOut:
        return cls(
            language=row.language,
            duration_s=row.duration_s,
            provider=row.provider,
            model=row.model,
            utterances=[
                UtteranceOut(
                    id=u.public_id,
                    start=u.start,
                    end=u.end,
                    speaker=u.speaker,
                    text=u.text,
                )
                for u in row.utterances
            ],
        )


class SentenceOut(BaseModel):
    id: str
    text: str
    evidence: list[str]
    flags: list[str]


class SectionOut(BaseModel):
    key: str
    title: str
    sentences: list[SentenceOut]


class NoteOut(BaseModel):
    version: int
    template: str
    writer: str
    status: Literal["draft", "signed"]
    created_at: datetime
    signed_at: datetime | None
    signed_by: str | None
    sections: list[SectionOut]
    omissions: list[dict[str, Any]]
    codes: list[dict[str, Any]]

    @classmethod
    def of(cls, row: Note) -> NoteOut:
        counter = 0
        sections = []
        for section in row.sections:
            sentences = []
            for sentence in section.sentences:
                counter += 1
                sentences.append(
                    SentenceOut(
                        id=f"s{counter}",
                        text=sentence.text,
                        evidence=list(sentence.evidence),
                        flags=list(sentence.flags),
                    )
                )
            sections.append(SectionOut(key=section.key, title=section.title, sentences=sentences))
        return cls(
            version=row.version,
            template=row.template,
            writer=row.writer,
            status=row.status,
            created_at=row.created_at,
            signed_at=row.signed_at,
            signed_by=row.signed_by,
            sections=sections,
            omissions=list(row.omissions),
            codes=list(row.codes),
        )


class SentenceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=4000)
    evidence: list[str] = Field(default_factory=list, max_length=200)


class SectionIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    key: str = Field(min_length=1, max_length=64)
    title: str = Field(min_length=1, max_length=200)
    sentences: list[SentenceIn] = Field(max_length=500)


class NoteIn(BaseModel):
    """An edited draft; saved as a new version and re-verified against the transcript."""

    model_config = ConfigDict(extra="forbid")
    sections: list[SectionIn] = Field(min_length=1, max_length=30)
    base_version: int | None = Field(
        None,
        ge=1,
        description="The version the edit started from; if it is no longer the latest, the "
        "save is refused (409 stale_version) instead of silently replacing newer changes",
    )


class SignNoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    signed_by: str | None = Field(
        None,
        min_length=1,
        max_length=200,
        description="API keys only: the clinician who signs (a signed-in user signs as themselves)",
    )
    version: int | None = Field(None, description="The version you reviewed; default latest")


class SpeakerIn(BaseModel):
    """A clinician's correction of who spoke an utterance."""

    model_config = ConfigDict(extra="forbid")
    speaker: Literal["doctor", "patient", "other", "unknown"]


class RegenerateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    template: str = Field("soap", min_length=1, max_length=32)


class CodeDecisionIn(BaseModel):
    """A clinician's decision on a suggested ICD-10-CM code."""

    model_config = ConfigDict(extra="forbid")
    status: Literal["accepted", "rejected", "suggested"]
    version: int | None = Field(
        None, ge=1, description="The version on screen; refused (409) if it is not the latest"
    )


class SummaryItemOut(BaseModel):
    text: str
    evidence: list[str]


class PatientSummaryOut(BaseModel):
    """After-visit instructions for the patient, made from the note's plan."""

    version: int = Field(description="the note version it was made from")
    language: str
    writer: str = Field(description="extractive (plan items as written) or llm (reworded)")
    intro: str
    items: list[SummaryItemOut]
