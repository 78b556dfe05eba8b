"""py_ecc's BLS modules wait for their first use (ledger.deferred): what uses them still gets the real
ones, and the constant the stand-in holds is the curve's."""

from __future__ import annotations

import sys

from ledger import deferred


def test_the_curve_order_the_stand_in_holds_is_the_real_modules() -> None:
    from eth_keyfile.keyfile import MAX_V4_PRIVATE_KEY

    real = deferred.real("py_ecc.bls12_381")
    assert real.curve_order == deferred.BLS12_381_ORDER
    assert real.curve_order - 1 == MAX_V4_PRIVATE_KEY
    assert sys.modules["py_ecc.bls12_381"] is real  # from now on everyone gets the real one


def test_bls_keystores_still_work_through_the_stand_in() -> None:
    from eth_keyfile import keyfile

    bls = keyfile.bls  # type: ignore[attr-defined]  # what eth_keyfile imported: the stand-in

    real = deferred.real("py_ecc.bls").G2ProofOfPossession
    assert bls.SkToPk(12345) == real.SkToPk(12345)
    assert deferred.loaded("py_ecc.bls")
    # an EIP-2335 (v4) keystore: its public key is BLS
    made = keyfile.create_keyfile_json(b"\x01" * 32, b"pass", version=4, kdf="pbkdf2", iterations=2)
    assert made["pubkey"] == real.SkToPk(int.from_bytes(b"\x01" * 32, "big")).hex()
    assert keyfile.decode_keyfile_json(made, b"pass") == b"\x01" * 32


def test_a_submodule_of_a_deferred_package_imports_as_it_would() -> None:
    # py-evm's BLS precompiles import these directly (eth-tester's chain)
    from py_ecc.bls.hash_to_curve import hash_to_G2

    assert hash_to_G2 is deferred.real("py_ecc.bls").hash_to_curve.hash_to_G2


def test_web3_takes_aiohttps_classes_as_stand_ins_that_act_as_the_real_ones() -> None:
    """web3 imports aiohttp for its async providers (nothing here runs them): the classes it takes at its
    import are stand-ins, and calling one, reading from it or checking against it is the real class's."""
    from web3._utils import http_session_manager as web3_http

    stand_in = web3_http.ClientTimeout  # type: ignore[attr-defined]
    assert isinstance(stand_in, deferred._DeferredClass)  # web3 was imported with the stand-in in place
    assert (web3_http.ClientSession | None) is not None  # type: ignore[attr-defined]  # as in web3's signatures
    timeout = stand_in(total=5)
    aiohttp = deferred.real("aiohttp")
    assert type(timeout) is aiohttp.ClientTimeout and timeout.total == 5
    assert isinstance(timeout, stand_in) and issubclass(aiohttp.ClientTimeout, stand_in)
    assert stand_in.__name__ == "ClientTimeout" and stand_in.total is aiohttp.ClientTimeout.total
    assert deferred.loaded("aiohttp") and sys.modules["aiohttp"] is aiohttp
