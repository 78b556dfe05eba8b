"""`is_valid_at_block` is worked out from the on-chain history and the block's clock, so that it works
on nodes that keep no old state. eth-tester keeps every state, so there it must agree with calling
`isValid` on each block's own state."""

from __future__ import annotations

import os

from eth_utils import to_checksum_address

from ledger.clients import ConsentStatus, purpose_id
from ledger.clients.base import as_bytes32
from ledger.coalition import Coalition
from tests.ledger.members import enrol

LOYALTY = purpose_id("loyalty")
PROFILING = purpose_id("profiling")


def test_it_agrees_with_is_valid_on_every_old_state(tester_coalition: Coalition) -> None:
    coalition = tester_coalition
    chain, consent = coalition.chain, coalition.consent
    partner = chain.backend.accounts[0]
    plain, expiring, never = enrol(coalition, partner, 3, loyalty=False)
    start = chain.w3.eth.block_number
    clock = int(chain.w3.eth.get_block("latest")["timestamp"])
    consent.record(partner, plain, LOYALTY, ConsentStatus.GIVEN, os.urandom(32))
    consent.record(partner, expiring, LOYALTY, ConsentStatus.GIVEN, os.urandom(32), expires_at=clock + 500)
    chain.backend.time_travel(clock + 400)
    consent.record(partner, plain, LOYALTY, ConsentStatus.WITHDRAWN, os.urandom(32))
    chain.backend.time_travel(clock + 600)  # past the expiry: the next blocks find it expired
    consent.record(partner, plain, LOYALTY, ConsentStatus.GIVEN, os.urandom(32))
    consent.record(partner, never, PROFILING, ConsentStatus.GIVEN, os.urandom(32))  # another purpose

    answers: dict[bytes, list[bool]] = {}
    for block in range(start, chain.w3.eth.block_number + 1):
        for who in (plain, expiring, never):
            on_state = chain.call(
                consent.contract.functions.isValid(
                    as_bytes32(who), to_checksum_address(partner.address), as_bytes32(LOYALTY)
                ),
                block,
            )
            derived = consent.is_valid_at_block(who, partner.address, LOYALTY, block)
            assert derived == on_state, (block, who.hex())
            answers.setdefault(who, []).append(derived)
    # blocks: before, given (plain), given (expiring), time travel, withdrawn (plain), time travel past
    # the expiry, given again (plain), profiling (never): every case came up
    assert answers[plain] == [False, True, True, True, False, False, True, True]
    assert answers[expiring] == [False, False, True, True, True, False, False, False]
    assert set(answers[never]) == {False}
