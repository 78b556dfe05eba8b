"""Enrolments: each customer's enrolment on chain (MemberRegistry), sent through the outbox.

Revision ID: 0006_enrolments
Revises: 0005_models
Create Date: 2026-12-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006_enrolments"
down_revision: str | None = "0005_models"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "enrolments",
        sa.Column("id", ID, nullable=False),
        sa.Column("partner_id", ID, nullable=False),
        sa.Column("member_id", sa.LargeBinary(), nullable=False),
        sa.Column("signer", sa.String(length=42), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_enrolments")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_enrolments_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["customers.member_id"], name=op.f("fk_enrolments_member_id_customers")
        ),
        sa.UniqueConstraint("member_id", name=op.f("uq_enrolments_member_id")),
        sa.CheckConstraint("length(member_id) = 32", name=op.f("ck_enrolments_member_id_length")),
    )
    op.create_index(
        op.f("ix_enrolments_block_number_partner_id_id"), "enrolments", ["block_number", "partner_id", "id"]
    )
    op.create_index(op.f("ix_enrolments_tx_hash"), "enrolments", ["tx_hash"])


def downgrade() -> None:
    op.drop_index(op.f("ix_enrolments_tx_hash"), table_name="enrolments")
    op.drop_index(op.f("ix_enrolments_block_number_partner_id_id"), table_name="enrolments")
    op.drop_table("enrolments")
