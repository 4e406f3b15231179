"""Emitting events (the outbox) against a real database: one delivery per matching enabled
subscription of the clinic, none twice for the same happening (a step re-run after a crash),
a new event for each failure of a retried consultation, patient data only where opted in."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select

from clinscribe.auth import service as accounts
from clinscribe.auth.principal import Principal
from clinscribe.config import WebhookSettings
from clinscribe.consultations import repository as consultations
from clinscribe.db.engine import Database
from clinscribe.db.migrate import upgrade
from clinscribe.models import (
    Consultation,
    ConsultationStatus,
    Role,
    WebhookDelivery,
    WebhookEvent,
)
from clinscribe.webhooks import repository, service
from clinscribe.webhooks.events import emit_consultation_event

ALLOW_LOOPBACK = WebhookSettings(allow_private_addresses=True)  # nothing is sent here
PATIENT_REF = "MRN-EVENTS-4417"


@pytest.fixture
async def db(app_database_url: str) -> AsyncIterator[Database]:
    url = app_database_url
    upgrade(url)
    database = Database(url)
    try:
        yield database
    finally:
        await database.dispose()


async def _admin(db: Database, clinic_name: str) -> Principal:
    async with db.session() as session:
        clinic = await accounts.get_or_create_clinic(session, clinic_name)
    return Principal(
        actor_type="api_key",
        actor_id=uuid.uuid4().hex,
        label="test admin",
        clinic_id=clinic.id,
        role=Role.ADMIN,
        display_name="Test admin",
    )


async def _subscribe(db: Database, admin: Principal, events: list[str], **options: bool) -> str:
    async with db.session() as session:
        created = await service.subscribe(
            session,
            admin,
            ALLOW_LOOPBACK,
            url="http://127.0.0.1:9/hook",
            events=events,  # type: ignore[arg-type]
            include_phi=options.get("include_phi", False),
            description=None,
            enabled=options.get("enabled", True),
        )
    return created.row.id


async def _consultation(db: Database, clinic_id: str) -> str:
    row = Consultation(
        id=uuid.uuid4().hex,
        clinic_id=clinic_id,
        status=ConsultationStatus.QUEUED,
        language="en",
        template="soap",
        patient_ref=PATIENT_REF,
        title="Visit",
        stt_provider="openai",
    )
    async with db.session() as session:
        await consultations.add_consultation(session, row)
    return row.id


async def _set_status(db: Database, consultation_id: str, status: ConsultationStatus) -> None:
    async with db.session() as session:
        error = ("provider_rejected", "The provider refused the key.", True)
        await consultations.update_progress(
            session,
            consultation_id,
            status=status,
            stage="transcribing",
            error=error if status == ConsultationStatus.FAILED else None,
        )


async def _emit(db: Database, consultation_id: str, event_type: str) -> int:
    async with db.session() as session:
        return await emit_consultation_event(session, consultation_id, event_type)  # type: ignore[arg-type]


async def _deliveries(db: Database) -> list[WebhookDelivery]:
    async with db.session() as session:
        rows = await session.scalars(select(WebhookDelivery).order_by(WebhookDelivery.created_at))
        return list(rows.all())


async def test_one_delivery_per_matching_subscription_and_never_twice(db: Database) -> None:
    admin, other = await _admin(db, "Clinic A"), await _admin(db, "Clinic B")
    wants_all = await _subscribe(db, admin, ["consultation.completed", "consultation.failed"])
    with_phi = await _subscribe(db, admin, ["consultation.completed"], include_phi=True)
    await _subscribe(db, admin, ["note.signed"])  # another event
    await _subscribe(db, admin, ["consultation.completed"], enabled=False)
    await _subscribe(db, other, ["consultation.completed"])  # another clinic
    cid = await _consultation(db, admin.clinic_id)

    await _set_status(db, cid, ConsultationStatus.COMPLETED)
    assert await _emit(db, cid, "consultation.completed") == 2
    # The finalizing step ran again after a crash between its commit and its checkpoint.
    assert await _emit(db, cid, "consultation.completed") == 0
    rows = await _deliveries(db)
    assert sorted(r.subscription_id for r in rows) == sorted([wants_all, with_phi])
    assert len({r.event_id for r in rows}) == 1
    assert all(r.status == "pending" and r.dispatched_at is None for r in rows)
    plain = next(r.payload for r in rows if r.subscription_id == wants_all)
    assert plain["type"] == "consultation.completed" and plain["clinic_id"] == admin.clinic_id
    assert plain["data"]["consultation_id"] == cid and PATIENT_REF not in str(plain)
    phi = next(r.payload for r in rows if r.subscription_id == with_phi)
    assert phi["data"]["patient_ref"] == PATIENT_REF and phi["data"]["title"] == "Visit"


async def test_each_failure_of_a_retried_consultation_is_its_own_event(db: Database) -> None:
    admin = await _admin(db, "Clinic A")
    await _subscribe(db, admin, ["consultation.failed"])
    cid = await _consultation(db, admin.clinic_id)

    await _set_status(db, cid, ConsultationStatus.FAILED)
    assert await _emit(db, cid, "consultation.failed") == 1
    assert await _emit(db, cid, "consultation.failed") == 0  # recording_failure re-run
    await _set_status(db, cid, ConsultationStatus.QUEUED)  # a retry
    await _set_status(db, cid, ConsultationStatus.FAILED)
    assert await _emit(db, cid, "consultation.failed") == 1
    rows = await _deliveries(db)
    assert len(rows) == 2 and rows[0].event_id != rows[1].event_id
    error = rows[1].payload["data"]["error"]
    assert error == {
        "code": "provider_rejected",
        "message": "The provider refused the key.",
        "retryable": True,
    }
    async with db.session() as session:
        assert await session.scalar(select(func.count(WebhookEvent.id))) == 2


async def test_no_event_for_a_deleted_consultation_or_a_clinic_without_subscribers(
    db: Database,
) -> None:
    admin = await _admin(db, "Clinic A")
    cid = await _consultation(db, admin.clinic_id)
    assert await _emit(db, cid, "consultation.completed") == 0  # nobody subscribed
    assert await _emit(db, uuid.uuid4().hex, "consultation.completed") == 0  # no such row
    async with db.session() as session:
        assert await session.scalar(select(func.count(WebhookEvent.id))) == 0


async def test_forgetting_a_deleted_consultation_removes_its_messages(db: Database) -> None:
    admin = await _admin(db, "Clinic A")
    await _subscribe(db, admin, ["consultation.completed"], include_phi=True)
    kept, deleted = (
        await _consultation(db, admin.clinic_id),
        await _consultation(db, admin.clinic_id),
    )
    for cid in (kept, deleted):
        await _set_status(db, cid, ConsultationStatus.COMPLETED)
        assert await _emit(db, cid, "consultation.completed") == 1
    async with db.session() as session:
        await repository.forget_consultation(session, deleted)
    rows = await _deliveries(db)
    assert [r.payload["data"]["consultation_id"] for r in rows] == [kept]
    async with db.session() as session:
        assert await session.scalar(select(func.count(WebhookEvent.id))) == 1
