"""Templates: built-in H&P and progress notes, clinic-defined TOML templates, regeneration."""

from __future__ import annotations

from pathlib import Path

import pytest

from clinscribe.errors import BadRequest, ConfigurationError
from clinscribe.notes.extractive import build_note
from clinscribe.notes.model import Utterance
from clinscribe.notes.templates import (
    BUILT_IN,
    HISTORY_AND_PHYSICAL,
    SOAP,
    TemplateLibrary,
    load_template_file,
)
from tests.fakes.openai_compat import FakeOpenAIServer
from tests.support.audio import SHORT_WAV
from tests.support.server import ServerProcess

UTTERANCES = [
    Utterance("u1", 0, 2, "patient", "I have had a cough for three days."),
    Utterance("u2", 2, 4, "doctor", "Your temperature is 38.2 degrees."),
    Utterance("u3", 4, 6, "doctor", "This looks like acute bronchitis."),
    Utterance("u4", 6, 8, "doctor", "I will prescribe amoxicillin 500 milligrams twice a day."),
]

DERMATOLOGY = """
key = "derm"
title = "Dermatology visit"
style = "Short sentences; name body sites precisely."

[[sections]]
key = "history"
title = "History"
guidance = "The skin complaint, its course and what was tried."
collects = ["chief_complaint", "history", "medications", "allergies"]

[[sections]]
key = "findings"
title = "Findings"
collects = ["vitals", "exam", "results"]

[[sections]]
key = "plan"
title = "Impression and plan"
collects = ["assessment", "plan", "follow_up"]
"""


def _texts(template_key: str, library: TemplateLibrary) -> dict[str, list[str]]:
    draft = build_note(UTTERANCES, library.get(template_key))
    return {s.key: [x.text for x in s.sentences] for s in draft.sections}


def test_every_fact_kind_of_soap_has_a_place_in_the_built_in_templates() -> None:
    soap_kinds = {kind for section in SOAP.sections for kind in section.collects}
    for template in BUILT_IN.values():
        kinds = {kind for section in template.sections for kind in section.collects}
        assert kinds == soap_kinds, template.key


def test_history_and_physical_places_the_same_facts_in_its_own_sections() -> None:
    sections = _texts("hp", TemplateLibrary())
    assert [s.key for s in HISTORY_AND_PHYSICAL.sections][:2] == ["chief_complaint", "hpi"]
    assert sections["hpi"] == ["The patient has had a cough for three days."]
    assert sections["physical_exam"] == ["Temperature 38.2 degrees."]
    assert sections["assessment"] == ["This looks like acute bronchitis."]
    assert sections["plan"] == ["Plan: prescribe amoxicillin 500 milligrams twice a day."]
    progress = _texts("progress", TemplateLibrary())
    assert progress["interval_history"] == ["The patient has had a cough for three days."]
    assert progress["exam"] == ["Temperature 38.2 degrees."]


def test_clinic_defined_template_from_a_toml_file(tmp_path: Path) -> None:
    (tmp_path / "derm.toml").write_text(DERMATOLOGY)
    library = TemplateLibrary.from_directory(tmp_path)
    assert library.keys() == ["apso", "derm", "hp", "progress", "soap"]
    derm = library.get("derm")
    assert derm.style.startswith("Short sentences")
    sections = _texts("derm", library)
    assert sections["history"] == ["The patient has had a cough for three days."]
    assert sections["findings"] == ["Temperature 38.2 degrees."]
    assert sections["plan"] == [
        "This looks like acute bronchitis.",
        "Plan: prescribe amoxicillin 500 milligrams twice a day.",
    ]


@pytest.mark.parametrize(
    ("name", "content", "phrase"),
    [
        ("derm.toml", DERMATOLOGY.replace('"exam"', '"skin"'), "sections.1.collects.1"),
        ("derm.toml", DERMATOLOGY.replace('key = "derm"', 'key = "Derm!"'), "key"),
        ("derm.toml", DERMATOLOGY + "\ncolour = 'red'\n", "colour"),
        ("derm.toml", "key = [", "cannot read it"),
        ("other.toml", DERMATOLOGY, "must be named derm.toml"),
        ("soap.toml", DERMATOLOGY.replace('key = "derm"', 'key = "soap"'), "built-in"),
        ("derm.toml", DERMATOLOGY.replace('key = "findings"', 'key = "history"'), "unique"),
    ],
)
def test_a_broken_template_file_names_the_file_and_the_problem(
    tmp_path: Path, name: str, content: str, phrase: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(ConfigurationError) as raised:
        load_template_file(path)
    assert name in raised.value.message and phrase in raised.value.message


def test_unknown_template_lists_the_choices() -> None:
    with pytest.raises(BadRequest) as raised:
        TemplateLibrary().get("soapy")
    assert "apso, hp, progress, soap" in raised.value.message


def test_regenerate_with_another_template_keeps_versions_and_never_transcribes_again(
    tmp_path: Path,
) -> None:
    with FakeOpenAIServer() as fake:
        server = ServerProcess(
            tmp_path / "svc",
            {
                "CLINSCRIBE_STT_PROVIDER": "openai",
                "CLINSCRIBE_OPENAI_STT__BASE_URL": fake.base_url,
                "CLINSCRIBE_OPENAI_STT__API_KEY": "test-key",
                "CLINSCRIBE_TEMPLATES_DIR": str(tmp_path / "templates"),
            },
        )
        (tmp_path / "templates").mkdir()
        (tmp_path / "templates" / "derm.toml").write_text(DERMATOLOGY)
        server.start()
        try:
            consultation_id = server.upload(SHORT_WAV, template="derm").json()["id"]
            assert server.wait_terminal(consultation_id)["status"] == "completed"
            transcriptions = len(fake.transcription_requests())
            base = f"/api/consultations/{consultation_id}"
            with server.client() as client:
                templates = client.get("/api/templates").json()
                assert {"soap", "hp", "progress", "derm"} <= {t["key"] for t in templates}
                first = client.get(f"{base}/note").json()
                assert first["template"] == "derm" and first["version"] == 1
                regenerated = client.post(f"{base}/note/regenerate", json={"template": "hp"})
                assert regenerated.status_code == 200, regenerated.text
                body = regenerated.json()
                assert body["version"] == 2 and body["template"] == "hp"
                assert body["sections"][0]["key"] == "chief_complaint"
                kept = client.get(f"{base}/note", params={"version": 1}).json()
                assert kept == first
                unknown = client.post(f"{base}/note/regenerate", json={"template": "x"})
                assert unknown.status_code == 400
        finally:
            server.kill()
    assert transcriptions == 1
    assert len(fake.transcription_requests()) == transcriptions  # no speech-to-text again
