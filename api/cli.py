"""The `ledgercrm` command line.

Every command that changes state works on a home folder (`--home`, env LEDGERCRM_HOME, default
./.ledgercrm) created by `init`. User mistakes end in one line on stderr and a non-zero exit, never a
traceback."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TextIO, TypeVar

import typer
import typer.rich_utils
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperOption

from api.errors import CrmError
from api.principal import Principal
from api.progress import Progress
from offchain.errors import VaultError

if TYPE_CHECKING:
    from api.context import Crm
    from api.usecases.demo import Credentials, DemoReport

app = typer.Typer(
    help="ledgercrm: a permissioned, ledger-backed CRM with an audit trail.",
    no_args_is_help=True,
    add_completion=False,
)
partner_app = typer.Typer(help="Partner organizations of the coalition.", no_args_is_help=True)
customer_app = typer.Typer(help="A partner's customers.", no_args_is_help=True)
interaction_app = typer.Typer(help="Customer interactions.", no_args_is_help=True)
consent_app = typer.Typer(help="Consent per member, controller and purpose.", no_args_is_help=True)
points_app = typer.Typer(help="Coalition loyalty points.", no_args_is_help=True)
import_app = typer.Typer(help="Bulk imports.", no_args_is_help=True)
governance_app = typer.Typer(
    help="Consortium membership: proposals and votes, each cast with one partner's own key.",
    no_args_is_help=True,
)
customer_key_app = typer.Typer(
    help="A customer's own key (an encrypted keystore file).", no_args_is_help=True
)
customer_app.add_typer(customer_key_app, name="key")
customer_sign_app = typer.Typer(
    help="Run by the customer, with her own keystore: sign what a partner then relays (--signature FILE).",
    no_args_is_help=True,
)
customer_app.add_typer(customer_sign_app, name="sign")
model_app = typer.Typer(
    help="Churn models: train and register, list, read a model card.", no_args_is_help=True
)
decision_app = typer.Typer(
    help="Automated decisions logged on chain: list, show, verify.", no_args_is_help=True
)
audit_app = typer.Typer(
    help="An auditor's evidence: bundles, their verification against the chain, a monitor.",
    no_args_is_help=True,
)
token_app = typer.Typer(help="Partners' API keys for the HTTP API.", no_args_is_help=True)
for sub, name in (
    (partner_app, "partner"),
    (customer_app, "customer"),
    (interaction_app, "interaction"),
    (consent_app, "consent"),
    (points_app, "points"),
    (import_app, "import"),
    (governance_app, "governance"),
    (model_app, "model"),
    (decision_app, "decision"),
    (audit_app, "audit"),
    (token_app, "token"),
):
    app.add_typer(sub, name=name)

# soft_wrap: member ids and addresses must never be split across lines, even in a pipe
# markup=False: what is printed holds the user's own text (names, keys, data), which Rich would read as
# markup wherever it has square brackets; styled parts are `Text` instead.
console = Console(soft_wrap=True, highlight=False, markup=False)
errors = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)
T = TypeVar("T")
MAX_DATA_BYTES = 64 * 1024  # the most JSON `--data` takes: an interaction is a record, not a file store

HomeOption = Annotated[
    Path,
    typer.Option("--home", envvar="LEDGERCRM_HOME", help="the home folder that `init` created"),
]
PartnerOption = Annotated[
    str, typer.Option("--partner", metavar="NAME", help="the partner's name, e.g. acme")
]


def _one_line_usage_error(exc: Any) -> None:
    """A malformed command line is one line on stderr (exit 2, the usage error's code), like every other
    mistake, instead of Typer's boxed usage wrapped at 80 columns in a pipe."""
    ctx = getattr(exc, "ctx", None)
    where = f" (`{ctx.command_path} --help` lists what it takes)" if ctx is not None else ""
    errors.print(Text.assemble(("error: ", "red"), exc.format_message() + where))


def _flag_type(self: TyperOption, ctx: typer.Context) -> str | None:
    """An on/off flag takes no value: the help shows no type for it (Typer would show `<bool>`)."""
    if self.is_flag and not self.count:
        return None
    return _option_type(self, ctx)


# Typer looks these up at call time: usage errors and option types, our way, in every command.
typer.rich_utils.rich_format_error = _one_line_usage_error  # type: ignore[assignment]
_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign,assignment]


