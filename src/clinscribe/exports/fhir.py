"""The note as a FHIR R4 document: a Bundle of Composition, DocumentReference and who they name.

Resources are validated with the ``fhir.resources.R4B`` models (FHIR 4.3.0, the technical
correction of R4 4.0.1): every element written here has the same name, type and cardinality
in R4 4.0.1, which ``tests/exports/test_fhir.py`` checks against ``fhirclient``'s R4 models
(docs/exports.md lists the fields). A resource the library refuses is a bug in this module:
it is logged by location and error type only, never with the values (they hold patient text).
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from datetime import UTC, datetime
from typing import Any, NoReturn
from xml.etree import ElementTree

import structlog
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.composition import Composition
from fhir.resources.R4B.documentreference import DocumentReference
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.patient import Patient
from fhir.resources.R4B.practitioner import Practitioner
from fhir.resources.R4B.resource import Resource
from pydantic import ValidationError

from clinscribe.errors import ClinscribeError
from clinscribe.exports.document import ExportedNote, ExportSection, one_line
from clinscribe.exports.text import render_text

log = structlog.get_logger("clinscribe.exports")

FHIR_MEDIA_TYPE = "application/fhir+json"
FHIR_VERSION = "4.0.1"
LOINC = "http://loinc.org"
XHTML = "http://www.w3.org/1999/xhtml"
ATTACHMENT_TYPE = "text/markdown; charset=utf-8"
_EMPTY_REASON = "http://terminology.hl7.org/CodeSystem/list-empty-reason"
# Stable resource ids: the same note version always exports with the same ids.
_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:clinscribe:fhir")

# LOINC document types by template; any other template is a generic "Note".
_PROGRESS_NOTE = ("11506-3", "Progress note")
_DOCUMENT_TYPES = {
    "soap": _PROGRESS_NOTE,
    "apso": _PROGRESS_NOTE,
    "progress": _PROGRESS_NOTE,
    "hp": ("34117-2", "History and physical note"),
}
_GENERIC_NOTE = ("34109-9", "Note")
# LOINC section codes by section key (built-in templates and clinic templates alike).
# Mixed sections (social and family history, progress "exam" = exam + results) get none.
SECTION_CODES: dict[str, tuple[str, str]] = {
    "subjective": ("61150-9", "Subjective Narrative"),
    "objective": ("61149-1", "Objective Narrative"),
    "assessment": ("51848-0", "Evaluation note"),
    "plan": ("18776-5", "Plan of care note"),
    "chief_complaint": ("10154-3", "Chief complaint Narrative - Reported"),
    "hpi": ("10164-2", "History of Present illness Narrative"),
    "past_history": ("11348-0", "History of Past illness Narrative"),
    "medications": ("10160-0", "History of Medication use Narrative"),
    "allergies": ("48765-2", "Allergies and adverse reactions Document"),
    "review_of_systems": ("10187-3", "Review of systems Narrative - Reported"),
    "physical_exam": ("29545-1", "Physical findings Narrative"),
    "results": ("30954-2", "Relevant diagnostic tests/laboratory data Narrative"),
}


class FhirExportFailed(ClinscribeError):
    status_code = 500
    code = "fhir_export_failed"


def clinic_system(clinic_id: str, kind: str) -> str:
    """Identifier system for ids that are unique only within one clinic."""
    return f"urn:clinscribe:clinic:{clinic_id}:{kind}"


def _uuid(*parts: str) -> str:
    return str(uuid.uuid5(_ID_NAMESPACE, "/".join(parts)))


def _loinc(code: tuple[str, str]) -> dict[str, Any]:
    return {"coding": [{"system": LOINC, "code": code[0], "display": code[1]}], "text": code[1]}


def _xhtml_div(*blocks: str) -> str:
    """A narrative div. ``blocks`` are already-escaped XHTML fragments."""
    return f'<div xmlns="{XHTML}">{"".join(blocks)}</div>'


def _escape(text: str) -> str:
    return one_line(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _section(section: ExportSection) -> dict[str, Any]:
    sentences = [_escape(s) for s in section.sentences if one_line(s)]
    out: dict[str, Any] = {"title": one_line(section.title) or section.key}
    if section.key in SECTION_CODES:
        out["code"] = _loinc(SECTION_CODES[section.key])
    if sentences:
        items = "".join(f"<li>{s}</li>" for s in sentences)
        out["text"] = {"status": "generated", "div": _xhtml_div(f"<ul>{items}</ul>")}
    else:
        # A section needs text, entries or sub-sections (cmp-1); say why it is empty.
        out["text"] = {"status": "generated", "div": _xhtml_div("<p>Nothing recorded.</p>")}
        out["emptyReason"] = {
            "coding": [{"system": _EMPTY_REASON, "code": "unavailable", "display": "Unavailable"}]
        }
    return out


class _Ids:
    def __init__(self, note: ExportedNote) -> None:
        version = f"{note.consultation_id}/v{note.version}"
        # Signing does not make a new version, but the signed document is a new document: a
        # receiver that de-duplicates on the Bundle identifier must not drop it.
        self.bundle = _uuid(version, "signed" if note.signature else "draft", "bundle")
        self.composition = _uuid(version, "composition")
        self.document_reference = _uuid(version, "document-reference")
        self.organization = _uuid("clinic", note.clinic_id)
        self.patient = _uuid("clinic", note.clinic_id, "patient", note.patient_ref or "")
        clinician = note.clinician
        who = (clinician.user_id or clinician.name) if clinician else ""
        self.practitioner = _uuid("clinic", note.clinic_id, "practitioner", who)


def _ref(resource_id: str, display: str | None = None) -> dict[str, Any]:
    reference: dict[str, Any] = {"reference": f"urn:uuid:{resource_id}"}
    if display:
        reference["display"] = display
    return reference


def _organization(note: ExportedNote, ids: _Ids) -> dict[str, Any]:
    return {
        "resourceType": "Organization",
        "id": ids.organization,
        "identifier": [{"system": "urn:clinscribe:clinic", "value": note.clinic_id}],
        "name": one_line(note.clinic_name),
    }


def _patient(note: ExportedNote, ids: _Ids) -> dict[str, Any]:
    assert note.patient_ref
    return {
        "resourceType": "Patient",
        "id": ids.patient,
        "identifier": [
            {
                "use": "usual",
                "system": clinic_system(note.clinic_id, "patient"),
                "value": one_line(note.patient_ref),
            }
        ],
        "managingOrganization": _ref(ids.organization),
    }


def _practitioner(note: ExportedNote, ids: _Ids) -> dict[str, Any]:
    assert note.clinician is not None
    practitioner: dict[str, Any] = {
        "resourceType": "Practitioner",
        "id": ids.practitioner,
        "name": [{"text": one_line(note.clinician.name)}],
    }
    if note.clinician.user_id:
        practitioner["identifier"] = [
            {"system": clinic_system(note.clinic_id, "user"), "value": note.clinician.user_id}
        ]
    return practitioner


def _note_identifier(note: ExportedNote) -> dict[str, Any]:
    return {
        "system": clinic_system(note.clinic_id, "note"),
        "value": f"{note.consultation_id}-v{note.version}",
    }


def _composition(note: ExportedNote, ids: _Ids) -> dict[str, Any]:
    author = _ref(ids.practitioner) if note.clinician else _ref(ids.organization)
    summary = f"<p>{_escape(note.document_title)}</p><p>{_escape(note.status_line)}</p>"
    composition: dict[str, Any] = {
        "resourceType": "Composition",
        "id": ids.composition,
        "language": note.language,
        "text": {"status": "generated", "div": _xhtml_div(summary)},
        "identifier": _note_identifier(note),
        "status": "final" if note.signature else "preliminary",
        "type": _loinc(_DOCUMENT_TYPES.get(note.template, _GENERIC_NOTE)),
        "date": note.version_date.astimezone(UTC),
        "author": [author],
        "title": one_line(note.document_title),
        "custodian": _ref(ids.organization),
        "section": [_section(section) for section in note.sections],
    }
    if note.patient_ref:
        composition["subject"] = _ref(ids.patient)
    if note.signature is not None:
        composition["attester"] = [
            {
                "mode": "legal",
                "time": note.signature.signed_at.astimezone(UTC),
                "party": _signer(note, ids),
            }
        ]
    return composition


def _signer(note: ExportedNote, ids: _Ids) -> dict[str, Any]:
    assert note.signature is not None
    name = one_line(note.signature.signed_by)
    # Signed with an API key for a clinician without an account here: the name is all we have.
    return _ref(ids.practitioner, name) if note.clinician else {"display": name}


def _document_reference(note: ExportedNote, ids: _Ids, now: datetime) -> dict[str, Any]:
    content = render_text(note, "markdown").encode("utf-8")
    reference: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "id": ids.document_reference,
        "language": note.language,
        "masterIdentifier": _note_identifier(note),
        "status": "current",
        "docStatus": "final" if note.signature else "preliminary",
        "type": _loinc(_DOCUMENT_TYPES.get(note.template, _GENERIC_NOTE)),
        "date": now.astimezone(UTC),
        "author": [_ref(ids.practitioner) if note.clinician else _ref(ids.organization)],
        "custodian": _ref(ids.organization),
        "description": one_line(note.document_title),
        "content": [
            {
                "attachment": {
                    "contentType": ATTACHMENT_TYPE,
                    "language": note.language,
                    "data": base64.b64encode(content).decode("ascii"),
                    "size": len(content),
                    # R4: "Hash of the data (sha-1, base64ed)".
                    "hash": base64.b64encode(
                        hashlib.sha1(content, usedforsecurity=False).digest()
                    ).decode("ascii"),
                    "title": f"{one_line(note.document_title)} (version {note.version})",
                    "creation": note.version_date.astimezone(UTC),
                }
            }
        ],
        "context": {"related": [_ref(ids.composition)]},
    }
    if note.patient_ref:
        reference["subject"] = _ref(ids.patient)
    if note.signature is not None:
        reference["authenticator"] = _signer(note, ids)
    return reference


_MODELS: dict[str, type[Resource]] = {
    "Composition": Composition,
    "DocumentReference": DocumentReference,
    "Patient": Patient,
    "Practitioner": Practitioner,
    "Organization": Organization,
}


def _validated(resource: dict[str, Any]) -> Resource:
    model = _MODELS[resource["resourceType"]]
    for narrative in _narratives(resource):
        _check_xhtml(narrative, resource["resourceType"])
    try:
        return model.model_validate(resource)
    except ValidationError as error:
        _fail(resource["resourceType"], error)


def _narratives(resource: dict[str, Any]) -> list[str]:
    divs = [resource["text"]["div"]] if "text" in resource else []
    return divs + [s["text"]["div"] for s in resource.get("section", [])]


def _check_xhtml(div: str, resource_type: str) -> None:
    # The library takes any string as xhtml; a narrative that is not well-formed would be
    # refused by FHIR servers, so check it here. The div is ours, its text escaped: no DTD.
    try:
        root = ElementTree.fromstring(div)  # noqa: S314
    except ElementTree.ParseError:
        root = None
    if root is None or root.tag != f"{{{XHTML}}}div":
        log.error("fhir export refused", resource_type=resource_type, problem="narrative xhtml")
        raise FhirExportFailed(_BUG_MESSAGE)


_BUG_MESSAGE = (
    "The FHIR export could not be built: this is a bug in clinscribe, not in the note. It was "
    "logged without patient data; export the note as text or PDF meanwhile and tell your "
    "administrator."
)


def _fail(resource_type: str, error: ValidationError) -> NoReturn:
    problems = [
        (".".join(str(part) for part in e["loc"]), e["type"])
        for e in error.errors(include_url=False, include_input=False, include_context=False)
    ]
    log.error("fhir export refused", resource_type=resource_type, problems=problems[:10])
    raise FhirExportFailed(_BUG_MESSAGE) from None


def build_bundle(note: ExportedNote, now: datetime) -> Bundle:
    """A FHIR ``document`` Bundle, every resource validated. ``now``: the export time."""
    ids = _Ids(note)
    resources: list[tuple[str, dict[str, Any]]] = [
        (ids.composition, _composition(note, ids)),
        (ids.document_reference, _document_reference(note, ids, now)),
    ]
    if note.patient_ref:
        resources.append((ids.patient, _patient(note, ids)))
    if note.clinician is not None:
        resources.append((ids.practitioner, _practitioner(note, ids)))
    resources.append((ids.organization, _organization(note, ids)))
    entries = [
        {"fullUrl": f"urn:uuid:{resource_id}", "resource": _validated(resource)}
        for resource_id, resource in resources
    ]
    bundle = {
        "resourceType": "Bundle",
        "id": ids.bundle,
        "identifier": {"system": "urn:ietf:rfc:3986", "value": f"urn:uuid:{ids.bundle}"},
        "type": "document",
        "timestamp": now.astimezone(UTC),
        "entry": entries,
    }
    try:
        return Bundle.model_validate(bundle)
    except ValidationError as error:
        _fail("Bundle", error)


def render_fhir(note: ExportedNote, now: datetime) -> str:
    """The document Bundle as FHIR JSON."""
    return build_bundle(note, now).model_dump_json()
