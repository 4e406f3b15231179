"""Note data built by hand for the export tests: Tamil, Hindi and code-mixed English."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from clinscribe.exports.document import Clinician, ExportedNote, ExportSection, Signature

TAMIL = "நோயாளிக்கு மூன்று நாட்களாக காய்ச்சல் உள்ளது."
HINDI = "मरीज़ को तीन दिन से बुखार है और सिर में दर्द है।"
CODE_MIXED = "Patient ku fever irukku, paracetamol 500 mg eduthaanga \u2013 no relief."
MARKUP = 'BP 120/80 mmHg & pulse < 100 > 60, see "notes" <b>*not*</b> [x](y).'

SECTIONS = (
    ExportSection("subjective", "Subjective", (TAMIL, HINDI, CODE_MIXED)),
    ExportSection("objective", "Objective", ("Temperature 38.2 °C.", MARKUP)),
    ExportSection("assessment", "Assessment", ("Acute viral fever, likely dengue excluded.",)),
    ExportSection("plan", "Plan", ("Paracetamol 650 mg three times a day.", "Review in 3 days.")),
    ExportSection("follow_up_calls", "Follow-up calls", ()),
)


def signed_note() -> ExportedNote:
    return ExportedNote(
        consultation_id="3f2c9a1b",
        clinic_id="clinic42",
        clinic_name="Anna Nagar Family Clinic",
        language="ta",
        patient_ref="MRN-00421",
        title="Fever follow-up",
        consultation_date=datetime(2024, 5, 1, 10, 30, tzinfo=UTC),
        template="soap",
        template_title="SOAP note",
        version=3,
        version_date=datetime(2024, 5, 1, 10, 40, tzinfo=UTC),
        signature=Signature("Dr Priya Raman", datetime(2024, 5, 1, 11, 5, tzinfo=UTC)),
        clinician=Clinician("Dr Priya Raman", "user7"),
        sections=SECTIONS,
    )


def draft_note() -> ExportedNote:
    return replace(signed_note(), signature=None, version=2)


def every_sentence(note: ExportedNote) -> list[str]:
    return [sentence for section in note.sections for sentence in section.sentences]
