"""The `hardhat-free-devnet/devnet` command, run as a user would: a real anvil, a real subprocess.

Every test uses its own port and state dir, so it never meets the developer's devnet on 8545 or the
anvils of other tests running in parallel."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_utils import keccak

from ledger.anvil import anvil_binary, free_port, stop_process
from ledger.backends import RpcBackend
from ledger.clients import ConsentStatus, purpose_id
from ledger.coalition import Coalition
from ledger.deployment import Deployment
from ledger.errors import BackendError
from ledger.paths import PROJECT_ROOT, npm_binary

try:
    anvil_binary()
except BackendError as exc:
    pytest.skip(f"the devnet needs anvil: {exc}", allow_module_level=True)

pytestmark = pytest.mark.anvil

DEVNET = PROJECT_ROOT / "hardhat-free-devnet" / "devnet"
MANIFEST_KEYS = {
    "chainId",
    "rpcUrl",
    "contracts",
    "codeHashes",
    "compiler",
    "deployedAtBlock",
    "deployedAtBlockHash",
    "founders",
}
CONTRACTS = {
    "Consortium",
    "MemberRegistry",
    "LoyaltyPoints",
    "ConsentRegistry",
    "InteractionAnchor",
    "DecisionLog",
}
# anvil's default mnemonic, accounts 0, 1 and 2: the founding partners `up` deploys with.
FOUNDERS = [
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
]


@dataclass
class Devnet:
    port: int
    state_dir: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def manifest(self) -> Path:
        return self.state_dir / "deployment.json"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "anvil.pid"

    def run(self, command: str) -> subprocess.CompletedProcess[str]:
        env = {
            **os.environ,
            "DEVNET_PORT": str(self.port),
            "DEVNET_STATE_DIR": str(self.state_dir),
            # the interpreter running the tests, whichever virtualenv that is
            "LEDGERCRM_PYTHON": sys.executable,
        }
        return subprocess.run(
            [str(DEVNET), command], env=env, capture_output=True, text=True, timeout=120, check=False
        )

    def ok(self, command: str) -> subprocess.CompletedProcess[str]:
        result = self.run(command)
        assert result.returncode == 0, f"devnet {command}: {result.stdout}{result.stderr}"
        return result

    def pid(self) -> int:
        return int(self.pid_file.read_text())

    def coalition(self) -> tuple[RpcBackend, Coalition]:
        backend = RpcBackend(self.url)
        return backend, Coalition.attach(backend, Deployment.load(self.manifest))

    def teardown(self) -> None:
        self.run("down")
        if self.pid_file.is_file():
            # `down` failed (it removes the pid file when anvil is gone): never leave our anvil behind.
            stop_process(self.pid(), timeout=5)


def new_devnet(tmp_path: Path) -> Devnet:
    return Devnet(free_port(), tmp_path / "state")


@pytest.fixture(scope="module")
def devnet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Devnet]:
    """One devnet brought up for the module (deploying costs a few seconds), always taken down."""
    net = new_devnet(tmp_path_factory.mktemp("devnet"))
    try:
        net.ok("up")
        yield net
    finally:
        net.teardown()


def enrol_with_loyalty(coalition: Any, home: Any, member: bytes) -> None:
    """What earning needs: the member enrolled by `home`, with its loyalty consent attested there."""
    coalition.members.enrol(home, [member], [None])
    coalition.consent.record(home, member, purpose_id("loyalty"), ConsentStatus.GIVEN, keccak(text="receipt"))


def cast(*args: str) -> str:
    binary = npm_binary("cast")
    if not binary.is_file():
        pytest.skip(f"cast not found at {binary}: run `npm ci`")
    result = subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_status_fails_before_up(tmp_path: Path) -> None:
    net = new_devnet(tmp_path)
    result = net.run("status")
    assert result.returncode == 1
    assert "no node answers" in result.stderr


def test_down_when_not_running_is_a_no_op(tmp_path: Path) -> None:
    result = new_devnet(tmp_path).ok("down")
    assert "not running" in result.stdout


def test_up_refuses_a_port_taken_by_something_else(tmp_path: Path) -> None:
    net = new_devnet(tmp_path)
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", net.port))
        squatter.listen()
        result = net.run("up")
    assert result.returncode != 0
    assert f"port {net.port} is taken" in result.stderr
    assert not net.pid_file.exists()


def test_up_deploys_and_status_verifies(devnet: Devnet) -> None:
    result = devnet.ok("status")
    assert "31337" in result.stdout
    manifest = json.loads(devnet.manifest.read_text())
    assert manifest.keys() >= MANIFEST_KEYS
    assert manifest["chainId"] == 31337
    assert manifest["rpcUrl"] == devnet.url
    assert set(manifest["contracts"]) == CONTRACTS
    assert manifest["founders"] == FOUNDERS
    for address in manifest["contracts"].values():
        assert address in result.stdout


def test_up_again_is_a_no_op(devnet: Devnet) -> None:
    pid, manifest = devnet.pid(), devnet.manifest.read_bytes()
    result = devnet.ok("up")
    assert "already up" in result.stdout
    assert devnet.pid() == pid
    assert devnet.manifest.read_bytes() == manifest


def test_down_and_up_keep_the_chain_state(devnet: Devnet) -> None:
    member = keccak(text="member:restart")
    backend, coalition = devnet.coalition()
    enrol_with_loyalty(coalition, backend.accounts[1], member)
    coalition.loyalty.earn(backend.accounts[1], member, 1234)
    contracts, pid = devnet.manifest.read_bytes(), devnet.pid()

    devnet.ok("down")
    assert not devnet.pid_file.exists()
    assert devnet.run("status").returncode == 1
    result = devnet.ok("up")
    assert "state restored" in result.stdout

    assert devnet.pid() != pid
    assert devnet.manifest.read_bytes() == contracts  # not redeployed
    devnet.ok("status")
    backend, coalition = devnet.coalition()
    assert coalition.loyalty.balance_of(member) == 1234
    assert coalition.loyalty.issued_by(backend.accounts[1].address) >= 1234


def test_cast_reads_the_deployed_contracts(devnet: Devnet) -> None:
    member = keccak(text="member:cast")
    backend, coalition = devnet.coalition()
    enrol_with_loyalty(coalition, backend.accounts[0], member)
    coalition.loyalty.earn(backend.accounts[0], member, 250)
    contracts = coalition.deployment.contracts

    partners = cast("call", contracts["Consortium"], "partners()(address[])", "--rpc-url", devnet.url)
    assert partners == "[" + ", ".join(FOUNDERS) + "]"
    balance = cast(
        "call",
        contracts["LoyaltyPoints"],
        "balanceOf(bytes32)(uint256)",
        "0x" + member.hex(),
        "--rpc-url",
        devnet.url,
    )
    assert balance.split()[0] == "250"
