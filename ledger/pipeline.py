"""Pipelined sending: simulate and send each transaction while the caller goes on with its work.

Outside a pipeline, `Chain.prepare` asks the node for the sender's nonce and simulates the call (an
`eth_call` on the pending state) before it signs, so a call that would revert raises its named error
before anything is sent; the caller waits for that round trip every time. For an 800-item batch the node
needs tens of milliseconds to run the simulation, and an import sends a few hundred batches.

Inside one (`Chain.pipelined()`), a transaction prepared with a gas bound is signed at once, with the
nonce this process counts for its sender (read from the node once) and the gas limit and fees the last
simulation saw, so its hash is known and an outbox records it as before. `broadcast` then hands it to
one sender thread, which, in order, simulates each transaction on the pending state (after every one it
sent before) and sends it if the simulation passes, and checks that the node counts the same nonce.

What a failure does (a revert, a nonce another process took, a gas limit that fell below the bound):
the transaction is not sent, nor is any prepared after it (they would only wait for the missing nonce),
and the error, the same named exception as without a pipeline, is raised in the caller's thread at its
next chain call (a lookup, a wait, a prepare, a view) or when the pipeline ends. Those transactions are
unknown to the node, so an outbox's `settle` finds their rows never sent and stages them again, as it
does after a crash between recording a hash and sending it. Waiting for a transaction (`lookup`, `wait`)
first waits until the thread has dealt with it: a transaction still in the queue is not "unknown".

On eth-tester (in process, and not thread-safe) the simulation and the send run in `broadcast` itself,
so a failure is raised there; the nonces and fees are kept as on a node.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from eth_account.signers.local import LocalAccount

from ledger.backends import RpcBackend
from ledger.errors import BackendError, NonceTaken
from ledger.txs import CallRequest, TxContext

if TYPE_CHECKING:
    from ledger.chain import Chain, SignedTx


@dataclass(frozen=True)
class _Prepared:
    call: CallRequest
    nonce: int


@dataclass(frozen=True)
class _Queued:
    signed: SignedTx
    prepared: _Prepared
    done: threading.Event


class Pipeline:
    """The transactions one `Chain.pipelined()` block prepares and sends (see the module docstring)."""

    def __init__(self, chain: Chain) -> None:
        self.chain = chain
        self._nonces: dict[str, int] = {}  # sender -> the nonce of its next transaction, as counted here
        self._context: TxContext | None = None  # the gas limit and fees the latest node read saw
        self._prepared: dict[str, _Prepared] = {}  # by hash: signed here, not yet broadcast
        self._waiting: dict[str, threading.Event] = {}  # by hash: broadcast, not yet dealt with
        self._failure: Exception | None = None  # set by the sender thread, raised by the caller's
        self._queue: queue.Queue[_Queued | None] = queue.Queue()
        self._thread: threading.Thread | None = None
        if isinstance(chain.backend, RpcBackend):
            self._thread = threading.Thread(target=self._send_in_order, name="ledger-sender", daemon=True)
            self._thread.start()

    # --- the caller's side ---

    def prepare(self, to: str, sender: LocalAccount, data: bytes, bound: int) -> SignedTx:
        """Sign the call of `to` with calldata `data` with the next nonce counted for `sender` and gas
        `bound` (at most the block gas limit last seen); simulated when it is broadcast."""
        self.raise_failure()
        if sender.address not in self._nonces or self._context is None:
            self.drain()  # the node's pending count is this process's only once everything queued is sent
            read = self.chain.backend.tx_context(sender.address, fees=self.chain.backend.gas_price is None)
            self._nonces[sender.address] = read.nonce
            self._context = read
        context = self._context  # the latest the sender thread saw, or the read above
        nonce = self._nonces[sender.address]
        gas = min(bound, context.gas_limit)
        signed = self.chain.sign(sender, to, data, gas, replace(context, nonce=nonce))
        self._nonces[sender.address] = nonce + 1
        self._prepared[signed.tx_hash] = _Prepared(CallRequest(sender.address, to, data, gas), nonce)
        return signed

    def broadcast(self, signed: SignedTx) -> bool:
        """Queue `signed` if this pipeline prepared it (True); False for any other transaction."""
        prepared = self._prepared.pop(signed.tx_hash, None)
        if prepared is None:
            return False
        item = _Queued(signed, prepared, threading.Event())
        if self._thread is None:
            self._send(item)
            self.raise_failure()
            return True
        self._waiting[signed.tx_hash] = item.done
        self._queue.put(item)
        return True

    def settled(self, tx_hash: str) -> None:
        """Return once `tx_hash` was sent or dropped; raise a failure the thread met meanwhile."""
        done = self._waiting.get(tx_hash)
        if done is not None:
            done.wait()
            self._waiting.pop(tx_hash, None)
        self.raise_failure()

    def drain(self) -> None:
        """Return once every queued transaction was sent or dropped (a failure stays to be raised)."""
        if self._thread is not None:
            self._queue.join()
        self._waiting.clear()

    def raise_failure(self) -> None:
        """Raise what stopped the sender thread, once: later transactions were dropped; from here on the
        nonces are read from the node again."""
        if self._failure is None:
            return
        self.drain()  # everything queued after the failure is dropped before the nonces are forgotten
        failure, self._failure = self._failure, None
        self._nonces.clear()
        self._prepared.clear()
        raise failure

    def forget_nonces(self) -> None:
        """Read each sender's nonce from the node again at its next transaction (one was sent around the
        pipeline). Call with the queue drained."""
        self._nonces.clear()

    def close(self) -> None:
        """Wait for the queue, then stop the thread. The caller raises a failure left (`raise_failure`)."""
        self.drain()
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None

    # --- the sender thread ---

    def _send_in_order(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._send(item)
            finally:
                self._queue.task_done()

    def _send(self, item: _Queued) -> None:
        try:
            if self._failure is None:  # after a failure nothing more is sent: the nonces have a gap
                self._simulate_and_send(item)
        except Exception as exc:
            self._failure = self.chain.translate(exc)
        finally:
            item.done.set()

    def _simulate_and_send(self, item: _Queued) -> None:
        call, nonce = item.prepared.call, item.prepared.nonce
        backend = self.chain.backend
        context = backend.tx_context(call.sender, fees=backend.gas_price is None, simulate=call)
        if context.nonce != nonce:
            raise NonceTaken(
                f"the node counts nonce {context.nonce} for {call.sender} where this process counted"
                f" {nonce}: another process sends from the same account",
                call.sender,
            )
        if context.gas_limit < call.gas:
            raise BackendError(
                f"the block gas limit fell to {context.gas_limit}, below this transaction's {call.gas}"
            )
        self._context = context
        self.chain.sent_after(item.signed.tx_hash, context)  # the latest block before the send, not signing's
        self.chain.w3.eth.send_raw_transaction(item.signed.raw)
