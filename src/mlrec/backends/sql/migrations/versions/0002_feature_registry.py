"""Feature registry: feature_entities, feature_views (versioned).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_entities",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("description", sa.String(1024), nullable=False),
    )
    op.create_table(
        "feature_views",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, index=True),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("fingerprint", sa.String(32), nullable=False),
        sa.Column("spec", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("materialized_until", sa.Float, nullable=True),
        sa.UniqueConstraint("name", "version", name="uq_feature_views_name_version"),
    )


def downgrade() -> None:
    op.drop_table("feature_views")
    op.drop_table("feature_entities")
