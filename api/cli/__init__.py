"""The `ledgercrm` command line.

Every command that changes state works on a home folder (`--home`, env LEDGERCRM_HOME, default
./.ledgercrm) created by `init`. User mistakes end in one line on stderr and a non-zero exit, never a
traceback."""

from __future__ import annotations

import gc

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

__all__ = ["PLAIN_PROGRESS_EVERY", "PlainProgress", "app", "main"]


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
one_paragraph_help(app)


def main() -> None:
    try:
        app()
    finally:
        if state.quick_exit:  # see common.short_lived: the process ends here
            gc.freeze()
