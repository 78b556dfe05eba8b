"""An interaction's anchoring status is its batch's: drop `interactions.status`.

The column repeated the batch's status on every row, so anchoring rewrote each (~3 KB) interaction row
twice per batch (batched, then anchored); SQLite rewrites a whole row for any change. Pending now means
`batch_id IS NULL`, and the index that served the anchoring worker's scan, (status, partner_id, id),
becomes (batch_id, partner_id, id), which also serves "the leaves of this batch" (the old (batch_id)
index goes).

Revision ID: 0003_status_from_batch
Revises: 0002_outbox_indexes
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003_status_from_batch"
down_revision: str | None = "0002_outbox_indexes"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

STATUS = sa.String(length=16)


def upgrade() -> None:
    op.drop_index(op.f("ix_interactions_status_partner_id_id"), table_name="interactions")
    op.drop_index(op.f("ix_interactions_batch_id"), table_name="interactions")
    # batch mode: SQLite cannot drop a column that CHECK constraints name; the table is copied there
    with op.batch_alter_table("interactions") as batch:
        batch.drop_constraint(op.f("ck_interactions_batch_unless_pending"), type_="check")
        batch.drop_constraint(op.f("ck_interactions_status"), type_="check")
        batch.drop_column("status")
    op.create_index(
        op.f("ix_interactions_batch_id_partner_id_id"), "interactions", ["batch_id", "partner_id", "id"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_interactions_batch_id_partner_id_id"), table_name="interactions")
    with op.batch_alter_table("interactions") as batch:
        batch.add_column(sa.Column("status", STATUS, nullable=True))
    op.execute(
        "UPDATE interactions SET status = COALESCE("
        "(SELECT status FROM batches WHERE batches.id = interactions.batch_id), 'pending')"
    )
    with op.batch_alter_table("interactions") as batch:
        batch.alter_column("status", existing_type=STATUS, nullable=False)
        batch.create_check_constraint(
            op.f("ck_interactions_status"), "status IN ('pending', 'submitted', 'anchored')"
        )
        batch.create_check_constraint(
            op.f("ck_interactions_batch_unless_pending"), "status = 'pending' OR batch_id IS NOT NULL"
        )
    op.create_index(
        op.f("ix_interactions_status_partner_id_id"), "interactions", ["status", "partner_id", "id"]
    )
    op.create_index(op.f("ix_interactions_batch_id"), "interactions", ["batch_id"])