def parse_member(value: str) -> bytes:
    text = value.removeprefix("0x")
    if len(text) != 64:
        raise typer.BadParameter(f"a member id is 0x followed by 64 hex digits, not {value!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise typer.BadParameter(f"a member id is 0x followed by 64 hex digits, not {value!r}") from None


MemberOption = Annotated[
    bytes,
    typer.Option("--member", parser=parse_member, metavar="MEMBER", help="member id (0x + 64 hex digits)"),
]
MemberArgument = Annotated[
    bytes, typer.Argument(parser=parse_member, metavar="MEMBER", help="member id (0x + 64 hex digits)")
]


SignatureOption = Annotated[
    Path | None,
    typer.Option(
        "--signature",
        metavar="FILE",
        help="the customer's signature file (`ledgercrm customer sign ...`, run by her): needed for a"
        " member with a key",
    ),
]
PassphraseFileOption = Annotated[
    Path | None,
    typer.Option(
        "--passphrase-file", metavar="FILE", help="read the key file's passphrase from FILE (else a prompt)"
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


def _signature(path: Path | None) -> Any:
    """The customer's signature file as a SignedMessage, or None if no file was given."""
    if path is None:
        return None
    from api.usecases.signing import read_signature_file

    with user_errors():
        return read_signature_file(path)


class State:
    home: Path = Path(".ledgercrm")


state = State()


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import version

        console.print(f"ledgercrm {version('ledger-crm')}", markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    home: HomeOption = Path(".ledgercrm"),
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """ledgercrm: a permissioned, ledger-backed CRM with an audit trail."""
    state.home = home


def fail(message: str, code: int = 1) -> NoReturn:
    """One line on stderr and a non-zero exit. The message is printed as it is: Rich markup would eat
    anything in square brackets."""
    errors.print(Text.assemble(("error: ", "red"), message))
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Domain errors become one line and exit code 1."""
    # imported here, not at the top: `--help` and `--version` need neither web3 nor SQLAlchemy
    from sqlalchemy.exc import OperationalError

    from api.messages import describe
    from ledger.errors import LedgerError

    try:
        yield
    except (CrmError, LedgerError, VaultError) as exc:
        fail(describe(exc))
    except OperationalError as exc:
        if "database is locked" not in str(exc):
            raise
        fail("the store is busy: another ledgercrm command is writing to it; try again when it has finished")


def with_crm(action: Callable[[Crm], T]) -> T:
    from api.usecases.home import open_crm

    with user_errors():
        crm = open_crm(state.home)
        for partner, member, block in crm.reshredded:
            errors.print(
                f"warning: the key store held a data key of {partner}'s member 0x{member.hex()}, which the"
                f" chain erased in block {block} (a key store restored from a backup?): shredded it again"
            )
        try:
            return action(crm)
        finally:
            crm.close()


def show_wide(table: Table) -> None:
    """Print a table at its natural width. In a pipe Rich assumes 80 columns and would split member ids,
    hashes and intervals across lines, which no script (or person) can read back."""
    natural = Console(width=10_000).measure(table).maximum
    wide = Console(file=sys.stdout, width=max(console.width, natural), highlight=False, markup=False)
    wide.print(table)


def plural(count: int, noun: str, nouns: str | None = None) -> str:
    return f"{count} {noun if count == 1 else nouns or noun + 's'}"


def hexid(value: bytes) -> str:
    return "0x" + value.hex()


def as_partner(name: str) -> Principal:
    return Principal.of_partner(name)


# A command that names no partner acts as this home's operator: for every partner it holds keys of.
OPERATOR = Principal.operator()


ConsortiumOption = Annotated[
    str | None,
    typer.Option(
        metavar="ADDRESS",
        help="the Consortium you trust (given out of band): refuse any deployment that is not its own",
    ),
]


# --- init, partners ------------------------------------------------------------------------------------


@app.command()
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
    if not config.development:
        console.print(
            "not a development chain: the public test keys are refused here; `partner add` without"
            " --key-file generates a fresh key, which you fund"
        )


@partner_app.command("add")
def partner_add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="1-63 lowercase letters, digits or -")],
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


# --- customers and interactions --------------------------------------------------------------------------


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
    signer_key: Annotated[
        Path | None,
        typer.Option(metavar="FILE", help="the customer's own keystore file (`customer key new`) to bind"),
    ] = None,
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Register a customer (enrolled on chain, this partner its home); the last line printed is the
    member id."""
    from pydantic import ValidationError

    from api.usecases.customer_keys import customer_binding
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
        fail(f"--{str(exc.errors()[0]['loc'][0]).replace('_', '-')}: {exc.errors()[0]['msg']}")
    key = _customer_key(signer_key, passphrase_file)
    signer = None if key is None else key.address

    def register(crm: Crm) -> bytes:
        binding = None if key is None else customer_binding(crm, key)
        return register_customer(crm, as_partner(partner), data, signer=signer, binding=binding)

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
    key: Annotated[Path, typer.Option(metavar="FILE", help="the customer's keystore file")],
    passphrase_file: PassphraseFileOption = None,
) -> None:
    """Bind a customer's own key to a member without one (its home partner only)."""
    from api.usecases.customer_keys import bind_customer_key, customer_binding

    account = _customer_key(key, passphrase_file)
    address = with_crm(
        lambda crm: bind_customer_key(
            crm, as_partner(partner), member, account.address, customer_binding(crm, account)(member)
        )
    )
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


# --- customer sign: run by the customer, on her own device, with her own keystore -----------------------

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
        f"{out}: {signed.primary} signed by {key.address}, nonce {message['nonce']}, valid until"
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


@interaction_app.command("list")
def interaction_list(partner: PartnerOption, member: MemberOption) -> None:
    """A customer's interactions with their external keys, kinds and anchoring state."""
    from api.usecases.interactions import list_interactions

    lines = with_crm(lambda crm: list_interactions(crm, as_partner(partner), member))
    table = Table("id", "occurred", "kind", "external key", "anchoring")
    for line in lines:
        table.add_row(
            str(line.interaction_id),
            line.occurred_at.isoformat(timespec="seconds"),
            line.kind,
            line.external_key or "-",
            line.anchoring + (" (content erased)" if line.erased else ""),
        )
    show_wide(table)
    if not lines:
        console.print("no interactions")


@interaction_app.command("add")
def interaction_add(
    partner: PartnerOption,
    member: MemberOption,
    kind: Annotated[
        str, typer.Option(metavar="KIND", help="purchase, return, support_ticket, email or visit")
    ],
    data: Annotated[
        str,
        typer.Option(
            metavar="JSON",
            help=f"a JSON object; @FILE reads a file, - stdin ({MAX_DATA_BYTES // 1024} KiB at most)",
        ),
    ],
    external_key: Annotated[
        str | None, typer.Option(metavar="KEY", help="idempotency key, e.g. an invoice number")
    ] = None,
) -> None:
    """Record an interaction (anchored with its batch once the size or age threshold is reached)."""
    from api.usecases.interactions import NewInteraction, add_interaction

    payload = _json_object(data)

    item = NewInteraction(member, kind, payload, external_key=external_key)
    added = with_crm(lambda crm: add_interaction(crm, as_partner(partner), item))
    if added.interaction_id is None:
        console.print(f"already recorded: {external_key}")
        return
    console.print(f"interaction {added.interaction_id} recorded")
    for outcome in added.anchored:
        console.print(f"anchored batch {outcome.onchain_batch_id}: {outcome.size} leaves")


def _json_object(data: str) -> dict[str, Any]:
    """--data's JSON object, given inline, as @FILE or as - (stdin)."""
    if data == "-":
        raw = sys.stdin.buffer.read(MAX_DATA_BYTES + 1)
    elif data.startswith("@"):
        try:
            with open(data[1:], "rb") as handle:
                raw = handle.read(MAX_DATA_BYTES + 1)
        except OSError as exc:
            fail(f"--data: cannot read {data[1:]}: {exc.strerror}", code=2)
    else:
        raw = data.encode()
    if len(raw) > MAX_DATA_BYTES:
        fail(f"--data: at most {MAX_DATA_BYTES // 1024} KiB of JSON", code=2)
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        fail(f"--data: not JSON ({exc})", code=2)
    if not isinstance(payload, dict):
        fail("--data: must be a JSON object", code=2)
    return payload


# --- consent ---------------------------------------------------------------------------------------------


def _parse_time(value: str | None, option: str = "--expires") -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 time: {value!r}", param_hint=option) from None
    if parsed.tzinfo is None:
        raise typer.BadParameter("give a time zone, e.g. 2027-01-01T00:00:00+00:00", param_hint=option)
    return parsed


PurposeOption = Annotated[str, typer.Option(metavar="PURPOSE", help="e.g. loyalty, profiling, marketing")]


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


# --- points ----------------------------------------------------------------------------------------------


def _points(kind: str, partner: str, member: bytes, amount: int, signed: Any = None) -> None:
    from api.usecases.loyalty import PointsRequest, earn_points, redeem_points

    request = PointsRequest(member, amount)
    if kind == "earn":
        receipt = with_crm(lambda crm: earn_points(crm, as_partner(partner), request))
    else:
        receipt = with_crm(lambda crm: redeem_points(crm, as_partner(partner), request, signed=signed))
    console.print(f"{kind}ed {plural(amount, 'point')}; balance {receipt.balance}")


AmountOption = Annotated[int, typer.Option(metavar="POINTS", help="whole points, at least 1")]


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


@app.command()
def reconcile(
    partner: Annotated[str | None, typer.Option(metavar="NAME", help="one partner (default: all)")] = None,
) -> None:
    """Compare the store's point events and consent receipts with the chain; exit 0 iff they agree."""
    from api.usecases.reconciliation import reconcile_store

    report = with_crm(lambda crm: reconcile_store(crm, OPERATOR, partner))
    for mismatch in report.mismatches:
        console.print(Text.assemble(("mismatch", "red"), f" {mismatch}"))
    checked = (
        f"balances of {plural(report.points.members_checked, 'member')},"
        f" positions of {plural(report.points.partners_checked, 'partner')},"
        " consent receipts and point events against the chain's events: "
    )
    console.print(
        checked
        + ("store and chain agree" if report.ok else plural(len(report.mismatches), "mismatch", "mismatches"))
    )
    if report.pending:
        console.print(f"{report.pending} not yet on chain (waiting in the outbox)")
    if not report.ok:
        raise typer.Exit(1)


@app.command()
def export(partner: PartnerOption, member: MemberOption) -> None:
    """Everything held on one customer, decrypted, as JSON (a data-subject access request)."""
    from api.usecases.export import export_member

    document = with_crm(lambda crm: export_member(crm, as_partner(partner), member))
    console.print(json.dumps(document, indent=2, ensure_ascii=False, default=str))


# --- anchoring, verification, erasure ----------------------------------------------------------------


@app.command()
def anchor(
    partner: Annotated[str | None, typer.Option(metavar="NAME", help="one partner (default: all)")] = None,
) -> None:
    """Anchor every pending interaction now, after sending whatever else waits in the outboxes
    (enrolments, consent, points, decisions an interrupted command left)."""
    from api.usecases.anchoring import anchor_now, send_waiting

    def action(crm: Crm) -> tuple[Any, Any]:
        sent = send_waiting(crm, OPERATOR if partner is None else as_partner(partner), partner)
        return sent, anchor_now(crm, OPERATOR, partner)

    sent, run = with_crm(action)
    if sent.total:
        console.print(
            f"sent what waited: {plural(sent.enrolments, 'customer')} enrolled,"
            f" {plural(sent.consents, 'consent record')}, {plural(sent.points, 'point event')},"
            f" {plural(sent.decisions, 'decision')}"
        )
    for name, failure in run.failed:
        console.print(f"{name}: {failure.reason}; its batch went back to pending and was signed anew")
    for name, outcome in run.anchored:
        console.print(
            f"{name}: batch {outcome.onchain_batch_id}, {outcome.size} leaves, block {outcome.block_number}"
        )
    if not run.anchored and not sent.total:
        console.print("nothing to anchor")


PENDING_NAMED = 20  # pending records other than interactions named one a line, at most


@app.command()
def verify(
    member: Annotated[
        bytes | None, typer.Argument(parser=parse_member, metavar="MEMBER", help="one member's interactions")
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="every log, record and event of every partner")] = False,
    auditor: Annotated[
        bool, typer.Option("--auditor", help="open no key: every check that needs no personal data")
    ] = False,
    consortium: ConsortiumOption = None,
) -> None:
    """Verify the store against the chain, starting from the chain (from the Consortium, the trust anchor,
    down); exit 0 only if everything verifies."""
    from api.evidence.verification import Outcome
    from api.usecases.verification import verify as verify_store

    if (member is None) == (not all_):
        raise typer.BadParameter("give a MEMBER or --all (not both)")
    report = with_crm(lambda crm: verify_store(crm, OPERATOR, member, auditor=auditor, consortium=consortium))
    console.print(
        f"trusted: chain id {report.chain_id}, Consortium {report.consortium}"
        + (" (pinned)" if consortium is not None else " (this home's; pin it with --consortium ADDRESS)")
    )
    counts = report.counts
    summary = ", ".join(f"{counts[o]} {o.value}" for o in sorted(counts, key=str))
    # Pending records are not yet evidence of anything: they are counted and named, not failed.
    failed = report.failures
    for problem in failed:
        console.print(Text.assemble((problem.outcome.value, "red"), f" {problem.label}: {problem.detail}"))
    for elsewhere in (r for r in report.results if r.outcome is Outcome.NOT_HELD):
        console.print(Text(f"{elsewhere.outcome.value}: {elsewhere.label}: {elsewhere.detail}"))
    console.print(f"{len(report.results)} checked: {summary or 'nothing to verify'}")
    console.print("checks run: " + "; ".join(check.value for check in report.checks))
    if auditor:
        console.print("not run: content (decrypting payloads needs the partners' keys)")
    waiting = [r for r in report.results if r.outcome is Outcome.UNANCHORED and r.interaction_id is None]
    for item in waiting[:PENDING_NAMED]:  # what is not an interaction is named: customers, receipts
        console.print(Text(f"pending {item.label}: {item.detail}"))
    if len(waiting) > PENDING_NAMED:
        console.print(f"... and {len(waiting) - PENDING_NAMED} more pending records")
    if counts[Outcome.UNANCHORED]:
        console.print(f"{counts[Outcome.UNANCHORED]} pending: run `ledgercrm anchor` to send and anchor them")
    if failed:
        raise typer.Exit(1)


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


@app.command()
def erase(member: MemberArgument, partner: PartnerOption) -> None:
    """Erase a customer: delete their data key, keep tombstones, anchor an erasure receipt; on chain its
    consents are withdrawn, its points forfeited and the member frozen."""
    from api.usecases.erasure import erase_customer

    receipt, anchored = with_crm(lambda crm: erase_customer(crm, as_partner(partner), member))
    console.print(
        f"erased {hexid(member)}: {receipt.interactions_count} interactions now unreadable; "
        f"receipt 0x{receipt.receipt_hash.hex()} anchored in batch {anchored.onchain_batch_id}"
    )


# --- imports ---------------------------------------------------------------------------------------------


PLAIN_PROGRESS_EVERY = 5.0
"""Seconds between two plain progress lines (terminals get a live bar instead)."""


class PlainProgress:
    """Import progress as plain lines on a stream that is not a terminal (CI logs, pipes, files), where a
    Rich bar draws nothing until the end: a line when a phase first reports, then at most one every
    `every` seconds, and the last state at `close()`. Each line gives the phase, done/total, the rate
    since the previous line of that phase (so a slowdown shows) and the time since the start."""

    def __init__(
        self,
        stream: TextIO,
        *,
        every: float = PLAIN_PROGRESS_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream, self.every, self.clock = stream, every, clock
        self.started = self.last_line = clock()
        self.marks: dict[str, tuple[float, int]] = {}  # phase -> (time, done) at its previous line
        self.pending: tuple[str, int, int | None] | None = None  # the latest update not yet printed

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        now = self.clock()
        if phase in self.marks and now - self.last_line < self.every:
            self.pending = (phase, done, total)
            return
        self._line(now, phase, done, total)

    def close(self) -> None:
        if self.pending is not None:
            self._line(self.clock(), *self.pending)

    def _line(self, now: float, phase: str, done: int, total: int | None) -> None:
        of = f"/{total:,} ({100 * done / total:.0f}%)" if total else ""
        rate = ""
        if phase in self.marks:  # a phase's first line has no rate: when its work began is unknown
            since, done_then = self.marks[phase]
            if now > since and done > done_then:
                rate = f", {(done - done_then) / (now - since):,.0f}/s"
        self.stream.write(f"import: {phase} {done:,}{of}{rate}, {now - self.started:,.0f}s elapsed\n")
        self.stream.flush()  # a pipe is block-buffered: the line must show now, not at exit
        self.marks[phase] = (now, done)
        self.last_line = now
        self.pending = None


@contextmanager
def _progress() -> Iterator[Progress]:
    """The use case's progress(phase, done, total), shown as a Rich bar per import phase on a terminal and
    as plain lines (`PlainProgress`) anywhere else."""
    if not errors.is_terminal:
        plain = PlainProgress(sys.stderr, every=PLAIN_PROGRESS_EVERY)
        try:
            yield plain
        finally:
            plain.close()
        return

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<13}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=False,
    ) as bars:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(phase, total=total)
            bars.update(tasks[phase], completed=done, total=total)

        yield update


def _print_import(report: Any) -> None:
    table = Table("", "", title=f"import {report.source} into {report.partner}", show_header=False)
    for key, value in report.as_dict().items():
        if key == "timings":
            value = ", ".join(f"{phase} {seconds:.1f}s" for phase, seconds in value.items() if seconds)
        elif isinstance(value, float):
            value = f"{value:,.1f}"
        table.add_row(key.replace("_", " "), str(value))
    show_wide(table)


ImportPurposesOption = Annotated[
    str,
    typer.Option(
        "--purposes",
        metavar="P1,P2",
        help="the purposes the source system holds consent for, attested with collection method"
        " 'import' (comma-separated: loyalty, profiling, marketing, ...)",
    ),
]


def _purposes(value: str) -> list[str]:
    """The comma-separated list as given (empty items dropped); the use case checks each name."""
    return [name.strip() for name in value.split(",") if name.strip()]


INTERRUPTED_IMPORT = (
    "interrupted: what the import wrote so far is kept (customers, interactions, and the enrolments,"
    " consent, points and anchors still waiting in the outbox); run the same import again to finish it:"
    " it first sends what waits, then adds only what is missing, and records nothing twice"
)


@contextmanager
def import_interruptible() -> Iterator[None]:
    """Ctrl-C during an import: one line saying so and what re-running does, exit 130 (SIGINT's)."""
    try:
        yield
    except KeyboardInterrupt:
        fail(INTERRUPTED_IMPORT, code=130)


@import_app.command("online-retail")
def import_online_retail_cmd(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, metavar="PATH", help="online_retail_II.csv(.gz)")
    ],
    partner: PartnerOption,
    purposes: ImportPurposesOption = "loyalty",
) -> None:
    """Import the UCI Online Retail II data set (idempotent: re-running adds only what is missing)."""
    from api.importers.collector import no_collection_at_exit
    from api.importers.entries import start_reading_retail

    no_collection_at_exit()
    # The file is read (in a child process) while the chain and store modules load and open: reading it
    # is the longest step before the first invoice can be imported. It writes nothing.
    reader = start_reading_retail(str(path))
    try:
        from api.usecases.imports import import_online_retail

        def action(crm: Crm) -> Any:
            with _progress() as progress:
                return import_online_retail(
                    crm,
                    as_partner(partner),
                    path,
                    progress=progress,
                    purposes=_purposes(purposes),
                    reader=reader,
                )

        with import_interruptible():
            report = with_crm(action)
    finally:
        reader.close()  # already closed by the import, unless it never got that far
    _print_import(report)


