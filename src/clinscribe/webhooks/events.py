"""Emitting webhook events: the outbox.

``emit_consultation_event`` is called inside the transaction of the change it reports (the
pipeline's ``finalizing`` and ``recording_failure`` steps, signing a note), and writes one
delivery row per matching subscription. The change and its deliveries commit together, so a
crash loses neither; the dispatcher (``delivery.py``) sends them afterwards.

Event ids are derived from what happened (the consultation, the event type, and the
processing run or note version), so a step that runs again after a crash reports the same
event and finds it already emitted.

Payloads hold ids and links only. Subscriptions with ``include_phi`` also get the patient
reference and title, and for ``note.signed`` the note's text; payloads are encrypted at rest.
Links are paths here; they become absolute when sent, if CLINSCRIBE_PUBLIC_BASE_URL is set.
"""

from __future__ import annotations

import uuid
from typing import Any, Literal, get_args

from sqlalchemy.ext.asyncio import AsyncSession

from clinscribe.consultations import repository as consultations
from clinscribe.models import Consultation, Note, WebhookDelivery, WebhookEvent
from clinscribe.webhooks import repository

EventType = Literal["consultation.completed", "consultation.failed", "note.signed"]
EVENT_TYPES: tuple[EventType, ...] = get_args(EventType)

_EVENT_NAMESPACE = uuid.UUID("6f1d8a52-3c1e-4d8e-9a57-2b7c1f0e4a10")


def event_id(consultation_id: str, event_type: EventType, occurrence: int) -> str:
    """The same id for the same happening, however often it is reported."""
    return uuid.uuid5(_EVENT_NAMESPACE, f"{consultation_id}/{event_type}/{occurrence}").hex


def _links(consultation_id: str, note_version: int | None) -> dict[str, str]:
    base = f"/api/consultations/{consultation_id}"
    links = {"consultation": base}
    if note_version is not None:
        links["note"] = f"{base}/note?version={note_version}"
    return links


def _note_text(note: Note) -> dict[str, Any]:
    return {
        "template": note.template,
        "sections": [
            {
                "key": section.key,
                "title": section.title,
                "sentences": [sentence.text for sentence in section.sentences],
            }
            for section in note.sections
        ],
    }


async def emit_consultation_event(
    session: AsyncSession,
    consultation_id: str,
    event_type: EventType,
    *,
    note: Note | None = None,
) -> int:
    """Record ``event_type`` for a consultation (``note``: the signed version, for
    ``note.signed``). Returns how many deliveries were queued."""
    consultation = await consultations.get_consultation(session, consultation_id)
    if consultation is None:
        return 0  # deleted meanwhile: nothing to report
    if note is None and event_type == "consultation.completed":
        note = await consultations.get_note(session, consultation_id)
    data: dict[str, Any] = {"consultation_id": consultation.id, "status": consultation.status}
    phi: dict[str, Any] = {"patient_ref": consultation.patient_ref, "title": consultation.title}
    if event_type == "note.signed":
        assert note is not None
        occurrence = note.version
        data["signed_at"] = note.signed_at.isoformat() if note.signed_at else None
        data["signed_by"] = note.signed_by
        phi["note"] = _note_text(note)
    else:
        occurrence = await repository.processing_runs(session, consultation_id)
    if event_type == "consultation.failed":
        data["error"] = _error_of(consultation)
    data["note_version"] = note.version if note is not None else None
    data["links"] = _links(consultation.id, data["note_version"])
    return await emit(
        session,
        clinic_id=consultation.clinic_id,
        event_type=event_type,
        event_id=event_id(consultation.id, event_type, occurrence),
        consultation_id=consultation.id,
        data=data,
        phi=phi,
    )


def _error_of(consultation: Consultation) -> dict[str, Any]:
    # Error messages are written to be shown to users: they never hold patient data.
    return {
        "code": consultation.error_code,
        "message": consultation.error_message,
        "retryable": consultation.error_retryable,
    }


async def emit(
    session: AsyncSession,
    *,
    clinic_id: str,
    event_type: EventType,
    event_id: str,
    consultation_id: str | None,
    data: dict[str, Any],
    phi: dict[str, Any],
) -> int:
    """One delivery per enabled subscription of the clinic that wants ``event_type``;
    nothing if this event was emitted before. The caller commits."""
    subscriptions = [
        s for s in await repository.enabled_subscriptions(session, clinic_id)
        if event_type in s.events
    ]  # fmt: skip
    if not subscriptions or await repository.get_event(session, event_id) is not None:
        return 0
    event = WebhookEvent(
        id=event_id, clinic_id=clinic_id, type=event_type, consultation_id=consultation_id
    )
    await repository.add(session, event)
    created_at = event.created_at.isoformat().replace("+00:00", "Z")
    for subscription in subscriptions:
        body = {
            "id": event_id,
            "type": event_type,
            "created_at": created_at,
            "clinic_id": clinic_id,
            "data": data | phi if subscription.include_phi else data,
        }
        delivery = WebhookDelivery(
            id=uuid.uuid4().hex, subscription_id=subscription.id, event_id=event_id, payload=body
        )
        await repository.add(session, delivery)
    return len(subscriptions)
