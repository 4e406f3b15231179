"""worker heartbeats: which process holds which workflow executor id, and when it last beat

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05 00:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_TIME = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "worker_heartbeats",
        sa.Column("executor_id", sa.String(128), nullable=False),
        sa.Column("instance", sa.String(32), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("pid_namespace", sa.String(80), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("application_version", sa.String(128), nullable=False),
        sa.Column("started_at", _TIME, nullable=False),
        sa.Column("beat_at", _TIME, nullable=False),
        sa.Column("stopped_at", _TIME, nullable=True),
        sa.PrimaryKeyConstraint("executor_id", name=op.f("pk_worker_heartbeats")),
    )


def downgrade() -> None:
    op.drop_table("worker_heartbeats")
