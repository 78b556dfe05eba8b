"""Importing a partner's history in bulk: the UCI Online Retail II data set, or a synthetic data set.

One customer per source customer number, one interaction per invoice (or ticket), loyalty consent for
every imported customer, coalition points for purchases, and every interaction anchored.

Records are taken `chunk_size` at a time (a run of customers without interactions, as a reader sends
them while it reads on, `CUSTOMERS_ALONE` at a time), and each chunk goes through four phases, each its
own store transaction and each idempotent, so that a crash at any point (kill -9 included) leaves a
state from which running the same import again completes with nothing lost, nothing duplicated and
nothing anchored twice:

1. customers: looked up by the partner's keyed hash of their source number (`external_ref_hmac`, one
   query per chunk); the missing ones are registered (`register_customers`), which stages their
   enrolment on chain, sent with `enrolBatch` through the enrolment outbox (the partner becomes their
   home partner there, which is what lets it attest their consent and redeem their points).
2. consent: a consent receipt (collection method "import") for each purpose the source holds consent
   for (`purposes`: "loyalty" unless told otherwise) is staged for every customer of the chunk that has
   no receipt for that purpose yet (so a withdrawal is never overridden, and a re-run stages nothing
   twice), then sent on chain with `recordBatch` (one purpose per batch) through the consent outbox:
   attested by the partner as the customers' home partner. A customer with a key of their own is left
   out (the chain takes their "given" only with their signature) and counted; their points wait for the
   consent they sign.
3. interactions: recorded with the invoice (ticket) number as external key; ones already recorded are
   counted as duplicates (`record_interactions`). The new ones go into a pending anchoring batch in the
   same transaction, whose anchor is sent with those of the next chunks, `heads_per_anchor` heads in one
   transaction (`anchoring.submit`, `anchorMany`); the anchors of earlier chunks that are mined by then
   are marked anchored (`anchoring.settle`).
4. points: one point per whole currency unit of a purchase's total, staged with the invoice number as
   external key (already staged ones are duplicates) for members whose consent the chain confirms, and
   sent with `earnBatch` through the points outbox, in full batches, the rest at the end.

The source is read (or generated) in a child process, which also serializes each record's data
(`Entry`), so that parsing runs on a second core while this process encrypts, writes and sends.
Transactions are pipelined: each chunk sends its consent and points batches without waiting for them
to be mined (the node mines while the next chunk is encrypted and written), and the next send confirms
them first; points for members whose consent was sent but not yet mined are staged, since their
recordBatch precedes the earnBatch (same sender, lower nonce). The whole run is `Chain.pipelined()`:
each batch is signed at once and simulated and sent by the chain's sender thread, so this process does
not wait for the node to simulate it either; a revert there stops the import with the same named error
at its next chain call, and what was not sent is staged again by the next run (ledger/pipeline.py).
After the last chunk every in-flight transaction is settled, anchors included. While the chunks run,
the vault may cache every customer's key (`IMPORT_KEY_CACHE`): customers come back chunk after chunk.

A run starts by finishing whatever an interrupted run left in the consent and points outboxes, and the
anchoring outbox finishes interrupted batches too. Caveats: an erased customer has no
lookup hash any more, so a source that still holds them re-creates them as new customers (their old
invoices stay recorded and are skipped); a crash between creating keys and committing their customers
leaves unused wrapped keys in the key store (no data, no link to anyone). One import per partner at a
time: the outboxes are not meant for two concurrent senders.
"""

from __future__ import annotations

import csv
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from api.context import Crm
from api.errors import InvalidInput, MalformedInput, SourceStopped
from api.evidence import anchoring
from api.evidence.anchoring import AnchorOutcome
from api.evidence.outbox import sending_as
from api.evidence.recording import NewInteraction, record_interactions
from api.importers.background import ChildSource, SourceFailed, in_child_process
from api.importers.collector import IMPORT_THRESHOLDS, bulk_collection
from api.importers.entries import Entry, piped_retail_entries, retail_entries, synthetic_entries
from api.importers.online_retail import ReadStats
from api.principal import Principal
from api.progress import Progress, no_progress
from api.usecases.consent import (
    LOYALTY,
    ConsentTerms,
    check_purposes,
    send_staged_consents,
    stage_consents,
)
from api.usecases.customers import find_customers_by_ref, register_customers, send_staged_enrolments
from api.usecases.loyalty import MAX_POINTS_PER_EVENT, PointsRequest, send_staged_points, stage_earnings
from ledger.clients.anchor import MAX_HEADS_PER_CALL
from ledger.clients.consent import record_batch_max
from ledger.clients.loyalty import earn_batch_max
from ledger.clients.members import enrol_batch_max
from offchain.db import checkpoints_beside
from offchain.models import ConsentStatus, CustomerCreate

