"""Deploying the six contracts, and attaching to a deployment only when its code is ours and the
Consortium, the coalition's one trust anchor, records it.

The Consortium's address is the one thing anyone must be told out of band (it is printed at `init`):
its deployer records the other five contracts in it once, at deployment, and every other address is
read from it on chain. A manifest (a home's config, a deployment file) is a cache of what the chain
says, checked against it on every attach: an address the Consortium does not record is refused, even
when the code there is genuine (a second InteractionAnchor wired to the same Consortium, say).

Which chain: the manifest also records the hash of the block the deployment was mined in
(`deployedAtBlockHash`), and the node's block at that number must have it (`ledger.reader.same_chain`,
shared with the lean reader). Every devnet deploys the six contracts from the same development account
at the same nonces (as a second network deployed with one deployer key would), so the chain id, the
addresses, the code and the Consortium's records are the same on another chain; the history is not.

For anyone who holds only a node and the Consortium's address (an auditor checking evidence bundles):
`trusted_deployment(backend, consortium)` returns the whole deployment, every address and the chain id,
read from the chain and code-checked."""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from eth_account.signers.local import LocalAccount
from eth_utils import keccak, to_checksum_address
from web3.exceptions import BlockNotFound

from ledger.backends import Backend
from ledger.chain import Chain
from ledger.clients.consortium import RECORDED_CONTRACTS, ConsortiumClient
from ledger.compiler import CONTRACT_NAMES, Artifact, Build, compile_contracts
from ledger.errors import ContractRevert, DeploymentMismatch
from ledger.reader import block_hash_text, same_chain