@import_app.command("synthetic")
def import_synthetic_cmd(
    partner: PartnerOption,
    seed: Annotated[int, typer.Option(metavar="N", help="the same seed gives the same data")] = 7,
    customers: Annotated[int, typer.Option(min=1, metavar="N")] = 1000,
    interactions: Annotated[int, typer.Option(min=1, metavar="N")] = 10_000,
    purposes: ImportPurposesOption = "loyalty",
) -> None:
    """Import seeded synthetic customers (Faker PII), purchases, returns and support tickets."""
    from api.importers.collector import no_collection_at_exit
    from api.usecases.imports import import_synthetic

    no_collection_at_exit()

    def action(crm: Crm) -> Any:
        with _progress() as progress:
            return import_synthetic(
                crm,
                as_partner(partner),
                seed=seed,
                customers=customers,
                interactions=interactions,
                progress=progress,
                purposes=_purposes(purposes),
            )

    with import_interruptible():
        report = with_crm(action)
    _print_import(report)


# --- models, scores, decisions ------------------------------------------------------------------------


AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        metavar="DATE",
        help="ISO 8601 date or time (UTC unless it names a zone); default: from the data",
    ),
]


def _parse_as_of(value: str | None) -> datetime | None:
    """A date (midnight UTC) or a time; a time without a zone is UTC (the data's own times are)."""
    from datetime import UTC

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 date or time: {value!r}", param_hint="--as-of") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@contextmanager
def _steps() -> Iterator[Callable[[str], None]]:
    """A spinner that names the step a long use case is in (on stderr, so stdout stays the result)."""
    with errors.status("starting") as status:
        yield lambda what: status.update(what)


