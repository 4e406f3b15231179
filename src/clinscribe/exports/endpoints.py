"""GET /api/consultations/{id}/note/{fhir,pdf,text}: the note for other systems. Thin."""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Query, Response

from clinscribe.auth.dependencies import PrincipalDep, RuntimeDep, SessionDep
from clinscribe.db.base import utcnow
from clinscribe.errors import Conflict
from clinscribe.exports import service
from clinscribe.exports.document import pdf_filename
from clinscribe.exports.fhir import FHIR_MEDIA_TYPE, render_fhir
from clinscribe.exports.pdf import PDF_MEDIA_TYPE, render_pdf
from clinscribe.exports.text import MEDIA_TYPES, TextFormat, render_text

router = APIRouter(prefix="/api/consultations", tags=["exports"])

VersionQuery = Annotated[
    int | None, Query(ge=1, le=100000, description="A note version; default: the latest")
]
_ERRORS: dict[int | str, dict[str, object]] = {
    404: {"description": "No consultation with this id in your clinic, or no such version"},
    409: {"description": "Processing has not completed yet (`not_completed`)"},
}


@router.get(
    "/{consultation_id}/note/fhir",
    summary="The note as a FHIR R4 document Bundle (Composition, DocumentReference, ...)",
    response_class=Response,
    responses={200: {"content": {FHIR_MEDIA_TYPE: {}}}, **_ERRORS},
)
async def export_fhir(
    consultation_id: str,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    version: VersionQuery = None,
) -> Response:
    note = await service.load_export(session, runtime, principal, consultation_id, version)
    body = render_fhir(note, utcnow().replace(microsecond=0))
    await service.record_export(session, principal, note, "fhir")
    return Response(body, media_type=FHIR_MEDIA_TYPE)


@router.get(
    "/{consultation_id}/note/pdf",
    summary="A signed note version as PDF (drafts: 409 `not_signed`)",
    response_class=Response,
    responses={
        200: {"content": {PDF_MEDIA_TYPE: {}}},
        **_ERRORS,
        409: {"description": "Not completed yet (`not_completed`) or a draft (`not_signed`)"},
    },
)
async def export_pdf(
    consultation_id: str,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    version: VersionQuery = None,
) -> Response:
    note = await service.load_export(session, runtime, principal, consultation_id, version)
    if not note.is_signed:
        raise Conflict(
            f"Version {note.version} of this note is a draft, and only a signed note is "
            "exported as PDF. Review and sign it first (POST .../note/sign), or export the "
            "draft as text or FHIR.",
            code="not_signed",
        )
    pdf = await asyncio.to_thread(render_pdf, note)
    await service.record_export(session, principal, note, "pdf")
    return Response(
        pdf,
        media_type=PDF_MEDIA_TYPE,
        headers={"Content-Disposition": f'attachment; filename="{pdf_filename(note)}"'},
    )


@router.get(
    "/{consultation_id}/note/text",
    summary="The note as plain text or markdown, for copy-paste into any EMR",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}, "text/markdown": {}}}, **_ERRORS},
)
async def export_text(
    consultation_id: str,
    session: SessionDep,
    runtime: RuntimeDep,
    principal: PrincipalDep,
    version: VersionQuery = None,
    text_format: Annotated[TextFormat, Query(alias="format")] = "text",
) -> Response:
    note = await service.load_export(session, runtime, principal, consultation_id, version)
    body = render_text(note, text_format)
    await service.record_export(session, principal, note, text_format)
    return Response(body, media_type=MEDIA_TYPES[text_format])
