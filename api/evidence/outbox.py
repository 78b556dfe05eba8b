"""The one outbox: how records get on chain so that a crash at any point loses nothing and sends
nothing twice. Anchors, consent receipts and point events (and, next, decisions) all go through it.

1. stage: rows are written with no transaction (batches pending, receipts and events with no hash);
2. sign and record: a transaction carrying some of them is signed, and its hash written on them and
   committed, *before* it is sent;
3. broadcast: it is sent;
4. confirm: once mined, its block (and whatever the chain numbered the record) is written on them.

A row with a hash and no confirmation is in flight, or was when a process died. `settle` finds out
what became of each such transaction from the node: mined, its rows are confirmed; still held by the
node, it is waited for (or left for later); unknown to the node (the crash came between recording the
hash and sending), its rows go back to stage 1 and are signed anew. A transaction the node knows is
never sent twice, because it is recognised by its hash.

The store's half of each table is an `OutboxRows` (offchain.repositories.outbox); the chain's half is
the typed client of the contract that takes the transactions (`broadcast`, `lookup`, `wait`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from sqlmodel import Session

from api.context import Crm
from ledger.chain import SignedTx, TxResult
from ledger.clients.base import ContractClient
from offchain.repositories.outbox import OutboxRows

NextBatch = Callable[[Session], tuple[Sequence[int], SignedTx] | None]
"""next_batch(db): the ids of the staged rows one transaction carries and that transaction, signed;
None when nothing is left to send. Called inside the unit of work that records the hash."""


class Outbox:
    def __init__(self, crm: Crm, rows: OutboxRows, client: ContractClient) -> None:
        self.crm = crm
        self.rows = rows
        self.client = client

    def settle(self, partner_id: int, *, wait: bool = True) -> list[Any]:
        """Settle the partner's in-flight transactions (see above); with `wait=False` one the node
        still holds unmined is left in flight. The rows confirmed, oldest first per transaction."""
        with self.crm.unit_of_work() as db:
            in_flight = self.rows.in_flight(db, partner_id)
        confirmed: list[Any] = []
        for tx_hash in in_flight:
            found = self.client.lookup(tx_hash)
            if found == "pending":
                if not wait:
                    continue
                found = self.client.wait(tx_hash)
            if found is None:
                with self.crm.unit_of_work() as db:
                    self.rows.release(db, tx_hash)
            else:
                confirmed += self.confirm(found)
        return confirmed

    def send(self, next_batch: NextBatch, *, wait: bool) -> list[Any]:
        """Sign, record and send transactions until `next_batch` has nothing left; with `wait`, wait for
        each and confirm its rows (returned), else leave them in flight for `settle`."""
        confirmed: list[Any] = []
        while True:
            with self.crm.unit_of_work() as db:
                batch = next_batch(db)
                if batch is None:
                    break
                ids, signed = batch
                self.rows.claim(db, ids, signed.tx_hash)  # committed before the send
            self.client.broadcast(signed)
            if wait:
                confirmed += self.confirm(self.client.wait(signed.tx_hash))
        return confirmed

    def confirm(self, mined: TxResult) -> list[Any]:
        """Record that a transaction was mined: the one place where rows become confirmed."""
        onchain_id = self.client.onchain_id(mined)
        with self.crm.unit_of_work() as db:
            return self.rows.confirm(db, mined.tx_hash, mined.block_number, onchain_id)
