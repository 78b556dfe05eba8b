"""Partners of the coalition and the consortium's governance."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from api.cli.common import (
    OPERATOR,
    PartnerOption,
    as_partner,
    console,
    show_wide,
    state,
    user_errors,
    with_crm,
)

partner_app = typer.Typer(help="Partner organizations of the coalition.", no_args_is_help=True)
governance_app = typer.Typer(
    help="Consortium membership: proposals and votes, each cast with one partner's own key.",
    no_args_is_help=True,
)


@partner_app.command("add")
def partner_add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="1-63 lowercase letters, digits or _")],
    key_file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="the partner's signing key (hex); default: the one this home keeps, a founder's, or new",
        ),
    ] = None,
    kek_file: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="the partner's key-encryption key (32 bytes); default: generated"),
    ] = None,
) -> None:
    """Give a partner its keys in this home and register it once its key is a consortium partner
    (new partners are voted in by the others: `ledgercrm governance`)."""
    from api.usecases.home import add_partner

    with user_errors():
        added = add_partner(state.home, name, key_file, kek_file)
    for path in added.new_files:
        console.print(f"created {path} (readable by its owner only)")
    if added.generated:
        console.print(
            f"generated a new signing key for {name}: this is not a development chain, so the public test"
            f" keys are not used; fund {added.address} before it sends transactions"
        )
    if added.registered:
        console.print(f"partner {name}: {added.address}")
        return
    console.print(
        f"partner {name}: {added.address} is not a partner of the consortium yet. A partner proposes it:\n"
        f"  ledgercrm governance propose admit-partner {added.address} --partner NAME\n"
        "the others vote (`ledgercrm governance vote ID --partner NAME`), then run this command again."
    )


@partner_app.command("list")
def partner_list() -> None:
    """The partners of this home with their settlement positions."""
    from api.usecases.partners import positions

    table = Table("partner", "address", "issued", "redeemed at", "position")
    for p in with_crm(lambda crm: positions(crm, OPERATOR)):
        table.add_row(p.name, p.address, str(p.issued), str(p.redeemed), f"{p.net:+d}")
    show_wide(table)


@governance_app.command("propose")
def governance_propose(
    action: Annotated[str, typer.Argument(metavar="ACTION", help="admit-partner, admit-auditor or remove")],
    address: Annotated[str, typer.Argument(metavar="ADDRESS", help="the account (0x + 40 hex digits)")],
    partner: PartnerOption,
) -> None:
    """Propose (and vote for, as this partner) admitting or removing a member."""
    from api.usecases.governance import propose

    outcome = with_crm(lambda crm: propose(crm, as_partner(partner), action, address))
    console.print(
        f"proposal {outcome.proposal_id}: "
        + ("executed" if outcome.executed else "1 vote, waiting for a majority")
    )


@governance_app.command("vote")
def governance_vote(
    proposal: Annotated[int, typer.Argument(metavar="ID", help="the proposal's number")],
    partner: PartnerOption,
) -> None:
    """Vote for a proposal, as this partner; it executes once a strict majority voted."""
    from api.usecases.governance import vote

    outcome = with_crm(lambda crm: vote(crm, as_partner(partner), proposal))
    console.print(
        f"proposal {proposal}: " + ("executed" if outcome.executed else "voted, not yet a majority")
    )


@governance_app.command("execute")
def governance_execute(
    proposal: Annotated[int, typer.Argument(metavar="ID", help="the proposal's number")],
    partner: PartnerOption,
) -> None:
    """Execute a proposal that became a majority because partners left since it was voted."""
    from api.usecases.governance import execute

    with_crm(lambda crm: execute(crm, as_partner(partner), proposal))
    console.print(f"proposal {proposal}: executed")


@governance_app.command("proposals")
def governance_proposals() -> None:
    """Every proposal with its votes from current partners and its expiry."""
    from api.usecases.governance import proposals

    table = Table("id", "action", "account", "proposer", "votes", "state", "expires")
    for p in with_crm(lambda crm: proposals(crm, OPERATOR)):
        table.add_row(
            str(p.proposal_id),
            p.action,
            p.account,
            p.proposer,
            f"{p.votes} of {p.partners}",
            "executed" if p.executed else "open",
            p.expires_at.isoformat(timespec="seconds"),
        )
    show_wide(table)