def _interval(metric: dict[str, float]) -> str:
    return f"{metric['value']:.3f} [{metric['low']:.3f}, {metric['high']:.3f}]"


@model_app.command("train")
def model_train(
    partner: PartnerOption,
    horizon_days: Annotated[
        int,
        typer.Option(
            "--horizon-days", metavar="DAYS", help="churn: no purchase within DAYS after the as-of date"
        ),
    ] = 90,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", metavar="DATE", help="the holdout's as-of date (default: the latest the data allows)"
        ),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget", metavar="SHARE|N", help="act on this share (20%) or number of members most at risk"
        ),
    ] = None,
    offer_cost: Annotated[
        float | None, typer.Option("--offer-cost", metavar="AMOUNT", help="what one retention offer costs")
    ] = None,
    loss_cost: Annotated[
        float | None, typer.Option("--loss-cost", metavar="AMOUNT", help="what a lost customer costs")
    ] = None,
    backtest: Annotated[
        bool, typer.Option("--backtest/--no-backtest", help="the three-cut backtest in the card (minutes)")
    ] = True,
) -> None:
    """Train a churn model on the partner's verified interactions and register it on chain, with its
    action rule: a budget (default 20%), or act where churn probability x loss cost >= offer cost."""
    from api.usecases.models import action_policy, train_model

    moment = _parse_as_of(as_of)
    try:
        policy = action_policy(budget, offer_cost, loss_cost)
    except CrmError as exc:  # a malformed option: exit 2, before anything is opened
        fail(str(exc), code=2)

    def action(crm: Crm) -> Any:
        with _steps() as step:
            return train_model(
                crm,
                as_partner(partner),
                horizon_days=horizon_days,
                as_of=moment,
                step=step,
                policy=policy,
                backtest=backtest,
            )

    done = with_crm(action)
    card = done.trained.card
    table = Table(title=f"holdout as of {card['split']['holdout']['asOf'][:10]}: {card['metricsNote']}")
    for column in ("model", "AUC", "accuracy", "PR-AUC", "Brier", "lift top 20%"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, values in done.trained.table:
        table.add_row(
            name, *(_interval(values[m]) for m in ("auc", "accuracy", "pr_auc", "brier", "lift_top20"))
        )
    show_wide(table)
    left_out = ", ".join(f"{n} {what}" for what, n in sorted(done.excluded.items())) or "none"
    console.print(f"trained on {done.inputs:,} verified interactions (left out: {left_out})")
    console.print(f"action rule: {card['policy']['rule']}")
    for cut in card["backtest"]:
        active = next(iter(cut["populations"].values()), None)
        if active is not None and "expectedCalibrationError" in active:
            console.print(
                f"as of {cut['asOf'][:10]}: calibration error {active['expectedCalibrationError']:.3f}, "
                f"churn {active['churnRate']:.1%}, mean score {active['meanScore']:.1%}, "
                f"acted on {active['shareActedOn']:.1%}"
            )
    console.print(
        f"registered: refitted on the {len(card['registered']['training'])} slices labelled by now "
        "(the holdout's figures are its estimate; `model card` has the backtest)"
    )
    console.print(f"model hash 0x{done.trained.model.model_hash.hex()}, model id {done.model_id}")


@model_app.command("list")
def model_list() -> None:
    """Every registered model, checked against the chain's record."""
    from api.usecases.models import list_models

    lines = with_crm(lambda crm: list_models(crm, OPERATOR))
    for line in lines:  # one model a line, its id first (hashes are never wrapped)
        auc = "-" if line.holdout_auc is None else f"{line.holdout_auc:.3f}"
        console.print(
            Text.assemble(
                f"{line.model_id} {line.partner} {hexid(line.model_hash)} block {line.block_number}"
                f" holdout AUC {auc} on chain: ",
                ("yes", "green") if line.on_chain else ("NO: the chain's record differs", "red"),
            )
        )
    if not lines:
        console.print("no models registered: run `ledgercrm model train`")
    if any(not line.on_chain for line in lines):
        raise typer.Exit(1)


@model_app.command("card")
def model_card_cmd(
    model_id: Annotated[int, typer.Argument(metavar="MODEL_ID", min=0, help="the model's on-chain id")],
) -> None:
    """The model card as JSON (RFC 8785, the bytes its on-chain hash is of)."""
    from api.usecases.models import model_card

    console.print(json.dumps(with_crm(lambda crm: model_card(crm, OPERATOR, model_id)), indent=2))


@app.command()
def segments(
    partner: PartnerOption,
    as_of: AsOfOption = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", metavar="FILE.png", help="write the silhouette and elbow plots here"),
    ] = None,
) -> None:
    """RFM segments of the partner's customers and a KMeans scan of k, from verified interactions."""
    from collections import Counter

    from api.usecases.models import segments as segment

    if plot is not None and plot.suffix.lower() != ".png":
        raise typer.BadParameter("the plot is a .png file", param_hint="--plot")
    if plot is not None and plot.exists():
        fail(f"--plot: {plot} exists; name a new file", code=2)
    moment = _parse_as_of(as_of)
    report = with_crm(lambda crm: segment(crm, as_partner(partner), as_of=moment, plot=plot))
    counts = Counter(row.segment for row in report.rows)
    table = Table(
        "segment",
        "members",
        "mean recency (days)",
        "mean purchases",
        "mean spend",
        title=f"RFM segments as of {report.as_of:%Y-%m-%d}",
    )
    for name, n in counts.most_common():
        rows = [r for r in report.rows if r.segment == name]
        table.add_row(
            name,
            str(n),
            f"{sum(r.recency_days for r in rows) / n:.0f}",
            f"{sum(r.frequency for r in rows) / n:.1f}",
            f"{sum(r.monetary for r in rows) / n:,.2f}",
        )
    show_wide(table)
    scan = report.scan
    kmeans = Table("k", "silhouette", "inertia", title="KMeans on standardised log R, F, M")
    for k, sil, inertia in zip(scan.ks, scan.silhouette, scan.inertia, strict=True):
        kmeans.add_row(str(k), f"{sil:.3f}", f"{inertia:,.0f}")
    console.print(kmeans)
    console.print(f"k by silhouette: {scan.by_silhouette}; k by elbow: {scan.elbow}")
    if report.excluded:
        console.print("left out: " + ", ".join(f"{n} {what}" for what, n in sorted(report.excluded.items())))
    if plot is not None:
        console.print(f"plot written to {plot}")


