from __future__ import annotations

from typing import Any

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from web3.contract import Contract
from web3.contract.contract import ContractFunction
from web3.types import BlockIdentifier

from ledger.chain import Chain, TxResult

ZERO32 = b"\x00" * 32


class ContractClient:
    """What every client shares: its contract, and sending/calling through the chain."""

    def __init__(self, chain: Chain, contract: Contract) -> None:
        self.chain = chain
        self.contract = contract

    @property
    def address(self) -> ChecksumAddress:
        return self.contract.address

    def _send(self, sender: LocalAccount, fn: ContractFunction) -> TxResult:
        return self.chain.transact(self.contract, fn, sender)

    def _call(self, fn: ContractFunction, block: BlockIdentifier = "latest") -> Any:
        return self.chain.call(fn, block)


def as_bytes32(value: bytes) -> bytes:
    """Check a bytes32 argument here, with a clear message, rather than deep inside the ABI encoder."""
    if len(value) != 32:
        raise ValueError(f"expected 32 bytes, got {len(value)}")
    return value