PHASES = ("resume", "read", "customers", "consent", "interactions", "points", "anchor")
# Source records per store transaction in each phase, and per tree head: the chunks send enrolBatches,
# recordBatches and earnBatches as their items fill them, and a head each (`HEADS_PER_ANCHOR` to an
# anchor transaction). On anvil every transaction is a block, and a block's time grows with the chain's
# whole state (measured: 4 ms -> 42 ms per block over a 100k import), so the number of blocks per record
# decides whether an import stays linear: 1,000 records a chunk made 4.1 blocks per 1,000 records, 5,000
# about one. The memory a chunk holds (its entries, their ciphertexts) stays a few tens of MB (20,000 a
# chunk: 46 MB more at 100k, and the reader and the store overlapped less: 15.3 -> 21.1 s).
RECORDS_PER_CHUNK = 5000
# Customers a chunk takes while no interaction comes with them (a source that sends its customers before
# their records: the Online Retail II reader, whose customers `import_online_retail` holds until the whole
# file is read and checked, then gives all at once; each customer's transaction is smaller this way).
# (Enrolments and consents are sent in full batches either way: the same transactions.)
CUSTOMERS_ALONE = 1000
# Chunks' tree heads per anchor transaction (`anchorMany`): a head per chunk still (a batch is written
# with its chunk's rows), but one block for eight of them (40,000 records; an anchor of 4 heads used
# 0.64M gas, a block to itself: 50 of a 1M import's blocks with 4, 25 with 8).
HEADS_PER_ANCHOR = 8
# DEKs the vault may cache during an import: customers come back chunk after chunk, so a cache that holds
# them all reads each key once. The TTL still applies; the process holds these customers' plaintext
# anyway while it encrypts it. (16k DEKs: a few MB.)
IMPORT_KEY_CACHE = 16_384

# The customers came from the partner's own system, where they joined its loyalty scheme (and, where
# the caller says so, consented to more purposes there).
IMPORT_TERMS = ConsentTerms(collection_method="import")
DEFAULT_PURPOSES = (LOYALTY,)


@dataclass
class ImportReport:
    source: str
    partner: str
    rows_read: int = 0  # source rows (Online Retail II)
    rows_skipped_no_customer: int = 0
    rows_repeated: int = 0  # lines of invoices the source holds twice (read once)
    records: int = 0  # interactions the source offered (invoices, tickets)
    customers_new: int = 0
    customers_existing: int = 0
    members_enrolled: int = 0  # enrolments confirmed on chain by this run
    consents_recorded: int = 0  # confirmed on chain by this run (including a crashed run's leftovers)
    # customers with a key of their own and no loyalty consent: theirs to sign, so none is attested
    consents_need_signature: int = 0
    interactions_new: int = 0
    interactions_duplicate: int = 0
    point_events: int = 0  # earn events confirmed on chain by this run
    points_earned: int = 0  # their total
    points_duplicate: int = 0  # invoices whose points were already recorded
    points_skipped_no_consent: int = 0  # invoices of members without valid loyalty consent
    batches_anchored: int = 0
    leaves_anchored: int = 0
    timings: dict[str, float] = field(default_factory=lambda: dict.fromkeys(PHASES, 0.0))  # seconds
    elapsed: float = 0.0

    @property
    def interactions_per_second(self) -> float:
        return self.interactions_new / self.elapsed if self.elapsed else 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self) | {"interactions_per_second": round(self.interactions_per_second, 1)}


