"""Each record's history: every change to one customer's record, oldest first, with where the chain
holds its proof (a leaf of the partner's log, a consent or points event, a decision, an erasure).

Plain data (dicts of str, int and None), for the CLI and the HTTP route alike. The owning partner
sees which fields of personal data changed, never their values (the timeline is about when, the record
itself says what)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from api.context import Crm
from api.evidence.documents import PAYLOAD_FIELD
from api.principal import Principal
from api.usecases.customers import owned_customer
from offchain.errors import VaultError
from offchain.models import AnchorStatus, InteractionKind
from offchain.repositories import batches, consents, decisions, enrolments, erasures, interactions, points


def _when(value: datetime | None) -> str | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat(timespec="seconds")


def customer_timeline(crm: Crm, who: Principal, member: bytes) -> list[dict[str, Any]]:
    """Every change to the acting partner's customer `member`: enrolment, each personal-data update (a
    leaf of the partner's log), consent given or withdrawn (towards any partner), points earned or
    redeemed (anywhere), decisions by this partner, and the erasure. Each entry: `at` (ISO 8601),
    `event`, `detail`, and `block` / `leaf` / `anchored` where the chain holds it. NotFound for anyone
    else's customer."""
    partner = who.acting_partner()
    entries: list[dict[str, Any]] = []
    with crm.unit_of_work() as db:
        customer = owned_customer(crm, db, partner, member)
        enrolment = enrolments.of_member(db, member)
        entries.append(
            {
                "at": _when(customer.created_at),
                "event": "registered",
                "detail": f"by {partner}" + ("" if enrolment is None else ", enrolled on chain"),
                "block": None if enrolment is None else enrolment.block_number,
            }
        )
        rows = interactions.of_member(db, customer.partner_id, member)
        status = batches.statuses(db, {r.batch_id for r in rows if r.batch_id is not None})
        for row in rows:
            if row.kind is not InteractionKind.RECORD_UPDATE:
                continue
            fields = "content erased"
            if row.payload_ciphertext is not None:
                try:
                    document = json.loads(
                        crm.vault.decrypt(partner, member, PAYLOAD_FIELD, row.payload_ciphertext)
                    )
                    fields = "changed: " + ", ".join(sorted(document["data"]["changed"]))
                except (VaultError, KeyError, TypeError, ValueError):
                    fields = "content unreadable"
            state, block = (
                status.get(row.batch_id, (AnchorStatus.PENDING, None))
                if row.batch_id is not None
                else (AnchorStatus.PENDING, None)
            )
            entries.append(
                {
                    "at": _when(row.occurred_at),
                    "event": "personal data updated",
                    "detail": fields,
                    "leaf": row.leaf_index,
                    "anchored": state is AnchorStatus.ANCHORED,
                    "block": block,
                }
            )
        for receipt, controller in consents.history(db, member):
            entries.append(
                {
                    "at": _when(receipt.recorded_at),
                    "event": f"consent {receipt.status.value}",
                    "detail": f"{receipt.purpose} towards {controller.name}",
                    "block": receipt.block_number,
                }
            )
        for event, where in points.of_member(db, member):
            entries.append(
                {
                    "at": _when(event.created_at),
                    "event": f"points {'earned' if event.kind.value == 'earn' else 'redeemed'}",
                    "detail": f"{event.amount:,} at {where}",
                    "block": event.block_number,
                }
            )
        for decision in decisions.of_partner(db, customer.partner_id, member):
            entries.append(
                {
                    "at": _when(decision.created_at),
                    "event": "decision",
                    "detail": f"model {decision.model_id}: {decision.score_bps} bps, {decision.action}"
                    + ("" if decision.decision_id is None else f" (decision {decision.decision_id})"),
                    "block": decision.block_number,
                }
            )
        erasure = erasures.of_member(db, member)
        if erasure is not None:
            entries.append(
                {
                    "at": _when(erasure.erased_at),
                    "event": "erased",
                    "detail": f"key shredded; receipt leaf {erasure.leaf_index}"
                    if erasure.leaf_index is not None
                    else "key shredded; receipt not anchored yet",
                    "leaf": erasure.leaf_index,
                    "anchored": erasure.anchored_batch_id is not None,
                    "block": None,
                }
            )
    entries.sort(key=lambda e: e["at"] or "")
    return entries
