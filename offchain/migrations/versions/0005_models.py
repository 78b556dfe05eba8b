"""Registered models: each fitted model's canonical bytes and card, by its on-chain id.

Revision ID: 0005_models
Revises: 0004_partner_logs
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005_models"
down_revision: str | None = "0004_partner_logs"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)


def _hash_length(column: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(f"length({column}) = 32", name=op.f(f"ck_models_{column}_length"))


def upgrade() -> None:
    op.create_table(
        "models",
        sa.Column("id", ID, nullable=False),
        sa.Column("partner_id", ID, nullable=False),
        sa.Column("onchain_id", sa.BigInteger(), nullable=False),
        sa.Column("model_hash", sa.LargeBinary(), nullable=False),
        sa.Column("model_json", sa.Text(), nullable=False),
        sa.Column("card_hash", sa.LargeBinary(), nullable=False),
        sa.Column("card_json", sa.Text(), nullable=False),
        sa.Column("training_root", sa.LargeBinary(), nullable=False),
        sa.Column("block_number", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_models")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_models_partner_id_partners")),
        sa.UniqueConstraint("onchain_id", name=op.f("uq_models_onchain_id")),
        _hash_length("model_hash"),
        _hash_length("card_hash"),
        _hash_length("training_root"),
    )


def downgrade() -> None:
    op.drop_table("models")
