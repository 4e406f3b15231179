"""clinics, users, api keys, web sessions, audit log; consultations belong to a clinic;
patient text columns become encrypted text

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04 18:30:00

Consultations stored before accounts existed are given to a clinic named "Default clinic";
`clinscribe users create-admin --clinic "Default clinic" ...` signs its first admin in.
Values written before encryption was enabled stay readable (plain text passes through) until
`clinscribe keys rotate` re-encrypts them.
"""

import uuid
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOW = sa.DateTime(timezone=True)


def _create_account_tables() -> None:
    op.create_table(
        "clinics",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("created_at", _NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clinics")),
        sa.UniqueConstraint("name", name=op.f("uq_clinics_name")),
    )
    op.create_table(
        "users",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("clinic_id", sa.String(32), nullable=False),
        sa.Column("email", sa.String(254), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("failed_signins", sa.Integer(), nullable=False),
        sa.Column("locked_until", _NOW, nullable=True),
        sa.Column("disabled_at", _NOW, nullable=True),
        sa.Column("created_at", _NOW, nullable=False),
        sa.Column("last_signin_at", _NOW, nullable=True),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinics.id"], name=op.f("fk_users_clinic_id_clinics")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_users")),
        sa.UniqueConstraint("email", name=op.f("uq_users_email")),
    )
    op.create_index(op.f("ix_users_clinic_id"), "users", ["clinic_id"])
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("clinic_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("created_at", _NOW, nullable=False),
        sa.Column("last_used_at", _NOW, nullable=True),
        sa.Column("revoked_at", _NOW, nullable=True),
        sa.ForeignKeyConstraint(
            ["clinic_id"], ["clinics.id"], name=op.f("fk_api_keys_clinic_id_clinics")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_index(op.f("ix_api_keys_clinic_id"), "api_keys", ["clinic_id"])
    op.create_table(
        "web_sessions",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", _NOW, nullable=False),
        sa.Column("expires_at", _NOW, nullable=False),
        sa.Column("last_seen_at", _NOW, nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_web_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_web_sessions")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_web_sessions_token_hash")),
    )
    op.create_index(op.f("ix_web_sessions_user_id"), "web_sessions", ["user_id"])


def _create_audit_log() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("clinic_id", sa.String(32), nullable=True),
        sa.Column("at", _NOW, nullable=False),
        sa.Column("actor_type", sa.String(16), nullable=False),
        sa.Column("actor_id", sa.String(32), nullable=True),
        sa.Column("actor_label", sa.String(254), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("consultation_id", sa.String(32), nullable=True),
        sa.Column("ip", sa.String(64), nullable=True),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
    )
    op.create_index("ix_audit_events_clinic_id_id", "audit_events", ["clinic_id", "id"])
    op.create_index(op.f("ix_audit_events_action"), "audit_events", ["action"])
    op.create_index(op.f("ix_audit_events_consultation_id"), "audit_events", ["consultation_id"])
    # Append-only, enforced by the database itself, not only by the absence of code paths.
    if op.get_bind().dialect.name == "sqlite":
        for verb in ("UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER audit_events_no_{verb.lower()} BEFORE {verb} ON audit_events "
                "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END"
            )
    else:
        op.execute(
            "CREATE FUNCTION audit_events_append_only() RETURNS trigger AS $$ BEGIN "
            "RAISE EXCEPTION 'the audit log is append-only'; END $$ LANGUAGE plpgsql"
        )
        op.execute(
            "CREATE TRIGGER audit_events_append_only BEFORE UPDATE OR DELETE ON audit_events "
            "FOR EACH ROW EXECUTE FUNCTION audit_events_append_only()"
        )


def _consultations_belong_to_clinics() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("consultations") as batch:
        batch.add_column(sa.Column("clinic_id", sa.String(32), nullable=True))
        batch.add_column(sa.Column("created_by", sa.String(300), nullable=True))
        batch.add_column(sa.Column("audio_deleted_at", _NOW, nullable=True))
    if bind.execute(sa.text("SELECT count(*) FROM consultations")).scalar_one():
        clinic_id = uuid.uuid4().hex
        bind.execute(
            sa.text(
                "INSERT INTO clinics (id, name, created_at) VALUES (:id, 'Default clinic', "
                "CURRENT_TIMESTAMP)"
            ),
            {"id": clinic_id},
        )
        bind.execute(sa.text("UPDATE consultations SET clinic_id = :id"), {"id": clinic_id})
    with op.batch_alter_table("consultations") as batch:
        batch.alter_column("clinic_id", existing_type=sa.String(32), nullable=False)
        batch.create_foreign_key(
            op.f("fk_consultations_clinic_id_clinics"), "clinics", ["clinic_id"], ["id"]
        )
        batch.create_index(op.f("ix_consultations_clinic_id"), ["clinic_id"])
        for column, length in (("patient_ref", 128), ("title", 200), ("original_filename", 255)):
            batch.alter_column(column, existing_type=sa.String(length), type_=sa.Text())


def _json_columns_become_encrypted_text() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table, column in (
        ("transcript_chunks", "segments"),
        ("notes", "omissions"),
        ("notes", "codes"),
    ):
        with op.batch_alter_table(table) as batch:
            if postgres:
                batch.alter_column(
                    column,
                    existing_type=sa.JSON(),
                    type_=sa.Text(),
                    postgresql_using=f"{column}::text",
                )
            else:
                batch.alter_column(column, existing_type=sa.JSON(), type_=sa.Text())


def upgrade() -> None:
    _create_account_tables()
    _create_audit_log()
    _consultations_belong_to_clinics()
    _json_columns_become_encrypted_text()


def downgrade() -> None:
    raise NotImplementedError("0003 cannot be downgraded: restore a backup instead")
