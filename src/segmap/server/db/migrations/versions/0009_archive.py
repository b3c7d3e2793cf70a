"""A project can follow the lab's archive (Orthanc or any DICOMweb server).

Revision ID: 0009_archive
Revises: 0008_derived_seg_index
Create Date: 2026-12-02

``archive_connections`` (one per project: settings, encrypted password, the follower's
cursor and state), ``archive_events`` (series imported, refused or pushed) and
``archive_imports`` (imports asked for by hand). See ``segmap.server.db.archive``.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_archive"
down_revision = "0008_derived_seg_index"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
UID = sa.String(64)


def _project_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["project_id"], ["projects.id"], name=op.f(f"fk_{table}_project_id_projects"),
        ondelete="CASCADE",
    )  # fmt: skip


def _user_fk(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"), ondelete="SET NULL"
    )


def upgrade() -> None:
    op.create_table(
        "archive_connections",
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("url", sa.String(1024), nullable=False),
        sa.Column("username", sa.String(255), nullable=False),
        sa.Column("password_encrypted", sa.Text(), nullable=True),
        sa.Column("push_masks", sa.Boolean(), nullable=False),
        sa.Column("prefetch_images", sa.Boolean(), nullable=False),
        sa.Column("filter", sa.JSON(), nullable=False),
        sa.Column("connected_by_id", sa.Integer(), nullable=True),
        sa.Column("generation", sa.Integer(), nullable=False),
        sa.Column("connected_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("cursor", sa.String(64), nullable=True),
        sa.Column("last_contact_at", TS, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("last_error_at", TS, nullable=True),
        sa.Column("last_import_at", TS, nullable=True),
        _project_fk("archive_connections"),
        _user_fk("archive_connections", "connected_by_id"),
        sa.PrimaryKeyConstraint("project_id", name=op.f("pk_archive_connections")),
    )
    op.create_table(
        "archive_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("event", sa.String(16), nullable=False),
        sa.Column("study_instance_uid", UID, nullable=False),
        sa.Column("series_instance_uid", UID, nullable=False),
        sa.Column("sop_instance_uid", UID, nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("instances", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        _project_fk("archive_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_events")),
        sa.UniqueConstraint(
            "project_id", "event", "series_instance_uid", name=op.f("uq_archive_events_project_id")
        ),
    )
    op.create_index(op.f("ix_archive_events_project_id"), "archive_events", ["project_id"])
    op.create_table(
        "archive_imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("studies", sa.JSON(), nullable=False),
        sa.Column("series", sa.JSON(), nullable=False),
        sa.Column("progress", sa.Float(), nullable=False),
        sa.Column("stage", sa.String(255), nullable=False),
        sa.Column("imported", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        _project_fk("archive_imports"),
        _user_fk("archive_imports", "created_by_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_archive_imports")),
    )
    op.create_index(op.f("ix_archive_imports_project_id"), "archive_imports", ["project_id"])
    op.create_index(op.f("ix_archive_imports_state"), "archive_imports", ["state"])


def downgrade() -> None:
    op.drop_table("archive_imports")
    op.drop_table("archive_events")
    op.drop_table("archive_connections")
