"""Partners' API keys and the HTTP API server."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from api.cli.common import (
    OPERATOR,
    PartnerOption,
    as_partner,
    console,
    fail,
    show_wide,
    state,
    user_errors,
    with_crm,
)
from api.errors import CrmError

token_app = typer.Typer(help="Partners' API keys for the HTTP API.", no_args_is_help=True)


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
