"""A persistent local devnet for ledgercrm: anvil plus the six contracts, without Hardhat.

`up` starts anvil detached (it outlives this command) with its chain state in a file, and deploys the
contracts once; `down` stops it so anvil writes that file; `status` says whether the node answers and
the manifest's code is really there. Run it through the `devnet` wrapper next to this file.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import signal
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from ledger.anvil import DEVNET_CHAIN_ID, anvil_binary, rpc_answers, start_anvil
from ledger.backends import RpcBackend
from ledger.coalition import Coalition
from ledger.deployment import Deployment
from ledger.errors import BackendError, DeploymentMismatch, LedgerError

HERE = Path(__file__).resolve().parent
DEFAULT_PORT = 8545
FOUNDERS = 3  # anvil accounts 0, 1 and 2 found the coalition; account 0 also deploys
STOP_TIMEOUT = 15.0

# soft_wrap: rich wraps at 80 columns when not on a terminal, which would split paths and addresses
# in logs and in the tests' captured output.
out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="A local anvil devnet with the ledgercrm contracts deployed, kept across restarts.",
)


@dataclasses.dataclass(frozen=True)
class Devnet:
    state_dir: Path
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def state_file(self) -> Path:
        return self.state_dir / "anvil-state.json"

    @property
    def pid_file(self) -> Path:
        return self.state_dir / "anvil.pid"

    @property
    def log_file(self) -> Path:
        return self.state_dir / "anvil.log"

    @property
    def manifest(self) -> Path:
        return self.state_dir / "deployment.json"


@dataclasses.dataclass(frozen=True)
class Running:
    pid: int
    port: int


def configured() -> Devnet:
    # Both overridable so tests (and parallel checkouts) never touch the developer's devnet on 8545.
    state_dir = Path(os.environ.get("DEVNET_STATE_DIR") or HERE / ".state").resolve()
    raw_port = os.environ.get("DEVNET_PORT") or str(DEFAULT_PORT)
    try:
        port = int(raw_port)
    except ValueError:
        fail(f"DEVNET_PORT must be a port number, not {raw_port!r}")
    if not 0 < port < 65536:
        fail(f"DEVNET_PORT must be between 1 and 65535, not {port}")
    return Devnet(state_dir, port)


def fail(message: str, code: int = 1) -> NoReturn:
    err.print(f"[red]error:[/red] {escape(message)}")
    raise typer.Exit(code)


def _cmdline(pid: int) -> list[str]:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    # A zombie (exited, not yet reaped: common here, as the detached anvil's parent is gone and
    # PID 1 may reap late or never) has an empty cmdline, so it reads as "not running".
    return [part.decode(errors="replace") for part in raw.split(b"\0") if part]


def running(devnet: Devnet) -> Running | None:
    """Our anvil, if the pid file names a live anvil using our state file.

    Checking the command line, not just that the pid exists, guards against a stale pid file whose
    pid now belongs to an unrelated process, which `down` must never signal."""
    try:
        pid = int(devnet.pid_file.read_text().strip())
    except (OSError, ValueError):
        return None
    args = _cmdline(pid)
    # Matched on `--state <our file>` rather than the binary's name, which LEDGERCRM_ANVIL may change.
    if _option(args, "--state") != str(devnet.state_file):
        return None
    port = _option(args, "--port")
    return Running(pid, int(port)) if port and port.isdigit() else None


def _option(args: list[str], name: str) -> str | None:
    try:
        return args[args.index(name) + 1]
    except (ValueError, IndexError):
        return None


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        # SO_REUSEADDR, as anvil's own listener uses: a TIME_WAIT left by the previous anvil on this
        # port must not count as "taken", only a live listener does.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


@contextmanager
def locked(devnet: Devnet) -> Iterator[None]:
    """Serialise up/down on one state dir, so two `up`s cannot both start an anvil or both deploy."""
    devnet.state_dir.mkdir(parents=True, exist_ok=True)
    with open(devnet.state_dir / ".lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        yield


def terminate(pid: int, timeout: float = STOP_TIMEOUT) -> bool:
    """SIGTERM and wait for exit; SIGKILL after `timeout`. True if anvil exited on SIGTERM.

    Not `ledger.anvil.stop_process`: it counts a zombie as alive, and the detached anvil becomes one
    when it exits (its parent, an earlier `up`, is gone), so it would always wait out its timeout."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not _cmdline(pid):
            return True
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        return True
    return False


def verify(devnet: Devnet, backend: RpcBackend) -> Coalition:
    """Attach to the manifest's contracts; DeploymentMismatch says why they are not (all) there."""
    if not devnet.manifest.is_file():
        raise DeploymentMismatch(f"no deployment manifest at {devnet.manifest}")
    return Coalition.attach(backend, Deployment.load(devnet.manifest))


def connect(url: str) -> RpcBackend:
    try:
        return RpcBackend(url)
    except BackendError as exc:
        fail(str(exc))


