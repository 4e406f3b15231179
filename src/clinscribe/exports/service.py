"""Export use cases: gather one note version with what the documents name, audit each export.

Same rules as reading the note: the caller's clinic only (another clinic's id is "not found"),
and only once processing has completed, since until then the pipeline may still change the
version's flags.
"""

from __future__ import annotations

from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.audit.service import record
from clinscribe.auth import repository as accounts
from clinscribe.auth.principal import Principal
from clinscribe.consultations import service as consultations
from clinscribe.errors import Conflict
from clinscribe.exports import repository
from clinscribe.exports.document import (
    Clinician,
    ExportedNote,
    ExportSection,
    Signature,
    one_line,
)
from clinscribe.models import Consultation, ConsultationStatus, Note
from clinscribe.pipeline.runtime import Runtime

ExportFormat = Literal["fhir", "pdf", "text", "markdown"]
# The actions that make a note version, besides the pipeline's first one.
_VERSION_ACTIONS = ("note.edited", "note.regenerated")


async def load_export(
    session: AsyncSession,
    runtime: Runtime,
    principal: Principal,
    consultation_id: str,
    version: int | None,
) -> ExportedNote:
    """The latest note version (or ``version``) of the caller's completed consultation."""
    consultation = await consultations.get_consultation(session, principal, consultation_id)
    if consultation.status != ConsultationStatus.COMPLETED:
        raise Conflict(
            f"The note cannot be exported yet: the consultation is {consultation.status}, not "
            "completed. Wait until processing has completed (retry it if it failed).",
            code="not_completed",
        )
    note = await consultations.get_note(session, principal, consultation.id, version)
    clinic = await accounts.get_clinic(session, consultation.clinic_id)
    templates = runtime.templates
    signature = None
    if note.status == "signed" and note.signed_by and note.signed_at:
        signature = Signature(signed_by=note.signed_by, signed_at=note.signed_at)
    return ExportedNote(
        consultation_id=consultation.id,
        clinic_id=consultation.clinic_id,
        clinic_name=(one_line(clinic.name) if clinic else "") or "Clinic",
        language=consultation.language,
        # Names made only of control characters count as absent (FHIR refuses empty strings).
        patient_ref=one_line(consultation.patient_ref or "") or None,
        title=consultation.title,
        consultation_date=consultation.created_at,
        template=note.template,
        # A clinic template removed since: its key is the best title there is.
        template_title=templates.get(note.template).title
        if templates.has(note.template)
        else note.template,
        version=note.version,
        version_date=note.created_at,
        signature=signature,
        clinician=await _clinician(session, consultation, note, signature),
        sections=tuple(
            ExportSection(
                key=section.key,
                title=section.title,
                sentences=tuple(sentence.text for sentence in section.sentences),
            )
            for section in note.sections
        ),
    )


async def _clinician(
    session: AsyncSession, consultation: Consultation, note: Note, signature: Signature | None
) -> Clinician | None:
    """The signer of a signed version; else whoever made the version, if a clinician did."""
    clinic_id, consultation_id = consultation.clinic_id, consultation.id
    if signature is not None:
        signed = await repository.last_audit_event(
            session, clinic_id, consultation_id, ("note.signed",), version=note.version
        )
        user_id = signed.actor_id if signed and signed.actor_type == "user" else None
        return Clinician(name=one_line(signature.signed_by) or "Unnamed clinician", user_id=user_id)
    made = await repository.last_audit_event(
        session, clinic_id, consultation_id, _VERSION_ACTIONS, version=note.version
    )
    if made is None:  # the pipeline's version: whoever uploaded the recording
        made = await repository.last_audit_event(
            session, clinic_id, consultation_id, ("consultation.created",)
        )
    if made is None or made.actor_type != "user" or made.actor_id is None:
        return None  # an integration (API key) acted: no clinician to name
    user = await accounts.get_user(session, clinic_id, made.actor_id)
    if user is None:
        return None
    return Clinician(name=one_line(user.name) or "Unnamed clinician", user_id=user.id)


async def record_export(
    session: AsyncSession, principal: Principal, note: ExportedNote, export_format: ExportFormat
) -> None:
    await record(
        session,
        principal,
        "note.exported",
        consultation_id=note.consultation_id,
        version=note.version,
        format=export_format,
    )
