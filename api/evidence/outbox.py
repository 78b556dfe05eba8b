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

A transaction that was mined but failed (reverted: another transaction got in first, the chain moved
on) would otherwise stay in flight for ever, and every later send behind it would wait on it. Its rows
go back to stage 1 too, and the failure is kept in `failed` for the caller to report: the next send
signs them anew, which simulates them against the chain as it is now, so they either go through or are
refused by name before anything is sent (`ledgercrm anchor` is the command that does this).

The store's half of each table is an `OutboxRows` (offchain.repositories.outbox); the chain's half is
the typed client of the contract that takes the transactions (`broadcast`, `lookup`, `wait`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlmodel import Session

from api.context import Crm
from ledger.chain import SignedTx, TxResult
from ledger.clients.base import ContractClient
from ledger.errors import TransactionFailed
from offchain.repositories.outbox import OutboxRows

NextBatch = Callable[[Session], tuple[Sequence[int], SignedTx] | None]
"""next_batch(db): the ids of the staged rows one transaction carries and that transaction, signed;
None when nothing is left to send. Called inside the unit of work that records the hash."""


@dataclass(frozen=True)
class FailedTransaction:
    """A transaction of the outbox that was mined and failed; its rows went back to the queue."""

    tx_hash: str
    reason: str


class Outbox:
    def __init__(self, crm: Crm, rows: OutboxRows, client: ContractClient) -> None:
        self.crm = crm
        self.rows = rows
        self.client = client
        self.failed: list[FailedTransaction] = []  # what this outbox put back in the queue, oldest first

    def settle(self, partner_id: int, *, wait: bool = True) -> list[Any]:
        """Settle the partner's in-flight transactions (see above); with `wait=False` one the node
        still holds unmined is left in flight. The rows confirmed, oldest first per transaction."""
        with self.crm.unit_of_work() as db:
            in_flight = self.rows.in_flight(db, partner_id)
        confirmed: list[Any] = []
        for tx_hash in in_flight:
            try:
                found = self.client.lookup(tx_hash)
                if found == "pending":
                    if not wait:
                        continue
                    found = self.client.wait(tx_hash)
            except TransactionFailed as exc:
                self._failed(tx_hash, exc)
                continue
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
                try:
                    mined = self.client.wait(signed.tx_hash)
                except TransactionFailed as exc:
                    # what follows may depend on it (the next head of a log): stop here; the next send
                    # signs these rows anew
                    self._failed(signed.tx_hash, exc)
                    break
                confirmed += self.confirm(mined)
        return confirmed

    def _failed(self, tx_hash: str, exc: TransactionFailed) -> None:
        """A mined transaction failed: its rows go back to the queue, and the failure is kept."""
        with self.crm.unit_of_work() as db:
            self.rows.release(db, tx_hash)
        self.failed.append(FailedTransaction(tx_hash, str(exc)))

    def confirm(self, mined: TxResult) -> list[Any]:
        """Record that a transaction was mined: the one place where rows become confirmed."""
        onchain_id = self.client.onchain_id(mined)
        with self.crm.unit_of_work() as db:
            return self.rows.confirm(db, mined.tx_hash, mined.block_number, onchain_id)
