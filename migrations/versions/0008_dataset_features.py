"""The frozen-feature cache (``dataset_features``): features a worker computed and stored.

One row per (dataset, pretrained model, pooling, modality).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dataset_features",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("dataset_id", sa.String(length=36), nullable=False),
        sa.Column("modality", sa.String(length=100), nullable=False),
        sa.Column("model", sa.String(length=100), nullable=False),
        sa.Column("pooling", sa.String(length=16), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("dim", sa.Integer(), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column("seconds", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["datasets.id"],
            name=op.f("fk_dataset_features_dataset_id_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dataset_features")),
        sa.UniqueConstraint(
            "dataset_id", "fingerprint", name=op.f("uq_dataset_features_dataset_id_fingerprint")
        ),
    )
    op.create_index(
        "ix_dataset_features_fingerprint", "dataset_features", ["fingerprint"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_dataset_features_fingerprint", table_name="dataset_features")
    op.drop_table("dataset_features")
