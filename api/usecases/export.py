"""A data-subject access request: everything the store holds on one customer, decrypted, as JSON."""

from __future__ import annotations

import json
from typing import Any

from api.context import Crm
from api.evidence.recording import stored_documents
from api.evidence.verification import verified_interactions
from api.principal import Principal
from api.usecases.consent import consent_history
from api.usecases.customers import show_customer
from api.usecases.loyalty import balance, points_history


def export_member(crm: Crm, who: Principal, member: bytes) -> dict[str, Any]:
    """The owning partner's export of a customer: personal data, every interaction (the document the
    store holds, whether or not it verifies, with its verification outcome), consent receipts, point
    events and the coalition balance. Plain JSON values only."""
    partner = who.acting_partner()
    customer = show_customer(crm, who, member)  # NotFound unless the customer is the partner's
    held = stored_documents(crm, partner, member)
    interactions = [
        {
            "id": item.interaction_id,
            "verification": item.outcome.value,
            "detail": item.detail,
            "document": held.get(item.interaction_id),
        }
        for item in verified_interactions(crm, partner, [member])
    ]
    consents = [
        {"receipt": json.loads(event.receipt.receipt_json), "onChain": event.on_chain}
        for event in consent_history(crm, who, member)
    ]
    points = [
        {
            "kind": line.kind.value,
            "amount": line.amount,
            "partner": line.partner,
            "externalKey": line.external_key,
            "block": line.block_number,
            "recordedAt": line.recorded_at.isoformat(),
        }
        for line in points_history(crm, who, member)
    ]
    return {
        "member": "0x" + member.hex(),
        "partner": partner,
        "status": customer.status.value,
        "personalData": customer.pii,
        "interactions": interactions,
        "consents": consents,
        "points": points,
        "balance": balance(crm, who, member),
    }
