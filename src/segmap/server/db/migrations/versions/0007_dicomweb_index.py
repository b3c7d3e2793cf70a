"""The DICOMweb index: studies, series and instances as QIDO and WADO see them.

Revision ID: 0007_dicomweb_index
Revises: 0006_datasets
Create Date: 2026-12-02

New tables only (``segmap.server.db.dicomweb``). Instances stored before this revision
have no index rows; ``segmap.server.dicomweb.index.backfill`` adds them when the service
starts.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_dicomweb_index"
down_revision = "0006_datasets"
branch_labels = None
depends_on = None

UID = sa.String(64)
DATE = sa.String(8)
TIME = sa.String(13)


def _fk(table: str, column: str, target: str, key: str = "id") -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        [column],
        [f"{target}.{key}"],
        name=op.f(f"fk_{table}_{column}_{target}"),
        ondelete="CASCADE",
    )


def upgrade() -> None:
    op.create_table(
        "dicomweb_studies",
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("study_instance_uid", UID, nullable=False),
        sa.Column("patient_name", sa.Text(), nullable=True),
        sa.Column("patient_id", sa.Text(), nullable=True),
        sa.Column("accession_number", sa.Text(), nullable=True),
        sa.Column("study_date", DATE, nullable=True),
        sa.Column("study_time", TIME, nullable=True),
        sa.Column("referring_physician_name", sa.Text(), nullable=True),
        sa.Column("study_id", sa.Text(), nullable=True),
        sa.Column("study_description", sa.Text(), nullable=True),
        sa.Column("patient_birth_date", DATE, nullable=True),
        sa.Column("patient_sex", sa.Text(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        _fk("dicomweb_studies", "session_id", "imaging_sessions"),
        _fk("dicomweb_studies", "project_id", "projects"),
        sa.PrimaryKeyConstraint("session_id", name=op.f("pk_dicomweb_studies")),
        sa.UniqueConstraint(
            "project_id", "study_instance_uid", name=op.f("uq_dicomweb_studies_project_id")
        ),
    )
    op.create_table(
        "dicomweb_series",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("scan_id", sa.Integer(), nullable=True),
        sa.Column("series_instance_uid", UID, nullable=False),
        sa.Column("modality", sa.String(16), nullable=True),
        sa.Column("series_number", sa.Integer(), nullable=True),
        sa.Column("series_description", sa.Text(), nullable=True),
        sa.Column("series_date", DATE, nullable=True),
        sa.Column("series_time", TIME, nullable=True),
        sa.Column("pps_start_date", DATE, nullable=True),
        sa.Column("pps_start_time", TIME, nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        _fk("dicomweb_series", "project_id", "projects"),
        _fk("dicomweb_series", "session_id", "dicomweb_studies", "session_id"),
        _fk("dicomweb_series", "scan_id", "scans"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dicomweb_series")),
        sa.UniqueConstraint(
            "session_id", "series_instance_uid", name=op.f("uq_dicomweb_series_session_id")
        ),
    )
    op.create_index(op.f("ix_dicomweb_series_session_id"), "dicomweb_series", ["session_id"])
    op.create_index(op.f("ix_dicomweb_series_scan_id"), "dicomweb_series", ["scan_id"])
    op.create_index(
        op.f("ix_dicomweb_series_series_instance_uid"), "dicomweb_series", ["series_instance_uid"]
    )
    op.create_table(
        "dicomweb_instances",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("project_id", sa.String(64), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=True),
        sa.Column("collection_id", sa.Integer(), nullable=True),
        sa.Column("sop_instance_uid", UID, nullable=False),
        sa.Column("sop_class_uid", UID, nullable=True),
        sa.Column("instance_number", sa.Integer(), nullable=True),
        sa.Column("transfer_syntax_uid", UID, nullable=False),
        sa.Column("storage_key", sa.String(255), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("number_of_frames", sa.Integer(), nullable=False),
        sa.Column("frame_index", sa.LargeBinary(), nullable=True),
        sa.Column("frames_refusal", sa.Text(), nullable=True),
        sa.Column("record", sa.JSON(), nullable=False),
        sa.Column("metadata_json", sa.Text(), nullable=True),
        _fk("dicomweb_instances", "project_id", "projects"),
        _fk("dicomweb_instances", "series_id", "dicomweb_series"),
        _fk("dicomweb_instances", "instance_id", "instances"),
        _fk("dicomweb_instances", "collection_id", "roi_collections"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dicomweb_instances")),
        sa.UniqueConstraint(
            "project_id", "sop_instance_uid", name=op.f("uq_dicomweb_instances_project_id")
        ),
        sa.UniqueConstraint("instance_id", name=op.f("uq_dicomweb_instances_instance_id")),
        sa.UniqueConstraint("collection_id", name=op.f("uq_dicomweb_instances_collection_id")),
    )
    op.create_index(op.f("ix_dicomweb_instances_series_id"), "dicomweb_instances", ["series_id"])


def downgrade() -> None:
    op.drop_table("dicomweb_instances")
    op.drop_table("dicomweb_series")
    op.drop_table("dicomweb_studies")
