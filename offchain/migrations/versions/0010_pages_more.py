"""Invitations: a one-time code (its hash) with which a customer without a key binds one made in her
browser.

Revision ID: 0010_pages_more
Revises: 0009_audit_evidence
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010_pages_more"
down_revision: str | None = "0009_audit_evidence"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
WHEN = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "invitations",
        sa.Column("id", ID, nullable=False),
        sa.Column("partner_id", ID, nullable=False),
        sa.Column("member_id", sa.LargeBinary(), nullable=False),
        sa.Column("code_hash", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", WHEN, nullable=False),
        sa.Column("expires_at", WHEN, nullable=False),
        sa.Column("used_at", WHEN, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_invitations")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_invitations_partner_id_partners")
        ),
        sa.UniqueConstraint("code_hash", name=op.f("uq_invitations_code_hash")),
        sa.CheckConstraint("length(code_hash) = 32", name=op.f("ck_invitations_code_hash_length")),
        sa.CheckConstraint("length(member_id) = 32", name=op.f("ck_invitations_member_id_length")),
    )


def downgrade() -> None:
    op.drop_table("invitations")
