"""The DICOMweb index also lists each conversion's derived DICOM SEG.

Revision ID: 0008_derived_seg_index
Revises: 0007_dicomweb_index
Create Date: 2026-12-02

A derived folder holding a ``seg.dcm`` is indexed as one instance of a series of its own
in the session's study (``dicomweb_instances.derived_folder_id``), so OHIF shows the
generated mask beside the scan. Folders stored before this revision are not indexed
until their model converts the scan again.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_derived_seg_index"
down_revision = "0007_dicomweb_index"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("dicomweb_instances") as batch:
        batch.add_column(sa.Column("derived_folder_id", sa.Integer(), nullable=True))
        batch.create_unique_constraint(
            "uq_dicomweb_instances_derived_folder_id", ["derived_folder_id"]
        )
        batch.create_foreign_key(
            "fk_dicomweb_instances_derived_folder_id",
            "derived_folders",
            ["derived_folder_id"],
            ["id"],
            ondelete="CASCADE",
        )


def downgrade() -> None:
    with op.batch_alter_table("dicomweb_instances") as batch:
        batch.drop_constraint("fk_dicomweb_instances_derived_folder_id", type_="foreignkey")
        batch.drop_constraint("uq_dicomweb_instances_derived_folder_id", type_="unique")
        batch.drop_column("derived_folder_id")