@app.command()
def score(
    partner: PartnerOption,
    member: Annotated[
        bytes | None,
        typer.Option(
            "--member", parser=parse_member, metavar="MEMBER", help="one member (0x + 64 hex digits)"
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="every customer of the partner")] = False,
    model: Annotated[
        int | None, typer.Option("--model", metavar="MODEL_ID", min=0, help="default: the partner's latest")
    ] = None,
    as_of: AsOfOption = None,
) -> None:
    """Score customers with a registered model and log each decision on chain."""
    from api.usecases.decisions import score as score_members

    if (member is None) == (not all_):
        raise typer.BadParameter("give --member MEMBER or --all (not both)")
    moment = _parse_as_of(as_of)
    chosen = None if member is None else [member]

    def action(crm: Crm) -> Any:
        with _steps() as step:
            return score_members(crm, as_partner(partner), chosen, model_id=model, as_of=moment, step=step)

    started = time.perf_counter()
    report = with_crm(action)
    seconds = time.perf_counter() - started
    excluded = sum(report.inputs_excluded.values())
    detail = ", ".join(f"{n} {what}" for what, n in sorted(report.inputs_excluded.items()))
    console.print(
        f"model {report.model_id}, as of {report.as_of:%Y-%m-%d %H:%M} UTC"
        + (f" ({report.as_of_rule})" if report.as_of_rule else "")
    )
    if report.rule:
        ranked = f", among the {report.ranked:,} members scored as of then" if report.ranked else ""
        console.print(f"action rule: {report.rule}{ranked}")
    console.print(
        f"{len(report.decided)} decided, {report.skipped_for_consent} skipped for consent, "
        f"{excluded} inputs excluded{f' ({detail})' if detail else ''}, {report.no_inputs} no inputs"
        + (
            f", {report.outside_population} outside the population (no purchase in the year before)"
            if report.outside_population
            else ""
        )
        + (f", {report.erased} erased" if report.erased else "")
    )
    if report.actions:
        console.print("actions: " + ", ".join(f"{n} {what}" for what, n in report.actions.most_common()))
    console.print(
        "time: " + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in report.timings.items())
    )
    if report.decided:
        first, last = report.decided[0], report.decided[-1]
        console.print(
            f"decision ids {first}..{last} logged on chain in {seconds:.1f} s"
            if first != last
            else f"decision id {first} logged on chain"
        )