def import_online_retail(
    crm: Crm,
    who: Principal,
    path: str | Path,
    *,
    progress: Progress | None = None,
    chunk_size: int = RECORDS_PER_CHUNK,
    consent_batch: int | None = None,
    earn_batch: int | None = None,
    in_process: bool = False,
    purposes: Sequence[str] = DEFAULT_PURPOSES,
    reader: ChildSource[Any] | None = None,
    heads_per_anchor: int = HEADS_PER_ANCHOR,
) -> ImportReport:
    """Import the Online Retail II file at `path` (CSV, gzipped or not) into the acting partner, with
    consent attested for each of `purposes` (declared purposes; an unknown one is refused before
    anything is written).

    The data set has no names: each customer's `name` is their Customer ID (CustomerCreate requires
    one), `external_ref` the same ID, `country` the ISO code of their first invoice's country (if it has
    one). Rows without a Customer ID are skipped; see api/importers/online_retail.py for the rest.
    The file is read in a child process (see `Entry`) unless `in_process`; `reader` is one already
    reading it (`api.importers.entries.start_reading_retail(path)`), closed when the import ends."""
    stats = ReadStats()
    report = ImportReport(source=f"online-retail-ii:{Path(path).name}", partner=who.acting_partner())

    def entries() -> Iterator[Entry]:
        # The customers the reader sends while it reads are held until it has read and checked the whole
        # file (its first ReadStats, before the first invoice): a file refused at its last row leaves no
        # customer, key, enrolment or consent behind. (They were registered a thousand at a time as they
        # came, and such a file left every full thousand of them, enrolled and consented on chain.)
        held: list[Entry] | None = []
        try:
            items = (
                reader.items(progress)
                if reader is not None
                else _source(
                    retail_entries if in_process else piped_retail_entries,
                    str(path),
                    progress=progress,
                    in_process=in_process,
                )
            )
            for item in items:
                if isinstance(item, ReadStats):  # the reader's counts, once the file is read and at the end
                    for name, value in asdict(item).items():
                        setattr(stats, name, value)
                    if held is not None:
                        yield from held
                        held = None
                elif held is not None:
                    held.append(item)
                else:
                    yield item
        except (ValueError, OSError, csv.Error) as exc:  # what the reader says of the file (it names it)
            raise MalformedInput(f"cannot import: {exc}") from exc

    def total() -> int | None:
        return stats.invoices_found if stats.rows else None

    try:
        importer = _Importer(
            crm, who, report, progress, chunk_size, consent_batch, earn_batch, purposes, heads_per_anchor
        )
    except BaseException:
        if reader is not None:
            reader.close()  # refused before it started: stop the reading too
        raise
    importer.run(entries(), total)
    report.rows_read = stats.rows
    report.rows_skipped_no_customer = stats.rows_without_customer
    report.rows_repeated = stats.repeated_rows
    return report


def import_synthetic(
    crm: Crm,
    who: Principal,
    *,
    seed: int,
    customers: int,
    interactions: int,
    progress: Progress | None = None,
    chunk_size: int = RECORDS_PER_CHUNK,
    consent_batch: int | None = None,
    earn_batch: int | None = None,
    in_process: bool = False,
    purposes: Sequence[str] = DEFAULT_PURPOSES,
    heads_per_anchor: int = HEADS_PER_ANCHOR,
) -> ImportReport:
    """Import `generate(seed, customers, interactions)` into the acting partner: every customer (with the
    generated PII, and consent for each of `purposes`), every invoice and ticket. The churn ground truth
    is not imported. The data set is generated in a child process (see `Entry`) unless `in_process`."""
    report = ImportReport(source=f"synthetic:seed={seed}", partner=who.acting_partner())
    expected = interactions
    importer = _Importer(
        crm, who, report, progress, chunk_size, consent_batch, earn_batch, purposes, heads_per_anchor
    )
    items = _source(
        synthetic_entries, seed, customers, interactions, progress=progress, in_process=in_process
    )
    importer.run(items, lambda: expected)
    return report


def _source(
    source: Callable[..., Iterable[Any]], *args: Any, progress: Progress | None, in_process: bool
) -> Iterator[Any]:
    if in_process:
        return iter(source(progress or no_progress, *args))
    return in_child_process(source, *args, progress=progress)


T = TypeVar("T")


