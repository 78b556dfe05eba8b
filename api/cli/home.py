"""A home folder and a devnet: init, demo, compile."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table
from rich.text import Text

from api.cli.common import ConsortiumOption, console, show_wide, state, user_errors

if TYPE_CHECKING:
    from api.context import Crm
    from api.usecases.demo import Credentials, DemoReport


def init(
    chain: Annotated[str, typer.Option(metavar="CHAIN", help="devnet, or an http(s) JSON-RPC URL")],
    db: Annotated[
        str | None,
        typer.Option(metavar="URL", help="SQLAlchemy URL of the store (default: SQLite in the home)"),
    ] = None,
    deployment: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="manifest of an existing deployment to attach to (URL chains)"),
    ] = None,
    consortium: ConsortiumOption = None,
    key_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="your funded key (hex) that deploys new contracts and founds the coalition (URL chains"
            " that are not a development chain)",
        ),
    ] = None,
) -> None:
    """Create a home: attach to (or deploy) the contracts and create the stores."""
    from api.usecases.home import init_home

    with user_errors():
        config, how = init_home(state.home, chain, db, deployment, consortium=consortium, key_file=key_file)
    console.print(
        f"initialised {state.home} on {config.rpc_url}, chain id {config.deployment['chainId']}: {how}"
    )
    for name, address in config.deployment["contracts"].items():
        console.print(f"  {name:<18} {address}")
    console.print(
        f"trust anchor: Consortium {config.consortium} on chain id {config.deployment['chainId']}; every"
        " other address is read from it. Give it to auditors and partners out of band; they pin it with"
        " --consortium ADDRESS (init, verify)"
    )
    console.print(
        f"which chain: the Consortium was deployed in block {config.deployment['deployedAtBlock']},"
        f" {config.deployment.get('deployedAtBlockHash')}; an auditor pins both with --consortium"
        f" {config.consortium}@{config.deployment.get('deployedAtBlockHash')} (audit verify, audit watch)"
    )
    if not config.development:
        console.print(
            "not a development chain: the public test keys are refused here; `partner add` without"
            " --key-file generates a fresh key, which you fund"
        )


def demo(
    chain: Annotated[
        str, typer.Option(metavar="CHAIN", help="'memory' (in-process eth-tester) or a JSON-RPC URL")
    ] = "memory",
    serve_pages: Annotated[
        bool, typer.Option("--serve", help="then serve the pages over what the demo did, until Ctrl-C")
    ] = False,
    host: Annotated[str, typer.Option(help="with --serve: the address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="with --serve: the port")] = 8000,
) -> None:
    """Run the coalition demo end to end and print what happened; with --serve, keep its chain and store
    and serve the pages over them, with a credential for each of the three users."""
    from api.usecases.demo import run_demo

    def then_serve(crm: Crm, handout: Credentials, report: DemoReport) -> None:
        _print_demo_report(report)
        _serve_demo(crm, handout, host, port)

    with user_errors():
        report = run_demo(
            chain,
            on_step=lambda what, outcome: console.print(Text.assemble((what, "bold"), f": {outcome}")),
            then=then_serve if serve_pages else None,
        )
    if not serve_pages:
        _print_demo_report(report)


def _print_demo_report(report: DemoReport) -> None:
    positions = Table(title="Settlement positions (points)")
    for column in ("partner", "issued", "redeemed at", "net position"):
        positions.add_column(column, justify="left" if column == "partner" else "right")
    for name, (issued, redeemed, net) in report.positions.items():
        positions.add_row(
            name, str(issued), str(redeemed), Text(f"{net:+d}", style="green" if net >= 0 else "red")
        )
    console.print(positions)
    console.print(
        f"The net positions sum to -{report.outstanding}: the points members still hold, which the"
        " partners that issued them owe until they are redeemed."
    )
    summary = Table("", "", title="Summary", show_header=False)
    for key, value in report.summary.items():
        summary.add_row(key, str(value))
    console.print(summary)


def _serve_demo(crm: Crm, handout: Credentials, host: str, port: int) -> None:
    """The pages over the demo's chain and store, until Ctrl-C; first, how each user signs in."""
    import uvicorn

    from api.http.app import create_app

    url = f"http://{host}:{port}"
    console.print(f"\nThe demo's pages are at {url} (Ctrl-C stops them, and the demo's data goes):")
    console.print(f"  partner desk     {url}/partner  API key of {handout.partner}: {handout.api_key}")
    console.print(f"  privacy centre   {url}/me       key file {handout.customer_key} (alice)")
    console.print(f"  auditor console  {url}/audit    key file {handout.auditor_key}")
    console.print(f"  the passphrase of both key files: {handout.passphrase}")
    # no access log: a request line can carry a search for a person's name
    uvicorn.run(create_app(crm.settings, crm), host=host, port=port, access_log=False, log_level="warning")


def compile_(force: Annotated[bool, typer.Option(help="rebuild even if the cache is fresh")] = False) -> None:
    """Compile contracts/ (offline) and print what was built."""
    from ledger.compiler import compile_contracts

    with user_errors():
        build = compile_contracts(force=force)
    table = Table("contract", "bytecode bytes", title=f"solc {build.compiler}")
    for name, artifact in sorted(build.artifacts.items()):
        table.add_row(name, str(len(artifact.bytecode) // 2 - 1))
    show_wide(table)
