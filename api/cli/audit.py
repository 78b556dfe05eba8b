"""An auditor's evidence: bundles, their verification, a monitor."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.text import Text

from api.cli.common import (
    PartnerOption,
    as_partner,
    console,
    fail,
    parse_member,
    plural,
    user_errors,
    with_crm,
)

audit_app = typer.Typer(
    help="An auditor's evidence: bundles, their verification against the chain, a monitor.",
    no_args_is_help=True,
)


@audit_app.command("bundle")
def audit_bundle(
    partner: PartnerOption,
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="a new file (.gz: compressed)")],
    member: Annotated[
        list[bytes] | None,
        typer.Option("--member", parser=parse_member, metavar="MEMBER", help="only this member (repeatable)"),
    ] = None,
    from_block: Annotated[
        int, typer.Option("--from-block", metavar="N", min=0, help="only heads and records from block N on")
    ] = 0,
    disclosure: Annotated[
        list[Path] | None,
        typer.Option(
            "--disclosure", metavar="FILE", help="a `decision disclose` file to include (repeatable)"
        ),
    ] = None,
) -> None:
    """Write the partner's evidence bundle: hashes, proofs and receipts an auditor checks against the
    chain alone (no personal data)."""
    from api.usecases.audit import make_bundle, write_bundle

    if out.exists():
        fail(f"--out: {out} exists; name a new file", code=2)
    disclosed = [_read_json_object(path, "--disclosure") for path in disclosure or []]
    bundle = with_crm(
        lambda crm: make_bundle(crm, as_partner(partner), member or None, from_block, disclosed)
    )
    with user_errors():
        size = write_bundle(bundle, out)
    log = bundle["log"]
    console.print(
        f"{out}: {size:,} bytes; {plural(len(log['heads']), 'head')},"
        f" {plural(len(log['leaves']), 'leaf', 'leaves')},"
        f" {plural(len(bundle['consentReceipts']), 'consent receipt')},"
        f" {plural(len(bundle['erasureReceipts']), 'erasure receipt')},"
        f" {plural(len(bundle['pointEvents']), 'point event')},"
        f" {plural(len(bundle['decisions']), 'decision')}"
    )


def _read_json_object(path: Path, option: str) -> dict[str, Any]:
    try:
        found = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        fail(f"{option}: {path} is not a JSON file ({type(exc).__name__})", code=2)
    if not isinstance(found, dict):
        fail(f"{option}: {path} is not a JSON object", code=2)
    return found


# the trust anchor as an auditor is given it out of band: the Consortium's address, and (as `init`
# prints it) the hash of the block it was deployed in, which says which chain
ConsortiumOption = Annotated[
    str | None,
    typer.Option(
        metavar="ADDRESS[@BLOCKHASH]",
        help="the Consortium you trust (given out of band), and the hash of the block it was deployed in:"
        " refuse any deployment that is not its own, on any other chain",
    ),
]
ChainUrlOption = Annotated[str, typer.Option("--chain", metavar="URL", help="your own node's JSON-RPC URL")]
DeploymentOption = Annotated[
    Path | None,
    typer.Option(
        "--deployment", metavar="FILE", help="the deployment manifest you hold (contract addresses)"
    ),
]


@audit_app.command("verify")
def audit_verify_cmd(
    bundle: Annotated[Path, typer.Argument(metavar="FILE", help="an evidence bundle")],
    chain: ChainUrlOption,
    deployment: DeploymentOption = None,
    consortium: ConsortiumOption = None,
    report: Annotated[
        Path | None, typer.Option("--report", metavar="FILE", help="also write a self-contained HTML report")
    ] = None,
) -> None:
    """Check a bundle against the chain, with no home, store or key; exit 0 only if everything holds."""
    from api.usecases.audit import audit_verify, open_auditor_chain

    with user_errors():
        coalition = open_auditor_chain(chain, deployment, consortium)
        result = audit_verify(coalition, bundle)
        if report is not None:
            from api.usecases.audit_report import write_report

            write_report(result, report)
    for line in result.checked:
        console.print(Text.assemble(("checked ", "green"), line))
    for finding in result.findings:
        console.print(Text.assemble(("FINDING ", "red"), f"{finding.record}: {finding.detail}"))
    console.print(
        f"{result.partner} on chain id {result.chain_id}: "
        + ("everything in the bundle holds" if result.ok else plural(len(result.findings), "finding"))
    )
    if report is not None:
        console.print(f"report written to {report}")
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("watch")
def audit_watch(
    chain: ChainUrlOption,
    deployment: DeploymentOption = None,
    consortium: ConsortiumOption = None,
    state_dir: Annotated[
        Path, typer.Option("--state", metavar="DIR", help="where the monitor keeps the heads it saw")
    ] = Path(".ledgercrm-monitor"),
    once: Annotated[bool, typer.Option("--once", help="one pass, then stop")] = False,
    until_block: Annotated[
        int | None, typer.Option("--until-block", metavar="N", min=0, help="stop once block N is read")
    ] = None,
    interval: Annotated[float, typer.Option("--interval", metavar="SECONDS", min=0.1)] = 2.0,
) -> None:
    """Follow the heads the partners anchor, check each against the last one seen, keep a copy; one line
    per finding, exit 1 on the first (a history that differs from what was seen)."""
    from api.usecases.audit import open_auditor_chain
    from api.usecases.monitor import watch

    def show(line: Any) -> None:
        console.print(Text.assemble(("FINDING ", "red"), line.text) if line.finding else line.text)

    with user_errors():
        coalition = open_auditor_chain(chain, deployment, consortium)
        findings = watch(coalition, state_dir, show, once=once, until_block=until_block, interval=interval)
    if findings:
        raise typer.Exit(1)
