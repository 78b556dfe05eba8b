"""Coalition loyalty points."""

from __future__ import annotations

from typing import Any

import typer
from rich.table import Table
from rich.text import Text

from api.cli.common import (
    OPERATOR,
    AmountOption,
    MemberOption,
    PartnerOption,
    SignatureOption,
    _signature,
    as_partner,
    console,
    plural,
    show_wide,
    with_crm,
)

points_app = typer.Typer(help="Coalition loyalty points.", no_args_is_help=True)


def _points(kind: str, partner: str, member: bytes, amount: int, signed: Any = None) -> None:
    from api.usecases.loyalty import PointsRequest, earn_points, redeem_points

    request = PointsRequest(member, amount)
    if kind == "earn":
        receipt = with_crm(lambda crm: earn_points(crm, as_partner(partner), request))
    else:
        receipt = with_crm(lambda crm: redeem_points(crm, as_partner(partner), request, signed=signed))
    console.print(f"{kind}ed {plural(amount, 'point')}; balance {receipt.balance}")


@points_app.command("earn")
def points_earn(partner: PartnerOption, member: MemberOption, amount: AmountOption) -> None:
    """Issue points (needs the member's loyalty consent to this partner)."""
    _points("earn", partner, member, amount)


@points_app.command("redeem")
def points_redeem(
    partner: PartnerOption,
    member: MemberOption,
    amount: AmountOption,
    signature: SignatureOption = None,
) -> None:
    """Redeem points at this partner: signed by the customer (--signature FILE: a member with a key, at
    any partner), or by the member's home partner for a member without one."""
    _points("redeem", partner, member, amount, _signature(signature))


@points_app.command("balance")
def points_balance(member: MemberOption) -> None:
    """A member's coalition balance, from the chain."""
    from api.usecases.loyalty import balance

    console.print(str(with_crm(lambda crm: balance(crm, OPERATOR, member))))


@points_app.command("history")
def points_history_cmd(member: MemberOption) -> None:
    """Every earn and redeem of a member across the coalition, with partner and block."""
    from api.usecases.loyalty import points_history

    lines = with_crm(lambda crm: points_history(crm, OPERATOR, member))
    table = Table("recorded", "partner", "kind", "points", "external key", "block")
    for line in lines:
        table.add_row(
            line.recorded_at.isoformat(timespec="seconds"),
            line.partner,
            line.kind.value,
            f"{line.amount:,}",
            line.external_key or "-",
            str(line.block_number) if line.block_number is not None else Text("not on chain", style="red"),
        )
    show_wide(table)
    if not lines:
        console.print("no points earned or redeemed")
