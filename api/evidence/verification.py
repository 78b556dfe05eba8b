"""Verification starts from the chain and trusts nothing off chain.

For each partner, the chain's tree heads come first (`InteractionAnchor.headsOf`); the store must then
hold every leaf 0..size-1 of the latest head exactly once (interactions and erasure receipts are the
leaves of one log), and the leaves between two heads, appended to the compact range of the earlier
head, must give the later head's root (which also re-checks, off chain, the consistency the contract
enforced). A missing leaf, a leaf held twice, a batch pointed at another partner's head, a head the
store has no batch for (a store older than the chain), a payload gone without an anchored erasure, a
key gone without one, a customer marked erased with no erasure receipt: each is reported with the
record and what is wrong, and the run goes on.

Then, with the partner's keys (`content`), each interaction's payload is decrypted, its HMAC
commitment recomputed and compared with its leaf, and the document compared with the row. Without
keys (an auditor's run) every check above still runs, and none that needs personal data.

One interaction verifies when its leaf is proven on chain (as above) and its content checks out. The
keys of a chunk's customers come from the key store in one query (`Vault.bulk_keys`) and are reused
while the vault's rules allow (see `CustomerKeys`); a document whose commitment matches is parsed only
if its tail is not exactly what the row says.
"""

from __future__ import annotations

import hashlib
import json
import threading
from array import array
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from functools import partial
from typing import Any

from sqlmodel import Session

from api.context import Crm
from api.errors import NotFound
from api.evidence import documents, helper
from api.evidence.documents import PAYLOAD_FIELD
from api.evidence.helper import Helper
from api.evidence.log import GENESIS_SIZE, log_start
from ledger.errors import AnchorUnknownBatch
from ledger.merkle import Frontier, LogAppend, leaf_hash, verify_consistency, verify_inclusion
from ledger.records import BatchInfo
from offchain.errors import CustomerErased, DecryptionFailed, UnknownCustomer
from offchain.models import AnchorStatus, Batch, ErasureReceipt
from offchain.repositories import batches as batch_rows
from offchain.repositories import customers, enrolments, erasures, interactions, partners
from offchain.repositories.interactions import InteractionRow
from offchain.repositories.partners import PartnerRecord
from offchain.vault import CustomerKeys

PROOF_HASH = 32

# A head that claims more leaves than the store holds records by more than this is reported in one
# finding, not walked leaf by leaf (each missing leaf would be one finding).
MAX_MISSING_NAMED = 10_000

# Interactions per chunk of a run: one key-store query per chunk, and a bound on the memory it holds.
ROWS_PER_CHUNK = 2000


class Outcome(StrEnum):
    VERIFIED = "verified"  # leaf proven on chain and content re-hashed to it
    PROVEN = "proven"  # leaf proven on chain; content not read (a run without keys)
    TAMPERED = "tampered"  # the store disagrees with itself or with the chain
    UNANCHORED = "unanchored"  # not yet on chain (pending or submitted)
    ERASED = "erased"  # existing-but-erased: leaf still proven on chain, erasure receipt anchored
    MISSING = "missing"  # the chain has something the store has no row for
    NOT_HELD = "not held here"  # another partner's log, whose store and keys live in its own home


class Check(StrEnum):
    """What a run checked; a run's report lists the ones it ran."""

    HEADS = "log heads read from the chain; each head the previous one extended (consistency re-checked)"
    LEAVES = "every leaf 0..size-1 of the latest head held once, proving against an anchored head"
    ERASURES = (
        "erasure receipts re-hashed from their JSON and proven in the log;"
        " every customer marked erased has one"
    )
    CONSENT = "consent receipts against the chain's consent records"
    POINTS = "point events against the chain's events; balances and positions reconciled"
    DECISIONS = (
        "registered models (bytes and card re-hashed) and decisions against the chain's DecisionLog;"
        " with keys, each explanation against its keyed commitment"
    )
    CONTENT = "payloads decrypted and re-hashed to their leaves (needs the partners' keys)"


@dataclass(frozen=True)
class Verification:
    interaction_id: int | None
    outcome: Outcome
    detail: str = ""
    record: str = ""  # what a finding is about when it is not an interaction ("leaf 17 of acme", ...)

    @property
    def ok(self) -> bool:
        return self.outcome in (Outcome.VERIFIED, Outcome.PROVEN, Outcome.ERASED, Outcome.NOT_HELD)

    @property
    def label(self) -> str:
        return self.record or f"interaction {self.interaction_id}"


PROVEN_DETAIL = "leaf proven on chain; content not read"
# Outcomes that say nothing but the interaction's id: a run keeps these as ids, not as objects.
_PLAIN = {(Outcome.VERIFIED, ""), (Outcome.PROVEN, PROVEN_DETAIL)}