def show(coalition: Coalition, backend: RpcBackend, devnet: Devnet) -> None:
    deployment = coalition.deployment
    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    table.add_row("RPC", devnet.url)
    table.add_row("chain id", str(backend.chain_id))
    table.add_row("block", str(coalition.block_number()))
    for name, address in deployment.contracts.items():
        table.add_row(name, address)
    for index, partner in enumerate(coalition.consortium.partners()):
        table.add_row("partner" if index == 0 else "", partner)
    table.add_row("state", str(devnet.state_dir))
    out.print(table)


@app.command()
def up() -> None:
    """Start the devnet (deploying the contracts on first start); a no-op if it is already up."""
    devnet = configured()
    try:
        anvil_binary()
    except BackendError as exc:
        fail(str(exc))
    with locked(devnet):
        current = running(devnet)
        if current is not None and current.port != devnet.port:
            fail(
                f"this devnet (state {devnet.state_dir}) already runs on port {current.port} "
                f"(pid {current.pid}); run `devnet down` first to move it to port {devnet.port}"
            )
        started = None
        if current is None:
            devnet.pid_file.unlink(missing_ok=True)  # stale: its anvil is gone
            if port_in_use(devnet.port):
                what = "an EVM node" if rpc_answers(devnet.url) else "another program"
                fail(
                    f"port {devnet.port} is taken by {what} that is not this devnet "
                    f"(state {devnet.state_dir}); stop it, or choose another port with DEVNET_PORT"
                )
            try:
                process = start_anvil(
                    devnet.port,
                    chain_id=DEVNET_CHAIN_ID,
                    state_file=devnet.state_file,
                    log_file=devnet.log_file,
                    detach=True,
                )
            except BackendError as exc:
                fail(f"{exc}; see {devnet.log_file}")
            started = process.pid
            devnet.pid_file.write_text(f"{started}\n")
            out.print(f"anvil started (pid {started}) on {devnet.url}")

        backend = connect(devnet.url)
        try:
            coalition = verify(devnet, backend)
        except BackendError as exc:
            fail(f"the node at {devnet.url} failed: {exc}")
        except DeploymentMismatch as exc:
            if devnet.manifest.is_file():
                out.print(f"[yellow]the manifest does not verify ({escape(str(exc))}): redeploying[/yellow]")
            try:
                coalition = deploy(devnet, backend)
            except LedgerError as deploy_error:
                if started is not None:
                    # Leave nothing half set up: the next `up` starts from the same point again.
                    terminate(started)
                    devnet.pid_file.unlink(missing_ok=True)
                fail(f"deploying the contracts failed: {deploy_error}")
            out.print(f"deployed the contracts; manifest written to {devnet.manifest}")
        else:
            if current is not None:
                out.print(f"devnet already up (pid {current.pid}) on {devnet.url}")
            else:
                out.print("state restored; the contracts verify")
        show(coalition, backend, devnet)


def deploy(devnet: Devnet, backend: RpcBackend) -> Coalition:
    accounts = backend.accounts
    coalition = Coalition.deploy(backend, founders=accounts[:FOUNDERS], deployer=accounts[0])
    # rpcUrl makes the manifest self-contained for scripts and cast, whatever the backend recorded.
    dataclasses.replace(coalition.deployment, rpc_url=devnet.url).save(devnet.manifest)
    return coalition


@app.command()
def down() -> None:
    """Stop the devnet; anvil writes its state on the way out, so `up` resumes where it stopped."""
    devnet = configured()
    with locked(devnet):
        current = running(devnet)
        if current is None:
            devnet.pid_file.unlink(missing_ok=True)
            out.print(f"devnet is not running (state {devnet.state_dir})")
            return
        clean = terminate(current.pid)
        devnet.pid_file.unlink(missing_ok=True)
    if clean:
        out.print(f"devnet stopped (pid {current.pid}); state saved in {devnet.state_file}")
    else:
        err.print(
            f"[yellow]anvil (pid {current.pid}) ignored SIGTERM for {STOP_TIMEOUT:.0f}s and was killed: "
            "changes from its last second may be lost[/yellow]"
        )


@app.command()
def status() -> None:
    """Exit 0 only if the node answers and the manifest's contracts are deployed there."""
    devnet = configured()
    current = running(devnet)
    if current is not None:
        # The running devnet's own port, so `status` matches `up` even if DEVNET_PORT changed since.
        devnet = dataclasses.replace(devnet, port=current.port)
    if not rpc_answers(devnet.url):
        fail(f"no node answers at {devnet.url}: run `devnet up`")
    if current is None:
        err.print(f"[yellow]note: the node at {devnet.url} was not started by this devnet[/yellow]")
    backend = connect(devnet.url)
    try:
        coalition = verify(devnet, backend)
    except DeploymentMismatch as exc:
        fail(f"the contracts do not verify: {exc}")
    except BackendError as exc:
        fail(f"the node at {devnet.url} failed: {exc}")
    out.print(f"[green]devnet up[/green]{f' (pid {current.pid})' if current else ''}")
    show(coalition, backend, devnet)


if __name__ == "__main__":
    app(prog_name="devnet")
