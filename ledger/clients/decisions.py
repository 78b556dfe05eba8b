from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress

from ledger.chain import TxResult
from ledger.clients.base import ContractClient, as_bytes32


@dataclass(frozen=True)
class Decision:
    member: bytes
    input_root: bytes
    score_bps: int
    action: bytes
    explanation_hash: bytes


@dataclass(frozen=True)
class RecordedDecision:
    model_id: int
    partner: ChecksumAddress  # the partner that made (and logged) the decision
    decision: Decision
    block_number: int
    tx_hash: str


@dataclass(frozen=True)
class ModelInfo:
    model_id: int
    model_hash: bytes
    card_hash: bytes
    training_root: bytes
    registrant: ChecksumAddress
    block_number: int


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
        fn = self.contract.functions.recordDecisions(
            model_id,
            [as_bytes32(d.member) for d in decisions],
            [as_bytes32(d.input_root) for d in decisions],
            [d.score_bps for d in decisions],
            [as_bytes32(d.action) for d in decisions],
            [as_bytes32(d.explanation_hash) for d in decisions],
        )
        return self._send(sender, fn)

    def model(self, model_id: int) -> ModelInfo:
        model_hash, card_hash, training_root, registrant, block_number = self._call(
            self.contract.functions.model(model_id)
        )
        return ModelInfo(model_id, model_hash, card_hash, training_root, registrant, block_number)

    def model_count(self) -> int:
        return int(self._call(self.contract.functions.modelCount()))

    def decision_count(self) -> int:
        return int(self._call(self.contract.functions.decisionCount()))

    def decisions(self, member: bytes | None = None, from_block: int = 0) -> list[RecordedDecision]:
        """Decisions from the event log, optionally for one member (an indexed topic, so the node filters)."""
        filters = {"member": as_bytes32(member)} if member is not None else None
        logs = self.contract.events.DecisionRecorded().get_logs(
            from_block=from_block, argument_filters=filters
        )
        return [
            RecordedDecision(
                model_id=log["args"]["modelId"],
                partner=log["args"]["partner"],
                decision=Decision(
                    member=log["args"]["member"],
                    input_root=log["args"]["inputRoot"],
                    score_bps=log["args"]["scoreBps"],
                    action=log["args"]["action"],
                    explanation_hash=log["args"]["explanationHash"],
                ),
                block_number=log["blockNumber"],
                tx_hash="0x" + bytes(log["transactionHash"]).hex(),
            )
            for log in logs
        ]
