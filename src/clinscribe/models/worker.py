"""Workers that run workflows on a shared (Postgres) system database, and their heartbeats.

Each row is one DBOS executor id held by one running process (``instance`` is random per
start). A row whose holder stopped, or has been silent longer than the lease, lets another
worker take over the executor's unfinished workflows (see ``pipeline/workers.py``).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from clinscribe.db.base import Base, UtcDateTime


class WorkerHeartbeat(Base):
    __tablename__ = "worker_heartbeats"

    executor_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    instance: Mapped[str] = mapped_column(String(32))
    hostname: Mapped[str] = mapped_column(String(255))
    # Kernel boot id and pid namespace: where ``pid`` means something (see workers.py).
    pid_namespace: Mapped[str] = mapped_column(String(80))
    pid: Mapped[int] = mapped_column(Integer)
    application_version: Mapped[str] = mapped_column(String(128))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    beat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    stopped_at: Mapped[datetime | None] = mapped_column(UtcDateTime, nullable=True)
