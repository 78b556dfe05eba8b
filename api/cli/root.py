"""The whole command line: every command registered on the root app (`api.cli` loads it)."""

from __future__ import annotations

import gc
import sys
from collections.abc import Sequence

import typer

from api.cli.audit import audit_app
from api.cli.common import app, one_paragraph_help, state
from api.cli.consent import consent_app
from api.cli.customers import customer_app
from api.cli.evidence import anchor, erase, export, reconcile, verify
from api.cli.home import compile_, demo, init
from api.cli.imports import PLAIN_PROGRESS_EVERY, PlainProgress, import_app
from api.cli.interactions import interaction_app
from api.cli.models import decision_app, model_app, recommend, score, segments
from api.cli.partners import governance_app, partner_app
from api.cli.points import points_app
from api.cli.tokens import serve, token_app

__all__ = ["GROUPS", "PLAIN_PROGRESS_EVERY", "PlainProgress", "app", "app_for", "main"]


# Root commands, in the order `--help` lists them.
app.command()(init)
app.command()(reconcile)
app.command()(export)
app.command()(anchor)
app.command()(verify)
app.command()(erase)
app.command()(segments)
app.command()(score)
app.command()(recommend)
app.command()(demo)
app.command("compile")(compile_)
app.command()(serve)


GROUPS = {
    name: sub
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
    )
}
for name, sub in GROUPS.items():
    app.add_typer(sub, name=name)
one_paragraph_help(app)


def app_for(args: Sequence[str]) -> typer.Typer:
    """The app that runs `args`: the whole one, or, for a command of a group (`decision verify ID`), the
    root (its options and callback) with that group alone. Typer makes the Click command of every
    registered command before it parses a thing, 0.05 CPU s for the 64 here, and a command line names
    one group; `--help`, `--version` and the root's own commands get the whole app."""
    rest = list(args)
    while rest and rest[0].startswith("-"):
        if rest[0] == "--home" and len(rest) > 1:
            rest = rest[2:]
        elif rest[0].startswith("--home="):
            rest = rest[1:]
        else:
            return app
    if not rest or rest[0] not in GROUPS:
        return app
    one = typer.Typer(help=app.info.help, no_args_is_help=True, add_completion=False)
    one.registered_callback = app.registered_callback  # the root's --home and --version
    one.add_typer(GROUPS[rest[0]], name=rest[0])
    return one


def main() -> None:
    state.script = True
    try:
        app_for(sys.argv[1:])()
    finally:
        if state.quick_exit:  # see common.short_lived: the process ends here
            gc.freeze()
