"""One append-only log per partner: batches say where they start in it (`first_index`) and keep the
compact range after them (`frontier`) and the consistency proof from the previous head
(`consistency`); erasure receipts become leaves of the same log (`leaf_index`, `proof`).

A store written before this revision anchored independent batches on a contract that no longer
exists (the manifest check refuses it): its batches are only placed one after another, nothing else
is converted.

Revision ID: 0004_partner_logs
Revises: 0003_status_from_batch
Create Date: 2026-11-30
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_partner_logs"
down_revision: str | None = "0003_status_from_batch"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batches") as batch:
        batch.add_column(sa.Column("first_index", sa.BigInteger(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("frontier", sa.LargeBinary(), nullable=True))
        batch.add_column(sa.Column("consistency", sa.LargeBinary(), nullable=True))
        batch.create_check_constraint(op.f("ck_batches_first_index_nonnegative"), "first_index >= 0")
    # existing batches are placed one after the other, per partner, so that the uniqueness holds
    op.execute(
        "UPDATE batches SET first_index = (SELECT COALESCE(SUM(b.size), 0) FROM batches AS b"
        " WHERE b.partner_id = batches.partner_id AND b.id < batches.id)"
    )
    with op.batch_alter_table("batches") as batch:
        batch.create_unique_constraint(
            op.f("uq_batches_partner_id_first_index"), ["partner_id", "first_index"]
        )
    with op.batch_alter_table("erasure_receipts") as batch:
        batch.add_column(sa.Column("leaf_index", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("proof", sa.LargeBinary(), nullable=True))
    op.create_index(
        op.f("ix_interactions_partner_id_leaf_index"), "interactions", ["partner_id", "leaf_index"]
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_interactions_partner_id_leaf_index"), table_name="interactions")
    with op.batch_alter_table("erasure_receipts") as batch:
        batch.drop_column("proof")
        batch.drop_column("leaf_index")
    with op.batch_alter_table("batches") as batch:
        batch.drop_constraint(op.f("uq_batches_partner_id_first_index"), type_="unique")
        batch.drop_constraint(op.f("ck_batches_first_index_nonnegative"), type_="check")
        batch.drop_column("consistency")
        batch.drop_column("frontier")
        batch.drop_column("first_index")
