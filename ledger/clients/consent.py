from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils import event_abi_to_log_topic, keccak, to_checksum_address
from web3.types import BlockIdentifier

from ledger.chain import SignedTx, TxResult
from ledger.clients.base import ContractClient, as_bytes32
from ledger.clients.members import Authorization
from ledger.errors import BackendError


class ConsentStatus(IntEnum):
    GIVEN = 1
    WITHDRAWN = 2


class ConsentSource(IntEnum):
    """Who made a record (the contract's `Source`): the member's own signature, a partner's
    attestation, or the member's erasure."""

    SIGNED = 0
    ATTESTED = 1
    ERASURE = 2


# The purposes ConsentRegistry declares (`isPurpose`), each with its W3C Data Privacy Vocabulary term.
# The contract knows them by keccak256 of the name; an unknown one is refused there and here.
PURPOSES: dict[str, str] = {
    "loyalty": "dpv:CustomerRelationshipManagement",
    "profiling": "dpv:Profiling",
    "marketing": "dpv:Marketing",
    "analytics": "dpv:ServiceUsageAnalytics",
    "personalisation": "dpv:ServicePersonalisation",
    "research": "dpv:ResearchAndDevelopment",
}


def purpose_id(name: str) -> bytes:
    """The bytes32 id of a declared processing purpose ("loyalty", "profiling", ...): keccak256 of its
    name, as OpenZeppelin does for role ids. Purposes are public vocabulary, never personal data.
    ValueError for a name that is not in PURPOSES (the contract would refuse it)."""
    if name not in PURPOSES:
        raise ValueError(f"unknown purpose {name!r}: one of {', '.join(PURPOSES)}")
    return keccak(text=name)


@dataclass(frozen=True)
class ConsentRecord:
    status: ConsentStatus
    timestamp: int
    expires_at: int
    block_number: int
    receipt_hash: bytes
    source: ConsentSource = ConsentSource.ATTESTED


# recordBatch gas per item, measured on anvil (tests/ledger/test_batch_gas.py): 77.3k for a member's
# first consent (a history of two slots and its length, the member's first (controller, purpose) pair,
# the registry's cold slot, an event), its most (a withdrawal 40k, a consent given again 60k); ~32k for
# the batch. A bound of 85k per item (+10%) spares a gas estimate per batch (eth-tester's estimator
# executes the call many times) and keeps `record_batch_max` items within the node's budget (1M under its
# block): fewer, fuller batches, each a block on anvil (see ledger/clients/loyalty.py). (130k and 200 a
# batch until 2026-12-07: each recordBatch used 59% of its bound and half a block.)
RECORD_BATCH_GAS_BASE = 100_000
RECORD_BATCH_GAS_PER_ITEM = 85_000


