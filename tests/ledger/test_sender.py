"""The lean sender's transactions (ledger/sender.py) are eth_account's, byte for byte: the same key gives
the same address, and the same fields the same signed EIP-1559 transaction and hash, across the lengths
where RLP changes form (empty, one byte under 0x80, 55 and 56 bytes, long data) and large values."""

from __future__ import annotations

import pytest
from eth_account import Account

from ledger.sender import Fees, LocalKey, rlp, signed_eip1559

KEYS = [
    bytes.fromhex("ac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80"),
    (1).to_bytes(32, "big"),
    bytes.fromhex("fffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364140"),  # the order - 1
]
DATAS = [b"", b"\x01", b"\x80", bytes(55), bytes(56), bytes(range(256)) * 9]
TO = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


@pytest.mark.parametrize("key", KEYS, ids=["anvil-0", "one", "order-1"])
@pytest.mark.parametrize("data", DATAS, ids=["empty", "01", "80", "55", "56", "2304"])
def test_signed_as_eth_account_signs(key, data):
    ours = LocalKey(key)
    theirs = Account.from_key(key)
    assert ours.address == theirs.address
    for nonce, gas, priority, base, chain_id in [
        (0, 21_000, 0, 0, 31337),
        (1, 20_100_000, 1, 7, 1),
        (2**64 - 2, 29_000_000, 10**9, 2**120, 2**31),
    ]:
        fees = Fees(priority, priority + 2 * base)
        signed = signed_eip1559(ours, chain_id=chain_id, nonce=nonce, gas=gas, fees=fees, to=TO, data=data)
        expected = theirs.sign_transaction(
            {
                "to": TO,
                "data": data,
                "value": 0,
                "nonce": nonce,
                "gas": gas,
                "chainId": chain_id,
                "maxPriorityFeePerGas": fees.max_priority_fee,
                "maxFeePerGas": fees.max_fee,
            }
        )
        assert signed.raw == bytes(expected.raw_transaction)
        assert signed.tx_hash == "0x" + bytes(expected.hash).hex()


def test_key_files_and_bad_keys():
    text = "0x" + KEYS[0].hex()
    assert LocalKey.from_text(text + "\n").address == Account.from_key(text).address
    assert LocalKey.from_text(KEYS[0].hex()).key == KEYS[0]
    for bad in ("", "0x12", "0x" + "g" * 64, "0x" + "0" * 64, "0x" + "f" * 64, text + "00"):
        with pytest.raises(ValueError):
            LocalKey.from_text(bad)


def test_rlp_of_the_edges():
    assert rlp(0) == b"\x80" and rlp(127) == b"\x7f" and rlp(128) == b"\x81\x80"
    assert rlp([]) == b"\xc0" and rlp(b"") == b"\x80"
    assert rlp(bytes(56))[:2] == b"\xb8\x38" and rlp([bytes(55)])[:2] == b"\xf8\x38"
    with pytest.raises(ValueError):
        rlp(-1)