class _Importer:
    """The chunked, phased import shared by every source (see the module docstring)."""

    def __init__(
        self,
        crm: Crm,
        who: Principal,
        report: ImportReport,
        progress: Progress | None,
        chunk_size: int,
        consent_batch: int | None,
        earn_batch: int | None,
        purposes: Sequence[str],
        heads_per_anchor: int = HEADS_PER_ANCHOR,
    ) -> None:
        if chunk_size < 1 or any(size is not None and size < 1 for size in (consent_batch, earn_batch)):
            raise InvalidInput("chunk and batch sizes are at least 1")
        if not 1 <= heads_per_anchor <= MAX_HEADS_PER_CALL:
            raise InvalidInput(f"heads per anchor transaction are 1 to {MAX_HEADS_PER_CALL}")
        self.heads_per_anchor = heads_per_anchor
        self.unsent_batches: list[int] = []  # this run's batches whose anchors wait for a full transaction
        self.purposes = check_purposes(purposes)
        self.crm = crm
        self.who = who
        self.partner = who.acting_partner()
        self.report = report
        self.progress = progress
        self.chunk_size = chunk_size
        # what is asked (None: what the node's block takes), sized in `_run` once the node is read
        self.asked_batches = (consent_batch, earn_batch)
        self.enrol_batch = self.consent_batch = self.earn_batch = 0
        self.members: dict[str, bytes] = {}  # source customer number -> member id, for this run
        # member -> loyalty consent valid: filled from confirmed receipts, or by asking the chain
        self.consented: dict[bytes, bool] = {}
        self.points_waiting = 0  # staged by this run and not yet sent
        self.done = 0

    def run(self, items: Iterable[Entry], total: Callable[[], int | None]) -> None:
        # One import per partner at a time: the outboxes are not meant for two concurrent senders.
        busy = f"an import into {self.partner} is already running"
        with (
            self.crm.exclusive(f"import-{self.partner}", busy=busy),
            # the partner's one sender (another process's sends wait) until the pipeline below has
            # sent all it holds: a hash it recorded and has not sent yet is known only here (a partner
            # the store does not know is refused by `_run`, in its words)
            sending_as(self.crm, self.partner),
            bulk_collection(IMPORT_THRESHOLDS),
            # the store's WAL copied into its file by a thread beside this one, not in the chunks' commits
            checkpoints_beside(self.crm.engine),
            # each batch simulated and sent by the chain's sender thread while this one goes on
            self.crm.coalition.chain.pipelined(),
        ):
            self._run(items, total)

    def _run(self, items: Iterable[Entry], total: Callable[[], int | None]) -> None:
        started = time.perf_counter()
        # fail before reading anything if the partner or its key is missing
        with self.crm.unit_of_work() as db:
            self.crm.partner(db, self.partner)
        self.crm.signer(self.partner)
        # Batches as full as the node's block takes (its gas limit less the margin), read once for the run:
        # a 60M block takes twice a 30M one's, half the blocks.
        budget = self.crm.coalition.consent.batch_gas_budget()
        consent_batch, earn_batch = self.asked_batches
        self.enrol_batch = enrol_batch_max(budget)
        most = record_batch_max(budget)
        self.consent_batch = most if consent_batch is None else min(consent_batch, most)
        self.earn_batch = earn_batch_max(budget) if earn_batch is None else earn_batch
        with self._phase("resume"):
            self._enrolled(send_staged_enrolments(self.crm, self.who, batch_size=self.enrol_batch))
            self._consents_confirmed(send_staged_consents(self.crm, self.who, batch_size=self.consent_batch))
            self._points_confirmed(send_staged_points(self.crm, self.who, batch_size=self.earn_batch))
        chunks = _chunks(self._timed(items, "read"), self.chunk_size, CUSTOMERS_ALONE)
        try:
            with self.crm.vault.cache_capacity(IMPORT_KEY_CACHE):
                for chunk in chunks:
                    self._chunk(chunk, total())
        except SourceFailed as exc:  # every source's child process ends here, however it broke
            raise SourceStopped(
                f"the import stopped: {exc}; what it wrote is kept, and the same command imports the rest"
            ) from exc
        finally:
            # A failed import stops its source process now: left to the garbage collector, a child's
            # reader thread could still hold its pipe at interpreter exit (a fatal error there).
            for iterator in (chunks, items):
                close = getattr(iterator, "close", None)
                if close is not None:
                    close()
        # The chunks leave their last transactions in flight and part batches staged. The enrolments
        # and consents left are sent without waiting (the node mines them while the points are
        # prepared, before them: the same sender's lower nonces), each points batch waited for as before
        # (a batch the chain refuses stops the run there, every earlier one confirmed), the anchors
        # sent, and then all settled. Each outbox waited for each of its batches before: ~0.3 s more of
        # the run's wall after its last chunk.
        with self._phase("customers"):
            self._enrolled(
                send_staged_enrolments(self.crm, self.who, batch_size=self.enrol_batch, wait=False)
            )
        with self._phase("consent"):
            self._consents_confirmed(
                send_staged_consents(self.crm, self.who, batch_size=self.consent_batch, wait=False)
            )
        with self._phase("points"):
            self._points_confirmed(send_staged_points(self.crm, self.who, batch_size=self.earn_batch))
        with self._phase("anchor"):
            # Leaves left outside a batch (recorded by other means) too: every batch sent, not waited for.
            anchoring.submit_pending(self.crm, self.partner, heads=self.heads_per_anchor)
        with self._phase("customers"):
            self._enrolled(send_staged_enrolments(self.crm, self.who, batch_size=self.enrol_batch))
        with self._phase("consent"):
            self._consents_confirmed(send_staged_consents(self.crm, self.who, batch_size=self.consent_batch))
        self._anchor()
        self.report.elapsed = time.perf_counter() - started

    def _chunk(self, chunk: list[Entry], total: int | None) -> None:
        report = self.report
        records = [entry for entry in chunk if entry.kind is not None]
        # Refused before the chunk writes anything: an invoice whose total earns more points than one
        # event may carry (a price such as 1E+300) failed at the points step, after the chunk's
        # interactions were recorded and anchored, and every run after it failed there again.
        for entry in records:
            if entry.points > MAX_POINTS_PER_EVENT:
                raise MalformedInput(
                    f"cannot import: invoice {entry.external_key} would earn more than"
                    f" {MAX_POINTS_PER_EVENT:,} points (one event's most); nothing of its chunk was imported"
                )
        # progress counts interactions, as the totals do: a source may send customers on their own first
        self.done += len(records)
        report.records += len(records)

        with self._phase("customers"):
            first_seen: dict[str, CustomerCreate] = {}
            for entry in chunk:
                ref = _ref(entry.pii)
                if ref not in self.members and ref not in first_seen:
                    first_seen[ref] = entry.pii
            found = find_customers_by_ref(self.crm, self.who, list(first_seen)) if first_seen else {}
            new = [pii for ref, pii in first_seen.items() if ref not in found]
            created = register_customers(self.crm, self.who, new)
            # Full batches only, sent and not waited for (the consents of these members follow from the
            # same sender); the rest waits for later chunks' customers, and for the run's end. Each
            # batch is a block on anvil, whose time per block follows the chain's whole state.
            self._enrolled(
                send_staged_enrolments(
                    self.crm, self.who, batch_size=self.enrol_batch, min_batch=self.enrol_batch, wait=False
                )
            )
            self.members.update(found)
            self.members.update(zip((_ref(pii) for pii in new), created, strict=True))
            report.customers_existing += len(found)
            report.customers_new += len(new)
        self._tell("customers", total)

        with self._phase("consent"):
            fresh = [self.members[ref] for ref in first_seen]
            for purpose in self.purposes:
                staging = stage_consents(self.crm, self.who, fresh, purpose, terms=IMPORT_TERMS)
                # their points wait for the consent they sign themselves (stage_earnings asks the chain)
                report.consents_need_signature += len(staging.need_signature)
                if purpose == LOYALTY:
                    # Sent in a later full batch or at the end, not yet mined: the points outbox holds
                    # back the points of a member whose consent is still staged, so each recordBatch is
                    # sent before any earnBatch for its members (same sender, lower nonce) and the
                    # chain holds the consent by the time the points are mined. A consent transaction
                    # that still failed would stop the import when it is settled.
                    for member in staging.staged:
                        self.consented.setdefault(member, True)
            # Full batches only (of members whose enrolment is sent): the rest waits for later chunks
            # and for the run's end, as the enrolments do.
            self._consents_confirmed(
                send_staged_consents(
                    self.crm,
                    self.who,
                    batch_size=self.consent_batch,
                    min_batch=self.consent_batch,
                    wait=False,
                )
            )
        self._tell("consent", total)

        with self._phase("interactions"):
            result = record_interactions(
                self.crm,
                self.partner,
                [
                    NewInteraction(
                        self.members[_ref(entry.pii)],
                        entry.kind,
                        entry.data,
                        entry.occurred_at,
                        external_key=entry.external_key,
                    )
                    for entry in records
                    if entry.kind is not None and entry.data is not None
                ],
                batch=True,  # each row written once, already in its anchoring batch
                batch_leaves=max(self.chunk_size, self.crm.settings.batch_max_leaves),  # a head per chunk
            )
            report.interactions_new += len(result.recorded)
            report.interactions_duplicate += len(result.duplicates)
        self._tell("interactions", total)

        with self._phase("anchor"):
            # Sent now and mined while the next chunk is prepared; each chunk settles those already
            # mined (the previous chunks'), and the end of the run the rest.
            self._anchored(anchoring.settle(self.crm, self.partner, wait=False))
            # `heads_per_anchor` chunks' heads in one transaction; those left at the end go with the
            # run's last (a crash leaves them pending, and the next run sends them first)
            self.unsent_batches += result.batches
            if len(self.unsent_batches) >= self.heads_per_anchor:
                anchoring.submit(self.crm, self.partner, self.unsent_batches, heads=self.heads_per_anchor)
                self.unsent_batches = []
        self._tell("anchor", total)  # records done through this step, like every other phase

        with self._phase("points"):
            requests = [
                PointsRequest(self.members[_ref(entry.pii)], entry.points, external_key=entry.external_key)
                for entry in records
                if entry.points > 0
            ]
            if requests:
                staged = stage_earnings(self.crm, self.who, requests, consent=self.consented)
                report.points_duplicate += len(staged.duplicates)
                report.points_skipped_no_consent += len(staged.no_consent)
                self.points_waiting += staged.staged
            if self.points_waiting >= self.earn_batch:  # full batches now, the rest at the end
                self._points_confirmed(
                    send_staged_points(
                        self.crm,
                        self.who,
                        batch_size=self.earn_batch,
                        min_batch=self.earn_batch,
                        wait=False,  # mined while the next chunk is prepared; confirmed by the next call
                    )
                )
        self._tell("points", total)

    def _anchor(self) -> None:
        with self._phase("anchor"):
            # Any batch left pending (one whose anchor failed and went back) sent again, then all
            # settled with the chunks' batches: the node mines while the next batch is built.
            anchoring.submit_pending(self.crm, self.partner, heads=self.heads_per_anchor)
            self._anchored(anchoring.settle(self.crm, self.partner, wait=True))
            if self.progress is not None:
                self.progress("anchor", self.done, self.done)  # every record's anchor settled

    def _anchored(self, outcomes: Sequence[AnchorOutcome]) -> None:
        self.report.batches_anchored += len(outcomes)
        self.report.leaves_anchored += sum(outcome.size for outcome in outcomes)

    def _enrolled(self, confirmed: Sequence[Any]) -> None:
        self.report.members_enrolled += len(confirmed)

    def _consents_confirmed(self, receipts: Sequence[Any]) -> None:
        self.report.consents_recorded += len(receipts)
        for receipt in receipts:
            # A given consent without expiry, just mined: valid, short of a withdrawal racing this run.
            if (
                receipt.purpose == LOYALTY
                and receipt.status is ConsentStatus.GIVEN
                and receipt.expires_at is None
            ):
                self.consented[receipt.member_id] = True

    def _points_confirmed(self, events: Sequence[Any]) -> None:
        self.report.point_events += len(events)
        self.report.points_earned += sum(e.amount for e in events)
        self.points_waiting = max(0, self.points_waiting - len(events))

    def _timed(self, items: Iterable[T], phase: str) -> Iterator[T]:
        """`items`, with the time spent producing them (reading, generating) added to `phase`."""
        iterator = iter(items)
        while True:
            started = time.perf_counter()
            try:
                item = next(iterator)
            except StopIteration:
                return
            finally:
                self.report.timings[phase] += time.perf_counter() - started
            yield item

    def _phase(self, name: str) -> _Timer:
        return _Timer(self.report.timings, name)

    def _tell(self, phase: str, total: int | None) -> None:
        if self.progress is not None:
            self.progress(phase, self.done, total)


class _Timer:
    def __init__(self, timings: dict[str, float], name: str) -> None:
        self.timings, self.name = timings, name

    def __enter__(self) -> None:
        self.started = time.perf_counter()

    def __exit__(self, *_exc: object) -> None:
        self.timings[self.name] += time.perf_counter() - self.started


def _ref(pii: CustomerCreate) -> str:
    assert pii.external_ref is not None  # every imported customer has the source's number
    return pii.external_ref


def _chunks(items: Iterable[Entry], size: int, customers_alone: int) -> Iterator[list[Entry]]:
    """`items` `size` at a time; a run of customers without interactions (a source that sends each
    customer as soon as it sees them, while it reads on) in chunks of `customers_alone`."""
    chunk: list[Entry] = []
    only_customers = True
    for item in items:
        chunk.append(item)
        only_customers = only_customers and item.kind is None
        if len(chunk) >= size or (only_customers and len(chunk) >= customers_alone):
            yield chunk
            chunk, only_customers = [], True
    if chunk:
        yield chunk
