"""Gas of anchoring a new head of a partner's log, consistency proof included, at several log sizes.

For each size N: a partner's log of N leaves (its genesis leaf and N - 1 more) is anchored as a first
head, with its consistency proof from the genesis leaf alone, then a batch of BATCH more leaves is
appended and anchored with its RFC 9162 consistency proof, checked on chain.
Prints N, the proof's length in hashes and the anchor's gas, on eth-tester (gas is the EVM's, the same
on any node). Usage: .venv/bin/python benchmarks/log_gas.py [--sizes 1000 100000 1000000]
"""

from __future__ import annotations

import argparse
import hashlib

from rich.console import Console
from rich.table import Table

from benchmarks.machine import machine_table
from ledger import Coalition, EthTesterBackend
from ledger.merkle import Frontier, LogAppend

BATCH = 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000, 100_000, 1_000_000])
    args = parser.parse_args()
    backend = EthTesterBackend()
    coalition = Coalition.deploy(backend, founders=backend.accounts[:3])
    table = Table("log size N", "appended", "first head: proof hashes, gas", "next head: proof hashes, gas")
    for index, n in enumerate(args.sizes):
        sender = backend.accounts[index % 3]
        backend_snapshot = backend.snapshot()
        leaves = [hashlib.sha256(i.to_bytes(8, "big")).digest() for i in range(1, n + BATCH)]
        genesis = Frontier(1, (coalition.anchor.genesis_leaf(sender.address),))
        first = LogAppend(genesis, leaves[: n - 1])
        step = LogAppend(first.frontier, leaves[n - 1 :])
        first_proof, proof = first.consistency_proof(), step.consistency_proof()
        gas_first = coalition.anchor.anchor(sender, first.root, n, first_proof).tx.gas_used
        gas_next = coalition.anchor.anchor(sender, step.root, n + BATCH, proof).tx.gas_used
        table.add_row(
            f"{n:,}", f"{BATCH:,}", f"{len(first_proof)}: {gas_first:,}", f"{len(proof)}: {gas_next:,}"
        )
        backend.revert(backend_snapshot)
    console = Console()
    console.print(
        machine_table("log_gas", [("chain", "eth-tester (py-evm)"), ("batch", f"{BATCH:,} leaves")])
    )
    console.print(table)


if __name__ == "__main__":
    main()
