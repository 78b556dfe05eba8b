"""Customer interactions."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import typer
from rich.table import Table

from api.cli.common import MemberOption, PartnerOption, as_partner, console, fail, show_wide, with_crm

interaction_app = typer.Typer(help="Customer interactions.", no_args_is_help=True)
MAX_DATA_BYTES = 64 * 1024  # the most JSON `--data` takes: an interaction is a record, not a file store


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
