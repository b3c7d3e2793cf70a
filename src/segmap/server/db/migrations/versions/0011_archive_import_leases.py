"""Imports by hand are leased like jobs, so services sharing a database run each once.

Revision ID: 0011_archive_import_leases
Revises: 0010_collection_provenance
Create Date: 2026-12-02

``archive_imports`` gets ``runner`` (the service or command holding a running import),
``lease_expires_at`` (when another may take it over), ``attempts`` and ``started_at``.
Imports left running by an older version have no lease, which counts as expired: the
next follower takes them over, as the start-up re-queueing they replace did.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0011_archive_import_leases"
down_revision = "0010_collection_provenance"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("archive_imports") as batch:
        batch.add_column(sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("runner", sa.String(64), nullable=True))
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("archive_imports") as batch:
        batch.drop_column("started_at")
        batch.drop_column("lease_expires_at")
        batch.drop_column("runner")
        batch.drop_column("attempts")
