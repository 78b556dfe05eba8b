"""A change of a customer's personal data is a leaf of the partner's log: interaction kind
"record_update".

Revision ID: 0009_audit_evidence
Revises: 0008_http
Create Date: 2026-12-06
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0009_audit_evidence"
down_revision: str | None = "0008_http"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BEFORE = ("purchase", "return", "support_ticket", "email", "visit")
AFTER = (*BEFORE, "record_update")


def _allow(kinds: Sequence[str]) -> None:
    allowed = ", ".join(f"'{kind}'" for kind in kinds)
    with op.batch_alter_table("interactions") as batch:
        batch.drop_constraint(op.f("ck_interactions_kind"), type_="check")
        batch.create_check_constraint(op.f("ck_interactions_kind"), f"kind IN ({allowed})")


def upgrade() -> None:
    _allow(AFTER)


def downgrade() -> None:
    op.execute("DELETE FROM interactions WHERE kind = 'record_update'")
    _allow(BEFORE)
