"""The chain's events about members, as they are mined: consent given or withdrawn (towards any
controller), points earned, redeemed or forfeited, and erasure. Read from the event log a range of blocks
at a time, for a stream that follows the chain (`GET /v1/events`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils import event_abi_to_log_topic, to_checksum_address

from ledger.clients.consent import ConsentClient, ConsentStatus
from ledger.clients.loyalty import LoyaltyClient
from ledger.clients.members import MemberRegistryClient


@dataclass(frozen=True)
class MemberEvent:
    """One event about a member. `partner` is the controller (consent), the partner earned at or
    redeemed at (points), or the home partner (erasure); None for a forfeiture, which names none."""

    kind: str  # consent-given, consent-withdrawn, points-earned, points-redeemed, points-forfeited, erased
    member: bytes
    block_number: int
    partner: str | None = None
    purpose: bytes | None = None  # consent
    expires_at: int | None = None  # consent given: 0 for none
    amount: int | None = None  # points


def _address(word: bytes) -> str:
    return to_checksum_address("0x" + word[-20:].hex())


def _word(data: bytes, index: int) -> int:
    return int.from_bytes(data[32 * index : 32 * (index + 1)], "big")


def member_events(
    consent: ConsentClient,
    loyalty: LoyaltyClient,
    members: MemberRegistryClient,
    from_block: int,
    to_block: int,
) -> list[MemberEvent]:
    """Every event about a member mined in blocks `from_block`..`to_block` (both included), in block
    order (one eth_getLogs per kind of event; the fields are fixed-size words, decoded here)."""
    if to_block < from_block:
        return []

    def logs(client: Any, event: Any) -> Any:
        topic = "0x" + bytes(event_abi_to_log_topic(event().abi)).hex()
        return client.chain.raw_logs(
            {"address": client.address, "fromBlock": from_block, "toBlock": to_block, "topics": [topic]}
        )

    found: list[MemberEvent] = []
    for log in logs(consent, consent.contract.events.ConsentRecorded):
        status = ConsentStatus(_word(log.data, 0))
        found.append(
            MemberEvent(
                "consent-given" if status is ConsentStatus.GIVEN else "consent-withdrawn",
                log.topics[1],
                log.block_number,
                partner=_address(log.topics[2]),
                purpose=log.topics[3],
                expires_at=_word(log.data, 2),
            )
        )
    for kind, event in (
        ("points-earned", loyalty.contract.events.PointsEarned),
        ("points-redeemed", loyalty.contract.events.PointsRedeemed),
    ):
        for log in logs(loyalty, event):
            found.append(
                MemberEvent(
                    kind,
                    log.topics[1],
                    log.block_number,
                    partner=_address(log.topics[2]),
                    amount=_word(log.data, 0),
                )
            )
    for log in logs(loyalty, loyalty.contract.events.PointsForfeited):
        found.append(
            MemberEvent("points-forfeited", log.topics[1], log.block_number, amount=_word(log.data, 0))
        )
    for log in logs(members, members.contract.events.MemberErased):
        found.append(MemberEvent("erased", log.topics[1], log.block_number, partner=_address(log.topics[2])))
    return sorted(found, key=lambda e: e.block_number)  # stable: within a block, in the order above
