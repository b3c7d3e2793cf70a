"""Revocable log-ins: server-side browser sessions and failed log-in throttles.

Revision ID: 0005_accounts
Revises: 0004
Create Date: 2025-03-01

Browser cookies used to be the whole session (a signed user id); from this revision a
cookie only names a ``login_sessions`` row, so cookies issued before it no longer log
anyone in and users log in once more after the upgrade.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_accounts"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "login_sessions",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("last_seen_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.Column("user_agent", sa.String(200), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["users.id"],
            name=op.f("fk_login_sessions_user_id_users"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_login_sessions")),
    )
    op.create_index(op.f("ix_login_sessions_user_id"), "login_sessions", ["user_id"])
    op.create_index(op.f("ix_login_sessions_expires_at"), "login_sessions", ["expires_at"])
    op.create_table(
        "login_throttles",
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("key", sa.String(64), nullable=False),
        sa.Column("window_start", TS, nullable=False),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("kind", "key", name=op.f("pk_login_throttles")),
    )
    op.create_index(op.f("ix_login_throttles_window_start"), "login_throttles", ["window_start"])


def downgrade() -> None:
    op.drop_table("login_throttles")
    op.drop_table("login_sessions")