DecisionIdArgument = Annotated[
    int, typer.Argument(metavar="DECISION_ID", min=0, help="the decision's on-chain id")
]


@decision_app.command("list")
def decision_list(
    partner: PartnerOption,
    member: Annotated[
        bytes | None,
        typer.Option(
            "--member", parser=parse_member, metavar="MEMBER", help="one member (0x + 64 hex digits)"
        ),
    ] = None,
) -> None:
    """The partner's decisions as the chain logged them, one a line, its id first."""
    from api.usecases.decisions import list_decisions

    lines = with_crm(lambda crm: list_decisions(crm, as_partner(partner), member))
    for line in lines:
        console.print(
            f"{line.decision_id} {hexid(line.member)} model {line.model_id}"
            f" score {line.score_bps / 100:.2f}% {line.action} block {line.block_number}"
            + ("" if line.in_store else " (no matching record in the store)")
        )
    if not lines:
        console.print("no decisions")


@decision_app.command("show")
def decision_show(decision_id: DecisionIdArgument, partner: PartnerOption) -> None:
    """A decision's score, action, reasons and counterfactual (decrypted: the partner's own only)."""
    from api.usecases.decisions import show_decision

    shown = with_crm(lambda crm: show_decision(crm, as_partner(partner), decision_id))
    e = shown.explanation
    console.print(
        f"decision {shown.decision_id}: member {hexid(shown.member)}, model {shown.model_id}, "
        f"block {shown.block_number}, as of {e['asOf']}"
    )
    console.print(f"churn score {e['score']:.4f} ({e['scoreBps']} bps): action {e['action']}")
    for reason in e["reasons"]:
        console.print(
            f"  reason: {reason['feature']} = {e['features'][reason['feature']]:g} ({reason['meaning']}), "
            f"{reason['direction']} ({reason['contribution']:+.3f} logit)"
        )
    cf = e["counterfactual"]
    if cf is not None and cf.get("purchases"):
        changes = ", ".join(f"{c['feature']} {c['from']:g} -> {c['to']:g}" for c in cf["changes"])
        console.print(
            f"  counterfactual: {cf['purchases']} more purchase(s) of {cf['spendEach']:,.2f} each, on the "
            f"days before, would give a score of {cf['score']:.4f}: no {e['action']} ({changes})"
        )
    elif cf is not None:
        changes = " and ".join(f"{c['feature']} from {c['from']:g} to {c['to']:g}" for c in cf["changes"])
        console.print(
            f"  counterfactual: with {changes}, the score would be {cf['score']:.4f}: no {e['action']}"
        )
    elif e["action"] != "none":
        console.print("  counterfactual: no change a customer can reach flips it")
    if e.get("policy"):
        from ml.policy import Policy

        cut = e["policy"].get("cutoff")
        console.print(
            f"  action rule: {Policy.from_json(e['policy']).describe()}"
            + (f"; ranked among {cut['members']:,}, {cut['actedOn']:,} acted on" if cut else "")
        )
    console.print(
        f"  exact: logit {e['logit']:.6f} = intercept + the {len(e['contributions'])} feature terms"
    )


