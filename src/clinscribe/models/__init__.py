"""ORM models, one per file. Importing this package registers every table on Base.metadata."""

from clinscribe.models.audit import AuditEvent
from clinscribe.models.clinic import ApiKey, Clinic, Role, User, WebSession
from clinscribe.models.consultation import (
    Consultation,
    ConsultationEvent,
    ConsultationStatus,
    Stage,
)
from clinscribe.models.note import Note, NoteSectionRow, NoteSentenceRow
from clinscribe.models.transcript import Transcript, TranscriptChunk, UtteranceRow
from clinscribe.models.webhook import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEvent,
    WebhookSubscription,
)
from clinscribe.models.worker import WorkerHeartbeat

__all__ = [
    "ApiKey",
    "AuditEvent",
    "Clinic",
    "Consultation",
    "ConsultationEvent",
    "ConsultationStatus",
    "DeliveryStatus",
    "Note",
    "NoteSectionRow",
    "NoteSentenceRow",
    "Role",
    "Stage",
    "Transcript",
    "TranscriptChunk",
    "User",
    "UtteranceRow",
    "WebSession",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEvent",
    "WebhookSubscription",
    "WorkerHeartbeat",
]
