"""When each job's and dataset's task message was last sent, and how often.

The housekeeping resends a queued job's ``synib.run_job`` (a pending built-in dataset's
``synib.make_dataset``) whose message may have been lost, with backoff, deciding from these
columns alone instead of reading the broker's internals.

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("jobs", "datasets")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("last_sent_at", sa.DateTime(timezone=True), nullable=True))
            batch.add_column(
                sa.Column("send_count", sa.Integer(), server_default="0", nullable=False)
            )


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.drop_column("send_count")
            batch.drop_column("last_sent_at")
