"""The evidence on chain: anchor, verify, reconcile, export, erase."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from api.cli.common import (
    OPERATOR,
    ConsortiumOption,
    MemberArgument,
    MemberOption,
    PartnerOption,
    _signature,
    as_partner,
    console,
    hexid,
    parse_member,
    plural,
    with_crm,
)

if TYPE_CHECKING:
    from api.context import Crm


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


def export(partner: PartnerOption, member: MemberOption) -> None:
    """Everything held on one customer, decrypted, as JSON (a data-subject access request)."""
    from api.usecases.export import export_member

    document = with_crm(lambda crm: export_member(crm, as_partner(partner), member))
    console.print(json.dumps(document, indent=2, ensure_ascii=False, default=str))


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
VERIFY_SWITCH_INTERVAL = 0.02  # seconds a thread may hold the interpreter's lock while another waits


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
    # A whole run checks the records against the chain's events on a second thread (the use case), whose
    # store reads and node answers want the interpreter's lock back hundreds of times a second: at the
    # default 5 ms switch interval each took it from the row checks at once, and the two traded it to no
    # gain (Online Retail II at load 7, medians: 6.9 s wall on one thread, 7.0-7.5 s on two at 5 ms, 6.4
    # s at 20 ms). Set for this command only: a process that runs more (a test's) gets its own back.
    interval = sys.getswitchinterval()
    if all_:
        sys.setswitchinterval(VERIFY_SWITCH_INTERVAL)
    try:
        report = with_crm(
            lambda crm: verify_store(crm, OPERATOR, member, auditor=auditor, consortium=consortium),
            freeze=True,
        )
    finally:
        sys.setswitchinterval(interval)
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
    for elsewhere in (r for r in report.results.notable() if r.outcome is Outcome.NOT_HELD):
        console.print(Text(f"{elsewhere.outcome.value}: {elsewhere.label}: {elsewhere.detail}"))
    console.print(f"{len(report.results)} checked: {summary or 'nothing to verify'}")
    console.print("checks run: " + "; ".join(check.value for check in report.checks))
    if auditor:
        console.print("not run: content (decrypting payloads needs the partners' keys)")
    waiting = [
        r for r in report.results.notable() if r.outcome is Outcome.UNANCHORED and r.interaction_id is None
    ]
    for item in waiting[:PENDING_NAMED]:  # what is not an interaction is named: customers, receipts
        console.print(Text(f"pending {item.label}: {item.detail}"))
    if len(waiting) > PENDING_NAMED:
        console.print(f"... and {len(waiting) - PENDING_NAMED} more pending records")
    if counts[Outcome.UNANCHORED]:
        console.print(f"{counts[Outcome.UNANCHORED]} pending: run `ledgercrm anchor` to send and anchor them")
    if failed:
        raise typer.Exit(1)


def erase(
    member: MemberArgument,
    partner: PartnerOption,
    signature: Annotated[
        Path | None,
        typer.Option(
            "--signature",
            metavar="FILE",
            help="her signature of her erasure (`customer sign erasure`, run by her): a member with a key",
        ),
    ] = None,
) -> None:
    """Erase a customer: delete their data key, keep tombstones, anchor an erasure receipt; on chain its
    consents are withdrawn, its points forfeited and the member frozen. A member with a key is erased by
    her signature (--signature FILE) or after a vote of the partners (`customer erase-vote`)."""
    from api.usecases.erasure import erase_customer, erase_customer_signed

    signed = _signature(signature)
    who = as_partner(partner)
    receipt, anchored = with_crm(
        lambda crm: (
            erase_customer(crm, who, member)
            if signed is None
            else erase_customer_signed(crm, who, member, signed)
        )
    )
    console.print(
        f"erased {hexid(member)}: {receipt.interactions_count} interactions now unreadable; "
        f"receipt 0x{receipt.receipt_hash.hex()} anchored in batch {anchored.onchain_batch_id}"
    )
