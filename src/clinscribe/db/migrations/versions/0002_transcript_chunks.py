"""transcript chunks

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:38:51.784249
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "transcript_chunks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consultation_id", sa.String(length=32), nullable=False),
        sa.Column("index", sa.Integer(), nullable=False),
        sa.Column("start", sa.Float(), nullable=False),
        sa.Column("end", sa.Float(), nullable=False),
        sa.Column("provider", sa.String(length=32), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=False),
        sa.Column("segments", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["consultation_id"],
            ["consultations.id"],
            name=op.f("fk_transcript_chunks_consultation_id_consultations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transcript_chunks")),
        sa.UniqueConstraint(
            "consultation_id", "index", name=op.f("uq_transcript_chunks_consultation_id")
        ),
    )
    with op.batch_alter_table("transcript_chunks", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_transcript_chunks_consultation_id"), ["consultation_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("transcript_chunks", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_transcript_chunks_consultation_id"))

    op.drop_table("transcript_chunks")
