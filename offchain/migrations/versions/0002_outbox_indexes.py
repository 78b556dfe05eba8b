"""Indexes for the consent and points outboxes.

Their queries ("this partner's rows not yet mined, oldest first", "the rows carried by this
transaction") had no index to use, so each batch scanned the whole table: an import slowed down with
every batch it sent (quadratic in the table's size). `(block_number, partner_id, id)` answers the first
(`block_number IS NULL` is an index lookup on both dialects, and the rows come in id order); `tx_hash`
the second. block_number leads on purpose: an index led by partner_id is what SQLite's planner then
picks for every "this partner's receipts of these members" query, scanning all of the partner's rows.

Revision ID: 0002_outbox_indexes
Revises: 0001_initial
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0002_outbox_indexes"
down_revision: str | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("consent_receipts", "point_events")


def upgrade() -> None:
    for table in TABLES:
        op.create_index(
            op.f(f"ix_{table}_block_number_partner_id_id"), table, ["block_number", "partner_id", "id"]
        )
        op.create_index(op.f(f"ix_{table}_tx_hash"), table, ["tx_hash"])


def downgrade() -> None:
    for table in TABLES:
        op.drop_index(op.f(f"ix_{table}_tx_hash"), table_name=table)
        op.drop_index(op.f(f"ix_{table}_block_number_partner_id_id"), table_name=table)