def record_batch_max(budget: int) -> int:
    """The most consents one recordBatch takes within `budget` gas (at least one): 340 under a 30M
    block, 692 under 60M."""
    return max(1, (budget - RECORD_BATCH_GAS_BASE) // RECORD_BATCH_GAS_PER_ITEM)


class ConsentClient(ContractClient):
    receipt_logs = False  # its outbox confirms rows by status and block (ContractClient)

    def record(
        self,
        sender: LocalAccount,
        member: bytes,
        purpose: bytes,
        status: ConsentStatus,
        receipt_hash: bytes,
        expires_at: int = 0,
    ) -> TxResult:
        fn = self.contract.functions.record(
            as_bytes32(member), as_bytes32(purpose), int(status), as_bytes32(receipt_hash), expires_at
        )
        return self._send(sender, fn)

    def record_batch(
        self,
        sender: LocalAccount,
        members: Sequence[bytes],
        purpose: bytes,
        status: ConsentStatus,
        receipt_hashes: Sequence[bytes],
        expires_at: int = 0,
    ) -> TxResult:
        signed = self.prepare_record_batch(sender, members, purpose, status, receipt_hashes, expires_at)
        return self.chain.send(self.contract, signed)

    def prepare_record_batch(
        self,
        sender: LocalAccount,
        members: Sequence[bytes],
        purpose: bytes,
        status: ConsentStatus,
        receipt_hashes: Sequence[bytes],
        expires_at: int = 0,
    ) -> SignedTx:
        """`record_batch`, signed and not sent (for an outbox that records the hash first)."""
        arguments = (
            [as_bytes32(m) for m in members],
            as_bytes32(purpose),
            int(status),
            [as_bytes32(h) for h in receipt_hashes],
            expires_at,
        )
        most = record_batch_max(self.batch_gas_budget())
        if len(members) > most:
            # refused before signing: its bound would pass the block's limit, and the simulation would
            # run out of gas, an error that names nothing
            raise ValueError(f"{len(members)} consents pass one recordBatch's {most}: send smaller batches")
        gas = RECORD_BATCH_GAS_BASE + RECORD_BATCH_GAS_PER_ITEM * len(members)
        return self.chain.prepare_function(self.contract, "recordBatch", arguments, sender, gas=gas)

    def record_signed(
        self,
        relayer: LocalAccount,
        member: bytes,
        controller: str,
        purpose: bytes,
        status: ConsentStatus,
        receipt_hash: bytes,
        expires_at: int,
        authorization: Authorization,
    ) -> TxResult:
        """Record a consent event the member signed (`MemberRegistryClient.authorize_consent`),
        relayed (and paid for) by `relayer`."""
        fn = self.contract.functions.recordSigned(
            as_bytes32(member),
            to_checksum_address(controller),
            as_bytes32(purpose),
            int(status),
            as_bytes32(receipt_hash),
            expires_at,
            authorization.deadline,
            authorization.signature,
        )
        return self._send(relayer, fn)

    def relayer(self, event: ConsentEvent) -> ChecksumAddress:
        """The partner that sent the transaction recording `event` (for a customer's signed record,
        any partner may relay it, not only its controller)."""
        return self.chain.sender_of(event.tx_hash)

    def is_purpose(self, purpose: bytes) -> bool:
        return bool(self._call(self.contract.functions.isPurpose(as_bytes32(purpose))))

    def is_valid(self, member: bytes, controller: str, purpose: bytes) -> bool:
        fn = self.contract.functions.isValid(
            as_bytes32(member), to_checksum_address(controller), as_bytes32(purpose)
        )
        return bool(self._call(fn))

    def are_valid(self, members: Sequence[bytes], controller: str, purpose: bytes) -> list[bool]:
        """`is_valid` for many members at once (batched against a remote node)."""
        address = to_checksum_address(controller)
        found = self.chain.call_many(
            self.contract, "isValid", [(as_bytes32(m), address, as_bytes32(purpose)) for m in members]
        )
        return [bool(value) for value in found]

    def is_valid_at(self, member: bytes, controller: str, purpose: bytes, timestamp: int) -> bool:
        """Whether consent was valid at unix time `timestamp`, from the full on-chain history."""
        fn = self.contract.functions.isValidAt(
            as_bytes32(member), to_checksum_address(controller), as_bytes32(purpose), timestamp
        )
        return bool(self._call(fn))

    def is_valid_at_block(
        self, member: bytes, controller: str, purpose: bytes, block: BlockIdentifier
    ) -> bool:
        """Whether consent was valid at the end of block `block`, as the contract's `isValidAtBlock`
        answers from the append-only history (records ordered by index within a block), with that
        block's timestamp for expiry. Asked of the latest state, so no archive node is needed."""
        try:
            header = self.chain.w3.eth.get_block(block)
        except Exception as exc:
            raise BackendError(f"block {block!r}: {type(exc).__name__}: {exc}") from exc
        fn = self.contract.functions.isValidAtBlock(
            as_bytes32(member),
            to_checksum_address(controller),
            as_bytes32(purpose),
            int(header["number"]),
            int(header["timestamp"]),
        )
        return bool(self._call(fn))

    def history_length(self, member: bytes, controller: str, purpose: bytes) -> int:
        """How many consent records the chain holds for (member, controller, purpose)."""
        args = (as_bytes32(member), to_checksum_address(controller), as_bytes32(purpose))
        return int(self._call(self.contract.functions.historyLength(*args)))

    def history(self, member: bytes, controller: str, purpose: bytes) -> list[ConsentRecord]:
        args = (as_bytes32(member), to_checksum_address(controller), as_bytes32(purpose))
        length = self.history_length(member, controller, purpose)
        records = []
        for index in range(length):
            status, source, timestamp, expires_at, block_number, receipt_hash = self._call(
                self.contract.functions.recordAt(*args, index)
            )
            records.append(
                ConsentRecord(
                    ConsentStatus(status),
                    timestamp,
                    expires_at,
                    block_number,
                    receipt_hash,
                    ConsentSource(source),
                )
            )
        return records


@dataclass(frozen=True)
class ConsentEvent:
    """One `ConsentRecorded` event, as the chain logged it."""

    member: bytes
    controller: str
    purpose: bytes
    status: ConsentStatus
    receipt_hash: bytes
    expires_at: int
    block_number: int
    source: ConsentSource = ConsentSource.ATTESTED
    tx_hash: bytes = b""


def consent_events(client: ConsentClient, controller: str) -> list[ConsentEvent]:
    """Every consent the chain recorded for `controller`, oldest first, from the event log (one
    eth_getLogs, decoded here: the fields are fixed-size words, and web3's decoder takes ~1 ms each)."""
    topic = "0x" + bytes(event_abi_to_log_topic(client.contract.events.ConsentRecorded().abi)).hex()
    address = to_checksum_address(controller)
    logs = client.chain.raw_logs(
        {
            "address": client.contract.address,
            "fromBlock": 0,
            "toBlock": "latest",
            "topics": [topic, None, "0x" + bytes(12).hex() + address[2:].lower()],
        }
    )
    found = []
    for log in logs:
        data = log.data
        found.append(
            ConsentEvent(
                member=log.topics[1],
                controller=address,
                purpose=log.topics[3],
                status=ConsentStatus(int.from_bytes(data[0:32], "big")),
                receipt_hash=data[32:64],
                expires_at=int.from_bytes(data[64:96], "big"),
                block_number=log.block_number,
                source=ConsentSource(int.from_bytes(data[96:128], "big")),
                tx_hash=log.tx_hash,
            )
        )
    return found
