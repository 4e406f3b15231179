"""Built-in note templates. Clinic-defined templates arrive with the note engine."""

from __future__ import annotations

from clinscribe.errors import BadRequest
from clinscribe.notes.model import NoteTemplate, SectionSpec

SOAP = NoteTemplate(
    key="soap",
    title="SOAP note",
    sections=(
        SectionSpec(
            "subjective", "Subjective", "Symptoms, history and concerns the patient reports."
        ),
        SectionSpec("objective", "Objective", "Vital signs, examination findings, test results."),
        SectionSpec("assessment", "Assessment", "Diagnoses and the clinician's impression."),
        SectionSpec("plan", "Plan", "Medications, tests, referrals, advice and follow-up."),
    ),
)

APSO = NoteTemplate(
    key="apso",
    title="APSO note",
    sections=(
        SOAP.sections[2],
        SOAP.sections[3],
        SOAP.sections[0],
        SOAP.sections[1],
    ),
)

TEMPLATES: dict[str, NoteTemplate] = {t.key: t for t in (SOAP, APSO)}


def get_template(key: str) -> NoteTemplate:
    try:
        return TEMPLATES[key]
    except KeyError:
        known = ", ".join(sorted(TEMPLATES))
        raise BadRequest(
            f"Unknown note template '{key}'. Use one of: {known}.", code="unknown_template"
        ) from None
