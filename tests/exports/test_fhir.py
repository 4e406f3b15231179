"""FHIR export: a document Bundle whose every resource the library validates, R4 4.0.1 shaped.

``fhir.resources.R4B`` builds and validates; ``fhirclient`` (SMART on FHIR, models generated
from FHIR 4.0.1) re-reads the same JSON strictly, proving the document is R4 proper.
"""

from __future__ import annotations

import base64
import hashlib
import json
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any
from xml.etree import ElementTree

import pytest
import structlog
from fhir.resources.R4B import (
    attachment,
    bundle,
    codeableconcept,
    coding,
    composition,
    documentreference,
    humanname,
    identifier,
    narrative,
    organization,
    patient,
    practitioner,
    reference,
)

from clinscribe.exports.fhir import FhirExportFailed, render_fhir
from clinscribe.exports.text import render_text
from tests.exports.sample import HINDI, MARKUP, TAMIL, draft_note, signed_note

pytestmark = pytest.mark.no_database  # checked in tests/conftest.py

NOW = datetime(2024, 5, 2, 9, 0, tzinfo=UTC)
XHTML = "{http://www.w3.org/1999/xhtml}"
R4B_MODELS: dict[str, Any] = {
    "Composition": composition.Composition,
    "DocumentReference": documentreference.DocumentReference,
    "Patient": patient.Patient,
    "Practitioner": practitioner.Practitioner,
    "Organization": organization.Organization,
}


def _export(note: Any = None) -> dict[str, Any]:
    return dict(json.loads(render_fhir(note or signed_note(), NOW)))


def _resources(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["resource"]["resourceType"]: e["resource"] for e in document["entry"]}


def _filled(value: Any, prefix: str = "") -> list[str]:
    """Paths of the elements that carry a value, lists collapsed (``section[].title``)."""
    if isinstance(value, dict):
        paths = []
        for key, inner in value.items():
            if key == "resource":
                continue
            paths += _filled(inner, f"{prefix}.{key}" if prefix else key)
        return paths
    if isinstance(value, list):
        return sorted({path for item in value for path in _filled(item, f"{prefix}[]")})
    return [prefix]


def test_every_exported_resource_validates_with_the_library() -> None:
    raw = render_fhir(signed_note(), NOW)
    parsed = bundle.Bundle.model_validate_json(raw)
    assert parsed.type == "document" and parsed.entry is not None
    document = json.loads(raw)
    print("\nFHIR export (fhir.resources.R4B) — resources and the elements filled:")
    print(f"  Bundle: {', '.join(p for p in _filled(document) if not p.startswith('entry'))}")
    for entry in document["entry"]:
        resource = entry["resource"]
        model = R4B_MODELS[resource["resourceType"]]
        validated = model.model_validate(resource)
        assert json.loads(validated.model_dump_json()) == resource  # nothing lost or added
        print(f"  {resource['resourceType']}: {', '.join(_filled(resource))}")
    kinds = [entry["resource"]["resourceType"] for entry in document["entry"]]
    assert kinds == ["Composition", "DocumentReference", "Patient", "Practitioner", "Organization"]


def test_the_document_reads_back_as_fhir_r4_4_0_1() -> None:
    models = pytest.importorskip(
        "fhirclient.models.bundle", reason="fhirclient (R4 4.0.1 models) is a dev dependency"
    )
    for note in (signed_note(), draft_note(), replace(draft_note(), clinician=None)):
        document = _export(note)
        # strict: an unknown element, a wrong type or cardinality, a missing required element
        # or a malformed date raises.
        r4 = models.Bundle(document, strict=True)
        assert r4.as_json() == document


