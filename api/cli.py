"""The `ledgercrm` command line."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from ledger.backends import Backend, EthTesterBackend, RpcBackend
from ledger.errors import LedgerError

app = typer.Typer(
    help="ledgercrm: a permissioned, ledger-backed CRM with an audit trail.", no_args_is_help=True
)
console = Console()


@app.callback()
def _root() -> None:
    """ledgercrm: a permissioned, ledger-backed CRM with an audit trail."""


@app.command()
def compile(force: bool = typer.Option(False, help="rebuild even if the cache is fresh")) -> None:
    """Compile contracts/ (offline) and print what was built."""
    from ledger.compiler import compile_contracts

    try:
        build = compile_contracts(force=force)
    except LedgerError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc
    table = Table(title=f"solc {build.compiler}")
    table.add_column("contract")
    table.add_column("bytecode bytes", justify="right")
    for name, artifact in sorted(build.artifacts.items()):
        table.add_row(name, str(len(artifact.bytecode) // 2 - 1))
    console.print(table)


def _backend(chain: str) -> Backend:
    if chain == "memory":
        return EthTesterBackend()
    if chain.startswith(("http://", "https://")):
        return RpcBackend(chain)
    raise typer.BadParameter(
        f"expected 'memory' or an http(s) JSON-RPC URL, got {chain!r}", param_hint="--chain"
    )


@app.command()
def demo(
    chain: str = typer.Option("memory", help="'memory' (in-process eth-tester) or a JSON-RPC URL"),
) -> None:
    """Run the coalition demo end to end and print what happened."""
    from api.usecases.ledger_demo import run_ledger_demo

    try:
        backend = _backend(chain)
        with console.status("deploying and running the demo..."):
            report = run_ledger_demo(
                backend,
                on_step=lambda what, outcome: console.print(f"[bold]{what}[/]: {outcome}", soft_wrap=True),
            )
    except LedgerError as exc:
        console.print(f"[red]error:[/] {exc}")
        raise typer.Exit(1) from exc

    positions = Table(title="Settlement positions (points)")
    for column in ("partner", "issued", "redeemed at", "net position"):
        positions.add_column(column, justify="left" if column == "partner" else "right")
    for name, (issued, redeemed, net) in report.positions.items():
        positions.add_row(name, str(issued), str(redeemed), f"[{'green' if net >= 0 else 'red'}]{net:+d}[/]")
    console.print(positions)

    contracts = Table(title=f"Contracts on chain {report.chain_id} ({report.blocks} blocks)")
    contracts.add_column("contract")
    contracts.add_column("address")
    for name, address in report.contracts.items():
        contracts.add_row(name, address)
    console.print(contracts)


def main() -> None:
    app()