@decision_app.command("disclose")
def decision_disclose(
    decision_id: DecisionIdArgument,
    partner: PartnerOption,
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="a new file (never overwritten)")],
) -> None:
    """Write what an auditor needs to reproduce one decision bit for bit: its explanation and the one
    key its on-chain commitment is under (personal data: hand it to the auditor only)."""
    from api.usecases.customer_keys import write_new_file
    from api.usecases.decisions import disclose_decision

    if out.exists():
        fail(f"--out: {out} exists; name a new file", code=2)
    disclosure = with_crm(lambda crm: disclose_decision(crm, as_partner(partner), decision_id))
    with user_errors():
        write_new_file(out, json.dumps(disclosure, indent=2).encode())
    console.print(f"disclosure of decision {decision_id} written to {out} (readable by its owner only)")


@decision_app.command("verify")
def decision_verify(
    decision_id: DecisionIdArgument,
    auditor: Annotated[
        bool, typer.Option("--auditor", help="open no key: the checks that need no personal data")
    ] = False,
    disclosure: Annotated[
        Path | None,
        typer.Option(
            "--disclosure",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="with --auditor: the partner's disclosure (`decision disclose`), to reproduce the score",
        ),
    ] = None,
) -> None:
    """Reproduce a decision from the chain down; exit 0 only if model hash, input root, score and
    explanation all reproduce and consent was valid."""
    from api.usecases.decisions import verify_decision

    if disclosure is not None and not auditor:
        fail("--disclosure: a disclosure is for an auditor's run: add --auditor", code=2)
    disclosed = None
    if disclosure is not None:
        try:
            disclosed = json.loads(disclosure.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            fail(f"--disclosure: {disclosure} is not a disclosure file ({type(exc).__name__})", code=2)
        if not isinstance(disclosed, dict):
            fail(f"--disclosure: {disclosure} is not a disclosure file", code=2)
    result = with_crm(
        lambda crm: verify_decision(crm, OPERATOR, decision_id, auditor=auditor, disclosure=disclosed)
    )
    for step in result.steps:
        console.print(
            Text.assemble(
                ("ok" if step.ok else "FAILED", "green" if step.ok else "red"), f" {step.name}: {step.detail}"
            )
        )
    if result.not_run:
        console.print("not run: " + ", ".join(result.not_run) + " (they read the inputs: the partner's keys)")
    console.print(
        f"decision {decision_id}: "
        + (
            "reproduced"
            if result.ok
            else "checks without keys pass"
            if not [s for s in result.steps if not s.ok]
            else "NOT reproduced"
        )
    )
    if not result.ok:
        raise typer.Exit(1)


@app.command()
def recommend(
    partner: PartnerOption,
    member: MemberOption,
    top: Annotated[int, typer.Option("--top", metavar="N", min=1, max=100)] = 10,
) -> None:
    """Item-to-item recommendations for one customer, from the partner's verified purchases."""
    from api.usecases.models import recommendations

    picks = with_crm(lambda crm: recommendations(crm, as_partner(partner), member, top=top))
    for rank, item in enumerate(picks, 1):
        console.print(f"{rank}. {item}")
    if not picks:
        console.print("nothing to recommend: no co-purchases with what this customer bought")


# --- demo and tools ----------------------------------------------------------------------------------------


@app.command()
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


@app.command("compile")
def compile_(force: Annotated[bool, typer.Option(help="rebuild even if the cache is fresh")] = False) -> None:
    """Compile contracts/ (offline) and print what was built."""
    from ledger.compiler import compile_contracts

    with user_errors():
        build = compile_contracts(force=force)
    table = Table("contract", "bytecode bytes", title=f"solc {build.compiler}")
    for name, artifact in sorted(build.artifacts.items()):
        table.add_row(name, str(len(artifact.bytecode) // 2 - 1))
    show_wide(table)


# --- the HTTP API ----------------------------------------------------------------------------------------


@token_app.command("issue")
def token_issue(
    partner: PartnerOption,
    scope: Annotated[
        list[str] | None,
        typer.Option("--scope", metavar="SCOPE", help="resource:action, repeatable (default: all)"),
    ] = None,
    expires: Annotated[
        str, typer.Option("--expires", metavar="DURATION", help="how long it lasts: 30d, 12h or 90m")
    ] = "90d",
) -> None:
    """Issue an API key for a partner's systems; it is printed once, on the last line."""
    from api.usecases.access import check_scopes, issue_token, parse_duration

    try:
        lifetime = parse_duration(expires)
        scopes = check_scopes(scope or ())
    except CrmError as exc:
        fail(f"--expires or --scope: {exc}", code=2)
    issued = with_crm(lambda crm: issue_token(crm, as_partner(partner), scopes, lifetime))
    when = issued.expires_at.strftime("%Y-%m-%d %H:%M UTC") if issued.expires_at else "never"
    console.print(f"API key {issued.prefix} for {partner}, scopes {' '.join(issued.scopes)}, expires {when}")
    console.print("It is shown only now: keep it where its systems read it (only its hash is stored).")
    console.print(issued.key)


@token_app.command("list")
def token_list(partner: PartnerOption) -> None:
    """A partner's API keys: prefix, scopes, created, expires, last used (never the keys)."""
    from api.usecases.access import list_tokens

    found = with_crm(lambda crm: list_tokens(crm, as_partner(partner)))
    table = Table("prefix", "scopes", "created", "expires", "last used", "state")

    def when(value: datetime | None) -> str:
        return value.strftime("%Y-%m-%d %H:%M") if value else "-"

    for line in found:
        state = "revoked" if line.revoked_at else "active"
        table.add_row(
            line.prefix,
            " ".join(line.scopes),
            when(line.created_at),
            when(line.expires_at) if line.expires_at else "never",
            when(line.last_used_at),
            state,
        )
    show_wide(table)


@token_app.command("revoke")
def token_revoke(
    prefix: Annotated[str, typer.Argument(metavar="PREFIX", help="the key's prefix, as `token list` shows")],
) -> None:
    """Revoke an API key at once."""
    from api.usecases.access import revoke_token

    with_crm(lambda crm: revoke_token(crm, OPERATOR, prefix))
    console.print(f"revoked API key {prefix}")


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="the address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="the port to listen on")] = 8000,
) -> None:
    """Serve the HTTP API (and pages) on the home's chain and store, until Ctrl-C."""
    import uvicorn

    from api.http.app import create_app
    from api.usecases.home import HomeConfig, settings_for

    with user_errors():
        settings = settings_for(state.home, HomeConfig.load(state.home))
    import logging

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    app_ = create_app(settings, home=state.home)
    console.print(f"serving the ledgercrm API at http://{host}:{port} (docs at /docs); Ctrl-C stops")
    # no access log: a request line can carry a search for a person's name; the app logs route templates
    uvicorn.run(app_, host=host, port=port, access_log=False, log_level="info")


def main() -> None:
    app()
