"""Starting and stopping an anvil node from the npm install (`@foundry-rs/anvil-linux-amd64`)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ledger.errors import BackendError
from ledger.paths import npm_binary

DEVNET_CHAIN_ID = 31337
KEPT_STATES = 16  # recent block states anvil keeps in memory (see start_anvil)
# The devnet's block gas limit: mainnet's since late 2025 (anvil 1.7's default is 30M). The batches follow
# the node's limit (`Chain.batch_gas_budget`), so a 60M block carries twice a 30M one's, and anvil's time
# per block follows its whole state (a state-root rebuild each): half the blocks, less of that time.
DEVNET_GAS_LIMIT = 60_000_000


def anvil_binary() -> Path:
    path = Path(os.environ.get("LEDGERCRM_ANVIL", npm_binary("anvil")))
    if not path.is_file():
        raise BackendError(f"anvil not found at {path}: run `npm ci` in the project root")
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rpc_answers(url: str, timeout: float = 1.0) -> bool:
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "eth_chainId", "params": []}).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return "result" in json.loads(response.read())
    except (OSError, ValueError):
        return False


def start_anvil(
    port: int,
    *,
    chain_id: int = DEVNET_CHAIN_ID,
    state_file: Path | None = None,
    log_file: Path | None = None,
    detach: bool = False,
    startup_timeout: float = 30.0,
    gas_limit: int = DEVNET_GAS_LIMIT,
) -> subprocess.Popen[bytes]:
    """Start anvil on 127.0.0.1:`port`, its blocks of `gas_limit` gas, and wait until it answers.

    With `state_file`, state is loaded from it at start and written to it every second and on exit,
    so a restart keeps the chain. `detach` puts anvil in its own session so it outlives this process.

    The node keeps the states of the last few blocks only, in memory (`--prune-history N`): by default
    anvil writes every block's state to ~/.foundry/anvil/tmp without limit and leaves it there, and that
    write grows with the contracts' storage, so a long import got slower block after block (a
    1M-interaction import left 35 GB behind). Nothing here reads state at an old block: consent
    history, anchors and decisions are kept in contract storage and events, which pruning does not
    touch. A few states rather than one: a call made at "latest" while the next block is mined must
    still find the state it was resolved to (with one, anvil answered BlockOutOfRangeError). Not many
    more: each is a copy of the whole state (64 of them took anvil to 2.1 GB in a 1M import).

    What pruning does not change: anvil's time per block grows with the contracts' storage (measured:
    an earnBatch of 400 new members took 59 ms at 40k members, 124 ms at 80k, 178 ms at 120k, with or
    without history; an empty block ~370 ms at the end of a 1M import, its state root computed again
    over every slot the node holds), which is what makes a 1M import slower per item than a 100k one on
    anvil: what keeps it down is fewer blocks, each batch filling one (ledger/clients/base.py).

    The base fee is zero and stays zero (`--block-base-fee-per-gas 0`: anvil then takes it as set, not
    as EIP-1559's to adjust), as on a consortium's free-gas network (Besu's `zeroBaseFee`). With the
    market's rule a block more than half full raises the next block's base fee by up to 12.5%: an
    import of full batches (~90% of a block each) raised it ~10% a block, doubling it every ~7 blocks,
    and a 1M import stopped when its partner account (10,000 ETH) could no longer pay for a 29M-gas
    batch ("Insufficient funds for gas * price + value"; from anvil's 1 gwei, ~130 such blocks)."""
    command = [str(anvil_binary()), "--host", "127.0.0.1", "--port", str(port), "--chain-id", str(chain_id)]
    command += ["--prune-history", str(KEPT_STATES), "--block-base-fee-per-gas", "0"]
    command += ["--gas-limit", str(gas_limit)]  # DEVNET_GAS_LIMIT: see there
    if state_file is not None:
        command += ["--state", str(state_file), "--state-interval", "1"]
    url = f"http://127.0.0.1:{port}"
    # a node already on the port would answer for ours, which exits at once ("Address already in use"):
    # everything sent to "our" chain would go to someone else's (seen when two free_port()s raced)
    if rpc_answers(url, timeout=0.5):
        raise BackendError(f"a node already answers on {url}: choose another port")
    log = open(log_file, "ab") if log_file else subprocess.DEVNULL  # noqa: SIM115 - handed to the child
    try:
        process = subprocess.Popen(
            command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=detach
        )
    finally:
        if log_file:
            log.close()  # type: ignore[union-attr]  # the child holds its own descriptor
    deadline = time.monotonic() + startup_timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BackendError(f"anvil exited with code {process.returncode} before answering on {url}")
        if rpc_answers(url, timeout=0.5) and process.poll() is None:
            return process
        time.sleep(0.1)
    process.kill()
    raise BackendError(f"anvil did not answer on {url} within {startup_timeout:.0f}s")


def _alive(pid: int) -> bool:
    """False once the process is gone or a zombie: a detached anvil whose parent exited stays a zombie
    until init reaps it, and signal 0 still succeeds on a zombie."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust the signal
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def stop_process(pid: int, timeout: float = 15.0) -> None:
    """SIGTERM (anvil writes its state on the way out), then SIGKILL if it lingers."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            waited, _ = os.waitpid(pid, os.WNOHANG)
            if waited == pid:
                return
        except ChildProcessError:
            pass  # not our child: poll for existence instead
        if not _alive(pid):
            return
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)


@contextmanager
def running_anvil(*, chain_id: int = DEVNET_CHAIN_ID) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A throwaway anvil on a free port for the length of the block: its URL and process; terminated
    (killed if it lingers) on the way out."""
    port = free_port()
    process = start_anvil(port, chain_id=chain_id)
    try:
        yield f"http://127.0.0.1:{port}", process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
