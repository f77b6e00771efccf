"""Index jobs (owner_id, created_at, id) for the job list (newest first, paged).

Without it PostgreSQL sorted all of an owner's jobs (on disk past a few thousand) for every
page of ``GET /api/v1/jobs``; with it an index scan returns them in order.

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_jobs_owner_created_id", "jobs", ["owner_id", "created_at", "id"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_jobs_owner_created_id", table_name="jobs")
