"""The trust anchor and the keys of a home, as a hostile partner and a careful operator meet them
through the CLI (issue 30: high 1, medium 12). One process per command, against anvil."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest
from eth_account import Account
from web3.types import Wei

import api.usecases.home as home_module
from api.usecases.home import open_crm
from tests.api.clirunner import new_home
from tests.api.clirunner import run as cli
from tests.fixtures.twins import twin


@pytest.fixture
def home(tmp_path, anvil_url):
    return new_home(tmp_path / "home", anvil_url)


def _config(home):
    return json.loads((home / "config.json").read_text())


def _member_with_two_purchases(home) -> str:
    cli(home, "partner", "add", "acme")
    out = cli(
        home, "customer", "add", "--partner", "acme", "--name", "Alice Q", "--email", "alice@example.org"
    )
    member = out.strip().splitlines()[-1]
    for total in ("12.5", "99.0"):
        cli(home, "interaction", "add", "--partner", "acme", "--member", member, "--kind", "purchase",
            "--data", json.dumps({"total": float(total)}))  # fmt: skip
    cli(home, "anchor")
    assert "2 verified" in cli(home, "verify", "--all")
    return member


def _reanchor_without_the_last_record(home) -> str:
    """What a partner in control of its host can do: deploy a second, genuine InteractionAnchor wired
    to the real Consortium, delete a record from its store, anchor the rest afresh on the new contract,
    and point the home's config at it (code hash and all: the code is the same). Returns its address."""
    crm = open_crm(home)
    try:
        artifact = crm.coalition.build["InteractionAnchor"]
        receipt = crm.coalition.chain.deploy(
            artifact.abi, artifact.bytecode, [crm.coalition.consortium_address], crm.signers["acme"]
        )
        second = str(receipt["contractAddress"])
    finally:
        crm.close()
    with sqlite3.connect(home / "data.sqlite") as db:
        db.execute("DELETE FROM interactions WHERE id = (SELECT max(id) FROM interactions)")
        db.execute("UPDATE interactions SET batch_id = NULL, leaf_index = NULL, proof = NULL")
        db.execute("DELETE FROM batches")
    config = _config(home)
    config["deployment"]["contracts"]["InteractionAnchor"] = second
    (home / "config.json").write_text(json.dumps(config, indent=2))
    return second


def test_a_second_anchor_edited_into_the_config_fails_verify_naming_it(home):
    _member_with_two_purchases(home)
    consortium = _config(home)["consortium"]
    second = _reanchor_without_the_last_record(home)
    # Before the Consortium was the trust anchor, `anchor` re-anchored the shortened log on the second
    # contract and `verify --all` passed ("1 verified"). Now the home's config is checked against the
    # Consortium's own record on every command:
    refused = cli(home, "verify", "--all", code=1)
    assert len(refused.strip().splitlines()) == 1
    assert f"InteractionAnchor: the manifest says {second}" in refused and consortium in refused
    assert "is not this coalition's InteractionAnchor" in refused
    assert second in cli(home, "anchor", code=1)  # and nothing is anchored on it
    assert "Traceback" not in refused


def test_verify_says_what_it_trusted_and_takes_a_pinned_consortium(home, tmp_path):
    _member_with_two_purchases(home)
    consortium = _config(home)["consortium"]
    chain_id = _config(home)["deployment"]["chainId"]
    out = cli(home, "verify", "--all")
    assert f"trusted: chain id {chain_id}, Consortium {consortium} (this home's" in out
    pinned = cli(home, "verify", "--all", "--consortium", consortium.lower())
    assert f"Consortium {consortium} (pinned)" in pinned and "2 verified" in pinned
    stranger = Account.create().address
    refused = cli(home, "verify", "--all", "--consortium", stranger, code=1)
    assert f"not the pinned {stranger}" in refused and len(refused.strip().splitlines()) == 1
    assert "0x + 40 hex digits" in cli(home, "verify", "--all", "--consortium", "0x12", code=2)


def test_init_prints_the_trust_anchor_and_pins_it(home, tmp_path, anvil_url):
    consortium = _config(home)["consortium"]
    assert consortium == _config(home)["deployment"]["contracts"]["Consortium"]
    # another home (an auditor's, a second partner's) attaches from the Consortium's address alone
    other = tmp_path / "other"
    out = cli(other, "init", "--chain", anvil_url, "--consortium", consortium)
    assert f"trust anchor: Consortium {consortium}" in out
    assert "attached to the contracts this Consortium records" in out
    block_hash = _config(home)["deployment"]["deployedAtBlockHash"]
    assert _config(other)["deployment"]["deployedAtBlockHash"] == block_hash  # which chain, in its manifest
    assert f"an auditor pins both with --consortium {consortium}@{block_hash}" in out
    assert _config(other)["deployment"]["contracts"] == _config(home)["deployment"]["contracts"]
    # a manifest that is not the pinned Consortium's is refused, and no home is created
    manifest = tmp_path / "deployment.json"
    manifest.write_text(json.dumps(_config(home)["deployment"]))
    stranger = Account.create().address
    third = tmp_path / "third"
    pinning = ["--deployment", str(manifest), "--consortium", stranger]
    refused = cli(third, "init", "--chain", anvil_url, *pinning, code=1)
    assert f"not the pinned {stranger}" in refused
    assert not (third / "config.json").exists()
    assert "Consortium: no contract at" in cli(
        third, "init", "--chain", anvil_url, "--consortium", stranger, code=1
    )
    assert not (third / "config.json").exists()


