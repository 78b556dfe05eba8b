"""Decisions: each automated decision's record, its encrypted explanation, sent through the outbox.

Revision ID: 0007_decisions
Revises: 0006_enrolments
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007_decisions"
down_revision: str | None = "0006_enrolments"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _length(column: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(f"length({column}) = 32", name=op.f(f"ck_decisions_{column}_length"))


def upgrade() -> None:
    op.create_table(
        "decisions",
        sa.Column("id", ID, nullable=False),
        sa.Column("partner_id", ID, nullable=False),
        sa.Column("member_id", sa.LargeBinary(), nullable=False),
        sa.Column("model_id", sa.BigInteger(), nullable=False),
        sa.Column("as_of", sa.DateTime(timezone=True), nullable=False),
        sa.Column("input_ids", sa.Text(), nullable=False),
        sa.Column("input_root", sa.LargeBinary(), nullable=False),
        sa.Column("score_bps", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=32), nullable=False),
        sa.Column("reasons", sa.LargeBinary(), nullable=False),
        sa.Column("explanation_hash", sa.LargeBinary(), nullable=False),
        sa.Column("explanation_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("decision_id", sa.BigInteger(), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_decisions")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_decisions_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["customers.member_id"], name=op.f("fk_decisions_member_id_customers")
        ),
        sa.UniqueConstraint("decision_id", name=op.f("uq_decisions_decision_id")),
        sa.CheckConstraint("score_bps BETWEEN 0 AND 10000", name=op.f("ck_decisions_score_bps_range")),
        _length("member_id"),
        _length("input_root"),
        _length("reasons"),
        _length("explanation_hash"),
    )
    op.create_index(op.f("ix_decisions_member_id"), "decisions", ["member_id"])
    op.create_index(
        op.f("ix_decisions_block_number_partner_id_id"), "decisions", ["block_number", "partner_id", "id"]
    )
    op.create_index(op.f("ix_decisions_tx_hash"), "decisions", ["tx_hash"])


def downgrade() -> None:
    op.drop_index(op.f("ix_decisions_tx_hash"), table_name="decisions")
    op.drop_index(op.f("ix_decisions_block_number_partner_id_id"), table_name="decisions")
    op.drop_index(op.f("ix_decisions_member_id"), table_name="decisions")
    op.drop_table("decisions")
