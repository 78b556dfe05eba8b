"""What a member costs a node that keeps every storage slot a transaction touched (anvil: its state root,
computed again each block, hashes every slot it holds, so each slot a member leaves behind costs every
later block; issue #32). Anvil only: eth-tester keeps no such map."""

from __future__ import annotations

import gzip
import json

import pytest
from eth_utils import keccak

from ledger.backends import RpcBackend
from ledger.coalition import Coalition
from tests.ledger.members import customer


def storage_of(coalition: Coalition, address: str) -> dict[int, int]:
    dumped = coalition.chain.w3.provider.make_request("anvil_dumpState", [])["result"]  # type: ignore[arg-type]
    state = json.loads(gzip.decompress(bytes.fromhex(dumped[2:])))
    for found, account in state["accounts"].items():
        if found.lower() == address.lower():
            return {int(key, 16): int(value, 16) for key, value in (account.get("storage") or {}).items()}
    raise LookupError(address)


def test_a_keyless_members_consent_and_points_leave_one_registry_slot(coalition):
    if not isinstance(coalition.chain.backend, RpcBackend):
        pytest.skip("the slots a node keeps are an anvil matter")
    home = coalition.chain.backend.accounts[0]
    member = customer(coalition, home)  # enrolled without a key, loyalty consent attested
    coalition.loyalty.earn(home, member, 5)
    storage = storage_of(coalition, coalition.members.address)
    # the member's record: the slot of `_members[member]` holding its home (its position in the
    # contract's layout found by looking, so the test does not depend on it)
    bases = [
        base
        for base in (int.from_bytes(keccak(member + i.to_bytes(32, "big")), "big") for i in range(16))
        if storage.get(base) == int(home.address, 16)
    ]
    assert len(bases) == 1
    # its second slot (signer, round) is zero for a member without a key; a consent and an earn read
    # only the first, so the node holds nothing more for this member
    assert bases[0] + 1 not in storage
