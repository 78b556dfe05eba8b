"""Erasure: delete the customer's data key, keep tombstones, and anchor a receipt of what was done: the
receipt's hash is a leaf of the partner's log, like its interactions.

After the key is gone, the personal data and payload ciphertexts are unreadable and the HMAC key behind
every leaf is unrecoverable, so the leaves on chain can no longer be linked to anyone. The rows stay as
tombstones (member id, leaf hashes, proofs) so an audit still counts the interactions as
existing-but-erased.

Erasure reaches the chain: the MemberRegistry marks the member erased, which withdraws each of its
consents and forfeits its balance there (LoyaltyPoints' settlement rule: the points stay issued, owed to
the coalition's pool), and from then on nothing can be earned, redeemed, consented or decided for it.

A member who holds a key of her own may have earned points at other partners: her home partner alone
does not erase her on chain. Her own signature of the erasure does (relayed here), or a vote of a
majority of the partners (`api.usecases.members.vote_erasure`), after which this erasure finishes the
store's part."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from api.context import Crm
from api.errors import CustomerIsErased, NotAllowed
from api.evidence.anchoring import AnchorOutcome, anchor_pending
from api.evidence.outbox import sending_as
from api.principal import Principal
from api.usecases.customers import owned_customer, send_staged_enrolments
from api.usecases.home_open import reshred_erased as reshred_erased  # it runs at every opening
from api.usecases.signing import SignedMessage, check_signed
from ledger.clients import Authorization
from offchain.canonical import canonical_json
from offchain.db import purge_deleted
from offchain.models import CustomerStatus, ErasureReceipt
from offchain.repositories import (
    batches,
    customers,
    decisions,
    erasures,
    interactions,
    points,
    verified_inputs,
)

RECEIPT_SCHEMA = "ledgercrm/erasure-receipt/v1"


def erase_customer(
    crm: Crm, who: Principal, member: bytes, authorization: Authorization | None = None
) -> tuple[ErasureReceipt, AnchorOutcome]:
    """Erase `member` (owning partner only): off chain (key shredded, payloads dropped, a receipt that
    becomes a leaf of the partner's log) and on chain (consents withdrawn, balance forfeited, member
    frozen). A member with a key is erased on chain only with `authorization`, her signature of the
    erasure (`MemberRegistryClient.authorize_erasure`), unless the partners' vote erased her there
    already; it is checked against the chain before anything is written. Safe to call again after a
    crash part-way through; a second erase is refused."""
    partner_name = who.acting_partner()
    # the erasure is signed with the partner's key (its nonce fixed) before the store's part and sent
    # after it: no other sender of the partner in between
    with sending_as(crm, partner_name):
        return _erase(crm, who, partner_name, member, authorization)


def _erase(
    crm: Crm, who: Principal, partner_name: str, member: bytes, authorization: Authorization | None
) -> tuple[ErasureReceipt, AnchorOutcome]:
    now = datetime.now(UTC)
    with crm.unit_of_work() as db:
        customer = owned_customer(crm, db, partner_name, member)
        partner_address = crm.partner(db, partner_name).address
        existing = erasures.of_member(db, member)
    on_chain = crm.coalition.members.member(member)
    if (
        on_chain.enrolled
        and not on_chain.erased
        and on_chain.signer is None
        and on_chain.home != partner_address
    ):
        # the member moved to another home (its signature or the partners' vote): the chain's part is that
        # home's, or the partners'; this store's part waits until the chain has erased it
        raise NotAllowed(
            f"member 0x{member.hex()}'s home partner on chain is not {partner_name!r}: it is erased there by"
            " its home or by a vote of the partners (`customer erase-vote`), then here"
        )
    if (
        existing is not None
        and customer.status is CustomerStatus.ERASED
        and crm.vault.is_erased(partner_name, member)
        and on_chain.erased
        and existing.anchored_batch_id is not None
    ):
        raise CustomerIsErased(f"member 0x{member.hex()} is already erased")
    signer = crm.signer(partner_name)
    signed_erasure = None
    if on_chain.enrolled and not on_chain.erased and on_chain.signer is not None:
        if authorization is None:
            raise NotAllowed(
                f"member 0x{member.hex()} holds its own key: it is erased with its signature of the erasure,"
                " or by a vote of the partners"
            )
        # simulated now, sent after the store's part: a signature the chain refuses stops here, by name,
        # before anything is written
        signed_erasure = crm.coalition.members.prepare_erase_signed(signer, member, authorization)
    with crm.unit_of_work() as db:
        existing = erasures.of_member(db, member)
        if existing is None:
            count = interactions.count_of_member(db, member)
            receipt_json = canonical_json(
                {
                    "schema": RECEIPT_SCHEMA,
                    "partner": partner_name,
                    "member": "0x" + member.hex(),
                    "erasedAt": now.isoformat(timespec="microseconds"),
                    "interactions": count,
                }
            )
            receipt_hash = hashlib.sha256(receipt_json).digest()
            # a leaf of the partner's log, waiting for the next append
            existing = erasures.add(
                db,
                ErasureReceipt(
                    partner_id=customer.partner_id,
                    member_id=member,
                    erased_at=now,
                    interactions_count=count,
                    receipt_json=receipt_json.decode(),
                    receipt_hash=receipt_hash,
                ),
            )
            customers.mark_erased(db, member, now)
            interactions.drop_payloads(db, member)
            points.forget_keys(db, member)
            decisions.drop_explanations(db, member)
            verified_inputs.drop_member(db, member)
            # The key goes last, inside the transaction: if deleting it fails, the tombstones roll back
            # and the customer is intact; if the commit fails after it, the call can simply be repeated.
        if not crm.vault.is_erased(partner_name, member):
            crm.vault.shred(partner_name, member)
        receipt_id = existing.id
    # old page images of the ciphertexts must not survive in SQLite's WAL
    purge_deleted(crm.engine)
    if not on_chain.enrolled:  # its enrolment was staged and never sent: send it, then erase there
        send_staged_enrolments(crm, who)
    if signed_erasure is not None:
        crm.coalition.members.send_erase(signed_erasure)
    elif not on_chain.erased:
        crm.coalition.members.erase(signer, member)
    anchor_pending(crm, partner_name)  # the receipt's leaf, and whatever waited before it
    with crm.unit_of_work() as db:
        receipt = erasures.get(db, receipt_id)
        assert receipt is not None and receipt.anchored_batch_id is not None
        (row,) = batches.outcomes(db, [receipt.anchored_batch_id])
    return receipt, AnchorOutcome.of(row)


def erase_customer_signed(
    crm: Crm, who: Principal, member: bytes, signed: SignedMessage
) -> tuple[ErasureReceipt, AnchorOutcome]:
    """Erase `member` by her own signature of the erasure (`signing.erasure_typed_data`, signed on her
    device: `customer sign erasure`, or in her browser), relayed by the partner whose store holds her
    data. The signature is checked first (another member, another key, a used nonce, an expired
    deadline: refused in words, nothing written), then `erase_customer` carries it out."""
    authorization = check_signed(crm, signed, "Erasure", member, {}, "an erasure")
    return erase_customer(crm, who, member, authorization)
