"""The command line's own text, read against the Typer app: every command a message or a help text
names exists, and every command's help is whole paragraphs (no line cut mid-sentence). No chain, no
home: these read the source and the app."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from api.cli import app

API = Path(__file__).resolve().parents[2] / "api"
# where what people read is written: the contract errors' words, the use cases' and the evidence
# layer's refusals and findings (not their docstrings: those are for programmers), and the CLI's own
# messages, help texts and command docstrings (which are its help)
MESSAGES = [
    API / "messages.py",
    *sorted((API / "usecases").glob("*.py")),
    *sorted((API / "evidence").glob("*.py")),
]
CLI = sorted((API / "cli").glob("*.py"))


def _texts(path: Path, *, docstrings: bool) -> Iterator[tuple[str, int]]:
    """Every string literal of `path` (an f-string with each `{...}` as X), and its line."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            skip.update(id(part) for part in node.values)
        if not docstrings and isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef):
            first = node.body[0] if node.body else None
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant):
                skip.add(id(first.value))
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = "".join(str(p.value) if isinstance(p, ast.Constant) else "X" for p in node.values)
            yield str(text), node.lineno
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            yield node.value, node.lineno


def _named_commands() -> list[tuple[str, str]]:
    """(where, text) of each backticked `ledgercrm ...` or `<command> ...` in what people read."""
    found = []
    for path, docstrings in [*((p, False) for p in MESSAGES), *((p, True) for p in CLI)]:
        for text, line in _texts(path, docstrings=docstrings):
            for quoted in re.findall(r"`([^`\n]+)`", text):
                found.append((f"{path.relative_to(API.parent)}:{line}", quoted))
    return found


ROOT = typer.main.get_command(app)


def _missing(quoted: str) -> str | None:
    """Why `quoted` names no command of the app (None: it names one, or is not a command line)."""
    words = quoted.split()
    explicit = words[0] == "ledgercrm"
    words = words[1:] if explicit else words
    command = ROOT
    walked: list[str] = []
    for word in words:
        commands = getattr(command, "commands", None)
        if commands is None:  # a command: the rest are its arguments and options
            return None
        if word in ("...", "…"):  # any command of the group
            return None
        if word not in commands:
            if not walked and not explicit:
                return None  # not a command line at all (a field, a function, a value)
            if word.startswith("-") and walked:
                return None  # a group's own options
            return f"no command {' '.join([*walked, word])!r}"
        command = commands[word]
        walked.append(word)
    return None


def test_every_command_named_in_a_message_or_help_exists():
    """`customer home vote` was named by the refusal of a home move for a keyless member; the command
    is `customer move-vote` (this test failed on that message before it was fixed)."""
    named = _named_commands()
    assert len(named) > 30
    wrong = [f"{where}: `{quoted}`: {why}" for where, quoted in named if (why := _missing(quoted))]
    assert wrong == []


@pytest.mark.parametrize(
    ("quoted", "why"),
    [
        ("customer home vote", "no command 'customer home'"),
        ("ledgercrm customer frobnicate", "no command 'customer frobnicate'"),
        ("ledgercrm partner ad", "no command 'partner ad'"),
        ("ledgercrm", None),
        ("ledgercrm customer sign ...", None),
        ("customer move-vote", None),
        ("ledgercrm customer sign binding --member", None),
        ("erase 0x… --partner acme", None),
        ("intendedUse", None),
    ],
)
def test_the_check_tells_a_command_from_a_missing_one(quoted, why):
    assert _missing(quoted) == why


def _commands(command=ROOT, path=()):
    if hasattr(command, "commands"):
        yield path, command
        for name, sub in command.commands.items():
            yield from _commands(sub, (*path, name))
    else:
        yield path, command


def test_every_help_text_is_whole_paragraphs():
    """Typer lists a command by its help's first paragraph as written: a line break in it showed as a
    line cut mid-sentence in `customer --help` ("the last line printed is the / member id")."""
    cut = [
        " ".join(path)
        for path, command in _commands()
        if any("\n" in paragraph for paragraph in (command.help or "").split("\n\n"))
    ]
    assert cut == []
    listing = CliRunner().invoke(app, ["customer", "--help"], env={"COLUMNS": "200"}).output
    assert "the last line printed is the member id" in listing