def test_the_r4b_elements_used_have_the_same_names_and_cardinality_in_r4() -> None:
    pytest.importorskip("fhirclient", reason="fhirclient (R4 4.0.1 models) is a dev dependency")
    from fhirclient.models import attachment as a4
    from fhirclient.models import bundle as b4
    from fhirclient.models import codeableconcept as cc4
    from fhirclient.models import coding as co4
    from fhirclient.models import composition as c4
    from fhirclient.models import documentreference as d4
    from fhirclient.models import humanname as h4
    from fhirclient.models import identifier as i4
    from fhirclient.models import narrative as n4
    from fhirclient.models import organization as o4
    from fhirclient.models import patient as p4
    from fhirclient.models import practitioner as pr4
    from fhirclient.models import reference as r4

    pairs = [
        (c4.Composition, composition.Composition),
        (c4.CompositionSection, composition.CompositionSection),
        (c4.CompositionAttester, composition.CompositionAttester),
        (d4.DocumentReference, documentreference.DocumentReference),
        (d4.DocumentReferenceContent, documentreference.DocumentReferenceContent),
        (d4.DocumentReferenceContext, documentreference.DocumentReferenceContext),
        (a4.Attachment, attachment.Attachment),
        (b4.Bundle, bundle.Bundle),
        (b4.BundleEntry, bundle.BundleEntry),
        (p4.Patient, patient.Patient),
        (pr4.Practitioner, practitioner.Practitioner),
        (o4.Organization, organization.Organization),
        (i4.Identifier, identifier.Identifier),
        (h4.HumanName, humanname.HumanName),
        (r4.Reference, reference.Reference),
        (cc4.CodeableConcept, codeableconcept.CodeableConcept),
        (co4.Coding, coding.Coding),
        (n4.Narrative, narrative.Narrative),
    ]
    for r4_class, r4b_class in pairs:
        r4_elements = {p[1]: p[3] for p in r4_class(strict=False).elementProperties()}
        r4b_elements = {
            (field.alias or name): "list[" in str(field.annotation).lower()
            or "List[" in str(field.annotation)
            for name, field in r4b_class.model_fields.items()
            if not name.endswith("__ext") and name not in ("fhir_comments", "resource_type")
        }
        assert r4_elements == r4b_elements, r4_class.__name__


def test_a_signed_version_is_final_and_attested() -> None:
    resources = _resources(_export())
    comp, doc = resources["Composition"], resources["DocumentReference"]
    practitioner_url = f"urn:uuid:{resources['Practitioner']['id']}"
    assert comp["status"] == "final" and doc["docStatus"] == "final"
    assert comp["attester"] == [
        {
            "mode": "legal",
            "time": "2024-05-01T11:05:00Z",
            "party": {"reference": practitioner_url, "display": "Dr Priya Raman"},
        }
    ]
    assert doc["authenticator"]["reference"] == practitioner_url
    assert comp["author"] == [{"reference": practitioner_url}]
    assert resources["Practitioner"]["name"] == [{"text": "Dr Priya Raman"}]
    assert resources["Practitioner"]["identifier"] == [
        {"system": "urn:clinscribe:clinic:clinic42:user", "value": "user7"}
    ]
    assert comp["type"]["coding"][0]["code"] == "11506-3"  # LOINC progress note (SOAP)
    assert comp["date"] == "2024-05-01T10:40:00Z" and comp["language"] == "ta"
    assert comp["title"] == "Fever follow-up \u2013 SOAP note"


def test_a_draft_is_preliminary_without_attester() -> None:
    resources = _resources(_export(draft_note()))
    comp, doc = resources["Composition"], resources["DocumentReference"]
    assert comp["status"] == "preliminary" and doc["docStatus"] == "preliminary"
    assert "attester" not in comp and "authenticator" not in doc
    assert "DRAFT" in comp["text"]["div"]


def test_every_section_has_its_sentences_as_escaped_xhtml_and_a_code_where_loinc_has_one() -> None:
    comp = _resources(_export())["Composition"]
    note = signed_note()
    assert [s["title"] for s in comp["section"]] == [s.title for s in note.sections]
    codes = [s.get("code", {}).get("coding", [{}])[0].get("code") for s in comp["section"]]
    assert codes == ["61150-9", "61149-1", "51848-0", "18776-5", None]
    for fhir_section, section in zip(comp["section"], note.sections, strict=True):
        div = ElementTree.fromstring(fhir_section["text"]["div"])
        assert div.tag == f"{XHTML}div" and fhir_section["text"]["status"] == "generated"
        items = [li.text for li in div.iter(f"{XHTML}li")]
        if section.sentences:
            assert items == list(section.sentences)  # exact after XML unescaping
            assert "emptyReason" not in fhir_section
        else:
            assert items == [] and "Nothing recorded." in fhir_section["text"]["div"]
            assert fhir_section["emptyReason"]["coding"][0]["code"] == "unavailable"
    assert TAMIL in comp["section"][0]["text"]["div"] and HINDI in comp["section"][0]["text"]["div"]
    assert "&lt;b&gt;*not*&lt;/b&gt;" in comp["section"][1]["text"]["div"]
    assert MARKUP not in comp["section"][1]["text"]["div"]  # the raw markup never gets in


