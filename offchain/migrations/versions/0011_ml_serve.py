"""Verified inputs: per member, what the content check of its interactions found, encrypted under the
member's data key (a memo for the next verification of the same leaves).

Revision ID: 0011_ml_serve
Revises: 0010_pages_more
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011_ml_serve"
down_revision: str | None = "0010_pages_more"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "verified_inputs",
        sa.Column("partner_id", ID, nullable=False),
        sa.Column("member_id", sa.LargeBinary(), nullable=False),
        sa.Column("blob", sa.LargeBinary(), nullable=False),
        sa.Column("updated_at", WHEN, nullable=False),
        sa.PrimaryKeyConstraint("partner_id", "member_id", name=op.f("pk_verified_inputs")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_verified_inputs_partner_id_partners")
        ),
        sa.CheckConstraint("length(member_id) = 32", name=op.f("ck_verified_inputs_member_id_length")),
    )


def downgrade() -> None:
    op.drop_table("verified_inputs")
