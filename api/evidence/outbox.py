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

One sender per partner at a time, across all its outboxes (`sending`): between recording a hash and
sending it, only its sender knows the transaction exists. A second sender settling then would find the
node without it and put its rows back in the queue: sent again by the second, earned or recorded twice
on chain; an anchor mined while the store says pending, and every later anchor refused as the store
being older than the chain. A second sender of the same log would also take the batch after one the
first holds, which the chain refuses. Every `settle` and `send` holds the partner's lock; a caller that
leaves broadcasts queued past its send (a pipelined import) holds it around the whole pipeline.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from sqlmodel import Session

from api.context import Crm
from api.errors import NotAllowed, UnknownPartner
from ledger.errors import TransactionFailed
from ledger.txs import SignedTx, TxResult
from offchain.repositories.outbox import OutboxRows, SenderLockError, sender_lock

NextBatch = Callable[[Session], tuple[Sequence[int], SignedTx] | None]
"""next_batch(db): the ids of the staged rows one transaction carries and that transaction, signed;
None when nothing is left to send. Called inside the unit of work that records the hash."""


# (engine, partner id) of the sender locks this thread holds: a send inside a held lock (an import's
# sends within its pipeline, `send_waiting`'s outboxes) takes it once; another thread waits for it
_HELD = threading.local()


@contextmanager
def sending(crm: Crm, partner_id: int) -> Iterator[None]:
    """Be the partner's one sender for the block (see above): wait for any other to finish first.
    Re-entrant within a thread; senders of other partners go on in parallel."""
    held: set[tuple[int, int]] = _HELD.__dict__.setdefault("locks", set())
    key = (id(crm.engine), partner_id)
    if key in held:
        yield
        return
    with ExitStack() as stack:
        try:
            stack.enter_context(sender_lock(crm.engine, partner_id))
        except SenderLockError as exc:  # something planted where the lock file belongs: nothing is sent
            raise NotAllowed(str(exc)) from None
        held.add(key)
        try:
            yield
        finally:
            held.discard(key)


@contextmanager
def sending_as(crm: Crm, partner_name: str) -> Iterator[None]:
    """`sending` for a use case that signs and sends from the partner's account outside the outboxes (a
    consent given or withdrawn, points earned or redeemed, an erasure, a key bound, a vote, a model
    registered): it waits for a running sender of the partner instead of signing with the nonce that
    sender has signed with and not sent yet (the node would refuse one of the two, "nonce too low").
    Taken before the use case opens its unit of work: a sender holding the lock may be waiting for the
    store's writer (SQLite's one), which must not in turn wait for the lock. A partner the store does not
    know takes no lock: the use case refuses it in its own words."""
    try:
        with crm.unit_of_work() as db:
            partner_id = crm.partner(db, partner_name).id
    except UnknownPartner:
        yield
        return
    with sending(crm, partner_id):
        yield


class TransactionClient(Protocol):
    """What an outbox asks of the client of the contract that takes its transactions: a
    `ledger.clients.base.ContractClient`, or the lean decision sender (`ledger.sender`), which `score`
    logs through without web3."""

    def broadcast(self, signed: SignedTx) -> None: ...

    def lookup(self, tx_hash: str) -> TxResult | Literal["pending"] | None: ...

    def wait(self, tx_hash: str) -> TxResult: ...

    def onchain_id(self, mined: TxResult) -> int | None: ...


@dataclass(frozen=True)
class FailedTransaction:
    """A transaction of the outbox that was mined and failed; its rows went back to the queue."""

    tx_hash: str
    reason: str


class Outbox:
    def __init__(self, crm: Crm, rows: OutboxRows, client: TransactionClient, partner_id: int) -> None:
        self.crm = crm
        self.rows = rows
        self.client = client
        self.partner_id = partner_id  # whose rows: their sender lock is held for each settle and send
        self.failed: list[FailedTransaction] = []  # what this outbox put back in the queue, oldest first

    def settle(self, *, wait: bool = True) -> list[Any]:
        """Settle the partner's in-flight transactions (see above); with `wait=False` one the node
        still holds unmined is left in flight. The rows confirmed, oldest first per transaction."""
        with sending(self.crm, self.partner_id):
            return self._settle(self.partner_id, wait=wait)

    def _settle(self, partner_id: int, *, wait: bool) -> list[Any]:
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
        with sending(self.crm, self.partner_id):
            return self._send(next_batch, wait=wait)

    def _send(self, next_batch: NextBatch, *, wait: bool) -> list[Any]:
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
