"""What the consent and points outboxes share: rows are staged, then given the hash of the transaction
that will carry them (committed before it is sent), then confirmed with its block once mined.

A row with a hash but no block is in flight, or was when a process died. `resume_submitted` settles
those: a transaction the chain mined confirms its rows, one the node still holds is waited for, and one
the node never saw (the crash came between writing the hash and sending) puts its rows back in the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from sqlalchemy import update as sa_update
from sqlmodel import Session, col, select, update
from web3.contract import Contract

from api.usecases.context import Crm
from ledger.chain import SignedTx
from offchain.models import ConsentReceipt, PointEvent

Row = TypeVar("Row", ConsentReceipt, PointEvent)
# What `confirm` hands back of each row: what its callers read (an import counts the points confirmed and
# notes the consents). The other columns, dates above all, cost more to convert than the UPDATE itself.
CONFIRMED_COLUMNS: dict[type, tuple[str, ...]] = {
    PointEvent: ("id", "member_id", "amount"),
    ConsentReceipt: ("id", "member_id", "purpose", "status", "expires_at"),
}
CLAIM_CHUNK = 5_000  # ids per UPDATE: well under SQLite's 32,766 bound parameters


def resume_submitted(crm: Crm, table: type[Row], partner_name: str, contract: Contract) -> list[Any]:
    """Settle the partner's in-flight rows of `table`; the rows confirmed, oldest first."""
    chain = crm.coalition.chain
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        submitted = db.exec(
            select(table.tx_hash)
            .where(
                table.partner_id == partner.id,
                col(table.tx_hash).is_not(None),
                col(table.block_number).is_(None),
            )
            .distinct()
        ).all()
    confirmed: list[Any] = []
    for tx_hash in submitted:
        assert tx_hash is not None
        found = chain.lookup(contract, tx_hash)
        if found == "pending":
            found = chain.wait(contract, tx_hash)
        if found is None:
            with crm.unit_of_work() as db:
                db.exec(
                    update(table)
                    .where(col(table.tx_hash) == tx_hash, col(table.block_number).is_(None))
                    .values(tx_hash=None)
                )
        else:
            confirmed += confirm(crm, table, tx_hash, found.block_number)
    return confirmed


def confirm(crm: Crm, table: type[Row], tx_hash: str, block_number: int) -> list[Any]:
    """Record that the rows carried by `tx_hash` were mined in `block_number`; those rows, oldest first,
    as plain rows with the table's `CONFIRMED_COLUMNS` (one UPDATE ... RETURNING: loading hundreds of
    ORM objects per batch only to set one column cost more than the transaction)."""
    columns = table.__table__.c  # type: ignore[attr-defined]
    with crm.unit_of_work() as db:
        rows = (
            db.connection()
            .execute(
                sa_update(table.__table__)  # type: ignore[attr-defined]
                .where(columns.tx_hash == tx_hash, columns.block_number.is_(None))
                .values(block_number=block_number)
                .returning(*(columns[name] for name in CONFIRMED_COLUMNS[table]))
            )
            .all()
        )
    return sorted(rows, key=lambda row: row.id)


def send(crm: Crm, table: type[Row], contract: Contract, signed: SignedTx, *, wait: bool) -> list[Any]:
    """Send a transaction whose hash its rows already carry (`claim`, committed); with `wait`, wait for it
    and confirm its rows (returned), else leave it in flight for `resume_submitted` to settle."""
    chain = crm.coalition.chain
    chain.broadcast(signed)
    if not wait:
        return []
    result = chain.wait(contract, signed.tx_hash)
    return confirm(crm, table, signed.tx_hash, result.block_number)


def claim(db: Session, table: type[Row], ids: Sequence[int], tx_hash: str) -> None:
    """Write `tx_hash` on the rows `ids` (the outbox step before sending): one UPDATE ... WHERE id IN
    (one statement for a batch of 800, not 800 executions of one)."""
    columns = table.__table__.c  # type: ignore[attr-defined]
    for start in range(0, len(ids), CLAIM_CHUNK):
        db.connection().execute(
            sa_update(table.__table__)  # type: ignore[attr-defined]
            .where(columns.id.in_(ids[start : start + CLAIM_CHUNK]))
            .values(tx_hash=tx_hash)
        )
