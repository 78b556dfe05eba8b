"""A partner's customers, their own keys and what they sign, their timeline."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table

from api.cli.common import (
    AmountOption,
    MemberArgument,
    MemberOption,
    PartnerOption,
    PurposeOption,
    _parse_time,
    _signature,
    as_partner,
    console,
    fail,
    hexid,
    parse_member,
    plural,
    show_wide,
    user_errors,
    with_crm,
)

if TYPE_CHECKING:
    from api.context import Crm


customer_app = typer.Typer(help="A partner's customers.", no_args_is_help=True)
customer_key_app = typer.Typer(
    help="A customer's own key (an encrypted keystore file).", no_args_is_help=True
)
customer_app.add_typer(customer_key_app, name="key")
customer_sign_app = typer.Typer(
    help="Run by the customer, with her own keystore: sign what a partner then relays (--signature FILE).",
    no_args_is_help=True,
)
customer_app.add_typer(customer_sign_app, name="sign")
PassphraseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file", metavar="FILE", help="read the key file's passphrase from FILE (else a prompt)"
    ),
]


SignerOption = Annotated[
    str | None,
    typer.Option("--signer", metavar="ADDRESS", help="the address of a key the customer holds, to bind"),
]
BindingOption = Annotated[
    Path | None,
    typer.Option(
        "--binding",
        metavar="FILE",
        help="with --signer: that key's own signature of its binding (`customer sign binding`, run by her)",
    ),
]


def _passphrase(passphrase_file: Path | None, *, new: bool = False, label: str = "passphrase") -> str:
    """The passphrase of a customer key file: the first line of `passphrase_file`, or asked for."""
    if passphrase_file is None:
        return str(typer.prompt(label, hide_input=True, confirmation_prompt=new, err=True))
    try:
        return passphrase_file.read_text().splitlines()[0] if passphrase_file.stat().st_size else ""
    except OSError as exc:
        fail(f"--passphrase-file: cannot read {passphrase_file}: {exc.strerror}", code=2)


def _customer_key(key_file: Path | None, passphrase_file: Path | None, *, label: str = "passphrase") -> Any:
    """The customer's key (a LocalAccount) from its keystore file, or None if no file was given."""
    if key_file is None:
        if passphrase_file is not None:
            fail("--passphrase-file goes with a key file", code=2)
        return None
    from api.usecases.customer_keys import open_customer_key

    with user_errors():
        return open_customer_key(key_file, _passphrase(passphrase_file, label=label))


@customer_app.command("add")
def customer_add(
    partner: PartnerOption,
    name: Annotated[str, typer.Option(metavar="TEXT", help="full name")],
    email: Annotated[str | None, typer.Option(metavar="EMAIL", help="e-mail address")] = None,
    phone: Annotated[str | None, typer.Option(metavar="TEXT", help="phone number")] = None,
    country: Annotated[str | None, typer.Option(metavar="CC", help="ISO 3166-1 alpha-2 country code")] = None,
    address: Annotated[str | None, typer.Option(metavar="TEXT", help="postal address")] = None,
    external_ref: Annotated[
        str | None, typer.Option(metavar="TEXT", help="the partner's own customer number")
    ] = None,
    signer: SignerOption = None,
    binding: BindingOption = None,
) -> None:
    """Register a customer (enrolled on chain, this partner its home); the last line printed is the
    member id. With a key she holds: --signer ADDRESS --binding FILE, the file she made with
    `customer sign binding`."""
    from pydantic import ValidationError

    from api.usecases.customer_keys import register_keyed_customer
    from api.usecases.customers import register_customer
    from offchain.models import CustomerCreate

    try:
        data = CustomerCreate.model_validate(
            {
                "name": name,
                "email": email,
                "phone": phone,
                "country": country,
                "address": address,
                "external_ref": external_ref,
            }
        )
    except ValidationError as exc:
        fail(f"--{str(exc.errors()[0]['loc'][0]).replace('_', '-')}: {exc.errors()[0]['msg']}", code=2)
    if (signer is None) != (binding is None):
        fail("--signer and --binding go together: her key's address and the binding file it signed", code=2)
    signed = _signature(binding)
    who = as_partner(partner)

    def register(crm: Crm) -> bytes:
        if signer is None:
            return register_customer(crm, who, data)
        return register_keyed_customer(crm, who, data, signer, signed)

    member = with_crm(register)
    if signer is not None:
        console.print(f"signer {signer} bound")
    console.print(hexid(member))


