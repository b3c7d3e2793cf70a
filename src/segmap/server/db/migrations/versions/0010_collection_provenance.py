"""ROI collections record how they were stored: upload, DICOMweb (STOW-RS) or OHIF.

Revision ID: 0010_collection_provenance
Revises: 0009_archive
Create Date: 2026-12-02

``roi_collections.stored_via`` (``db.imaging.StoredVia``); who stored a collection is the
existing ``uploaded_by_id``. Rows stored before this revision read ``upload``: segmap did
not record the route then, and the REST upload (API or page) was the only one until
STOW-RS arrived with revision 0007 in the same unreleased line.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_collection_provenance"
down_revision = "0009_archive"
branch_labels = None
depends_on = None

CHECK = "ck_roi_collections_stored_via"


def upgrade() -> None:
    with op.batch_alter_table("roi_collections") as batch:
        batch.add_column(
            sa.Column("stored_via", sa.String(16), nullable=False, server_default="upload")
        )
        batch.create_check_constraint(
            CHECK, "stored_via IN ('upload', 'dicomweb', 'ohif', 'archive')"
        )


def downgrade() -> None:
    with op.batch_alter_table("roi_collections") as batch:
        batch.drop_constraint(CHECK, type_="check")
        batch.drop_column("stored_via")
