"""The store's half of the one outbox: rows that wait for a transaction, the hash of the transaction
that carries them (written and committed before it is sent), and the block it was mined in.

A table takes part by implementing `OutboxRows` (consent receipts and point events through
`HashedRows`, anchoring batches through their status column). The chain's half, and the steps that
tie the two together after a crash, are `api.evidence.outbox`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from sqlalchemy import Table, update
from sqlalchemy import select as core_select
from sqlmodel import Session

from offchain.db import in_chunks


class OutboxRows(Protocol):
    """What the outbox needs of a table whose rows go on chain in batches."""

    def in_flight(self, db: Session, partner_id: int) -> list[str]:
        """Hashes of the partner's transactions sent (or about to be) and not yet seen mined."""
        ...

    def claim(self, db: Session, ids: Sequence[int], tx_hash: str) -> None:
        """Write `tx_hash` on the rows `ids`: the step before sending, committed first."""
        ...

    def release(self, db: Session, tx_hash: str) -> None:
        """Put the rows of a transaction the node never saw, or that failed, back in the queue."""
        ...

    def confirm(self, db: Session, tx_hash: str, block_number: int, onchain_id: int | None) -> list[Any]:
        """Record that `tx_hash` was mined in `block_number` (`onchain_id`: what the chain numbered it,
        where it does); the rows it carried, oldest first, as the table's confirmed view."""
        ...


class HashedRows:
    """`OutboxRows` for a table with a `tx_hash` and a `block_number` column: no hash, staged; a hash
    and no block, in flight; both, confirmed."""

    def __init__(self, table: Table, confirmed_columns: Sequence[str]) -> None:
        self.table = table
        # What `confirm` hands back of each row: what its callers read. The other columns, dates above
        # all, cost more to convert than the UPDATE itself.
        self.confirmed_columns = tuple(confirmed_columns)

    def in_flight(self, db: Session, partner_id: int) -> list[str]:
        c = self.table.c
        query = (
            core_select(c.tx_hash)
            .where(c.partner_id == partner_id, c.tx_hash.is_not(None), c.block_number.is_(None))
            .distinct()
        )
        return [str(tx_hash) for tx_hash in db.connection().execute(query).scalars()]

    def claim(self, db: Session, ids: Sequence[int], tx_hash: str) -> None:
        # one UPDATE ... WHERE id IN per slice, not an execution per row
        for chunk in in_chunks(ids):
            db.connection().execute(
                update(self.table).where(self.table.c.id.in_(chunk)).values(tx_hash=tx_hash)
            )

    def release(self, db: Session, tx_hash: str) -> None:
        c = self.table.c
        db.connection().execute(
            update(self.table).where(c.tx_hash == tx_hash, c.block_number.is_(None)).values(tx_hash=None)
        )

    def confirm(self, db: Session, tx_hash: str, block_number: int, onchain_id: int | None) -> list[Any]:
        # one UPDATE ... RETURNING: loading hundreds of ORM objects per batch only to set one column
        # cost more than the transaction
        c = self.table.c
        rows = (
            db.connection()
            .execute(
                update(self.table)
                .where(c.tx_hash == tx_hash, c.block_number.is_(None))
                .values(block_number=block_number)
                .returning(*(c[name] for name in self.confirmed_columns))
            )
            .all()
        )
        return sorted(rows, key=lambda row: row.id)
