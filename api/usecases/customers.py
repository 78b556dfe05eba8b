"""A partner's customers: registration, and reading a customer's data (owning partner only)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from eth_utils import is_address, to_checksum_address
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from api.context import Crm
from api.errors import CustomerIsErased, InvalidInput, MalformedInput, NotFound
from api.evidence import recording
from api.evidence.outbox import Outbox, sending_as
from api.evidence.recording import NewInteraction
from api.principal import Principal, Role
from ledger.chain import SignedTx
from ledger.clients.members import Authorization, enrol_batch_max
from offchain.canonical import canonical_json
from offchain.errors import CustomerErased
from offchain.models import Customer, CustomerCreate, CustomerStatus, InteractionKind
from offchain.repositories import customers, enrolments
from offchain.vault import new_member_id

PII_FIELD = "pii"


def register_customer(
    crm: Crm,
    who: Principal,
    data: CustomerCreate,
    *,
    signer: str | None = None,
    binding: Callable[[bytes], Authorization] | None = None,
    member: bytes | None = None,
) -> bytes:
    """Create the customer's data key, seal their personal data under it, enrol the member on chain
    (the acting partner its home partner), and return the member id (`member`, or a new random one). With
    `signer` (the address of a
    key the customer holds), `binding(member)` is that key's own signature of its binding to the new
    member id (what the customer's device signs: `MemberRegistryClient.authorize_binding`, nonce 0); it
    is checked before anything is written, and the key is bound once the member is enrolled.

    InvalidInput if the partner already has a customer with the same `external_ref`, or the binding is
    not the key's own signature."""
    if member is not None and len(member) != 32:
        raise InvalidInput("a member id is 32 bytes")
    member = member or new_member_id()  # given: the id a customer's key signed its binding to
    proof = None
    if signer is not None:
        if not is_address(signer):
            raise MalformedInput(f"not an address: {signer!r}")
        if binding is None:
            raise InvalidInput("a customer's key is bound only with that key's own signature of the binding")
        proof = binding(member)
        if not crm.coalition.members.binds(member, signer, proof, nonce=0):
            raise InvalidInput(f"the binding is not signed by the key {signer} for member 0x{member.hex()}")
    register_customers(crm, who, [data], member_ids=[member])
    send_staged_enrolments(crm, who)
    if signer is not None and proof is not None:
        partner_name = who.acting_partner()
        with sending_as(crm, partner_name):  # sent from the partner's account: after any running sender
            crm.coalition.members.bind_signer(crm.signer(partner_name), member, signer, proof)
            with crm.unit_of_work() as db:
                enrolments.set_signer(db, member, to_checksum_address(signer))
    return member


def register_customers(
    crm: Crm,
    who: Principal,
    items: Sequence[CustomerCreate],
    *,
    member_ids: Sequence[bytes] | None = None,
) -> list[bytes]:
    """`register_customer` for many customers (without keys of their own: a key is bound to an
    enrolled member, `register_customer` or `customer_keys.bind_customer_key`): one store transaction
    for all of them (imports). `member_ids`: the ids to give them (default: fresh random ones).

    A customer with an `external_ref` (the partner's own customer number) can later be found by it
    (`find_customers_by_ref`): the row keeps HMAC(partner's index key, ref), never the ref itself.
    All or nothing: InvalidInput if one of the refs is already registered with this partner (or appears
    twice in `items`), and then no customer and no key is left behind. Each customer's enrolment on
    chain is staged in the same transaction; `send_staged_enrolments` sends them."""
    partner_name = who.acting_partner()
    if not items:
        return []
    if member_ids is not None and len(member_ids) != len(items):
        raise InvalidInput("one member id per customer")
    refs = [item.external_ref for item in items if item.external_ref is not None]
    if len(refs) != len(set(refs)):
        raise InvalidInput("the same external_ref appears twice in one request")
    with crm.unit_of_work() as db:  # validated before any key or row is written
        partner = crm.partner(db, partner_name)
        # each ref's lookup hash once: the check here and the row below (an import's 5,942 customers
        # had each hashed twice in this function)
        ref_hashes = {ref: crm.vault.external_ref_hmac(partner_name, ref) for ref in refs}
        by_hash = {ref_hash: ref for ref, ref_hash in ref_hashes.items()}
        taken = sorted(by_hash[h] for h in customers.by_ref_hashes(db, partner.id, by_hash))
    if taken:
        raise InvalidInput(
            f"partner {partner_name} already has a customer with external ref {', '.join(taken[:5])}"
            + (f" and {len(taken) - 5} more" if len(taken) > 5 else "")
        )
    members: list[bytes] = []
    try:
        with crm.unit_of_work() as db:
            rows: list[dict[str, Any]] = []
            # The keys are created first (their own store, one transaction): a crash before the data
            # commit leaves unused keys, never a customer without one.
            fresh = list(member_ids) if member_ids is not None else [new_member_id() for _ in items]
            crm.vault.create_customer_keys(partner_name, fresh)
            members.extend(fresh)
            now = datetime.now(UTC)
            for member, item in zip(members, items, strict=True):
                # plain rows for one executemany INSERT (a Customer object costs more to build than
                # its encryption), so every column the model would default is given here
                rows.append(
                    {
                        "member_id": member,
                        "partner_id": partner.id,
                        "status": CustomerStatus.ACTIVE,
                        "pii_ciphertext": crm.vault.encrypt(
                            partner_name,
                            member,
                            PII_FIELD,
                            canonical_json(item.model_dump(exclude_none=True)),
                        ),
                        "external_ref_hmac": (
                            None if item.external_ref is None else ref_hashes[item.external_ref]
                        ),
                        "created_at": now,
                        "erased_at": None,
                    }
                )
            customers.insert(db, rows)
            enrolments.insert(
                db,
                [
                    {
                        "partner_id": partner.id,
                        "member_id": member,
                        "signer": None,
                        "tx_hash": None,
                        "block_number": None,
                        "created_at": now,
                    }
                    for member in members
                ],
            )
    except BaseException as exc:
        for member in members:  # no data row, so no key either (as in register_customer)
            crm.vault.shred(partner_name, member)
        if isinstance(exc, IntegrityError):
            # another process registered one of these refs since the check above
            raise InvalidInput(
                "one of these customers was registered meanwhile: nothing was written"
            ) from exc
        raise
    return members


def send_staged_enrolments(
    crm: Crm, who: Principal, *, batch_size: int | None = None, min_batch: int = 1, wait: bool = True
) -> list[Any]:
    """Enrol on chain every staged (or interrupted) customer of the acting partner, `batch_size` per
    enrolBatch (by default, and at most, what the node's block takes: `enrol_batch_max`), while at least
    `min_batch` are staged (an import sends full batches only, then the rest at its end), through the one
    outbox; the enrolments confirmed by this call. With `wait=False` the batches sent are left in flight for
    the next call to confirm (an import sends its consents right after: same sender, higher nonce, so the
    chain holds the members first; the consent outbox holds back the consents of members whose enrolment is
    still staged)."""
    partner_name = who.acting_partner()
    client = crm.coalition.members
    signer = crm.signer(partner_name)
    with crm.unit_of_work() as db:
        partner_id = crm.partner(db, partner_name).id
    outbox = Outbox(crm, enrolments.OUTBOX, client, partner_id)
    most = enrol_batch_max(client.batch_gas_budget())  # once: the limit the last simulation saw
    size = most if batch_size is None else min(batch_size, most)
    min_batch = min(min_batch, size)  # a full batch is one the node's block takes

    def next_batch(db: Session) -> tuple[list[int], SignedTx] | None:
        staged = enrolments.staged(db, partner_id, size)
        if not staged or len(staged) < min_batch:
            return None
        # enrolled without keys: a key is bound afterwards, with its own signature of the binding
        signed = client.prepare_enrol(signer, [bytes(r.member_id) for r in staged], [None] * len(staged))
        return [r.id for r in staged], signed

    return outbox.settle() + outbox.send(next_batch, wait=wait)


def find_customers_by_ref(crm: Crm, who: Principal, refs: Iterable[str]) -> dict[str, bytes]:
    """The member ids of the partner's customers registered with these external refs (those found)."""
    partner_name = who.acting_partner()
    by_hash = {crm.vault.external_ref_hmac(partner_name, ref): ref for ref in set(refs)}
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        found = customers.by_ref_hashes(db, partner.id, by_hash)
    return {by_hash[ref_hash]: member for ref_hash, member in found.items()}


@dataclass(frozen=True)
class CustomerView:
    member_id: bytes
    partner: str
    status: CustomerStatus
    pii: dict[str, Any]


def show_customer(crm: Crm, who: Principal, member: bytes) -> CustomerView:
    """The customer's decrypted data, for the owning partner only (anyone else: NotFound)."""
    partner_name = who.acting_partner()
    with crm.unit_of_work() as db:
        customer = owned_customer(crm, db, partner_name, member)
        if customer.status is CustomerStatus.ERASED:  # whatever a restored key store may still hold
            raise CustomerIsErased(f"member 0x{member.hex()} was erased")
        try:
            pii = crm.vault.decrypt(partner_name, member, PII_FIELD, customer.pii_ciphertext)
        except CustomerErased as exc:
            raise CustomerIsErased(f"member 0x{member.hex()} was erased") from exc
        return CustomerView(member, partner_name, customer.status, json.loads(pii))


def owned_customer(crm: Crm, db: Session, partner_name: str, member: bytes) -> Customer:
    """The customer if it belongs to `partner_name`; NotFound otherwise, whether or not it exists."""
    partner = crm.partner(db, partner_name)
    customer = customers.owned(db, partner.id, member)
    if customer is None:
        raise NotFound(f"partner {partner_name!r} has no member 0x{member.hex()}")
    return customer


def check_reach(crm: Crm, who: Principal, member: bytes, *, by_its_signature: bool = False) -> None:
    """NotFound unless the acting partner may act on `member`: its own customer; or, with
    `by_its_signature` (consent, points: acts the member's own signature authorizes at any partner of
    the coalition), a member of another partner that holds a key of its own. Anyone else's member gets
    the very answer of a member that does not exist, whatever the request holds: no probing."""
    partner_name = who.acting_partner()
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        if customers.owned(db, partner.id, member) is not None:
            return
    if by_its_signature:
        info = crm.coalition.members.member(member)
        if info.enrolled and info.signer is not None and not info.erased:
            return
    raise NotFound(f"partner {partner_name!r} has no member 0x{member.hex()}")


def readable_member(crm: Crm, db: Session, who: Principal, member: bytes) -> CustomerStatus:
    """The member's status, if `who` may read its records: a partner its own customers (another
    partner's customer gets the answer of a member that does not exist: no probing through a shared
    store), a member itself; the operator and an auditor any. NotFound otherwise."""
    if who.role is Role.PARTNER:
        owned_customer(crm, db, who.acting_partner(), member)
    elif who.role is Role.CUSTOMER and who.member != member:
        raise NotFound(f"no member 0x{member.hex()}")
    return member_status(db, member)


def member_status(db: Session, member: bytes) -> CustomerStatus:
    """The member's status; NotFound if the store has no such member."""
    status = customers.status_of(db, member)
    if status is None:
        raise NotFound(f"no member 0x{member.hex()}")
    return status


@dataclass(frozen=True)
class CustomerPage:
    customers: list[CustomerView]  # this page, in registration order
    total: int  # customers that match, on every page
    page: int
    per_page: int


def list_customers(
    crm: Crm, who: Principal, *, search: str | None = None, page: int = 1, per_page: int = 20
) -> CustomerPage:
    """The acting partner's customers, a page at a time; with `search`, those whose own customer number
    is it exactly, or whose name or e-mail contains it (ignoring case). Erased customers are listed
    with no data. Names and e-mails are decrypted to be searched: the store never holds them in clear."""
    partner_name = who.acting_partner()
    if page < 1 or not 1 <= per_page <= 500:
        raise MalformedInput("--page starts at 1, and a page holds 1 to 500 customers")
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        if search is None:
            total = customers.count_of_partner(db, partner.id)
            rows = customers.of_partner(db, partner.id, (page - 1) * per_page, per_page)
            return CustomerPage([_view(crm, partner_name, c) for c in rows], total, page, per_page)
        by_ref = customers.by_ref_hashes(db, partner.id, [crm.vault.external_ref_hmac(partner_name, search)])
        everyone = customers.of_partner(db, partner.id)
    needle = search.casefold()
    found = []
    for customer in everyone:
        view = _view(crm, partner_name, customer)
        text = " ".join(str(view.pii.get(name, "")) for name in ("name", "email")).casefold()
        if customer.member_id in by_ref.values() or needle in text:
            found.append(view)
    start = (page - 1) * per_page
    return CustomerPage(found[start : start + per_page], len(found), page, per_page)


def update_customer(crm: Crm, who: Principal, member: bytes, changes: dict[str, str]) -> CustomerView:
    """Change some of a customer's personal data (owning partner only): the new record is validated
    whole, then sealed anew under the customer's key. The customer number (external ref) stays."""
    partner_name = who.acting_partner()
    allowed = {"name", "email", "phone", "country", "address"}
    with crm.unit_of_work() as db:
        # whose customer it is, first: another partner gets "not found" whatever it sent, never a hint
        customer = owned_customer(crm, db, partner_name, member)
        if not changes or set(changes) - allowed:
            raise InvalidInput(f"give at least one of {', '.join(sorted(allowed))} to change")
        current = _view(crm, partner_name, customer)
        if customer.status is CustomerStatus.ERASED:
            raise CustomerIsErased(f"member 0x{member.hex()} was erased")
        try:
            updated = CustomerCreate.model_validate(current.pii | changes)
        except ValidationError as exc:
            error = exc.errors()[0]
            raise MalformedInput(f"{error['loc'][0]}: {error['msg']}") from None
        pii = updated.model_dump(exclude_none=True)
        sealed = crm.vault.encrypt(partner_name, member, PII_FIELD, canonical_json(pii))
        changed = {k: v for k, v in pii.items() if current.pii.get(k) != v}
        changed |= {k: None for k in current.pii if k not in pii}
        if changed:
            # the change is a leaf of the partner's log, in the same transaction as the record itself: a
            # keyed commitment (erasure unlinks it), so when a record changed is provable, not what it says
            recording.record_interactions(
                crm,
                partner_name,
                [NewInteraction(member, InteractionKind.RECORD_UPDATE, {"changed": changed})],
                db=db,
            )
        customers.reseal(db, member, sealed)
    return CustomerView(member, partner_name, customer.status, pii)


def _view(crm: Crm, partner_name: str, customer: Customer) -> CustomerView:
    if customer.status is CustomerStatus.ERASED:
        return CustomerView(customer.member_id, partner_name, customer.status, {})
    pii = crm.vault.decrypt(partner_name, customer.member_id, PII_FIELD, customer.pii_ciphertext)
    return CustomerView(customer.member_id, partner_name, customer.status, json.loads(pii))
