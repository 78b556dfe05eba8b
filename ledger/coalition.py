"""The six contracts of one deployment, as typed clients: the ledger layer's front door."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from eth_account.signers.local import LocalAccount
from eth_utils import event_abi_to_log_topic, to_checksum_address
from web3.contract import Contract

from ledger.backends import Backend
from ledger.chain import Chain
from ledger.clients import (
    AnchorClient,
    ConsentClient,
    ConsortiumClient,
    DecisionLogClient,
    LoyaltyClient,
    MemberRegistryClient,
)
from ledger.compiler import Build, compile_contracts
from ledger.deployment import Deployment, deploy, trusted_deployment, verify_deployment


class Coalition:
    def __init__(self, chain: Chain, build: Build, deployment: Deployment) -> None:
        self.chain = chain
        self.build = build
        self.deployment = deployment
        w3 = chain.w3

        def contract(name: str) -> Contract:
            address = to_checksum_address(deployment.contracts[name])
            return w3.eth.contract(address=address, abi=build[name].abi)

        self.consortium = ConsortiumClient(chain, contract("Consortium"))
        self.members = MemberRegistryClient(chain, contract("MemberRegistry"))
        self.loyalty = LoyaltyClient(chain, contract("LoyaltyPoints"))
        self.consent = ConsentClient(chain, contract("ConsentRegistry"))
        self.anchor = AnchorClient(chain, contract("InteractionAnchor"))
        self.decisions = DecisionLogClient(chain, contract("DecisionLog"))

    @classmethod
    def deploy(
        cls,
        backend: Backend,
        founders: Sequence[LocalAccount | str],
        deployer: LocalAccount | None = None,
        build: Build | None = None,
    ) -> Coalition:
        build = build or compile_contracts()
        chain = Chain(backend, build.all_abis())
        addresses = [f if isinstance(f, str) else f.address for f in founders]
        deployment = deploy(chain, build, deployer or backend.accounts[0], addresses)
        return cls(chain, build, deployment)

    @classmethod
    def attach(
        cls,
        backend: Backend,
        deployment: Deployment,
        build: Build | None = None,
        *,
        consortium: str | None = None,
    ) -> Coalition:
        """Attach to an existing deployment after checking the chain it was mined on, its code and that
        its Consortium records every other address (DeploymentMismatch if not); with `consortium`, only
        to that Consortium's. Its `deployment` is the one trusted: with the block hash read from the node
        where `deployment` had none (trust on first use)."""
        build = build or compile_contracts()
        chain = Chain(backend, build.all_abis())
        trusted = verify_deployment(chain, build, deployment, consortium=consortium)
        return cls(chain, build, trusted)

    @classmethod
    def trusted(
        cls, backend: Backend, consortium: str, build: Build | None = None, *, block_hash: str | None = None
    ) -> Coalition:
        """Attach to the deployment the Consortium at `consortium` records, read from the chain alone (with
        `block_hash`, only on the chain whose block the Consortium was deployed in has that hash)."""
        build = build or compile_contracts()
        deployment = trusted_deployment(backend, consortium, build, block_hash=block_hash)
        return cls(Chain(backend, build.all_abis()), build, deployment)

    def check_trust(self, consortium: str | None = None) -> Deployment:
        """Check again, on the chain, that the contracts in use are the ones the Consortium (`consortium`
        if given: an address trusted out of band) records, with this build's code; the deployment so
        trusted (DeploymentMismatch, naming the contract, otherwise)."""
        verify_deployment(self.chain, self.build, self.deployment, consortium=consortium)
        return self.deployment

    @property
    def consortium_address(self) -> str:
        """The trust anchor: the one address everything else is read from."""
        return self.deployment.contracts["Consortium"]

    def forked(self) -> None:
        """In a process forked from this one: connections of its own to the node (a node over JSON-RPC;
        one in process needs none)."""
        forked = getattr(self.chain.backend, "forked", None)
        if forked is not None:
            forked()

    @property
    def remote(self) -> bool:
        """Whether the node is reached over JSON-RPC (then reads are worth overlapping in threads), not
        in this process."""
        return self.chain.backend.rpc_url is not None

    def block_number(self) -> int:
        """The latest block's number."""
        return int(self.chain.w3.eth.block_number)

    def event_counts(self, from_block: int, to_block: int) -> Counter[str]:
        """How many of each event the six contracts logged in blocks `from_block`..`to_block` (one
        eth_getLogs over the six addresses), by event name: what a monitor reports it saw go by."""
        clients = (self.consortium, self.members, self.loyalty, self.consent, self.anchor, self.decisions)
        names = {
            bytes(event_abi_to_log_topic(abi)): str(abi["name"])
            for client in clients
            for abi in client.contract.abi
            if abi["type"] == "event"
        }
        logs = self.chain.raw_logs(
            {"address": [c.address for c in clients], "fromBlock": from_block, "toBlock": to_block}
        )
        return Counter(names.get(log.topics[0], "other") for log in logs if log.topics)

    def block_hash(self, number: int) -> bytes | None:
        """The hash of block `number`, or None if the chain has no such block (yet, or any more)."""
        if number > self.block_number():
            return None
        try:
            return bytes(self.chain.w3.eth.get_block(number)["hash"])
        except Exception:  # a node that no longer has it (rewound, pruned): no such block here
            return None