# --- which chain: a twin of the deployment on another chain ------------------------------------------------


def test_a_home_pointed_at_a_twin_on_another_chain_is_refused_by_every_opening(home, second_anvil_url):
    """Every devnet deploys the six contracts from the same account at the same nonces: a second chain has
    the same chain id, addresses, code and Consortium records, and every command took it for the home's
    chain (`score` was stopped only by a model hash). The block the deployment was mined in is pinned;
    a home made before it was kept takes its node's once."""
    from api.usecases.home_open import open_crm_to_decide
    from ledger.deployment import Deployment

    config = _config(home)
    pinned = config["deployment"]["deployedAtBlockHash"]
    block = config["deployment"]["deployedAtBlock"]
    with twin(Deployment.from_json(config["deployment"]), second_anvil_url) as copy:
        (home / "config.json").write_text(json.dumps({**config, "rpc_url": second_anvil_url}))
        node = copy.chain.w3.eth
        head, sent = node.block_number, node.get_transaction_count(node.accounts[0])
        words = (
            f"this node's block {block} is {copy.deployment.block_hash}, the coalition's is {pinned}:"
            " a different chain"
        )
        for command in (
            ("verify", "--all"),
            ("partner", "add", "acme"),
            ("score", "--partner", "acme", "--all"),
        ):
            refused = cli(home, *command, code=1)
            assert refused.strip().splitlines() == [f"error: {words}"], command
        nothing_sent = (head, sent)
        assert (node.block_number, node.get_transaction_count(node.accounts[0])) == nothing_sent
        assert not (home / "keys" / "acme.key").exists()
    (home / "config.json").write_text(json.dumps(config))  # the home's own chain: every opening passes
    assert "0 checked" in cli(home, "verify", "--all")
    open_crm_to_decide(home).close()

    # A home made before the manifest kept the hash: trust on first use. The first opening whose checks
    # pass writes its node's (here `score`'s, without web3), and from then on the twin is refused.
    del config["deployment"]["deployedAtBlockHash"]
    (home / "config.json").write_text(json.dumps(config))
    open_crm_to_decide(home).close()
    assert _config(home)["deployment"]["deployedAtBlockHash"] == pinned
    with twin(Deployment.from_json(config["deployment"]), second_anvil_url):
        (home / "config.json").write_text(json.dumps({**_config(home), "rpc_url": second_anvil_url}))
        refused = cli(home, "verify", "--all", code=1).strip()
        assert refused.endswith(f", the coalition's is {pinned}: a different chain") and "\n" not in refused


# --- medium 12: the public test keys outside a development chain ------------------------------------------


@pytest.fixture
def production_node(monkeypatch):
    """The test's anvil, taken for a node that is not a development chain (as a Besu network is)."""
    monkeypatch.setattr(home_module, "is_development_node", lambda backend: False)


def _funded_key(tmp_path, anvil_url):
    from ledger.backends import RpcBackend

    backend = RpcBackend(anvil_url)
    key = Account.create()
    w3 = backend.w3
    tx = w3.eth.send_transaction({"from": w3.eth.accounts[0], "to": key.address, "value": Wei(10**20)})
    w3.eth.wait_for_transaction_receipt(tx)
    path = tmp_path / "founder.key"
    path.write_text("0x" + bytes(key.key).hex() + "\n")
    return key, path


def test_outside_a_development_chain_the_public_test_keys_are_refused(tmp_path, anvil_url, production_node):
    home = tmp_path / "prod"
    refused = cli(home, "init", "--chain", anvil_url, code=1)
    assert "not a development chain" in refused and "--key-file" in refused
    assert not (home / "config.json").exists()
    public = tmp_path / "public.key"
    public.write_text("0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80\n")  # mnemonic #0
    refused = cli(home, "init", "--chain", anvil_url, "--key-file", str(public), code=1)
    assert "is a public test key" in refused
    assert not (home / "config.json").exists()

    founder, founder_file = _funded_key(tmp_path, anvil_url)
    out = cli(home, "init", "--chain", anvil_url, "--key-file", str(founder_file))
    assert f"deployed new contracts there with {founder.address}, the founding partner" in out
    assert "the public test keys are refused here" in out
    assert _config(home)["deployment"]["founders"] == [founder.address]
    assert f"partner acme: {founder.address}" in cli(home, "partner", "add", "acme", "--key-file",
                                                     str(founder_file))  # fmt: skip
    fresh = cli(home, "partner", "add", "borealis")
    assert "generated a new signing key for borealis" in fresh
    address = re.search(r"fund (0x[0-9a-fA-F]{40})", fresh)
    assert address is not None and address.group(1) != founder.address
    from ledger.backends import public_test_addresses

    assert address.group(1) not in public_test_addresses()
    assert "is a public test key" in cli(home, "partner", "add", "cafe", "--key-file", str(public), code=1)
    assert not (home / "keys" / "cafe.key").exists()


def test_a_development_node_is_told_by_what_it_says_it_is(anvil_url):
    from ledger.backends import EthTesterBackend, RpcBackend, is_development_node

    assert is_development_node(RpcBackend(anvil_url))  # anvil says "anvil/v..."
    assert is_development_node(EthTesterBackend())

    class Besu:  # what a production node answers web3_clientVersion with
        rpc_url = "http://besu.example:8545"

        class w3:  # noqa: N801
            client_version = "besu/v24.12.2/linux-x86_64/openjdk-java-21"

    assert not is_development_node(Besu())  # type: ignore[arg-type]