@dataclass(frozen=True)
class Deployment:
    """The manifest: where each contract lives on which chain, and the hash of the code found there."""

    chain_id: int
    contracts: dict[str, str]
    code_hashes: dict[str, str]
    compiler: str
    block_number: int
    founders: list[str]
    rpc_url: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    # the hash of block `block_number` (which chain); None only in a manifest written before it was kept
    block_hash: str | None = None

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        # camelCase keys: the manifest is read by other tools (cast, scripts) as much as by us
        return {
            "chainId": data["chain_id"],
            "rpcUrl": data["rpc_url"],
            "contracts": data["contracts"],
            "codeHashes": data["code_hashes"],
            "compiler": data["compiler"],
            "deployedAtBlock": data["block_number"],
            **({"deployedAtBlockHash": self.block_hash} if self.block_hash is not None else {}),
            "founders": data["founders"],
            **data["extra"],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Deployment:
        known = {
            "chainId",
            "rpcUrl",
            "contracts",
            "codeHashes",
            "compiler",
            "deployedAtBlock",
            "deployedAtBlockHash",
            "founders",
        }
        try:
            stated = data.get("deployedAtBlockHash")
            block_hash = None if stated is None else block_hash_text(stated)
            if stated is not None and block_hash is None:
                raise ValueError(f"deployedAtBlockHash {str(stated)[:80]!r} is not a block hash")
            return cls(
                chain_id=int(data["chainId"]),
                rpc_url=data.get("rpcUrl"),
                contracts={k: to_checksum_address(v) for k, v in data["contracts"].items()},
                code_hashes=dict(data["codeHashes"]),
                compiler=str(data["compiler"]),
                block_number=int(data["deployedAtBlock"]),
                block_hash=block_hash,
                founders=[to_checksum_address(a) for a in data["founders"]],
                extra={k: v for k, v in data.items() if k not in known},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DeploymentMismatch(f"not a ledgercrm deployment manifest: {exc!r}") from exc

    def save(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(self.to_json(), indent=2) + "\n")
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> Deployment:
        try:
            return cls.from_json(json.loads(path.read_text()))
        except (OSError, json.JSONDecodeError) as exc:
            raise DeploymentMismatch(f"cannot read deployment manifest {path}: {exc}") from exc


def deploy(chain: Chain, build: Build, deployer: LocalAccount, founders: Sequence[str]) -> Deployment:
    """Deploy Consortium with `founders` as its partners, then the contracts that ask it for roles, link
    the MemberRegistry to the two contracts its erasures reach, and record the five in the Consortium
    (the trust anchor), all with `deployer`'s key."""
    founders = [to_checksum_address(a) for a in founders]
    addresses: dict[str, str] = {}
    first_block = None
    first_hash = None
    for name in CONTRACT_NAMES:
        artifact = build[name]
        receipt = chain.deploy(
            artifact.abi, artifact.bytecode, _constructor_args(name, founders, addresses), deployer
        )
        created = receipt["contractAddress"]
        if created is None:
            raise DeploymentMismatch(f"deploying {name} created no contract")
        addresses[name] = to_checksum_address(created)
        if first_block is None:
            first_block, first_hash = receipt["blockNumber"], block_hash_text(receipt["blockHash"])
    registry = chain.w3.eth.contract(
        address=to_checksum_address(addresses["MemberRegistry"]), abi=build["MemberRegistry"].abi
    )
    chain.transact(
        registry, registry.functions.link(addresses["ConsentRegistry"], addresses["LoyaltyPoints"]), deployer
    )
    _consortium(chain, build, addresses["Consortium"]).record_contracts(deployer, addresses)
    code_hashes = {name: "0x" + keccak(chain.w3.eth.get_code(addr)).hex() for name, addr in addresses.items()}  # type: ignore[arg-type]
    return Deployment(
        chain_id=chain.chain_id,
        rpc_url=chain.backend.rpc_url,
        contracts=addresses,
        code_hashes=code_hashes,
        compiler=build.compiler,
        block_number=first_block or 0,
        block_hash=first_hash,
        founders=founders,
    )


def _constructor_args(name: str, founders: list[str], addresses: dict[str, str]) -> list[Any]:
    if name == "Consortium":
        return [founders]
    if name == "ConsentRegistry":
        return [addresses["Consortium"], addresses["MemberRegistry"]]
    if name in ("LoyaltyPoints", "DecisionLog"):
        return [addresses["Consortium"], addresses["MemberRegistry"], addresses["ConsentRegistry"]]
    return [addresses["Consortium"]]


def verify_deployment(
    chain: Chain, build: Build, deployment: Deployment, *, consortium: str | None = None
) -> Deployment:
    """Refuse (DeploymentMismatch) unless the chain (its id, and the hash of the block the deployment
    was mined in), every address's code hash, and the code itself (immutables aside) are what
    `deployment` and this build say, and every address but the Consortium's is the one the Consortium
    records. With `consortium` (an address given out of band), the manifest's Consortium must be that
    one. The deployment so trusted: `deployment`, with the node's block hash where it had none (a
    manifest written before it carried one: trust on first use, `ledger.reader.same_chain`)."""
    if chain.chain_id != deployment.chain_id:
        raise DeploymentMismatch(
            f"the manifest is for chain id {deployment.chain_id}, the node is chain id {chain.chain_id}"
        )
    block_hash = same_chain(
        deployment.block_number, deployment.block_hash, _block_hash(chain, deployment.block_number)
    )
    anchor = deployment.contracts.get("Consortium")
    if anchor is None:
        raise DeploymentMismatch("the manifest has no address for Consortium")
    if consortium is not None and to_checksum_address(consortium) != to_checksum_address(anchor):
        raise DeploymentMismatch(
            f"the manifest's Consortium is {anchor}, not the pinned {to_checksum_address(consortium)}:"
            " the Consortium is the trust anchor, so this is not the coalition you trust"
        )
    _check_code(chain, build, "Consortium", anchor, deployment.code_hashes.get("Consortium"))
    recorded = _recorded(chain, build, anchor)
    for name in RECORDED_CONTRACTS:
        address = deployment.contracts.get(name)
        if address is None:
            raise DeploymentMismatch(f"the manifest has no address for {name}")
        if to_checksum_address(address) != recorded[name]:
            raise DeploymentMismatch(
                f"{name}: the manifest says {to_checksum_address(address)}, but the Consortium at {anchor}"
                f" (the trust anchor) records {recorded[name]}: {address} is not this coalition's {name}"
            )
    for name in CONTRACT_NAMES:
        address = deployment.contracts.get(name)
        if address is None:
            raise DeploymentMismatch(f"the manifest has no address for {name}")
        _check_code(chain, build, name, address, deployment.code_hashes.get(name))
    return deployment if deployment.block_hash == block_hash else replace(deployment, block_hash=block_hash)


def _block_hash(chain: Chain, number: int) -> str | None:
    """The node's hash of block `number`; None if it has no such block."""
    try:
        block = chain.w3.eth.get_block(number)
    except BlockNotFound:
        return None
    found = block_hash_text(block.get("hash"))
    if found is None:
        raise DeploymentMismatch(f"the node answered block {number} without a hash")
    return found


def trusted_deployment(
    backend: Backend, consortium: str, build: Build | None = None, *, block_hash: str | None = None
) -> Deployment:
    """The deployment whose trust anchor is the Consortium at `consortium` on `backend`'s chain: the
    chain id and every contract's address as that Consortium records them, each checked to hold this
    build's code (DeploymentMismatch otherwise, e.g. no Consortium there, or one recording nothing).
    Nothing is taken from any file: this is what an auditor holding only a node and the Consortium's
    address (given out of band) trusts. Which chain is the node's to say, unless `block_hash` (given
    out of band with the address) pins the block the Consortium was deployed in."""
    build = build or compile_contracts()
    chain = Chain(backend, build.all_abis())
    anchor = to_checksum_address(consortium)
    _check_code(chain, build, "Consortium", anchor, None)
    addresses = {"Consortium": anchor, **_recorded(chain, build, anchor)}
    founders, block = _consortium(chain, build, anchor).founding()
    deployment = Deployment(
        chain_id=chain.chain_id,
        rpc_url=backend.rpc_url,
        contracts={name: addresses[name] for name in CONTRACT_NAMES},
        code_hashes={name: _code_hash(chain, addresses[name]) for name in CONTRACT_NAMES},
        compiler=build.compiler,
        block_number=block,
        block_hash=block_hash_text(block_hash) if block_hash is not None else None,
        founders=[str(a) for a in founders],
    )
    # without `block_hash` the node's is taken (nothing else is held): which chain is the node's to say
    return verify_deployment(chain, build, deployment)


def _code_hash(chain: Chain, address: str) -> str:
    return "0x" + keccak(bytes(chain.w3.eth.get_code(to_checksum_address(address)))).hex()


def _consortium(chain: Chain, build: Build, address: str) -> ConsortiumClient:
    return ConsortiumClient(
        chain, chain.w3.eth.contract(address=to_checksum_address(address), abi=build["Consortium"].abi)
    )


def _recorded(chain: Chain, build: Build, consortium: str) -> dict[str, str]:
    """The five addresses the Consortium at `consortium` records; refused if it records none."""
    try:
        recorded = _consortium(chain, build, consortium).coalition_contracts()
    except ContractRevert as exc:
        raise DeploymentMismatch(f"the Consortium at {consortium} does not answer: {exc}") from exc
    if recorded is None:
        raise DeploymentMismatch(
            f"the Consortium at {consortium} records no coalition contracts (deployed before it was the"
            " trust anchor, or its deployment did not finish): redeploy"
        )
    return dict(recorded)


def _check_code(chain: Chain, build: Build, name: str, address: str, expected: str | None) -> None:
    """Refuse unless `address` holds `name`'s code from this build (immutables aside) and, where the
    manifest gives one (`expected`), exactly the code hash it says."""
    code = bytes(chain.w3.eth.get_code(to_checksum_address(address)))
    if not code:
        raise DeploymentMismatch(f"{name}: no contract at {address} (was the chain reset?)")
    found = "0x" + keccak(code).hex()
    if expected is not None and found != expected:
        raise DeploymentMismatch(f"{name} at {address}: code hash {found}, the manifest says {expected}")
    if _mask(code, build[name]) != _mask(bytes.fromhex(build[name].deployed_bytecode[2:]), build[name]):
        raise DeploymentMismatch(
            f"{name} at {address} was built from other sources than contracts/ holds now: redeploy"
        )


def _mask(code: bytes, artifact: Artifact) -> bytes:
    """Runtime code with the immutables (set by the constructor, so per deployment) zeroed."""
    masked = bytearray(code)
    for start, length in artifact.immutable_ranges:
        masked[start : start + length] = bytes(length)
    return bytes(masked)
