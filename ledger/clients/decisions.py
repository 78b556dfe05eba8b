from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

from eth_account.signers.local import LocalAccount
from eth_typing import ABIFunction
from eth_utils import (
    event_abi_to_log_topic,
    function_abi_to_4byte_selector,
    get_abi_input_types,
    to_checksum_address,
)
from web3.contract.contract import ContractFunction

from ledger.chain import SignedTx, TxResult, _encode_words
from ledger.clients.base import ContractClient, as_bytes32
from ledger.records import Decision as Decision
from ledger.records import ModelInfo as ModelInfo
from ledger.records import RecordedDecision as RecordedDecision
from ledger.records import recorded_decision
from ledger.sender import DECISION_BATCH_GAS_BASE, DECISION_BATCH_GAS_PER_ITEM
from ledger.sender import DECISION_BATCH_MAX as DECISION_BATCH_MAX


class DecisionLogClient(ContractClient):
    def register_model(
        self, sender: LocalAccount, model_hash: bytes, card_hash: bytes, training_root: bytes
    ) -> int:
        fn = self.contract.functions.registerModel(
            as_bytes32(model_hash), as_bytes32(card_hash), as_bytes32(training_root)
        )
        return int(self._send(sender, fn).event("ModelRegistered")["args"]["modelId"])

    def record_decisions(
        self, sender: LocalAccount, model_id: int, decisions: Sequence[Decision]
    ) -> TxResult:
        """Log a batch of decisions in one transaction, one `DecisionRecorded` event each."""
        return self._send(sender, self._record(model_id, decisions))

    def prepare_record_decisions(
        self, sender: LocalAccount, model_id: int, decisions: Sequence[Decision]
    ) -> SignedTx:
        """`record_decisions`, signed and not sent (for the outbox, which records the hash first)."""
        gas = DECISION_BATCH_GAS_BASE + DECISION_BATCH_GAS_PER_ITEM * len(decisions)
        # the calldata encoded here: web3's argument checks and eth_abi took ~0.3 CPU s a batch of 500
        # (a third of `score --all`'s logging); every field is a word, so encoding is a join
        rows = _rows(decisions)
        abi = self._record_abi
        arguments = _encode_words(get_abi_input_types(abi), [model_id, rows])
        if arguments is None:  # a value out of its type's range: eth_abi's own error, through web3
            return self.chain.prepare(self._record(model_id, decisions), sender, gas=gas)
        data = bytes(function_abi_to_4byte_selector(abi)) + arguments
        return self.chain.prepare_calldata(self.contract.address, data, sender, gas=gas)

    @cached_property
    def _record_abi(self) -> ABIFunction:
        abi: ABIFunction = self.contract.get_function_by_name("recordDecisions").abi
        return abi

    @cached_property
    def _recorded_topic(self) -> bytes:
        return bytes(event_abi_to_log_topic(self.contract.events.DecisionRecorded().abi))

    def _record(self, model_id: int, decisions: Sequence[Decision]) -> ContractFunction:
        return self.contract.functions.recordDecisions(model_id, _rows(decisions))

    def onchain_id(self, mined: TxResult) -> int:
        """The id of the first decision a mined recordDecisions logged (the rest follow in order): the
        first indexed topic of its first DecisionRecorded, read without decoding the batch's events."""
        topic = self._recorded_topic
        if mined.receipt is None:
            raise LookupError(f"no receipt for {mined.tx_hash}")
        for log in mined.receipt.iter_logs():  # the first is enough: not the batch's 500 made into objects
            if log.address == self.contract.address and log.topics[0] == topic:
                return int.from_bytes(log.topics[1], "big")
        raise LookupError(f"{mined.tx_hash} logged no DecisionRecorded")

    def model(self, model_id: int) -> ModelInfo:
        model_hash, card_hash, training_root, registrant, block_number = self._call(
            self.contract.functions.model(model_id)
        )
        return ModelInfo(model_id, model_hash, card_hash, training_root, registrant, block_number)

    def model_count(self) -> int:
        return int(self._call(self.contract.functions.modelCount()))

    def decision_count(self) -> int:
        return int(self._call(self.contract.functions.decisionCount()))

    def decisions(
        self,
        member: bytes | None = None,
        partner: str | None = None,
        decision_id: int | None = None,
        from_block: int = 0,
    ) -> list[RecordedDecision]:
        """Decisions from the event log, oldest first; the three filters are indexed topics, so the node
        filters. Decoded here (the fields are fixed-size words): web3's decoder costs more than the node."""
        event = self.contract.events.DecisionRecorded
        topics: list[str | None] = [
            "0x" + bytes(event_abi_to_log_topic(event().abi)).hex(),
            None if decision_id is None else "0x" + decision_id.to_bytes(32, "big").hex(),
            None if member is None else "0x" + as_bytes32(member).hex(),
            None if partner is None else "0x" + bytes(12).hex() + to_checksum_address(partner)[2:].lower(),
        ]
        logs = self.chain.raw_logs(
            {"address": self.contract.address, "fromBlock": from_block, "toBlock": "latest", "topics": topics}
        )
        found = [
            recorded_decision(log.topics, log.data, log.block_number, to_checksum_address) for log in logs
        ]
        return sorted(found, key=lambda d: d.decision_id)

    def decision(self, decision_id: int) -> RecordedDecision | None:
        """One decision by its id, from the event log; None if the chain logged no such decision."""
        found = self.decisions(decision_id=decision_id)
        return found[0] if found else None


def _rows(decisions: Sequence[Decision]) -> list[tuple[bytes, bytes, int, bytes, bytes, bytes]]:
    """`recordDecisions`' array of tuples, in the contract's field order."""
    return [
        (
            as_bytes32(d.member),
            as_bytes32(d.input_root),
            d.score_bps,
            as_bytes32(d.action),
            as_bytes32(d.reasons),
            as_bytes32(d.explanation_hash),
        )
        for d in decisions
    ]
