"""ICD-10-CM suggestions: from the assessment only, never for negated problems, valid codes."""

from __future__ import annotations

import pytest
import simple_icd_10_cm as icd

from clinscribe.notes.codes import SYNONYMS, suggest_codes
from clinscribe.notes.model import NoteDraft, NoteSection, NoteSentence
from clinscribe.notes.templates import APSO, SOAP

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py


def _draft(assessment: list[str], subjective: tuple[str, ...] = ()) -> NoteDraft:
    return NoteDraft(
        template="soap",
        writer="test",
        sections=[
            NoteSection("subjective", "Subjective", [NoteSentence(t, ["u1"]) for t in subjective]),
            NoteSection(
                "assessment",
                "Assessment",
                [NoteSentence(t, [f"u{i}"]) for i, t in enumerate(assessment, start=2)],
            ),
        ],
    )


def test_every_mapped_code_is_a_valid_billable_icd10cm_code() -> None:
    assert len(SYNONYMS) >= 50
    for code in SYNONYMS:
        assert icd.is_valid_item(code) and icd.is_leaf(code), code


def test_problems_in_the_assessment_become_suggestions_with_evidence() -> None:
    draft = _draft(
        ["This looks like acute bronchitis.", "Her high blood pressure is controlled."],
        subjective=("My father had diabetes.",),  # history, not an assessed problem
    )
    codes = suggest_codes(draft, SOAP)
    assert [(c["code"], c["evidence"], c["status"]) for c in codes] == [
        ("J20.9", ["u2"], "suggested"),
        ("I10", ["u3"], "suggested"),
    ]
    assert {c["description"] for c in codes} == {
        "Essential (primary) hypertension",
        "Acute bronchitis, unspecified",
    }
    assert suggest_codes(draft, APSO) == codes  # placement by section key, any order


def test_negated_or_ruled_out_problems_are_not_suggested() -> None:
    draft = _draft(
        [
            "No signs of pneumonia on examination.",
            "We need to rule out dengue.",
            "It is not asthma.",
            "Iron deficiency anemia.",
        ]
    )
    assert [c["code"] for c in suggest_codes(draft, SOAP)] == ["D50.9"]  # not also D64.9


def test_a_clinicians_decision_survives_a_new_version() -> None:
    draft = _draft(["Acute bronchitis.", "Type 2 diabetes, well controlled."])
    previous: list[dict[str, object]] = [
        {"code": "J20.9", "status": "rejected"},
        {"code": "I10", "status": "accepted"},  # no longer in the assessment: dropped
    ]
    codes = {c["code"]: c["status"] for c in suggest_codes(draft, SOAP, previous)}
    assert codes == {"J20.9": "rejected", "E11.9": "suggested"}
