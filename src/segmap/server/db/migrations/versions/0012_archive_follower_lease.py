"""One service at a time follows a project's archive: the connection carries a lease.

Revision ID: 0012_archive_follower_lease
Revises: 0011_archive_import_leases
Create Date: 2026-12-03

``archive_connections`` gets ``follower`` (the token of the service whose follower
reads the archive's changes and pushes masks) and ``follower_lease_expires_at`` (when
another service may take over). A connection saved by an older version has neither:
the first follower to look takes it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_archive_follower_lease"
down_revision = "0011_archive_import_leases"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("archive_connections") as batch:
        batch.add_column(sa.Column("follower", sa.String(64), nullable=True))
        batch.add_column(
            sa.Column("follower_lease_expires_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("archive_connections") as batch:
        batch.drop_column("follower_lease_expires_at")
        batch.drop_column("follower")
