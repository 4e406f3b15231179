"""The clinician's pages: consultation list, new consultation, progress and transcript, note review.

Pages are rendered on the server from the same services the API uses (same tenancy, same
audit records). What changes on a page (upload, progress, edits, signing) goes through the
JSON API from small scripts in ``static/js``; the list refreshes itself with htmx.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, time, timedelta
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from clinscribe.audit.service import record
from clinscribe.auth import repository as accounts
from clinscribe.auth.dependencies import get_runtime
from clinscribe.auth.principal import Principal
from clinscribe.consultations import repository, service
from clinscribe.consultations.schemas import ConsultationOut, NoteOut, TranscriptOut
from clinscribe.errors import NotFound
from clinscribe.models import Consultation, ConsultationStatus, Stage
from clinscribe.models.consultation import TERMINAL_STATUSES
from clinscribe.providers.registry import KNOWN_LANGUAGES, stt_capabilities
from clinscribe.web.pages import current_principal, templates

router = APIRouter(include_in_schema=False)

LANGUAGE_NAMES = {
    "en": "English",
    "hi": "Hindi",
    "ta": "Tamil",
    "te": "Telugu",
    "kn": "Kannada",
    "ml": "Malayalam",
    "mr": "Marathi",
    "bn": "Bengali",
    "gu": "Gujarati",
    "pa": "Punjabi",
    "or": "Odia",
    "as": "Assamese",
    "ur": "Urdu",
}
STAGES = [
    (Stage.PREPARING_AUDIO.value, "Preparing audio"),
    (Stage.TRANSCRIBING.value, "Transcribing"),
    (Stage.WRITING_NOTE.value, "Writing the note"),
    (Stage.VERIFYING_NOTE.value, "Checking the note against the transcript"),
    (Stage.FINALIZING.value, "Finishing"),
]
SPEAKERS = ["doctor", "patient", "other", "unknown"]
LIST_LIMIT = 100
# Patient references and titles are encrypted at rest, so a text search reads (at most) this
# many of the newest consultations in the date range and matches them here.
SEARCH_WINDOW = 2000


templates.env.globals["language_names"] = LANGUAGE_NAMES


def stage_rows(consultation: ConsultationOut) -> list[tuple[str, str, str]]:
    """Each stage with its state for the progress list: done, current, failed or waiting."""
    keys = [key for key, _ in STAGES]
    reached = keys.index(consultation.stage) if consultation.stage in keys else -1
    rows = []
    for index, (key, label) in enumerate(STAGES):
        if consultation.status == "completed" or index < reached:
            state = "done"
        elif index == reached and consultation.status == "failed":
            state = "failed"
        elif index == reached:
            state = "current"
        else:
            state = "waiting"
        rows.append((key, label, state))
    return rows


def _sign_in_redirect(request: Request) -> RedirectResponse:
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if target == "/":
        return RedirectResponse("/sign-in", status_code=303)
    return RedirectResponse("/sign-in?" + urlencode({"next": target}), status_code=303)


async def _render(
    request: Request, principal: Principal, name: str, context: dict[str, Any], status: int = 200
) -> HTMLResponse:
    async with get_runtime(request).db.session() as session:
        clinic = await accounts.get_clinic(session, principal.clinic_id)
    return templates.TemplateResponse(
        request,
        name,
        {
            "principal": principal,
            "clinic_name": clinic.name if clinic else "",
            "csrf_token": principal.csrf_token,
            **context,
        },
        status_code=status,
    )


def _parse_day(value: str | None) -> date | None:
    try:
        return date.fromisoformat(value) if value else None
    except ValueError:
        return None


class ListFilter:
    """The list page's search: text in patient reference or title, a date range, a status."""

    def __init__(self, q: str | None, day_from: str | None, day_to: str | None, status: str | None):
        self.q = (q or "").strip()[:100]
        self.day_from = _parse_day(day_from)
        self.day_to = _parse_day(day_to)
        self.status = status if status in {s.value for s in ConsultationStatus} else None

    def query_string(self) -> str:
        params = {
            "q": self.q,
            "from": self.day_from.isoformat() if self.day_from else "",
            "to": self.day_to.isoformat() if self.day_to else "",
            "status": self.status or "",
        }
        return urlencode({k: v for k, v in params.items() if v})

    def matches(self, consultation: Consultation) -> bool:
        if not self.q:
            return True
        needle = self.q.casefold()
        return any(needle in (value or "").casefold() for value in (
            consultation.patient_ref, consultation.title, consultation.original_filename
        ))  # fmt: skip

    async def rows(self, request: Request, principal: Principal) -> list[ConsultationOut]:
        after = datetime.combine(self.day_from, time.min, UTC) if self.day_from else None
        before = (
            datetime.combine(self.day_to + timedelta(days=1), time.min, UTC)
            if self.day_to
            else None
        )
        async with get_runtime(request).db.session() as session:
            found = await repository.list_consultations(
                session,
                clinic_id=principal.clinic_id,
                status=self.status,
                before=None,
                limit=SEARCH_WINDOW if self.q else LIST_LIMIT,
                created_after=after,
                created_before=before,
            )
        return [ConsultationOut.of(c) for c in found if self.matches(c)][:LIST_LIMIT]


def _list_context(rows: list[ConsultationOut], search: ListFilter) -> dict[str, Any]:
    return {
        "rows": rows,
        "search": search,
        "query_string": search.query_string(),
        "live": any(row.status not in TERMINAL_STATUSES for row in rows),
        "statuses": [s.value for s in ConsultationStatus],
    }


