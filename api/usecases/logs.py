"""The partners' logs as an auditor reads them: each head anchored on chain, a leaf's inclusion proof
and the consistency of two heads, each with the contract's own verdict. Hashes and proofs only: a leaf
is a keyed commitment, so nothing here is personal data."""

from __future__ import annotations

import hashlib
import itertools
from dataclasses import dataclass

from api.context import Crm
from api.errors import InvalidInput, NotAllowed, NotFound
from api.principal import Principal, Role
from ledger.clients.anchor import BatchInfo
from ledger.merkle import leaf_hash
from offchain.repositories import batches, erasures, interactions, partners

PROOF_PART = 32


@dataclass(frozen=True)
class Head:
    batch_id: int  # the chain's id of the head
    size: int
    root: bytes
    block_number: int


@dataclass(frozen=True)
class PartnerLog:
    address: str
    partner: str | None  # its name, where this store knows the partner
    heads: list[Head]


def _may_audit(who: Principal) -> None:
    if who.role not in (Role.AUDITOR, Role.OPERATOR, Role.PARTNER):
        raise NotAllowed(f"{who} may not read the partners' logs")


def _head(info: BatchInfo) -> Head:
    return Head(info.batch_id, info.size, info.root, info.block_number)


def log_heads(crm: Crm, who: Principal) -> list[PartnerLog]:
    """Every log on chain, oldest head first: each partner's heads with their blocks (public chain data,
    for the auditor and every partner)."""
    _may_audit(who)
    with crm.unit_of_work() as db:
        names = {p.address: p.name for p in partners.every(db)}
    anchor = crm.coalition.anchor
    return [
        PartnerLog(address, names.get(address), [_head(h) for h in anchor.heads(address)])
        for address in anchor.partners()
    ]


@dataclass(frozen=True)
class Inclusion:
    partner: str
    leaf_index: int
    leaf_hash: bytes
    proof: list[bytes]  # RFC 9162 audit path, sibling hashes from the leaf up
    head: Head  # the head the proof leads to
    verified_on_chain: bool  # the contract's own verdict (InteractionAnchor.verifyInclusion)


def _partner(crm: Crm, who: Principal, name: str) -> tuple[int, str]:
    _may_audit(who)
    if who.role is Role.PARTNER and who.partner != name:
        raise NotFound(f"no log of {name!r} here")
    with crm.unit_of_work() as db:
        found = partners.by_name(db, name)
    if found is None:
        raise NotFound(f"no partner called {name!r} here")
    return found.id, found.address


def inclusion(crm: Crm, who: Principal, partner: str, leaf_index: int) -> Inclusion:
    """Leaf `leaf_index` of `partner`'s log, with its proof to the head that anchored it."""
    partner_id, address = _partner(crm, who, partner)
    if not 0 <= leaf_index < 2**63:
        raise InvalidInput(f"a leaf index is 0 to 2**63 - 1, not {leaf_index}")
    with crm.unit_of_work() as db:
        rows = interactions.log_rows(db, partner_id, leaf_index, leaf_index + 1)
        found: tuple[bytes, bytes | None, int | None] | None = None
        if rows:
            found = (bytes(rows[0].leaf_hash), rows[0].proof, rows[0].batch_id)
        else:
            for receipt in erasures.of_partner(db, partner_id):
                if receipt.leaf_index == leaf_index:
                    digest = hashlib.sha256(receipt.receipt_json.encode()).digest()
                    found = (leaf_hash(digest), receipt.proof, receipt.anchored_batch_id)
        batch = None if found is None or found[2] is None else batches.get(db, found[2])
    if found is None or found[1] is None or batch is None or batch.onchain_batch_id is None:
        raise NotFound(f"leaf {leaf_index} of {partner}'s log is not anchored here")
    leaf, raw = found[0], bytes(found[1])
    proof = [raw[i : i + PROOF_PART] for i in range(0, len(raw), PROOF_PART)]
    info = crm.coalition.anchor.batch(batch.onchain_batch_id)
    if info.partner != address:
        raise NotFound(f"leaf {leaf_index} of {partner}'s log is not anchored here")
    verdict = crm.coalition.anchor.verify_inclusion(info.batch_id, leaf_index, leaf, proof)
    return Inclusion(partner, leaf_index, leaf, proof, _head(info), verdict)


