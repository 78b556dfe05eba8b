"""What the chain answers, as plain values: the records both readers of the chain return (the web3
clients in `ledger.clients` and the lean JSON-RPC reader in `ledger.reader`), so that their answers
compare equal and the use cases take either.

Nothing here imports web3, eth_utils or eth_typing at run time: `decision verify` reads these without
paying for them (see `ledger.reader`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from eth_typing import ChecksumAddress

ZERO32 = b"\x00" * 32


@dataclass(frozen=True)
class Decision:
    member: bytes
    input_root: bytes
    score_bps: int
    action: bytes
    explanation_hash: bytes
    reasons: bytes = ZERO32  # one-byte reason codes (IDecisionLog.DecisionRecorded)


@dataclass(frozen=True)
class RecordedDecision:
    decision_id: int
    model_id: int
    partner: ChecksumAddress  # the partner that made (and logged) the decision
    decision: Decision
    block_number: int


@dataclass(frozen=True)
class ModelInfo:
    model_id: int
    model_hash: bytes
    card_hash: bytes
    training_root: bytes
    registrant: ChecksumAddress
    block_number: int


@dataclass(frozen=True)
class BatchInfo:
    """One anchored tree head: `size` is the partner's log size at it."""

    batch_id: int
    root: bytes
    size: int
    partner: ChecksumAddress
    block_number: int


@dataclass(frozen=True)
class Erasure:
    """One `MemberErased` event: the member, its home partner then, and the block."""

    member: bytes
    home: ChecksumAddress
    block_number: int


def recorded_decision(
    topics: Sequence[bytes], data: bytes, block_number: int, checksum: Callable[[bytes], ChecksumAddress]
) -> RecordedDecision:
    """A `DecisionRecorded` log as both readers decode it: its data is six fixed-size words, so no ABI
    decoder is needed. `checksum` is the reader's EIP-55 function (web3's or `ledger.reader`'s)."""
    word = [data[i : i + 32] for i in range(0, len(data), 32)]
    return RecordedDecision(
        decision_id=int.from_bytes(topics[1], "big"),
        model_id=int.from_bytes(word[0], "big"),
        partner=checksum(topics[3][12:]),
        decision=Decision(
            member=topics[2],
            input_root=word[1],
            score_bps=int.from_bytes(word[2], "big"),
            action=word[3],
            reasons=word[4],
            explanation_hash=word[5],
        ),
        block_number=block_number,
    )


def as_bytes32(value: bytes) -> bytes:
    """Check a bytes32 argument here, with a clear message, rather than deep inside the ABI encoder."""
    if len(value) != 32:
        raise ValueError(f"expected 32 bytes, got {len(value)}")
    return value


def decision_rows(decisions: Sequence[Decision]) -> list[tuple[bytes, bytes, int, bytes, bytes, bytes]]:
    """`recordDecisions`' array of tuples, in the contract's field order (both DecisionLog clients)."""
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