@customer_key_app.command("new")
def customer_key_new(
    out: Annotated[Path, typer.Option(metavar="FILE", help="where to write the keystore (must not exist)")],
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Create a customer's own key as an encrypted keystore file; prints its address."""
    from api.usecases.customer_keys import new_customer_key

    passphrase = _passphrase(passphrase_file, new=True)
    with user_errors():
        address = new_customer_key(out, passphrase)
    console.print(f"{out}: key {address}")


@customer_key_app.command("bind")
def customer_key_bind(
    member: MemberArgument,
    partner: PartnerOption,
    signer: Annotated[str, typer.Option("--signer", metavar="ADDRESS", help="the address of her key")],
    binding: Annotated[
        Path,
        typer.Option(
            "--binding",
            metavar="FILE",
            help="the key's own signature of its binding to this member (`customer sign binding --member`)",
        ),
    ],
) -> None:
    """Bind a customer's own key to a member without one (its home partner only), by that key's
    signature of the binding, made on her side."""
    from api.usecases.customer_keys import bind_signed_key

    signed = _signature(binding)
    address = with_crm(lambda crm: bind_signed_key(crm, as_partner(partner), member, signer, signed))
    console.print(f"member {hexid(member)}: signer {address} bound")


@customer_key_app.command("change")
def customer_key_change(
    member: MemberArgument,
    partner: PartnerOption,
    signature: Annotated[
        Path,
        typer.Option(
            "--signature",
            metavar="FILE",
            help="her signature of the change, made with her current key (`customer sign key-change`)",
        ),
    ],
) -> None:
    """Give a member a new key, signed with its current one on the customer's own device; any partner
    relays the change."""
    from api.usecases.customer_keys import change_customer_key

    signed = _signature(signature)
    change = with_crm(lambda crm: change_customer_key(crm, as_partner(partner), member, signed))
    console.print(
        f"member {hexid(member)}: signer {change.signer} (was {change.previous}), in block"
        f" {change.block_number}"
    )


NewSignerOption = Annotated[
    str, typer.Option("--new-signer", metavar="ADDRESS", help="the address of the customer's new key")
]


@customer_key_app.command("reset")
def customer_key_reset(member: MemberArgument, partner: PartnerOption, new_signer: NewSignerOption) -> None:
    """Vote, as this partner, to give a member whose key was lost a new one (its address only: the
    customer keeps the key); the key is reset once a strict majority of the partners voted for the same
    new key (each vote counts for 7 days)."""
    from api.usecases.customer_keys import vote_key_reset

    outcome = with_crm(lambda crm: vote_key_reset(crm, as_partner(partner), member, new_signer))
    if outcome.moved_from is not None:
        console.print(f"{partner}'s vote moved from key {outcome.moved_from} to {outcome.new_signer}")
    state_words = "signer reset" if outcome.reset else "not yet reset"
    line = (
        f"member {hexid(member)}, key {outcome.new_signer}: {outcome.votes} of {outcome.needed} votes:"
        f" {state_words}"
    )
    if outcome.counts_until is not None:
        line += (
            f" (a strict majority of the {plural(outcome.partners, 'partner')}; {partner}'s vote counts"
            f" until {outcome.counts_until:%Y-%m-%d %H:%M UTC})"
        )
    console.print(line)


@customer_app.command("invite")
def customer_invite(
    member: MemberArgument,
    partner: PartnerOption,
    expires: Annotated[
        str, typer.Option("--expires", metavar="DURATION", help="how long the code is good: 7d, 12h or 90m")
    ] = "7d",
    url: Annotated[
        str, typer.Option(metavar="URL", help="where `ledgercrm serve` answers her browser")
    ] = "http://127.0.0.1:8000",
) -> None:
    """A one-time code (and its link) with which a customer without a key makes one in her browser and
    binds it; printed once, only its hash is stored."""
    from urllib.parse import urlsplit

    from api.errors import CrmError
    from api.usecases.access import parse_duration
    from api.usecases.invitations import invite_customer

    try:
        lifetime = parse_duration(expires)
    except CrmError as exc:
        fail(f"--expires: {exc}", code=2)
    if urlsplit(url).scheme not in ("http", "https") or not urlsplit(url).netloc:
        fail(f"--url: an http:// or https:// address, not {url!r}", code=2)
    invited = with_crm(lambda crm: invite_customer(crm, as_partner(partner), member, lifetime=lifetime))
    when = invited.expires_at.strftime("%Y-%m-%d %H:%M UTC")
    console.print(f"invitation for member {hexid(member)} from {partner}, good once, until {when}")
    console.print("Give her the link (or the code): it is shown only now, and only its hash is stored.")
    # the code after '#': a browser never sends the fragment, so no server or proxy log holds it
    console.print(f"{url.rstrip('/')}/me/invite#{invited.code}", soft_wrap=True)
    console.print(invited.code, soft_wrap=True)


@customer_app.command("move-vote")
def customer_move_vote(
    member: MemberArgument,
    partner: PartnerOption,
    to: Annotated[
        str, typer.Option("--to", metavar="PARTNER", help="the new home: a partner's name or address")
    ],
) -> None:
    """Vote, as this partner, to move a member's home (its home left the consortium, or it has no key
    to sign the move); it moves once a strict majority of the partners voted for the same home."""
    from api.usecases.members import vote_home_move

    outcome = with_crm(lambda crm: vote_home_move(crm, as_partner(partner), member, to))
    _print_member_vote(partner, member, f"home {outcome.target}", "moved", outcome)


@customer_app.command("move")
def customer_move(
    member: MemberArgument,
    partner: PartnerOption,
    to: Annotated[
        str, typer.Option("--to", metavar="PARTNER", help="the new home: a partner's name or address")
    ],
    signature: Annotated[
        Path,
        typer.Option(
            "--signature", metavar="FILE", help="her signature of the move (`customer sign move`, run by her)"
        ),
    ],
) -> None:
    """Move a member's home as she signed it with her own key; any partner relays it (a member without
    a key, or whose home left: `customer move-vote`)."""
    from api.usecases.members import relay_home_move

    signed = _signature(signature)
    moved = with_crm(lambda crm: relay_home_move(crm, as_partner(partner), member, to, signed))
    console.print(
        f"member {hexid(member)}: home {moved.home} (was {moved.previous}), in block {moved.block_number}"
    )


@customer_app.command("erase-vote")
def customer_erase_vote(member: MemberArgument, partner: PartnerOption) -> None:
    """Vote, as this partner, to erase a member on chain (one with a key is never erased by its home
    alone); done once a strict majority of the partners voted so. Its home's `erase` then erases the
    store's data."""
    from api.usecases.members import vote_erasure

    outcome = with_crm(lambda crm: vote_erasure(crm, as_partner(partner), member))
    _print_member_vote(partner, member, "erasure", "erased on chain", outcome)


def _print_member_vote(partner: str, member: bytes, what: str, done: str, outcome: Any) -> None:
    line = f"member {hexid(member)}, {what}: {outcome.votes} of {outcome.needed} votes: " + (
        done if outcome.done else "not yet"
    )
    if outcome.counts_until is not None:
        line += (
            f" (a strict majority of the {plural(outcome.partners, 'partner')}; {partner}'s vote counts"
            f" until {outcome.counts_until:%Y-%m-%d %H:%M UTC})"
        )
    console.print(line)


SignKeyOption = Annotated[Path, typer.Option("--key", metavar="FILE", help="your keystore file (it signs)")]
SignOutOption = Annotated[
    Path, typer.Option("--out", metavar="FILE", help="where to write the signature file (must not exist)")
]


def _sign_to_file(
    key_file: Path, passphrase_file: Path | None, out: Path, make: Callable[[Crm, Any], Any]
) -> None:
    """Open the customer's key here, in her own process, have `make(crm, key)` prepare and sign, and
    write the signature file for a partner to relay."""
    from api.usecases.signing import write_signature_file

    key = _customer_key(key_file, passphrase_file)
    signed = with_crm(lambda crm: make(crm, key))
    with user_errors():
        write_signature_file(out, signed)
    message = signed.message
    until = datetime.fromtimestamp(message["deadline"]).astimezone()
    console.print(
        f"{out}: {signed.primary} signed by {key.address} for member {message['member']}, nonce"
        f" {message['nonce']}, valid until"
        f" {until:%Y-%m-%d %H:%M %Z}; hand it to the partner"
    )


def _sign_consent(
    withdraw: bool, member: bytes, partner: str, purpose: str, expires: str | None, key: Path,
    passphrase_file: Path | None, out: Path,
) -> None:  # fmt: skip
    from api.usecases.signing import customer_signs_consent

    expires_at = _parse_time(expires)

    def make(crm: Crm, k: Any) -> Any:
        return customer_signs_consent(
            crm, k, member, partner, purpose, withdraw=withdraw, expires_at=expires_at
        )

    _sign_to_file(key, passphrase_file, out, make)


@customer_sign_app.command("consent-give")
def customer_sign_consent_give(
    member: MemberOption,
    partner: PartnerOption,
    purpose: PurposeOption,
    key: SignKeyOption,
    out: SignOutOption,
    expires: Annotated[
        str | None, typer.Option(metavar="TIME", help="ISO 8601 expiry with time zone")
    ] = None,
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Sign your consent to a partner for a purpose (the partner relays it: `consent give --signature`)."""
    _sign_consent(False, member, partner, purpose, expires, key, passphrase_file, out)


@customer_sign_app.command("consent-withdraw")
def customer_sign_consent_withdraw(
    member: MemberOption,
    partner: PartnerOption,
    purpose: PurposeOption,
    key: SignKeyOption,
    out: SignOutOption,
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Sign the withdrawal of your consent (relayed with `consent withdraw --signature`)."""
    _sign_consent(True, member, partner, purpose, None, key, passphrase_file, out)


@customer_sign_app.command("redeem")
def customer_sign_redeem(
    member: MemberOption,
    partner: PartnerOption,
    amount: AmountOption,
    key: SignKeyOption,
    out: SignOutOption,
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Sign a redemption of your points at a partner (relayed with `points redeem --signature`)."""
    from api.usecases.signing import customer_signs_redeem

    _sign_to_file(
        key, passphrase_file, out, lambda crm, k: customer_signs_redeem(crm, k, member, partner, amount)
    )


@customer_sign_app.command("key-change")
def customer_sign_key_change(
    member: MemberOption,
    new_signer: NewSignerOption,
    key: SignKeyOption,
    out: SignOutOption,
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Sign, with your current key, the change to a new one (relayed with `customer key change`)."""
    from api.usecases.signing import customer_signs_key_change

    _sign_to_file(
        key, passphrase_file, out, lambda crm, k: customer_signs_key_change(crm, k, member, new_signer)
    )


@customer_sign_app.command("binding")
def customer_sign_binding(
    key: SignKeyOption,
    out: SignOutOption,
    member: Annotated[
        bytes | None,
        typer.Option(
            "--member",
            parser=parse_member,
            metavar="MEMBER",
            help="a member without a key (for `customer key bind`); none: a new member id (`customer add`)",
        ),
    ] = None,
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Sign, with your key, its binding to a member id: a new one (relayed with `customer add --signer
    --binding`) or, with --member, yours that has no key yet (relayed with `customer key bind`)."""
    from api.usecases.signing import customer_signs_binding

    _sign_to_file(key, passphrase_file, out, lambda crm, k: customer_signs_binding(crm, k, member))


@customer_sign_app.command("move")
def customer_sign_move(
    member: MemberOption,
    to: Annotated[
        str, typer.Option("--to", metavar="PARTNER", help="your new home: a partner's name or address")
    ],
    key: SignKeyOption,
    out: SignOutOption,
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Sign the move of your home to another partner (relayed with `customer move --signature`)."""
    from api.usecases.signing import customer_signs_home_move

    _sign_to_file(key, passphrase_file, out, lambda crm, k: customer_signs_home_move(crm, k, member, to))


@customer_sign_app.command("erasure")
def customer_sign_erasure(
    member: MemberOption,
    key: SignKeyOption,
    out: SignOutOption,
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Sign your own erasure, which cannot be undone (relayed by your home partner: `erase --signature`)."""
    from api.usecases.signing import customer_signs_erasure

    _sign_to_file(key, passphrase_file, out, lambda crm, k: customer_signs_erasure(crm, k, member))


@customer_app.command("show")
def customer_show(member: MemberArgument, partner: PartnerOption) -> None:
    """A customer's personal data (owning partner only)."""
    from api.usecases.customers import show_customer

    view = with_crm(lambda crm: show_customer(crm, as_partner(partner), member))
    table = Table("field", "value", title=f"member {hexid(member)} ({view.status})")
    for key, value in view.pii.items():
        table.add_row(key, str(value))
    show_wide(table)


@customer_app.command("timeline")
def customer_timeline_cmd(member: MemberArgument, partner: PartnerOption) -> None:
    """Every change to a customer's record, oldest first, with where the chain holds its proof."""
    from api.usecases.timeline import customer_timeline

    entries = with_crm(lambda crm: customer_timeline(crm, as_partner(partner), member))
    table = Table("when", "what", "detail", "on chain", title=f"member {hexid(member)}")
    for entry in entries:
        where = [f"block {entry['block']}"] if entry.get("block") is not None else []
        if entry.get("leaf") is not None:
            where.append(f"leaf {entry['leaf']}" + ("" if entry.get("anchored") else " (pending)"))
        table.add_row(entry["at"] or "", entry["event"], entry["detail"], ", ".join(where) or "-")
    show_wide(table)


@customer_app.command("list")
def customer_list(
    partner: PartnerOption,
    search: Annotated[
        str | None,
        typer.Option(metavar="TEXT", help="own customer number (exact), or part of a name or e-mail"),
    ] = None,
    page: Annotated[int, typer.Option(metavar="N", help="which page")] = 1,
    per_page: Annotated[int, typer.Option(metavar="N", help="customers per page (at most 500)")] = 20,
) -> None:
    """The partner's customers, a page at a time."""
    from api.usecases.customers import list_customers

    found = with_crm(
        lambda crm: list_customers(crm, as_partner(partner), search=search, page=page, per_page=per_page)
    )
    table = Table("member", "customer number", "name", "email", "status")
    for view in found.customers:
        pii = view.pii
        table.add_row(
            hexid(view.member_id),
            str(pii.get("external_ref", "-")),
            str(pii.get("name", "-")),
            str(pii.get("email", "-")),
            str(view.status),
        )
    show_wide(table)
    pages = max(1, -(-found.total // found.per_page))
    shown = f"{len(found.customers)} of {plural(found.total, 'customer')}"
    console.print(f"page {found.page} of {pages}: {shown}")


@customer_app.command("update")
def customer_update(
    member: MemberArgument,
    partner: PartnerOption,
    name: Annotated[str | None, typer.Option(metavar="TEXT", help="full name")] = None,
    email: Annotated[str | None, typer.Option(metavar="EMAIL", help="e-mail address")] = None,
    phone: Annotated[str | None, typer.Option(metavar="TEXT", help="phone number")] = None,
    country: Annotated[str | None, typer.Option(metavar="CC", help="ISO 3166-1 alpha-2 country code")] = None,
    address: Annotated[str | None, typer.Option(metavar="TEXT", help="postal address")] = None,
) -> None:
    """Change a customer's personal data (owning partner only)."""
    from api.usecases.customers import update_customer

    given = {"name": name, "email": email, "phone": phone, "country": country, "address": address}
    changes = {key: value for key, value in given.items() if value is not None}
    view = with_crm(lambda crm: update_customer(crm, as_partner(partner), member, changes))
    console.print(f"updated {hexid(view.member_id)}: {', '.join(sorted(changes))}")
