"""Shared by every command: the root app, consoles, options, error handling, Typer's display."""

from __future__ import annotations

import gc
import importlib.abc
import importlib.machinery
import importlib.util
import inspect
import sys
import types
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperOption

from api.errors import CrmError, MalformedInput
from api.principal import Principal
from offchain.errors import VaultError

if TYPE_CHECKING:
    from api.context import Crm


app = typer.Typer(
    help="ledgercrm: a permissioned, ledger-backed CRM with an audit trail.",
    no_args_is_help=True,
    add_completion=False,
)

# soft_wrap: member ids and addresses must never be split across lines, even in a pipe
# markup=False: what is printed holds the user's own text (names, keys, data), which Rich would read as
# markup wherever it has square brackets; styled parts are `Text` instead.
console = Console(soft_wrap=True, highlight=False, markup=False)
errors = Console(stderr=True, soft_wrap=True, highlight=False, markup=False)
T = TypeVar("T")

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


class _OneLineUsageErrors(importlib.abc.MetaPathFinder):
    """Gives `typer.rich_utils` our `rich_format_error` when Typer first imports it (for a usage error
    or `--help`) rather than importing it with every command: it imports rich.markdown and markdown_it,
    about 0.05 CPU s that `decision verify` and every other command that parses fine never use."""

    def find_spec(self, name: str, path: Any, target: Any = None) -> importlib.machinery.ModuleSpec | None:
        if name != "typer.rich_utils":
            return None
        sys.meta_path.remove(self)  # the real finders find it; this one is done after once
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None:
            return spec
        loader = spec.loader
        exec_module = loader.exec_module

        def then_patch(module: types.ModuleType) -> None:
            exec_module(module)
            setattr(module, "rich_format_error", _one_line_usage_error)  # noqa: B010 - not an attribute mypy knows

        loader.exec_module = then_patch  # type: ignore[method-assign]
        return spec


# Typer looks these up at call time: usage errors and option types, our way, in every command.
if "typer.rich_utils" in sys.modules:
    setattr(sys.modules["typer.rich_utils"], "rich_format_error", _one_line_usage_error)  # noqa: B010
else:
    sys.meta_path.insert(0, _OneLineUsageErrors())
_option_type = TyperOption.display_type_rich
TyperOption.display_type_rich = _flag_type  # type: ignore[method-assign,assignment]


def one_paragraph_help(typer_app: typer.Typer) -> None:
    """Give every command of `typer_app` (and of its sub-apps) its docstring with the line breaks inside
    each paragraph joined: Typer lists a command by its first paragraph as written, so a docstring
    wrapped at the source's line length showed in `--help` cut mid-sentence."""
    for info in typer_app.registered_commands:
        text = info.help or (inspect.getdoc(info.callback) if info.callback is not None else None)
        if text:
            info.help = "\n\n".join(" ".join(part.split()) for part in text.split("\n\n"))
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            one_paragraph_help(group.typer_instance)


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


def _signature(path: Path | None) -> Any:
    """The customer's signature file as a SignedMessage, or None if no file was given."""
    if path is None:
        return None
    from api.usecases.signing import read_signature_file

    with user_errors():
        return read_signature_file(path)


class State:
    home: Path = Path(".ledgercrm")
    # set by a command that wrote nothing but its output (`short_lived`): `main` then spares the
    # interpreter's exit the traversal of every object the command made
    quick_exit: bool = False
    # the command runs as the `ledgercrm` script's own process (`root.main`), not inside another program
    # (tests, a caller of `app`): only then may it freeze the heap for good (`with_crm`'s `freeze`)
    script: bool = False


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


# Exit codes (docs/cli.md): one per kind of mistake, whatever the command.
REFUSED = 1  # the rules or the chain refused; not found; not allowed; verification found problems
USAGE = 2  # a malformed command line: an unknown or missing option, a value that does not parse
INTERRUPTED = 130  # stopped by Ctrl-C (what an import wrote is kept; running it again adds the rest)


def fail(message: str, code: int = REFUSED) -> NoReturn:
    """One line on stderr and a non-zero exit. The message is printed as it is: Rich markup would eat
    anything in square brackets."""
    errors.print(Text.assemble(("error: ", "red"), message))
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Domain errors become one line: exit 2 for a value that does not parse (`MalformedInput`: as for
    any malformed option), 1 for a refusal by the rules or the chain (see docs/cli.md, exit codes)."""
    # imported here, not at the top: `--help` and `--version` need neither web3 nor SQLAlchemy
    from sqlalchemy.exc import OperationalError

    from api.messages import describe
    from ledger.errors import LedgerError

    try:
        yield
    except MalformedInput as exc:
        fail(describe(exc), code=USAGE)
    except (CrmError, LedgerError, VaultError) as exc:
        fail(describe(exc), code=REFUSED)
    except OperationalError as exc:
        if "database is locked" not in str(exc):
            raise
        fail("the store is busy: another ledgercrm command is writing to it; try again when it has finished")


@contextmanager
def short_lived() -> Iterator[None]:
    """For a command that reads, verifies and prints (`decision verify`): no cycle collection while it
    runs, and a quick exit after it. Both are Python's garbage collector working for a process that is
    about to end: while the command imports SQLAlchemy, SQLModel's models and the ML code, collections
    triggered by the allocations cost about 0.1 CPU s; at exit, the interpreter's last collections walk
    every object of those imports again, about 0.3 CPU s (benchmarks/README.md, `decision_verify.py`).
    `main` freezes the objects instead (gc.freeze: what is left at exit is freed by the OS, not walked);
    the command writes no file, so nothing waits on a finalizer. In a process that goes on (tests, the
    server) collection is restored after the block and nothing is frozen."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        state.quick_exit = True
        if was_enabled:
            gc.enable()


def with_crm(
    action: Callable[[Crm], T], *, verifying: bool = False, deciding: bool = False, freeze: bool = False
) -> T:
    """`action` on the home opened, its errors in one line. `verifying`: for a command that only reads
    the chain and verifies, the home opened without web3 or any signing key (api/usecases/home_open.py:
    a fraction of the start-up). `deciding`: for `score`, the same without web3, with a DecisionLog client
    that signs and sends (api/usecases/home_open.py: ~0.5 CPU s of a `score --all`). `freeze`: for a
    command that reads a whole store (`verify --all`), in the script's own process, what the imports and
    the opening made is frozen (gc.freeze) before `action` runs: it lives as long as the process, and
    each full collection the run's allocations trigger would walk it again (SQLAlchemy's, web3's, the
    models' objects: 0.6-0.8 of a 3.6 CPU s verification of Online Retail II; benchmarks/README.md).
    Collection stays on for what the run makes, so its memory stays as flat as before."""
    with user_errors():
        if verifying:
            from api.usecases.home_open import open_crm_to_verify

            crm = open_crm_to_verify(state.home)
        elif deciding:
            from api.usecases.home_open import open_crm_to_decide

            crm = open_crm_to_decide(state.home)
        else:
            from api.usecases.home import open_crm

            crm = open_crm(state.home)
        if freeze and state.script:
            gc.freeze()
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


AmountOption = Annotated[int, typer.Option(metavar="POINTS", help="whole points, at least 1")]