def test_patient_practitioner_organization_and_every_reference_resolve_in_the_bundle() -> None:
    document = _export()
    resources = _resources(document)
    assert resources["Patient"]["identifier"] == [
        {"use": "usual", "system": "urn:clinscribe:clinic:clinic42:patient", "value": "MRN-00421"}
    ]
    assert resources["Organization"]["name"] == "Anna Nagar Family Clinic"
    assert document["identifier"]["system"] == "urn:ietf:rfc:3986"
    assert document["timestamp"] == "2024-05-02T09:00:00Z"
    full_urls = {entry["fullUrl"] for entry in document["entry"]}
    assert all(e["fullUrl"] == f"urn:uuid:{e['resource']['id']}" for e in document["entry"])

    def references(value: Any) -> list[str]:
        if isinstance(value, dict):
            found = [value["reference"]] if "reference" in value else []
            return found + [r for inner in value.values() for r in references(inner)]
        if isinstance(value, list):
            return [r for item in value for r in references(item)]
        return []

    used = references(document["entry"])
    assert len(used) >= 10 and set(used) <= full_urls


def test_the_document_reference_carries_the_note_as_markdown_with_size_and_sha1() -> None:
    doc = _resources(_export())["DocumentReference"]
    attached = doc["content"][0]["attachment"]
    data = base64.b64decode(attached["data"])
    assert data.decode("utf-8") == render_text(signed_note(), "markdown")
    assert attached["size"] == len(data)
    assert base64.b64decode(attached["hash"]) == hashlib.sha1(data).digest()
    assert attached["contentType"] == "text/markdown; charset=utf-8"
    assert attached["language"] == "ta" and attached["creation"] == "2024-05-01T10:40:00Z"
    assert attached["title"] == "Fever follow-up \u2013 SOAP note (version 3)"
    assert doc["masterIdentifier"] == {
        "system": "urn:clinscribe:clinic:clinic42:note",
        "value": "3f2c9a1b-v3",
    }
    assert doc["status"] == "current" and doc["date"] == "2024-05-02T09:00:00Z"


def test_without_patient_reference_or_clinician_the_clinic_is_the_author() -> None:
    note = replace(draft_note(), patient_ref=None, clinician=None)
    raw = render_fhir(note, NOW)
    bundle.Bundle.model_validate_json(raw)
    resources = _resources(json.loads(raw))
    assert set(resources) == {"Composition", "DocumentReference", "Organization"}
    org = f"urn:uuid:{resources['Organization']['id']}"
    assert resources["Composition"]["author"] == [{"reference": org}]
    assert "subject" not in resources["Composition"]


def test_ids_are_stable_per_version_and_differ_between_versions() -> None:
    first, again = _export(), _export()
    other = _export(replace(signed_note(), version=4))
    ids = [e["resource"]["id"] for e in first["entry"]]
    assert ids == [e["resource"]["id"] for e in again["entry"]]
    other_ids = [e["resource"]["id"] for e in other["entry"]]
    assert ids[:2] != other_ids[:2]  # Composition, DocumentReference
    assert ids[2:] == other_ids[2:]  # the same patient, clinician and clinic


def test_a_resource_the_library_refuses_is_logged_without_patient_text() -> None:
    broken = replace(signed_note(), language="ta  x")  # a FHIR code has no double space
    with structlog.testing.capture_logs() as logs, pytest.raises(FhirExportFailed) as raised:
        render_fhir(broken, NOW)
    assert raised.value.status_code == 500 and raised.value.code == "fhir_export_failed"
    assert "bug" in raised.value.message
    assert logs and logs[0]["event"] == "fhir export refused"
    assert ("language", "string_pattern_mismatch") in logs[0]["problems"]
    logged = repr(logs)
    for phi in (TAMIL, "MRN-00421", "Priya", "ta  x"):
        assert phi not in logged
