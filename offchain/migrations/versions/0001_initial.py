"""The initial off-chain store: partners, customers, interactions, the anchoring outbox, receipts, points.

Written out explicitly rather than importing the models: a revision must create the schema as it was
when the revision was written, whatever the models say later. Statuses are VARCHAR + CHECK (not
PostgreSQL ENUM types) and binary values are BLOB/bytea on both dialects.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-23
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# INTEGER on SQLite, so that the primary key aliases the rowid and autoincrements; BIGINT elsewhere
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIMESTAMP = sa.DateTime(timezone=True)
STATUS = sa.String(length=16)
HASH_SIZE = 32


def _one_of(column: str, table: str, values: Sequence[str]) -> sa.CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return sa.CheckConstraint(f"{column} IN ({allowed})", name=op.f(f"ck_{table}_{column}"))


def _hash_length(column: str, table: str) -> sa.CheckConstraint:
    return sa.CheckConstraint(f"length({column}) = {HASH_SIZE}", name=op.f(f"ck_{table}_{column}_length"))


ANCHOR_STATUSES = ("pending", "submitted", "anchored")


def upgrade() -> None:
    op.create_table(
        "partners",
        sa.Column("id", ID, nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=42), nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_partners")),
        sa.UniqueConstraint("name", name=op.f("uq_partners_name")),
        sa.UniqueConstraint("address", name=op.f("uq_partners_address")),
    )

    op.create_table(
        "customers",
        sa.Column("member_id", sa.LargeBinary(), nullable=False),
        sa.Column("partner_id", ID, nullable=False),
        sa.Column("pii_ciphertext", sa.LargeBinary(), nullable=False),
        sa.Column("external_ref_hmac", sa.LargeBinary(), nullable=True),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("erased_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_customers")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_customers_partner_id_partners")
        ),
        sa.UniqueConstraint(
            "partner_id", "external_ref_hmac", name=op.f("uq_customers_partner_id_external_ref_hmac")
        ),
        sa.UniqueConstraint("partner_id", "member_id", name=op.f("uq_customers_partner_id_member_id")),
        _hash_length("member_id", "customers"),
        _one_of("status", "customers", ("active", "erased")),
        sa.CheckConstraint(
            "(status = 'erased') = (erased_at IS NOT NULL)", name=op.f("ck_customers_erased_at_iff_erased")
        ),
    )

    op.create_table(
        "batches",
        sa.Column("id", ID, nullable=False),
        sa.Column("partner_id", ID, nullable=False),
        sa.Column("root", sa.LargeBinary(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("onchain_batch_id", sa.BigInteger(), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.Column("submitted_at", TIMESTAMP, nullable=True),
        sa.Column("anchored_at", TIMESTAMP, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        sa.ForeignKeyConstraint(["partner_id"], ["partners.id"], name=op.f("fk_batches_partner_id_partners")),
        sa.UniqueConstraint("onchain_batch_id", name=op.f("uq_batches_onchain_batch_id")),
        _hash_length("root", "batches"),
        _one_of("status", "batches", ANCHOR_STATUSES),
        sa.CheckConstraint("size > 0", name=op.f("ck_batches_size_positive")),
        sa.CheckConstraint(
            "status = 'pending' OR (tx_hash IS NOT NULL AND submitted_at IS NOT NULL)",
            name=op.f("ck_batches_submitted_has_tx"),
        ),
        sa.CheckConstraint(
            "status <> 'anchored' OR (onchain_batch_id IS NOT NULL AND block_number IS NOT NULL"
            " AND anchored_at IS NOT NULL)",
            name=op.f("ck_batches_anchored_has_block"),
        ),
    )
    op.create_index(op.f("ix_batches_status_partner_id"), "batches", ["status", "partner_id"])

    op.create_table(
        "interactions",
        sa.Column("id", ID, nullable=False),
        sa.Column("partner_id", ID, nullable=False),
        sa.Column("member_id", sa.LargeBinary(), nullable=False),
        sa.Column("kind", STATUS, nullable=False),
        sa.Column("external_key", sa.String(length=200), nullable=True),
        sa.Column("occurred_at", TIMESTAMP, nullable=False),
        sa.Column("payload_ciphertext", sa.LargeBinary(), nullable=True),
        sa.Column("leaf_hash", sa.LargeBinary(), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("batch_id", ID, nullable=True),
        sa.Column("leaf_index", sa.Integer(), nullable=True),
        sa.Column("proof", sa.LargeBinary(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_interactions")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_interactions_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id", "member_id"],
            ["customers.partner_id", "customers.member_id"],
            name=op.f("fk_interactions_partner_id_member_id_customers"),
        ),
        sa.ForeignKeyConstraint(["batch_id"], ["batches.id"], name=op.f("fk_interactions_batch_id_batches")),
        sa.UniqueConstraint(
            "partner_id", "external_key", name=op.f("uq_interactions_partner_id_external_key")
        ),
        sa.UniqueConstraint("batch_id", "leaf_index", name=op.f("uq_interactions_batch_id_leaf_index")),
        _hash_length("leaf_hash", "interactions"),
        _one_of("kind", "interactions", ("purchase", "return", "support_ticket", "email", "visit")),
        _one_of("status", "interactions", ANCHOR_STATUSES),
        sa.CheckConstraint(f"length(proof) % {HASH_SIZE} = 0", name=op.f("ck_interactions_proof_length")),
        sa.CheckConstraint(
            "(batch_id IS NULL) = (leaf_index IS NULL)", name=op.f("ck_interactions_leaf_index_iff_batch")
        ),
        sa.CheckConstraint(
            "status = 'pending' OR batch_id IS NOT NULL", name=op.f("ck_interactions_batch_unless_pending")
        ),
    )
    op.create_index(
        op.f("ix_interactions_status_partner_id_id"), "interactions", ["status", "partner_id", "id"]
    )
    op.create_index(
        op.f("ix_interactions_member_id_occurred_at"), "interactions", ["member_id", "occurred_at"]
    )
    op.create_index(op.f("ix_interactions_batch_id"), "interactions", ["batch_id"])

    op.create_table(
        "consent_receipts",
        sa.Column("id", ID, nullable=False),
        sa.Column("partner_id", ID, nullable=False),
        sa.Column("member_id", sa.LargeBinary(), nullable=False),
        sa.Column("purpose", sa.String(length=100), nullable=False),
        sa.Column("status", STATUS, nullable=False),
        sa.Column("legal_basis", sa.String(length=100), nullable=False),
        sa.Column("notice_version", sa.String(length=100), nullable=False),
        sa.Column("controller", sa.String(length=200), nullable=False),
        sa.Column("collection_method", sa.String(length=100), nullable=False),
        sa.Column("expires_at", TIMESTAMP, nullable=True),
        sa.Column("withdrawal_method", sa.String(length=200), nullable=False),
        sa.Column("recorded_at", TIMESTAMP, nullable=False),
        sa.Column("receipt_json", sa.Text(), nullable=False),
        sa.Column("receipt_hash", sa.LargeBinary(), nullable=False),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_consent_receipts")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_consent_receipts_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["customers.member_id"], name=op.f("fk_consent_receipts_member_id_customers")
        ),
        sa.UniqueConstraint("receipt_hash", name=op.f("uq_consent_receipts_receipt_hash")),
        _hash_length("receipt_hash", "consent_receipts"),
        _one_of("status", "consent_receipts", ("given", "withdrawn")),
    )
    op.create_index(
        op.f("ix_consent_receipts_member_id_purpose_recorded_at"),
        "consent_receipts",
        ["member_id", "purpose", "recorded_at"],
    )

    op.create_table(
        "point_events",
        sa.Column("id", ID, nullable=False),
        sa.Column("partner_id", ID, nullable=False),
        sa.Column("member_id", sa.LargeBinary(), nullable=False),
        sa.Column("kind", STATUS, nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("ref", sa.LargeBinary(), nullable=False),
        sa.Column("external_key", sa.String(length=200), nullable=True),
        sa.Column("tx_hash", sa.String(length=66), nullable=True),
        sa.Column("block_number", sa.BigInteger(), nullable=True),
        sa.Column("created_at", TIMESTAMP, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_point_events")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_point_events_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["member_id"], ["customers.member_id"], name=op.f("fk_point_events_member_id_customers")
        ),
        sa.UniqueConstraint(
            "partner_id", "external_key", name=op.f("uq_point_events_partner_id_external_key")
        ),
        _hash_length("ref", "point_events"),
        _one_of("kind", "point_events", ("earn", "redeem")),
        sa.CheckConstraint("amount > 0", name=op.f("ck_point_events_amount_positive")),
    )
    op.create_index(op.f("ix_point_events_member_id_created_at"), "point_events", ["member_id", "created_at"])

    op.create_table(
        "erasure_receipts",
        sa.Column("id", ID, nullable=False),
        sa.Column("partner_id", ID, nullable=False),
        sa.Column("member_id", sa.LargeBinary(), nullable=False),
        sa.Column("erased_at", TIMESTAMP, nullable=False),
        sa.Column("interactions_count", sa.Integer(), nullable=False),
        sa.Column("receipt_json", sa.Text(), nullable=False),
        sa.Column("receipt_hash", sa.LargeBinary(), nullable=False),
        sa.Column("anchored_batch_id", ID, nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_erasure_receipts")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partners.id"], name=op.f("fk_erasure_receipts_partner_id_partners")
        ),
        sa.ForeignKeyConstraint(
            ["partner_id", "member_id"],
            ["customers.partner_id", "customers.member_id"],
            name=op.f("fk_erasure_receipts_partner_id_member_id_customers"),
        ),
        sa.ForeignKeyConstraint(
            ["anchored_batch_id"], ["batches.id"], name=op.f("fk_erasure_receipts_anchored_batch_id_batches")
        ),
        sa.UniqueConstraint("member_id", name=op.f("uq_erasure_receipts_member_id")),
        sa.UniqueConstraint("receipt_hash", name=op.f("uq_erasure_receipts_receipt_hash")),
        _hash_length("receipt_hash", "erasure_receipts"),
        sa.CheckConstraint(
            "interactions_count >= 0", name=op.f("ck_erasure_receipts_interactions_count_nonnegative")
        ),
    )


def downgrade() -> None:
    # children before parents; each table's indexes go with it
    for table in (
        "erasure_receipts",
        "point_events",
        "consent_receipts",
        "interactions",
        "batches",
        "customers",
        "partners",
    ):
        op.drop_table(table)
