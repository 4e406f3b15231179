"""Prometheus metrics. Labels carry stage/provider/code names only, never PHI."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

STAGE_SECONDS = Histogram(
    "clinscribe_stage_duration_seconds",
    "Time spent in each pipeline stage",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800),
)
CONSULTATIONS_FINISHED = Counter(
    "clinscribe_consultations_finished_total",
    "Consultations reaching a terminal status",
    ["status"],
)
CONSULTATIONS_ACCEPTED = Counter(
    "clinscribe_consultations_accepted_total", "Uploads accepted and queued"
)
UPLOADS_REJECTED = Counter(
    "clinscribe_uploads_rejected_total", "Uploads refused with a 4xx", ["code"]
)
PROVIDER_ERRORS = Counter(
    "clinscribe_provider_errors_total", "Failed provider calls by error code", ["provider", "code"]
)