async def list_filter(
    q: Annotated[str | None, Query(max_length=100)] = None,
    day_from: Annotated[str | None, Query(alias="from", max_length=10)] = None,
    day_to: Annotated[str | None, Query(alias="to", max_length=10)] = None,
    status: Annotated[str | None, Query(max_length=16)] = None,
) -> ListFilter:
    return ListFilter(q, day_from, day_to, status)


SearchDep = Annotated[ListFilter, Depends(list_filter)]


@router.get("/", response_class=HTMLResponse)
async def consultation_list(request: Request, search: SearchDep) -> Response:
    principal = await current_principal(request)
    if principal is None:
        return _sign_in_redirect(request)
    rows = await search.rows(request, principal)
    return await _render(request, principal, "consultations.html", _list_context(rows, search))


@router.get("/consultations/rows", response_class=HTMLResponse)
async def consultation_rows(request: Request, search: SearchDep) -> Response:
    """The list's rows alone: htmx swaps them in while statuses change, and for searches."""
    principal = await current_principal(request)
    if principal is None:
        # htmx follows this header with a full page load (the session ended).
        return Response(status_code=401, headers={"HX-Redirect": "/sign-in"})
    rows = await search.rows(request, principal)
    return templates.TemplateResponse(
        request, "_consultation_rows.html", _list_context(rows, search)
    )


@router.get("/consultations/new", response_class=HTMLResponse)
async def new_consultation(request: Request) -> Response:
    principal = await current_principal(request)
    if principal is None:
        return _sign_in_redirect(request)
    runtime = get_runtime(request)
    settings = runtime.settings
    supported = stt_capabilities(settings).languages or KNOWN_LANGUAGES
    languages = sorted(supported & KNOWN_LANGUAGES, key=lambda c: (c != "en", LANGUAGE_NAMES[c]))
    return await _render(
        request,
        principal,
        "new_consultation.html",
        {
            "languages": languages,
            "default_language": settings.default_language,
            "note_templates": runtime.templates.all(),
            "max_upload_mb": settings.max_upload_mb,
        },
    )


async def _page_consultation(
    request: Request, principal: Principal, consultation_id: str
) -> Consultation | None:
    async with get_runtime(request).db.session() as session:
        try:
            return await service.get_consultation(session, principal, consultation_id)
        except NotFound:
            return None


async def _not_found(request: Request, principal: Principal) -> HTMLResponse:
    return await _render(request, principal, "not_found.html", {}, status=404)


async def _signed_in_page(
    request: Request, consultation_id: str
) -> tuple[Principal, Consultation] | Response:
    """The caller and their consultation; or the sign-in redirect, or the not-found page."""
    principal = await current_principal(request)
    if principal is None:
        return _sign_in_redirect(request)
    consultation = await _page_consultation(request, principal, consultation_id)
    if consultation is None:
        return await _not_found(request, principal)
    return principal, consultation


@router.get("/consultations/{consultation_id}", response_class=HTMLResponse)
async def consultation_page(request: Request, consultation_id: str) -> Response:
    found = await _signed_in_page(request, consultation_id)
    if isinstance(found, Response):
        return found
    principal, consultation = found
    async with get_runtime(request).db.session() as session:
        transcript = await repository.get_transcript(session, consultation.id)
        if transcript is not None:
            await record(session, principal, "transcript.viewed", consultation_id=consultation.id)
        notes = await repository.count_notes(session, consultation.id)
    has_audio = consultation.audio_deleted_at is None and await asyncio.to_thread(
        get_runtime(request).audio.has, consultation.id, "normalized"
    )
    out = ConsultationOut.of(consultation)
    return await _render(
        request,
        principal,
        "consultation.html",
        {
            "c": out,
            "stage_rows": stage_rows(out),
            "playable": has_audio,
            "transcript": TranscriptOut.of(transcript) if transcript else None,
            "speakers": SPEAKERS,
            "has_note": notes > 0,
            "has_audio": has_audio,
        },
    )


@router.get("/consultations/{consultation_id}/note", response_class=HTMLResponse)
async def note_page(
    request: Request,
    consultation_id: str,
    version: Annotated[int | None, Query(ge=1, le=100000)] = None,
) -> Response:
    found = await _signed_in_page(request, consultation_id)
    if isinstance(found, Response):
        return found
    principal, consultation = found
    runtime = get_runtime(request)
    async with runtime.db.session() as session:
        note = await repository.get_note(session, consultation.id, version)
        if note is None:
            return RedirectResponse(f"/consultations/{consultation.id}", status_code=303)
        latest = await repository.count_notes(session, consultation.id)
        transcript = await repository.get_transcript(session, consultation.id)
        await record(
            session, principal, "note.viewed", consultation_id=consultation.id, version=note.version
        )
        note_out = NoteOut.of(note)
    transcript_out = TranscriptOut.of(transcript) if transcript else None
    utterance_text = {u.id: u for u in transcript_out.utterances} if transcript_out else {}
    return await _render(
        request,
        principal,
        "note.html",
        {
            "c": ConsultationOut.of(consultation),
            "note": note_out,
            "latest_version": latest,
            "is_latest": note_out.version == latest,
            "reviewable": consultation.status == ConsultationStatus.COMPLETED,
            "transcript": transcript_out,
            "utterances": utterance_text,
            "note_templates": runtime.templates.all(),
            "flagged": sum(1 for s in note_out.sections for x in s.sentences if x.flags),
        },
    )