@dataclass(frozen=True)
class ConsistencyStep:
    old: Head
    new: Head
    proof: list[bytes]  # RFC 9162 consistency proof from `old` to `new`
    verified_on_chain: bool  # the contract's own verdict (InteractionAnchor.verifyConsistency)


def consistency(crm: Crm, who: Principal, partner: str, first: int, second: int) -> list[ConsistencyStep]:
    """That `partner`'s head of `second` leaves extends its head of `first` leaves: the consistency proof
    of every head between them to the next (each kept when the head was anchored), so a reader chains
    them from the first head's root to the second's."""
    partner_id, address = _partner(crm, who, partner)
    if not 0 < first < second:
        raise InvalidInput(f"give two head sizes, the first smaller: not {first} and {second}")
    heads = [_head(h) for h in crm.coalition.anchor.heads(address)]
    sizes = [h.size for h in heads]
    for size in (first, second):
        if size not in sizes:
            raise NotFound(f"{partner} anchored no head of {size:,} leaves")
    with crm.unit_of_work() as db:
        by_chain_id = {b.onchain_batch_id: b for b in batches.of_partner(db, partner_id).values()}
    steps = []
    span = heads[sizes.index(first) : sizes.index(second) + 1]
    for old, new in itertools.pairwise(span):
        row = by_chain_id.get(new.batch_id)
        if row is None or row.consistency is None:
            raise NotFound(f"the consistency proof of {partner}'s head {new.batch_id} is not held here")
        raw = bytes(row.consistency)
        proof = [raw[i : i + PROOF_PART] for i in range(0, len(raw), PROOF_PART)]
        verdict = crm.coalition.anchor.verify_consistency(old.size, new.size, old.root, new.root, proof)
        steps.append(ConsistencyStep(old, new, proof, verdict))
    return steps


@dataclass(frozen=True)
class ErasureLine:
    partner: str
    member: bytes
    erased_at: str
    receipt_hash: bytes
    leaf_index: int | None
    batch_id: int | None  # the store's batch that anchored it; None: not anchored yet
    erased_on_chain: bool  # the MemberRegistry's erased flag


def erasure_receipts(crm: Crm, who: Principal) -> list[ErasureLine]:
    """Every erasure receipt held here (ids, hashes and times), with the chain's erased flag."""
    _may_audit(who)
    with crm.unit_of_work() as db:
        every = partners.every(db)
        names = [p for p in every if who.role is not Role.PARTNER or p.name == who.partner]
        rows = [(p.name, r) for p in names for r in erasures.of_partner(db, p.id)]
    flags = crm.coalition.members.are_erased([r.member_id for _, r in rows]) if rows else []
    return [
        ErasureLine(
            name,
            r.member_id,
            r.erased_at.isoformat(),
            r.receipt_hash,
            r.leaf_index,
            r.anchored_batch_id,
            flag,
        )
        for (name, r), flag in zip(rows, flags, strict=True)
    ]


@dataclass(frozen=True)
class LoggedDecision:
    """An automated decision as the chain's DecisionLog holds it: hashes, a score and an action, never
    personal data (the member is a random id, the explanation a keyed commitment)."""

    decision_id: int
    partner: str  # the deciding partner's name where this store knows it, else its address
    model_id: int
    model_hash: bytes
    input_root: bytes  # the commitment to the inputs: the Merkle root of their leaves
    score_bps: int
    action: str
    block_number: int


def logged_decisions(crm: Crm, who: Principal, decision_id: int | None = None) -> list[LoggedDecision]:
    """Every decision on chain (or the one `decision_id`), oldest first."""
    from ml import decision as deciding

    _may_audit(who)
    if decision_id is not None and decision_id < 0:
        raise InvalidInput(f"a decision number is 0 or more, not {decision_id}")
    with crm.unit_of_work() as db:
        names = {p.address: p.name for p in partners.every(db)}
    log = crm.coalition.decisions
    hashes: dict[int, bytes] = {}
    found = []
    for d in log.decisions(decision_id=decision_id):
        if d.model_id not in hashes:
            hashes[d.model_id] = log.model(d.model_id).model_hash
        found.append(
            LoggedDecision(
                d.decision_id,
                names.get(d.partner, d.partner),
                d.model_id,
                hashes[d.model_id],
                d.decision.input_root,
                d.decision.score_bps,
                deciding.read_action_word(d.decision.action),
                d.block_number,
            )
        )
    if decision_id is not None and not found:
        raise NotFound(f"the chain logged no decision {decision_id}")
    return found
