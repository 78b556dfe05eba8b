"""What the consent and points outboxes share: rows are staged, then given the hash of the transaction
that will carry them (committed before it is sent), then confirmed with its block once mined.

A row with a hash but no block is in flight, or was when a process died. `resume_submitted` settles
those: a transaction the chain mined confirms its rows, one the node still holds is waited for, and one
the node never saw (the crash came between writing the hash and sending) puts its rows back in the queue.
"""

from __future__ import annotations

from typing import TypeVar

from sqlmodel import col, select, update
from web3.contract import Contract

from api.usecases.context import Crm
from offchain.models import ConsentReceipt, PointEvent

Row = TypeVar("Row", ConsentReceipt, PointEvent)


def resume_submitted(crm: Crm, table: type[Row], partner_name: str, contract: Contract) -> list[Row]:
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
    confirmed: list[Row] = []
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


def confirm(crm: Crm, table: type[Row], tx_hash: str, block_number: int) -> list[Row]:
    """Record that the rows carried by `tx_hash` were mined in `block_number`."""
    with crm.unit_of_work() as db:
        rows = db.exec(
            select(table)
            .where(col(table.tx_hash) == tx_hash, col(table.block_number).is_(None))
            .order_by(col(table.id))
        ).all()
        for row in rows:
            row.block_number = block_number
        return list(rows)
