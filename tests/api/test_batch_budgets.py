"""An import's batches follow the node's block gas limit (less 1M): a node of a smaller block than the
30M the caps were quoted at still gets batches that fit it, and a 60M node gets fuller ones, half as
many. Each on an anvil of its own with that block (full batches: py-evm would take seconds for each)."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_utils import function_abi_to_4byte_selector

from api.context import Crm
from api.evidence.verification import verify_all
from api.principal import Principal
from api.settings import Settings
from api.usecases.imports import import_synthetic
from api.usecases.loyalty import reconcile
from api.usecases.partners import register_partner
from ledger.anvil import free_port, start_anvil
from ledger.backends import RpcBackend
from ledger.coalition import Coalition
from ledger.errors import BackendError

P = Principal.of_partner
OP = Principal.operator()
SELECTORS = {"enrolBatch": "members", "recordBatch": "consent", "earnBatch": "loyalty"}


def crm_on_anvil(tmp_path: Path, gas_limit: int) -> Iterator[Crm]:
    try:
        port = free_port()
        process = start_anvil(port, gas_limit=gas_limit)
    except BackendError as exc:
        pytest.skip(f"anvil is not available: {exc}")
    try:
        backend = RpcBackend(f"http://127.0.0.1:{port}")
        coalition = Coalition.deploy(backend, founders=backend.accounts[:3], deployer=backend.accounts[0])
        crm = Crm.open(Settings(environment="development", home=tmp_path, batch_max_leaves=64), coalition)
        register_partner(crm, "acme", backend.accounts[0])
        try:
            yield crm
        finally:
            crm.close()
    finally:
        process.terminate()
        process.wait(timeout=15)


@pytest.fixture
def small_block(tmp_path: Path) -> Iterator[Crm]:
    """A node of a 20M block: less than the 30M one every batch was cut for until 2026-12-08."""
    yield from crm_on_anvil(tmp_path, 20_000_000)


@pytest.fixture
def large_block(tmp_path: Path) -> Iterator[Crm]:
    yield from crm_on_anvil(tmp_path, 60_000_000)


def batches(crm: Crm) -> dict[str, list[int]]:
    """The gas bound of every enrolBatch, recordBatch and earnBatch on the chain, by function, in order."""
    chain = crm.coalition.chain
    coalition = crm.coalition
    names = {}
    for name, client in SELECTORS.items():
        abi = getattr(coalition, client).contract.get_function_by_name(name).abi
        names["0x" + function_abi_to_4byte_selector(abi).hex()] = name
    found: dict[str, list[int]] = {name: [] for name in SELECTORS}
    for number in range(chain.block_number() + 1):
        block: Any = chain.w3.eth.get_block(number, full_transactions=True)
        for tx in block["transactions"]:
            called = names.get("0x" + bytes(tx["input"][:4]).hex())
            if called is not None:
                found[called].append(int(tx["gas"]))
    return found


def test_a_node_with_a_smaller_block_gets_batches_that_fit_it(small_block):
    """300 consents (a bound of 25.6M) and 300 members' earnings pass a 20M block: cut at 19M they are
    sent, each bound under the block's limit, and everything is on chain once."""
    crm = small_block
    report = import_synthetic(crm, P("acme"), seed=5, customers=300, interactions=3000, in_process=True)
    assert (report.customers_new, report.consents_recorded) == (300, 300)
    sent = batches(crm)
    assert len(sent["recordBatch"]) == 2 and len(sent["earnBatch"]) >= 2
    assert max(max(gas) for gas in sent.values()) <= 19_000_000
    assert verify_all(crm, "acme").ok and reconcile(crm, OP).ok


def test_a_node_with_a_60m_block_gets_fuller_batches(large_block):
    """600 consents: one recordBatch under a 60M block (692 fit in 59M), where a 30M block's budget
    takes 340; and earnings as large as 59M allows."""
    crm = large_block
    report = import_synthetic(crm, P("acme"), seed=5, customers=600, interactions=6000, in_process=True)
    assert (report.customers_new, report.consents_recorded) == (600, 600)
    sent = batches(crm)
    assert len(sent["enrolBatch"]) == 1 and len(sent["recordBatch"]) == 1
    assert 29_000_000 < max(sent["recordBatch"]) <= 59_000_000
    assert all(gas <= 59_000_000 for gas in sent["earnBatch"])
    assert verify_all(crm, "acme").ok and reconcile(crm, OP).ok
