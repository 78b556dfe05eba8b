import pytest
from eth_abi import encode
from eth_utils import function_signature_to_4byte_selector

from ledger import errors
from ledger.compiler import compile_contracts
from ledger.reverts import RevertDecoder


@pytest.fixture(scope="module")
def build():
    return compile_contracts()


def test_every_custom_error_in_the_abis_has_its_python_class(build):
    in_abi = {item["name"] for abi in build.all_abis() for item in abi if item["type"] == "error"}
    missing = in_abi - set(errors.NAMED_ERRORS)
    assert not missing, f"add classes to ledger/errors.py for: {sorted(missing)}"
    stale = set(errors.NAMED_ERRORS) - in_abi - {"ContractPanic"}
    assert not stale, f"ledger/errors.py names errors no contract has: {sorted(stale)}"


def test_revert_data_decodes_to_the_named_error_with_its_arguments(build):
    decoder = RevertDecoder(build.all_abis())
    selector = function_signature_to_4byte_selector("LoyaltyInsufficientBalance(bytes32,uint256,uint256)")
    member = b"\x01" * 32
    exc = decoder.decode(selector + encode(["bytes32", "uint256", "uint256"], [member, 3, 7]))
    assert type(exc) is errors.LoyaltyInsufficientBalance
    assert isinstance(exc, errors.LoyaltyError) and isinstance(exc, errors.LedgerError)
    assert (exc.member, exc.balance, exc.needed) == (member, 3, 7)
    assert "balance=3" in str(exc)


def test_addresses_come_back_checksummed(build):
    decoder = RevertDecoder(build.all_abis())
    selector = function_signature_to_4byte_selector("AnchorNotPartner(address)")
    exc = decoder.decode(selector + encode(["address"], ["0x" + "ab" * 20]))
    assert isinstance(exc, errors.AnchorNotPartner)
    assert exc.account.lower() == "0x" + "ab" * 20
    assert exc.account != exc.account.lower()


def test_panics_strings_and_unknown_data(build):
    decoder = RevertDecoder(build.all_abis())
    panic = decoder.decode(
        function_signature_to_4byte_selector("Panic(uint256)") + encode(["uint256"], [0x11])
    )
    assert isinstance(panic, errors.ContractPanic) and panic.code == 0x11
    reason = decoder.decode(
        function_signature_to_4byte_selector("Error(string)") + encode(["string"], ["no"])
    )
    assert type(reason) is errors.ContractRevert and "no" in str(reason)
    unknown = decoder.decode(b"\xde\xad\xbe\xef")
    assert type(unknown) is errors.ContractRevert and "deadbeef" in str(unknown)
    truncated = decoder.decode(function_signature_to_4byte_selector("AnchorUnknownBatch(uint256)") + b"\x00")
    assert type(truncated) is errors.ContractRevert