class Results:
    """A run's results, in order, as a list of `Verification` reads: iterated, counted, compared, appended
    to. Kept compactly: a run of interactions that verified (or were proven) with nothing more to say is
    held as their ids in an array (8 bytes each) and made into `Verification` objects only when read, so
    a run over a million interactions holds a few MB for them instead of a few hundred; every other
    result (findings, pending, erased) is kept as it is."""

    def __init__(self, items: Iterable[Verification] = ()) -> None:
        self._parts: list[Verification | tuple[Outcome, array[int]]] = []
        self._plain = 0
        self.extend(items)

    def append(self, item: Verification) -> None:
        if item.interaction_id is not None and not item.record and (item.outcome, item.detail) in _PLAIN:
            last = self._parts[-1] if self._parts else None
            if isinstance(last, tuple) and last[0] is item.outcome:
                last[1].append(item.interaction_id)
            else:
                self._parts.append((item.outcome, array("q", [item.interaction_id])))
            self._plain += 1
        else:
            self._parts.append(item)

    def extend(self, items: Iterable[Verification]) -> None:
        if isinstance(items, Results):  # another run's: its parts as they are, never made into objects
            self._parts.extend(
                part if isinstance(part, Verification) else (part[0], array("q", part[1]))
                for part in items._parts
            )
            self._plain += items._plain
            return
        for item in items:
            self.append(item)

    def notable(self) -> Iterator[Verification]:
        """Every result but the plain ones (verified or proven, with nothing more to say), in order."""
        return (part for part in self._parts if isinstance(part, Verification))

    def counts(self) -> Counter[Outcome]:
        counted = Counter(r.outcome for r in self.notable())
        for part in self._parts:
            if isinstance(part, tuple):
                counted[part[0]] += len(part[1])
        return counted

    def __iter__(self) -> Iterator[Verification]:
        for part in self._parts:
            if isinstance(part, Verification):
                yield part
            else:
                outcome, ids = part
                detail = "" if outcome is Outcome.VERIFIED else PROVEN_DETAIL
                for interaction_id in ids:
                    yield Verification(interaction_id, outcome, detail)

    def __len__(self) -> int:
        return self._plain + sum(1 for part in self._parts if isinstance(part, Verification))

    def __getitem__(self, index: int) -> Verification:
        return list(self)[index]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Results | list):
            return list(self) == list(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable, like a list

    def __repr__(self) -> str:
        return f"Results({list(self)!r})"


@dataclass
class VerificationReport:
    results: Results = field(default_factory=Results)
    checks: list[Check] = field(default_factory=list)
    # what the run trusted: the chain and the Consortium every other address was read from
    chain_id: int | None = None
    consortium: str | None = None

    @property
    def counts(self) -> Counter[Outcome]:
        return self.results.counts()

    @property
    def problems(self) -> list[Verification]:
        return [
            r
            for r in self.results.notable()
            if r.outcome in (Outcome.TAMPERED, Outcome.MISSING, Outcome.UNANCHORED)
        ]

    @property
    def failures(self) -> list[Verification]:
        """The problems that are evidence of something wrong (pending records are not)."""
        return [r for r in self.results.notable() if r.outcome in (Outcome.TAMPERED, Outcome.MISSING)]

    @property
    def ok(self) -> bool:
        return not self.problems

    def ran(self, *checks: Check) -> None:
        self.checks.extend(c for c in checks if c not in self.checks)


@dataclass(frozen=True)
class VerifiedInteraction:
    """An interaction and its verification outcome; `document` is the committed document, decrypted
    and parsed, of a verified interaction only (None for every other outcome)."""

    interaction_id: int
    member: bytes
    outcome: Outcome
    detail: str
    document: dict[str, Any] | None
    leaf: bytes  # the leaf hash the log holds for it (what an input root commits to)


def verify_interaction(crm: Crm, partner_name: str, interaction_id: int) -> Verification:
    """Verify one of the partner's interactions, in Python and through the contract."""
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        row = interactions.row(db, interaction_id)
        if row is None or row.partner_id != partner.id:
            raise NotFound(f"partner {partner_name!r} has no interaction {interaction_id}")
        run = _Partner(crm, db, partner, full=False)
        batch = run.batches.get(row.batch_id) if row.batch_id is not None else None
        result = run.anchoring(row, batch) or _check_content(crm, partner_name, row, None, run.erased)[0]
    if result.ok and batch is not None:
        assert batch.onchain_batch_id is not None and row.leaf_index is not None and row.proof is not None
        if not crm.coalition.anchor.verify_inclusion(
            batch.onchain_batch_id, row.leaf_index, row.leaf_hash, _split(row.proof)
        ):
            return Verification(row.id, Outcome.TAMPERED, "the contract's verifyInclusion rejects the proof")
    return result


def verify_all(
    crm: Crm,
    partner_name: str | None = None,
    member: bytes | None = None,
    *,
    content: bool = True,
    beside: Beside | None = None,
) -> VerificationReport:
    """Every partner's log from the chain down (of one partner, or of every partner the store or the
    chain knows), every interaction, and every erasure receipt; with `content`, payloads re-hashed.

    With `member`, only that member's interactions, each proven against its head on its own (no
    search for missing leaves, which belong to nobody the store knows). With `beside` (`start_helper`),
    the rows' content checks are shared with that second process: the same results, in the same order."""
    report = VerificationReport()
    report.ran(Check.HEADS, Check.LEAVES, Check.ERASURES) if member is None else report.ran(Check.LEAVES)
    if content:
        report.ran(Check.CONTENT)
    with crm.unit_of_work() as db:
        known = list(partners.every(db))
        names = [p.name for p in known] if partner_name is None else [partner_name]
        for name in names:
            run = _Partner(crm, db, crm.partner(db, name), full=member is None)
            report.results.extend(run.findings)
            members = None if member is None else [member]
            checks = (
                run.rows_beside(beside)
                if beside is not None and content and member is None
                else run.rows(members, content=content)
            )
            for checked, _ in checks:
                report.results.append(checked)
    if partner_name is None and member is None:
        report.results.extend(unknown_logs(crm))
    return report


def helps(crm: Crm) -> bool:
    """Whether a second process would check rows beside this one: two cores to run on, a node that is
    not this process (in process, eth-tester's py-evm takes this core's time as the rows do), and one
    thread to fork from."""
    return helper.cores() >= 2 and crm.coalition.remote and helper.one_thread()


def start_helper(
    crm: Crm, names: Sequence[str], *, content: bool, also: Callable[[], Any] | None = None
) -> Beside | None:
    """A second process for a whole run of these partners, where one would help (`helps`, and at least
    `helper.MIN_ROWS` rows), forked once the keys of their customers are read (with `content`): it
    checks the rows' content, and runs `also` (the run's checks against the chain's events) beside
    them, in a thread of its own. None: one process checks everything. Call before the run starts any
    thread; `close()` it after."""
    if not names or not helps(crm) or (not content and also is None):
        return None
    with crm.unit_of_work() as db:
        found = [crm.partner(db, name) for name in names]
        if interactions.count_of_partners(db, [p.id for p in found]) < helper.MIN_ROWS:
            return None
        members = {p.name: customers.members_of_partner(db, p.id) for p in found} if content else {}
    keys = {name: crm.vault.bulk_keys(name, held) for name, held in members.items()}
    if any(not key.fresh for found in keys.values() for key in found.values()):
        return None  # a vault that keeps no key (`cache_size=0`): every answer would be refused
    return Beside(crm, list(names) if content else [], keys, also)


class Beside:
    """The run's side of the helper process (api/evidence/helper.py): the keys it was forked with, and
    its answers. The helper takes the run's chunks of rows from the last one back while this process
    takes them from the first one on, so neither does a chunk the other has done: this process uses the
    answer for a chunk if it has come, waits for it if the helper is on that very chunk, and otherwise
    checks the chunk itself and tells the helper to stop there."""

    def __init__(
        self,
        crm: Crm,
        names: list[str],
        keys: dict[str, dict[bytes, CustomerKeys]],
        also: Callable[[], Any] | None = None,
    ) -> None:
        self.keys = keys
        self.also = also
        self._shreds = crm.vault.shreds
        self._vault = crm.vault
        self._answers: dict[tuple[str, int], Any] = {}  # (partner, chunk) -> the helper's answer
        self._last: tuple[str, int] | None = None  # the chunk the helper answered last
        self._rows_done = False
        self._also: tuple[Any, ...] | None = None
        self._helper = Helper(partial(_helper_work, crm, names, keys, also))

    def chunk(self, partner: str, index: int, ids: Sequence[int]) -> dict[int, Answer] | None:
        """The helper's answers for the partner's chunk `index` (of these row ids), or None: this process
        checks it itself. Each answer is the member and leaf hash the helper read (to be compared with
        the row read here) and the row's outcome if it did not verify; a row it has no answer for (no
        key, no payload) is not in it."""
        while not self._rows_done and self._helper.ready():  # (once done, its end reads as ready)
            self._take()
        while (partner, index) not in self._answers and self._last == (partner, index + 1):
            self._take()  # the helper is on this chunk: its answer comes sooner than checking it here
        got = self._answers.pop((partner, index), None)
        if got is None:
            self._helper.tell(("at", partner, index))
            return None
        first, last, checked, fingerprints, failed = got
        if not ids or (first, last) != (ids[0], ids[-1]):
            return None  # the two reads saw other rows: checked here
        return {
            row_id: (fingerprints[at * FINGERPRINT : (at + 1) * FINGERPRINT], failed.get(row_id))
            for at, row_id in enumerate(checked)
        }

    def retire(self) -> None:
        """The keys the helper was forked with are retired here (a shred, the TTL): it checks no more rows
        (its answers would be refused), and goes on with `also`."""
        self._helper.tell(("stop",))

    def _take(self) -> None:
        message = self._helper.receive()
        if message[0] == "rows":
            _, name, index, *answer = message
            self._answers[(name, index)] = answer
            self._last = (name, index)
        elif message[0] == "rows done":
            self._rows_done, self._last = True, None
        elif message[0] == "also":
            self._also = tuple(message[1:])

    def also_result(self) -> Any:
        """What `also` gave in the helper (waiting for it); run here instead if it failed there or if this
        process's vault shredded a key since the fork (the helper's copy of the vault knew nothing of it)."""
        assert self.also is not None
        self._helper.tell(("stop",))  # every row is checked: the helper need check no more
        while self._also is None:
            self._take()
        self._answers.clear()
        if self._also[0] and self._vault.shreds == self._shreds:
            return self._also[1]
        return self.also()

    def close(self) -> None:
        self._helper.tell(("stop",))
        self._helper.close()


Answer = tuple[bytes, Verification | None]
FINGERPRINT = 64  # a row's member id and leaf hash, as the helper read them


def _helper_work(
    crm: Crm,
    names: list[str],
    keys: dict[str, dict[bytes, CustomerKeys]],
    also: Callable[[], Any] | None,
    send: Callable[[Any], None],
    notes: Callable[[], list[Any]],
) -> None:
    """In the helper: `also` on a thread of its own; the partners' chunks of rows from the last one back
    (until it reaches one the run's process has checked), each row with a payload and a key checked by
    `_check_content` (the check of one process, the same words), the answers sent a chunk at a time;
    then what `also` gave. The store, the key store and the node through connections of its own."""
    crm.engine.dispose(close=False)  # the run's connections stay the run's
    crm.vault.forked()
    # connections of its own to the node (a reader over plain JSON-RPC opens one per request: none to drop)
    forked = getattr(crm.coalition, "forked", None)
    if forked is not None:
        forked()
    held = {
        name: crm.vault.handed_keys(
            name, {member: dek for member, key in found.items() if (dek := key.hand_over()) is not None}
        )
        for name, found in keys.items()
    }
    outcome: list[Any] = []

    def run_also() -> None:
        assert also is not None
        try:
            outcome.extend([True, also()])
        except Exception as exc:  # the run's process runs it again itself, and says what is wrong
            outcome.extend([False, type(exc).__name__])

    beside = threading.Thread(target=run_also, name="verify-chain") if also is not None else None
    if beside is not None:
        beside.start()
    with crm.unit_of_work() as db:
        plan = []  # every chunk of the run, in the run's order
        for name in names:
            partner_id = crm.partner(db, name).id
            for index, ids in enumerate(interactions.id_chunks(db, partner_id, ROWS_PER_CHUNK)):
                plan.append((name, partner_id, index, ids))
        place = {(name, index): at for at, (name, _, index, _) in enumerate(plan)}
        reached = -1  # the run's process has checked every chunk up to this place in `plan`
        for at in range(len(plan) - 1, -1, -1):
            for note in notes():
                reached = len(plan) if note[0] == "stop" else max(reached, place.get(note[1:], -1))
            if at <= reached:
                break
            name, partner_id, index, ids = plan[at]
            mine = held.get(name, {})
            checked = array("q")
            fingerprints = bytearray()
            failed: dict[int, Verification] = {}
            for row in interactions.rows_of_ids(db, partner_id, ids):
                key = mine.get(row.member_id)
                if row.payload_ciphertext is None or key is None:
                    continue
                result, _ = _check_content(crm, name, row, key, {})
                checked.append(row.id)
                fingerprints += row.member_id + row.leaf_hash
                if result.outcome is not Outcome.VERIFIED or result.detail:
                    failed[row.id] = result
            send(("rows", name, index, ids[0], ids[-1], checked, bytes(fingerprints), failed))
    send(("rows done",))
    if beside is not None:
        beside.join()
        send(("also", *outcome))


def verified_interactions(
    crm: Crm, partner_name: str, members: Collection[bytes] | None = None, *, content: bool = True
) -> list[VerifiedInteraction]:
    """The partner's interactions (of these members, or all), each with its outcome and, where it
    verified, its committed document: what a caller that may use only verified inputs (scoring, an
    export) reads, and reports the rest of. The same checks as `verify_all`, row by row. Without
    `content` no key is opened: leaves are proven against the chain (PROVEN), documents stay None."""
    return list(each_verified_interaction(crm, partner_name, members, content=content))


def each_verified_interaction(
    crm: Crm, partner_name: str, members: Collection[bytes] | None = None, *, content: bool = True
) -> Iterator[VerifiedInteraction]:
    """`verified_interactions` one at a time, in the same order, for a caller that keeps only what it
    makes of each document (training keeps events: holding every parsed document of Online Retail II
    at once was 540 MB). The store's session stays open until the iterator is finished or closed."""
    with crm.unit_of_work() as db:
        run = _Partner(crm, db, crm.partner(db, partner_name), full=members is None)
        for checked, (row, document) in run.rows(members, content=content):
            assert checked.interaction_id is not None
            yield VerifiedInteraction(
                checked.interaction_id,
                row.member_id,
                checked.outcome,
                checked.detail,
                json.loads(document) if document is not None else None,
                bytes(row.leaf_hash),
            )


Checked = tuple[Verification, tuple[InteractionRow, bytes | None]]
"""An interaction's outcome, its row, and its decrypted document if it verified."""


def unknown_logs(crm: Crm) -> list[Verification]:
    """Logs the chain holds for addresses the store has no partner for. A partner whose key this home
    holds belongs here, so its store lost it (deleted or replaced): missing. Any other is a partner of
    another home (a home may hold one partner of the coalition): not held here, for its own home (or
    an auditor given its evidence) to verify, and no failure of this one."""
    with crm.unit_of_work() as db:
        known = {p.address.lower() for p in partners.every(db)}
    own = {signer.address.lower() for signer in crm.signers.values()}
    found = []
    for address in crm.coalition.anchor.partners():
        if address.lower() in known:
            continue
        head = crm.coalition.anchor.head(address)
        log = f"the chain holds a log of {head.size:,} leaves in {head.count:,} heads for {address}"
        if address.lower() in own:
            outcome, why = Outcome.MISSING, "; this home holds its key, but the store knows no such partner"
        else:
            outcome, why = Outcome.NOT_HELD, ", a partner this home does not hold: its own home verifies it"
        found.append(Verification(None, outcome, log + why, record=f"log of {address}"))
    return found


class _Partner:
    """One partner's part of a run: its heads read from the chain, its batches and erasure receipts from
    the store, and (`full`) the whole log checked leaf by leaf, before any interaction is read."""

    def __init__(self, crm: Crm, db: Session, partner: PartnerRecord, *, full: bool) -> None:
        self.crm, self.db, self.partner = crm, db, partner
        self.heads = crm.coalition.anchor.heads(partner.address)
        self.by_head = {h.batch_id: h for h in self.heads}
        self.batches = batch_rows.of_partner(db, partner.id)
        self.findings: list[Verification] = []
        # interaction id -> what is wrong with its leaf (only the rows found wrong); None: not checked
        self.leaf_problems: dict[int, Verification] | None = {} if full else None
        self.bad_batches: dict[int, str] = {}  # store batch id -> why its rows cannot be proven
        self.erased: dict[bytes, ErasureReceipt] = {}  # members whose erasure receipt is proven
        self.erasing: set[bytes] = set()  # members whose receipt is not anchored yet
        self._check_batches()
        receipts = erasures.of_partner(db, partner.id)
        if full:
            self._check_log(receipts)
        self._check_receipts(receipts, full=full)
        if full:
            self._check_erased_customers(receipts)
            self._check_chain_erasures(receipts)
            self._check_enrolments()

    # --- the log --------------------------------------------------------------------------------

    def _check_batches(self) -> None:
        name = self.partner.name
        anchored = {}
        for batch in self.batches.values():
            if batch.status is not AnchorStatus.ANCHORED or batch.onchain_batch_id is None:
                continue
            assert batch.id is not None
            head = self.by_head.get(batch.onchain_batch_id)
            if head is None:
                owner = _owner(self.crm, batch.onchain_batch_id)
                why = f"points at on-chain batch {batch.onchain_batch_id}, " + (
                    "which the chain does not have" if owner is None else f"a head of {owner}, not of {name}"
                )
                self._finding(Outcome.TAMPERED, f"batch {batch.id} of {name}", why)
                self.bad_batches[batch.id] = f"its batch {why}"
            elif (head.root, head.size) != (bytes(batch.root), batch.first_index + batch.size):
                why = (
                    f"says root 0x{bytes(batch.root).hex()} at {batch.first_index + batch.size:,} leaves;"
                    f" the chain's head {head.batch_id} says 0x{head.root.hex()} at {head.size:,}"
                )
                self._finding(Outcome.TAMPERED, f"batch {batch.id} of {name}", why)
                self.bad_batches[batch.id] = f"its batch {why}"
            else:
                anchored[head.batch_id] = batch
        self.head_batch = anchored
        by_root = {bytes(b.root): b for b in self.batches.values()}
        for head in self.heads:
            if head.batch_id in anchored:
                continue
            waiting = by_root.get(head.root)
            if waiting is not None and waiting.status is not AnchorStatus.ANCHORED:
                continue  # mined, not yet settled in the store: its rows read as pending until then
            self._finding(
                Outcome.MISSING,
                f"head {head.batch_id} of {name}",
                f"the chain's head of {head.size:,} leaves (block {head.block_number}) has no batch in the"
                " store: the store is older than the chain",
            )
        previous: BatchInfo | None = None
        for head in self.heads:
            kept = anchored.get(head.batch_id)
            if previous is not None and kept is not None and kept.consistency is not None:
                proof = _split(bytes(kept.consistency))
                result = verify_consistency(previous.size, head.size, previous.root, head.root, proof)
                if not result.ok:
                    self._finding(Outcome.TAMPERED, f"batch {kept.id} of {name}", f"its proof: {result}")
            previous = head

    def _check_log(self, receipts: Sequence[ErasureReceipt]) -> None:
        """Every leaf of every head, in order (from leaf 1: leaf 0 is the partner's genesis leaf, which
        the first head's root was proven on chain to start with): held once, and the leaves between two
        heads appended to the earlier head's compact range give the later head's root. A head that
        claims more leaves than the store has records, by more than `MAX_MISSING_NAMED`, is reported as
        such, with its later heads, and not walked: its size is only a claim (a walk of 2**40 leaves
        would never end, and a finding per missing leaf would say no more)."""
        assert self.leaf_problems is not None
        name = self.partner.name
        receipt_at: dict[int, list[ErasureReceipt]] = {}
        for receipt in receipts:
            if receipt.leaf_index is not None:
                receipt_at.setdefault(receipt.leaf_index, []).append(receipt)
        frontier: Frontier | None = log_start(self.crm, self.partner.address)
        start = GENESIS_SIZE
        held_records = interactions.placed_count(self.db, self.partner.id) + len(receipt_at)
        unwalked: BatchInfo | None = None
        for head in self.heads:
            if head.size - GENESIS_SIZE - held_records > MAX_MISSING_NAMED:
                self._finding(
                    Outcome.MISSING,
                    f"head {head.batch_id} of {name}",
                    f"the chain's head {head.batch_id} claims {head.size - GENESIS_SIZE:,} records"
                    f" (block {head.block_number}); the store holds {held_records:,} in the log: not walked",
                )
                unwalked = head
                break
            held: dict[int, list[tuple[str, int, bytes, bytes | None, int | None]]] = {}
            for row in interactions.log_rows(self.db, self.partner.id, start, head.size):
                held.setdefault(row.leaf_index, []).append(
                    ("interaction", row.id, bytes(row.leaf_hash), row.proof, row.batch_id)
                )
            for index in range(start, head.size):
                for receipt in receipt_at.get(index, ()):
                    assert receipt.id is not None
                    leaf = leaf_hash(hashlib.sha256(receipt.receipt_json.encode()).digest())
                    held.setdefault(index, []).append(
                        ("erasure receipt", receipt.id, leaf, receipt.proof, receipt.anchored_batch_id)
                    )
            whole = True
            for index in range(start, head.size):
                found = held.get(index, [])
                if len(found) == 1:
                    continue
                whole = False
                if not found:
                    self._finding(
                        Outcome.MISSING,
                        f"leaf {index} of {name}",
                        f"the chain's head {head.batch_id} ({head.size:,} leaves) has leaf {index}; the"
                        " store has no record at that place",
                    )
                else:
                    holders = ", ".join(f"{kind} {i}" for kind, i, *_ in found)
                    self._finding(Outcome.TAMPERED, f"leaf {index} of {name}", f"held twice: {holders}")
                    for kind, record_id, *_ in found:
                        if kind == "interaction":
                            self.leaf_problems[record_id] = Verification(
                                record_id, Outcome.TAMPERED, f"leaf {index} is held by another record too"
                            )
            step = None
            if whole and frontier is not None:
                step = LogAppend(frontier, [held[i][0][2] for i in range(start, head.size)])
                if step.root != head.root:
                    step = None
            batch = self.head_batch.get(head.batch_id)
            # every leaf's audit path in the rebuilt head, made a level at a time (one by one it was
            # most of this check's time)
            paths = step.proofs() if step is not None else None
            for index in range(start, head.size):
                expected = paths[index - start] if paths is not None else None
                for kind, record_id, leaf, proof, batch_id in held.get(index, []):
                    problem = self._leaf_problem(head, batch, index, leaf, proof, batch_id, expected)
                    if problem is None:
                        continue
                    if kind == "interaction":
                        self.leaf_problems.setdefault(
                            record_id, Verification(record_id, Outcome.TAMPERED, problem)
                        )
                    else:
                        self._finding(Outcome.TAMPERED, f"erasure receipt {record_id} of {name}", problem)
            if step is not None:
                frontier = step.frontier
            else:
                # the store's rows do not rebuild this head: go on from the batch's own compact range if
                # it is the head's (it cannot be forged: it folds to the root the chain holds)
                kept = None if batch is None else Frontier.decode(head.size, batch.frontier)
                frontier = kept if kept is not None and kept.root == head.root else None
            start = head.size
        for row in interactions.placed_beyond(self.db, self.partner.id, start):
            batch = self.batches.get(row.batch_id) if row.batch_id is not None else None
            if batch is not None and batch.status is AnchorStatus.ANCHORED:
                self.leaf_problems[row.id] = Verification(
                    row.id,
                    Outcome.TAMPERED,
                    f"leaf {row.leaf_index} is beyond the chain's log of {start:,} leaves"
                    if unwalked is None
                    else f"leaf {row.leaf_index} is beyond the {start:,} leaves checked: the chain's head"
                    f" {unwalked.batch_id} claims more than the store holds",
                )

    def _leaf_problem(
        self,
        head: BatchInfo,
        batch: Batch | None,
        index: int,
        leaf: bytes,
        proof: bytes | None,
        batch_id: int | None,
        expected: bytes | None,
    ) -> str | None:
        """What is wrong with one record's leaf at `index` of `head`, or None."""
        if batch is not None and batch_id != batch.id:
            return f"leaf {index} was anchored by batch {batch.id}, the record says batch {batch_id}"
        if expected is not None and proof is not None and proof == expected:
            return None  # the rebuilt head's own audit path (`expected`): proven
        if proof is None or len(proof) % PROOF_HASH:
            return "the record has no usable proof"
        proven = verify_inclusion(leaf, index, head.size, _split(proof), head.root)
        if not proven.ok:
            return f"the leaf is not in the anchored batch {head.batch_id}: {proven}"
        return None

    def _check_receipts(self, receipts: Sequence[ErasureReceipt], *, full: bool) -> None:
        """Each erasure receipt: its JSON is what its hash and row say, its leaf is proven in the log
        (row by row here when the whole log was not checked), and it counts the member's rows."""
        name = self.partner.name
        flagged = {f.record for f in self.findings}
        counts = interactions.count_by_member(self.db, self.partner.id, [r.member_id for r in receipts])
        for receipt in receipts:
            label = f"erasure receipt {receipt.id} of {name}"
            problems = []
            raw = receipt.receipt_json.encode()
            if hashlib.sha256(raw).digest() != receipt.receipt_hash:
                problems.append("its JSON does not hash to its stored receipt hash")
            try:
                document = json.loads(raw)
            except ValueError:
                document = {}
            if document.get("member") != "0x" + receipt.member_id.hex() or document.get("partner") != name:
                problems.append("its JSON names another member or partner")
            held = counts.get(receipt.member_id, 0)
            # a proven receipt whose count the store no longer matches still proves the erasure
            miscount = (
                f"it counts {document.get('interactions')} interactions of the member; the store holds {held}"
                if document.get("interactions") != held or receipt.interactions_count != held
                else None
            )
            batch = self.batches.get(receipt.anchored_batch_id) if receipt.anchored_batch_id else None
            if batch is None or batch.status is not AnchorStatus.ANCHORED or receipt.leaf_index is None:
                if not problems:
                    self.erasing.add(receipt.member_id)
                    continue
            elif not full:
                assert batch.onchain_batch_id is not None
                head = self.by_head.get(batch.onchain_batch_id)
                leaf = leaf_hash(hashlib.sha256(raw).digest())
                if head is None:
                    problems.append("its batch is not one of the partner's heads")
                else:
                    problem = self._leaf_problem(
                        head, None, receipt.leaf_index, leaf, receipt.proof, batch.id, None
                    )
                    if problem:
                        problems.append(problem)
            elif label in flagged or any(f.record == label for f in self.findings):
                continue  # the log check said what is wrong
            if not problems:
                self.erased[receipt.member_id] = receipt
            if miscount:
                problems.append(miscount)
            if problems:
                self._finding(Outcome.TAMPERED, label, "; ".join(problems))

    def _check_erased_customers(self, receipts: Sequence[ErasureReceipt]) -> None:
        """Each customer the store marks erased must have an erasure receipt: an erasure writes both in
        one store transaction. Without one, nothing proves the erasure (and a live customer can be
        hidden as erased): named with what the chain's MemberRegistry says of the member. A receipt
        that is there but wrong or not yet anchored is reported by `_check_receipts`."""
        erased = customers.erased_of_partner(self.db, self.partner.id)
        with_receipt = {r.member_id for r in receipts}
        lacking = [(member, when) for member, when in erased if member not in with_receipt]
        if not lacking:
            return
        on_chain = self.crm.coalition.members.are_erased([member for member, _ in lacking])
        for (member, when), chain_erased in zip(lacking, on_chain, strict=True):
            marked = f"at {when.isoformat()}" if when is not None else "with no date"
            chain = (
                "the MemberRegistry records it erased"
                if chain_erased
                else "the MemberRegistry does not record it erased"
            )
            self._finding(
                Outcome.TAMPERED,
                f"customer 0x{member.hex()} of {self.partner.name}",
                f"marked erased in the store ({marked}) with no erasure receipt recorded or anchored;"
                f" {chain}",
            )

    def _check_chain_erasures(self, receipts: Sequence[ErasureReceipt]) -> None:
        """The store's erasures and the MemberRegistry's erased flag, each against the other: every
        anchored erasure receipt names a member the chain erased (an erasure made only in the store
        left consents, points and decisions open on chain), and every member the chain erased with
        this partner as its home has a receipt (an erasure made only on chain, or a store restored
        from before it) and no key left in the key store (a key store restored from a backup brings
        the customer's data back: the chain is the shred list)."""
        name = self.partner.name
        anchored = [r for r in receipts if r.member_id in self.erased]
        flags = self.crm.coalition.members.are_erased([r.member_id for r in anchored]) if anchored else []
        for receipt, chain_erased in zip(anchored, flags, strict=True):
            if not chain_erased:
                self._finding(
                    Outcome.TAMPERED,
                    f"erasure receipt {receipt.id} of {name}",
                    f"anchored, but the MemberRegistry does not record member 0x{receipt.member_id.hex()}"
                    " erased: an erasure made only in the store (its consents, points and decisions stay"
                    " open on chain)",
                )
        with_receipt = {r.member_id for r in receipts}
        on_chain = self.crm.coalition.members.erasures(self.partner.address)
        for erasure in on_chain:
            if erasure.member not in with_receipt:
                self._finding(
                    Outcome.MISSING,
                    f"erasure of 0x{erasure.member.hex()} by {name}",
                    f"the MemberRegistry erased the member in block {erasure.block_number}; the store holds"
                    " no erasure receipt for it (an erasure made only on chain, or a store older than it)",
                )
        kept = self.crm.keystore.get_many(name, [e.member for e in on_chain]) if on_chain else {}
        for erasure in on_chain:
            if erasure.member in kept:
                self._finding(
                    Outcome.TAMPERED,
                    f"key of 0x{erasure.member.hex()} of {name}",
                    f"the key store holds a data key of a member the chain erased in block"
                    f" {erasure.block_number} (a key store restored from a backup?): shred it again"
                    " (opening the home does)",
                )

    def _check_enrolments(self) -> None:
        """Every customer of the partner is a member the chain enrolled with it as home, and the other
        way round. A customer whose enrolment still waits in the outbox (an import stopped before
        sending it) is pending, named with what sends it; one the chain does not know and the store
        has no waiting enrolment for is a finding, as is a member the chain enrolled here that the
        store does not hold (a store older than the chain)."""
        name = self.partner.name
        on_chain = self.crm.coalition.members.enrolled_by(self.partner.address)
        held = customers.members_of_partner(self.db, self.partner.id)
        unknown = [m for m in held if m not in on_chain]
        waiting = enrolments.of_members(self.db, unknown) if unknown else {}
        for member in unknown:
            enrolment = waiting.get(member)
            label = f"customer 0x{member.hex()} of {name}"
            if enrolment is not None and enrolment.block_number is None:
                self._finding(
                    Outcome.UNANCHORED,
                    label,
                    "not enrolled on chain yet: its enrolment waits in the outbox (`ledgercrm anchor`"
                    " sends it)",
                )
            else:
                self._finding(
                    Outcome.TAMPERED,
                    label,
                    f"the chain does not know this member: no enrolment with {name} as its home"
                    + (" (the store says it was mined)" if enrolment is not None else ""),
                )
        kept = set(held)
        for member, block in on_chain.items():
            if member not in kept:
                self._finding(
                    Outcome.MISSING,
                    f"member 0x{member.hex()} of {name}",
                    f"the chain enrolled it with {name} as its home in block {block}; the store has no"
                    " such customer (a store older than the chain?)",
                )

    def _finding(self, outcome: Outcome, record: str, detail: str) -> None:
        self.findings.append(Verification(None, outcome, detail, record=record))

    # --- the interactions ------------------------------------------------------------------------

    def anchoring(self, row: InteractionRow, batch: Batch | None) -> Verification | None:
        """The outcome decided by the row, the log and the chain alone, or None if the content decides."""
        if batch is None or batch.status is not AnchorStatus.ANCHORED or batch.onchain_batch_id is None:
            return Verification(
                row.id,
                Outcome.UNANCHORED,
                f"status {AnchorStatus.PENDING if batch is None else batch.status}",
            )
        assert batch.id is not None
        if batch.id in self.bad_batches:
            return Verification(row.id, Outcome.TAMPERED, self.bad_batches[batch.id])
        if self.leaf_problems is not None:
            problem = self.leaf_problems.get(row.id)
            if problem is not None:
                return problem
        else:
            head = self.by_head[batch.onchain_batch_id]
            if row.leaf_index is None:
                return Verification(row.id, Outcome.TAMPERED, "the row has no leaf index")
            why = self._leaf_problem(
                head, batch, row.leaf_index, row.leaf_hash, row.proof, row.batch_id, None
            )
            if why is not None:
                return Verification(row.id, Outcome.TAMPERED, why)
        erased = row.member_id in self.erased
        if row.payload_ciphertext is None:
            if erased:
                return Verification(
                    row.id, Outcome.ERASED, "content erased; the leaf is still proven on chain"
                )
            if row.member_id in self.erasing:
                return Verification(
                    row.id, Outcome.UNANCHORED, "erased; the erasure receipt is not anchored yet"
                )
            return Verification(
                row.id, Outcome.TAMPERED, "the payload is missing and no erasure of the member is anchored"
            )
        if erased:
            return Verification(row.id, Outcome.TAMPERED, "the member was erased, yet a payload is stored")
        return None

    def settled(self) -> frozenset[int] | None:
        """The store ids of the anchored batches `anchoring` finds nothing wrong with (anchored, with an
        on-chain id, not among `bad_batches`), for a run whose log check (`full`) vouched for every leaf
        it did not name in `leaf_problems`; None for a run without one. A row of such a batch, with no
        leaf problem, a payload and no proven erasure, is one `anchoring` leaves to the content check:
        that is decided per batch once here instead of per row (a run reads 44,876 rows of 10 batches):
        see `decided`."""
        if self.leaf_problems is None:
            return None
        return frozenset(
            batch.id
            for batch in self.batches.values()
            if batch.id is not None
            and batch.status is AnchorStatus.ANCHORED
            and batch.onchain_batch_id is not None
            and batch.id not in self.bad_batches
        )

    def decided(self, row: InteractionRow, settled: frozenset[int] | None) -> Verification | None:
        """`anchoring`'s outcome for the row, None where the content decides; with this run's `settled()`
        (taken once, for many rows), a row of a settled batch with no leaf problem, a payload and no
        proven erasure is told so without `anchoring`'s per-row look at its batch."""
        if (
            settled is not None
            and self.leaf_problems is not None
            and row.batch_id in settled
            and row.id not in self.leaf_problems
            and row.payload_ciphertext is not None
            and row.member_id not in self.erased
        ):
            return None
        return self.anchoring(row, self.batches.get(row.batch_id) if row.batch_id is not None else None)

    def rows(self, members: Collection[bytes] | None, *, content: bool) -> Iterator[Checked]:
        keys: dict[bytes, CustomerKeys] = {}  # the partner's customers' keys, for this run only
        for rows in interactions.rows_in_chunks(self.db, self.partner.id, members, ROWS_PER_CHUNK):
            yield from self._check_rows(rows, keys, content)

    def rows_beside(self, beside: Beside) -> Iterator[Checked]:
        """`rows(None, content=True)`, with the content checks the helper process `beside` has made: the
        same outcomes in the same order, with no documents (a run's report keeps none). An answer is
        used only for the row read here (the same member and leaf hash) and while the key it was
        checked with is fresh here (no shred since, the TTL not past); every other row is checked here,
        and so is every chunk the helper has not reached when this process does."""
        name = self.partner.name
        forked = beside.keys.get(name, {})
        keys = dict(forked)  # this process's own, refreshed as `_read_keys` does
        retired = False
        for index, ids in enumerate(interactions.id_chunks(self.db, self.partner.id, ROWS_PER_CHUNK)):
            rows = interactions.rows_of_ids(self.db, self.partner.id, ids)
            results, readable = self._early(rows, content=True)
            found = beside.chunk(name, index, ids)
            left = []
            for i in readable:
                row = rows[i]
                got = found.get(row.id) if found is not None else None
                key = forked.get(row.member_id)
                if got is None or key is None or not key.fresh or got[0] != row.member_id + row.leaf_hash:
                    if key is not None and not key.fresh and not retired:
                        beside.retire()
                        retired = True
                    left.append(i)
                    continue
                checked = got[1] if got[1] is not None else Verification(row.id, Outcome.VERIFIED)
                results[i] = (checked, (row, None))
            if left:
                self._read_keys(rows, left, keys)
                for i in left:
                    checked, _ = _check_content(
                        self.crm, name, rows[i], keys.get(rows[i].member_id), self.erased
                    )
                    results[i] = (checked, (rows[i], None))
            yield from (r for r in results if r is not None)

    def _early(
        self, rows: Sequence[InteractionRow], *, content: bool
    ) -> tuple[list[Checked | None], list[int]]:
        """Each row's outcome where the row, the log and the chain decide it (`decided`), None where the
        content does; and the positions of those."""
        results: list[Checked | None] = []
        readable: list[int] = []  # positions of the rows that get as far as decryption
        settled = self.settled()
        for row in rows:
            early = self.decided(row, settled)
            if early is None and not content:
                early = Verification(row.id, Outcome.PROVEN, PROVEN_DETAIL)
            if early is None:
                readable.append(len(results))
                results.append(None)
            else:
                results.append((early, (row, None)))
        return results, readable

    def _read_keys(
        self, rows: Sequence[InteractionRow], readable: Sequence[int], keys: dict[bytes, CustomerKeys]
    ) -> None:
        """The keys of these rows' customers that `keys` does not hold fresh, read in one go and kept in
        `keys` for later chunks, as long as they stay fresh (no shred since, the vault's TTL not past:
        see CustomerKeys), so a key is read about once a run."""
        if not readable:
            return
        wanted = {rows[i].member_id for i in readable}
        unread = [m for m in wanted if m not in keys or not keys[m].fresh]
        if unread:
            for m in unread:
                keys.pop(m, None)
            keys.update(self.crm.vault.bulk_keys(self.partner.name, unread))

    def _check_rows(
        self, rows: Sequence[InteractionRow], keys: dict[bytes, CustomerKeys], content: bool
    ) -> list[Checked]:
        """Each row's outcome, in order, the keys read as `_read_keys` says."""
        name = self.partner.name
        results, readable = self._early(rows, content=content)
        if readable:
            self._read_keys(rows, readable, keys)
            for i in readable:
                checked, document = _check_content(
                    self.crm, name, rows[i], keys.get(rows[i].member_id), self.erased
                )
                results[i] = (checked, (rows[i], document))
        return [r for r in results if r is not None]


def _owner(crm: Crm, onchain_id: int) -> str | None:
    if not 0 <= onchain_id < 2**256:
        return None  # no batch id the chain could have
    try:
        return crm.coalition.anchor.batch(onchain_id).partner
    except AnchorUnknownBatch:
        return None


def _check_content(
    crm: Crm,
    partner: str,
    row: InteractionRow,
    keys: CustomerKeys | None,
    erased: Mapping[bytes, ErasureReceipt],
) -> tuple[Verification, bytes | None]:
    """Decrypt, recompute the commitment, compare the document with the row; the outcome, and the
    document if it verified. `keys` None: the customer was not among those `bulk_keys` found, so ask
    the vault, which says why (erased or unknown)."""
    assert row.payload_ciphertext is not None
    try:
        if keys is None:
            document = crm.vault.decrypt(partner, row.member_id, PAYLOAD_FIELD, row.payload_ciphertext)
        else:
            document = keys.decrypt(PAYLOAD_FIELD, row.payload_ciphertext)
    except CustomerErased:
        if row.member_id in erased:
            return Verification(row.id, Outcome.ERASED, "the customer's key is erased"), None
        return Verification(
            row.id, Outcome.TAMPERED, "the customer's key is gone and no erasure of the member is anchored"
        ), None
    except UnknownCustomer:
        return Verification(
            row.id, Outcome.TAMPERED, "the customer's key is missing and no erasure of the member is recorded"
        ), None
    except DecryptionFailed:
        return Verification(
            row.id, Outcome.TAMPERED, "the payload does not decrypt under the customer's key"
        ), None
    commitment = crm.vault.commit(partner, row.member_id, document) if keys is None else keys.commit(document)
    if leaf_hash(commitment) != row.leaf_hash:
        unmatched = "the payload does not match its committed leaf hash"
        return Verification(row.id, Outcome.TAMPERED, unmatched), None
    if document.endswith(documents.tail(partner, row)):
        return Verification(row.id, Outcome.VERIFIED), document
    mismatch = documents.disagreement(partner, row, json.loads(document))
    if mismatch:
        return Verification(
            row.id, Outcome.TAMPERED, f"the row's {mismatch} differs from the committed one"
        ), None
    return Verification(row.id, Outcome.VERIFIED), document


def _split(proof: bytes) -> list[bytes]:
    return [proof[i : i + PROOF_HASH] for i in range(0, len(proof), PROOF_HASH)]
