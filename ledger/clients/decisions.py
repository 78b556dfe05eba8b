from __future__ import annotations

from collections.abc import Sequence

from eth_account.signers.local import LocalAccount
from eth_utils import (
    event_abi_to_log_topic,
    to_checksum_address,
)
from web3.contract.contract import ContractFunction

from ledger.chain import SignedTx, TxResult
from ledger.clients.base import ContractClient, as_bytes32
from ledger.records import Decision as Decision
from ledger.records import ModelInfo as ModelInfo
from ledger.records import RecordedDecision as RecordedDecision
from ledger.records import decision_rows, recorded_decision
from ledger.sender import (
    DECISION_BATCH_GAS_BASE,
    DECISION_BATCH_GAS_PER_ITEM,
    first_decision_id,
    record_decisions_calldata,
)
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
        # the calldata encoded as words: web3's argument checks and eth_abi took ~0.3 CPU s a batch of 500
        # (a third of `score --all`'s logging); the lean sender's encoding, so both refuse alike
        data = record_decisions_calldata(model_id, decisions)
        return self.chain.prepare_calldata(self.contract.address, data, sender, gas=gas)

    def _record(self, model_id: int, decisions: Sequence[Decision]) -> ContractFunction:
        return self.contract.functions.recordDecisions(model_id, decision_rows(decisions))

    def onchain_id(self, mined: TxResult) -> int:
        """The id of the first decision a mined recordDecisions logged (the rest follow in order): the
        lean sender's reading (`ledger.sender.first_decision_id`), so both refuse a receipt alike."""
        return first_decision_id(mined, self.contract.address)

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
