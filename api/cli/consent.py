"""Consent per member, controller and purpose."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table
from rich.text import Text

from api.cli.common import (
    OPERATOR,
    MemberOption,
    PartnerOption,
    PurposeOption,
    SignatureOption,
    _parse_time,
    _signature,
    as_partner,
    console,
    hexid,
    plural,
    show_wide,
    with_crm,
)

consent_app = typer.Typer(help="Consent per member, controller and purpose.", no_args_is_help=True)


@consent_app.command("give")
def consent_give(
    partner: PartnerOption,
    member: MemberOption,
    purpose: PurposeOption,
    expires: Annotated[
        str | None, typer.Option(metavar="TIME", help="ISO 8601 expiry with time zone")
    ] = None,
    collection_method: Annotated[
        str, typer.Option(metavar="METHOD", help="how consent was collected")
    ] = "cli",
    signature: SignatureOption = None,
) -> None:
    """Record that the member gives consent to this partner for a purpose (signed by the customer:
    --signature FILE, else attested by the member's home partner)."""
    from api.usecases.consent import ConsentTerms, give_consent

    expires_at = _parse_time(expires)
    signed = _signature(signature)
    receipt = with_crm(
        lambda crm: give_consent(
            crm,
            as_partner(partner),
            member,
            purpose,
            expires_at=expires_at,
            terms=ConsentTerms(collection_method=collection_method),
            signed=signed,
        )
    )
    console.print(f"consent given: receipt 0x{receipt.receipt_hash.hex()} in block {receipt.block_number}")


@consent_app.command("withdraw")
def consent_withdraw(
    partner: PartnerOption,
    member: MemberOption,
    purpose: PurposeOption,
    signature: SignatureOption = None,
) -> None:
    """Record that the member withdraws consent to this partner (any partner records a withdrawal
    towards itself; with --signature FILE the customer signed it)."""
    from api.usecases.consent import withdraw_consent

    signed = _signature(signature)
    receipt = with_crm(lambda crm: withdraw_consent(crm, as_partner(partner), member, purpose, signed=signed))
    console.print(
        f"consent withdrawn: receipt 0x{receipt.receipt_hash.hex()} in block {receipt.block_number}"
    )


@consent_app.command("history")
def consent_history_cmd(
    member: MemberOption,
    partner: Annotated[
        str | None, typer.Option(metavar="NAME", help="only consent towards this partner")
    ] = None,
) -> None:
    """Every consent event of a member, each checked against the chain."""
    from api.usecases.consent import consent_history

    events = with_crm(lambda crm: consent_history(crm, OPERATOR, member, partner))
    table = Table("recorded", "controller", "purpose", "status", "expires", "on chain")
    for event in events:
        r = event.receipt
        table.add_row(
            r.recorded_at.isoformat(timespec="seconds"),
            r.controller,
            r.purpose,
            str(r.status),
            r.expires_at.isoformat(timespec="seconds") if r.expires_at else "-",
            "yes" if event.on_chain else Text("NO", style="red"),
        )
    show_wide(table)


@consent_app.command("follow")
def consent_follow(
    partner: Annotated[str | None, typer.Option(metavar="NAME", help="one partner (default: all)")] = None,
) -> None:
    """Record here what members signed on chain towards a partner through another partner."""
    from api.usecases.consent import follow_consents

    who = OPERATOR if partner is None else as_partner(partner)
    found = with_crm(lambda crm: follow_consents(crm, who))
    console.print(
        f"{plural(found.recorded, 'consent record')} signed through another partner followed"
        f" ({found.withdrawn} withdrawn); {found.not_held} of members this store does not hold"
    )


@consent_app.command("check")
def consent_check(
    partner: PartnerOption,
    member: MemberOption,
    purpose: PurposeOption,
    at: Annotated[
        str | None, typer.Option(metavar="TIME", help="ISO 8601 time with time zone (default: now)")
    ] = None,
) -> None:
    """Whether the chain holds valid consent of the member to the partner for the purpose; exit 0 iff so."""
    from api.usecases.consent import consent_valid

    when = _parse_time(at, "--at")
    valid = with_crm(lambda crm: consent_valid(crm, OPERATOR, partner, member, purpose, when))
    moment = f"at {when.isoformat()}" if when else "now"
    console.print(
        f"consent of {hexid(member)} to {partner} for {purpose} {moment}: {'valid' if valid else 'not valid'}"
    )
    if not valid:
        raise typer.Exit(1)
