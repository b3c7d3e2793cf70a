"""Job leases: a running job's owner renews its lease; an expired lease frees the job.

Revision ID: 0004
Revises: 0003
Create Date: 2025-02-10

``jobs.runner`` already names the owner; ``lease_expires_at`` is when another service
may take the job over. Jobs left running by an older version have no lease, which
counts as expired, so they run again as they did before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("lease_expires_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_column("lease_expires_at")
