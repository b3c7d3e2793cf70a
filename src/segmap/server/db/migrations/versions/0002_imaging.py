"""Imaging sessions, scans, instances, ROI collections and derived resources.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-15
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
UID = sa.String(64)


def _user_fk(table: str, column: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], ["users.id"], name=op.f(f"fk_{table}_{column}_users"), ondelete="SET NULL"
    )


def _fk(table: str, column: str, target: str, ondelete: str = "CASCADE") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column], [f"{target}.id"], name=op.f(f"fk_{table}_{column}_{target}"), ondelete=ondelete
    )


def upgrade() -> None:
    op.create_table(
        "imaging_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("study_instance_uid", UID, nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("subject", sa.String(64), nullable=False),
        sa.Column("study_date", sa.Date(), nullable=True),
        sa.Column("study_description", sa.String(255), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        _user_fk("imaging_sessions", "created_by_id"),
        _fk("imaging_sessions", "project_id", "projects"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imaging_sessions")),
        sa.UniqueConstraint(
            "project_id", "study_instance_uid", name=op.f("uq_imaging_sessions_project_id")
        ),
    )
    op.create_index(op.f("ix_imaging_sessions_project_id"), "imaging_sessions", ["project_id"])
    op.create_table(
        "scans",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("series_instance_uid", UID, nullable=False),
        sa.Column("modality", sa.String(16), nullable=False),
        sa.Column("description", sa.String(255), nullable=False),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column("frame_of_reference_uid", UID, nullable=True),
        sa.Column("slice_count", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        _fk("scans", "session_id", "imaging_sessions"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scans")),
        sa.UniqueConstraint("session_id", "series_instance_uid", name=op.f("uq_scans_session_id")),
    )
    op.create_index(op.f("ix_scans_session_id"), "scans", ["session_id"])
    op.create_table(
        "instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("sop_instance_uid", UID, nullable=False),
        sa.Column("sop_class_uid", UID, nullable=False),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("frames", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_key", sa.String(255), nullable=False),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=True),
        sa.Column("uploaded_at", TS, nullable=False),
        _fk("instances", "project_id", "projects"),
        _fk("instances", "scan_id", "scans"),
        _user_fk("instances", "uploaded_by_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instances")),
        sa.UniqueConstraint("project_id", "sop_instance_uid", name=op.f("uq_instances_project_id")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_instances_storage_key")),
    )
    op.create_index(op.f("ix_instances_scan_id"), "instances", ["scan_id"])
    op.create_table(
        "roi_collections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("label_key", sa.String(255), nullable=False),
        sa.Column("collection_type", sa.String(16), nullable=False),
        sa.Column("sop_instance_uid", UID, nullable=False),
        sa.Column("referenced_series_uid", UID, nullable=False),
        sa.Column("region_names", sa.JSON(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_key", sa.String(255), nullable=False),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=True),
        sa.Column("uploaded_at", TS, nullable=False),
        _fk("roi_collections", "session_id", "imaging_sessions"),
        _fk("roi_collections", "scan_id", "scans"),
        _user_fk("roi_collections", "uploaded_by_id"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_roi_collections")),
        sa.UniqueConstraint("session_id", "label_key", name=op.f("uq_roi_collections_session_id")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_roi_collections_storage_key")),
    )
    op.create_index(op.f("ix_roi_collections_session_id"), "roi_collections", ["session_id"])
    op.create_index(op.f("ix_roi_collections_scan_id"), "roi_collections", ["scan_id"])
    op.create_table(
        "derived_folders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(255), nullable=False),
        sa.Column("label_key", sa.String(255), nullable=False),
        sa.Column("model_id", sa.Integer(), nullable=True),
        sa.Column("storage_prefix", sa.String(255), nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        _fk("derived_folders", "scan_id", "scans"),
        _fk("derived_folders", "model_id", "models", ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_derived_folders")),
        sa.UniqueConstraint("scan_id", "label_key", name=op.f("uq_derived_folders_scan_id")),
        sa.UniqueConstraint("storage_prefix", name=op.f("uq_derived_folders_storage_prefix")),
    )
    op.create_index(op.f("ix_derived_folders_scan_id"), "derived_folders", ["scan_id"])
    op.create_table(
        "derived_files",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("folder_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("name_key", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("storage_key", sa.String(255), nullable=False),
        _fk("derived_files", "folder_id", "derived_folders"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_derived_files")),
        sa.UniqueConstraint("folder_id", "name_key", name=op.f("uq_derived_files_folder_id")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_derived_files_storage_key")),
    )
    op.create_index(op.f("ix_derived_files_folder_id"), "derived_files", ["folder_id"])


def downgrade() -> None:
    op.drop_table("derived_files")
    op.drop_table("derived_folders")
    op.drop_table("roi_collections")
    op.drop_table("instances")
    op.drop_table("scans")
    op.drop_table("imaging_sessions")
