"""Imports: the Online Retail II reader, the per-partner lookup key, and the import use case on every
store and chain: counts, consent and points on chain, verification, idempotence, and crash recovery."""

import gzip
import itertools
import os
from decimal import Decimal
from pathlib import Path

import pytest
from eth_account import Account
from sqlmodel import col, func, select

from api.context import Crm
from api.errors import InvalidInput, MalformedInput, NotAllowed, NotFound, SourceStopped
from api.evidence import anchoring, outbox
from api.evidence.recording import NewInteraction, record_interactions
from api.evidence.verification import Outcome, verify_all
from api.importers.background import ChildSource
from api.importers.online_retail import ReadStats, normalise_customer_id, read_invoices
from api.principal import Principal
from api.settings import Settings
from api.usecases import imports
from api.usecases.audit import make_bundle, verify_bundle
from api.usecases.consent import (
    LOYALTY,
    consent_history,
    consent_valid,
    give_consent,
    send_staged_consents,
    stage_consents,
    withdraw_consent,
)
from api.usecases.customer_keys import bind_customer_key, customer_binding
from api.usecases.customers import (
    find_customers_by_ref,
    register_customer,
    register_customers,
    send_staged_enrolments,
    show_customer,
)
from api.usecases.imports import import_online_retail, import_synthetic
from api.usecases.loyalty import PointsRequest, reconcile, send_staged_points, stage_earnings
from api.usecases.monitor import Line, watch
from api.usecases.partners import register_partner
from api.usecases.signing import customer_signs_consent
from ledger import errors
from ledger.backends import EthTesterBackend
from ledger.coalition import Coalition
from offchain.keystore import KeyStore
from offchain.models import (
    AnchorStatus,
    Batch,
    ConsentReceipt,
    Customer,
    CustomerCreate,
    Enrolment,
    Interaction,
    InteractionKind,
    PointEvent,
)
from offchain.repositories import consents, points
from offchain.vault import INDEX_MEMBER, KekRing, Vault

P = Principal.of_partner

OP = Principal.operator()

REAL_FILE = Path(
    os.environ.get(
        "LEDGERCRM_ONLINE_RETAIL", Path(__file__).parents[3] / "shared/data/online_retail_II.csv.gz"
    )
)

# Two lines per invoice, a return ("C"), a row without a customer, a customer id written as a float,
# lines of one invoice apart and a minute apart, a purchase worth less than one point, and (after a jump
# back in time, like the data set's second sheet) a repeat of an earlier invoice.
CSV = """\
Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country
500001,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,12,2010-01-04 09:00:00,6.95,12345,United Kingdom
500002,22041,"RECORD FRAME 7"" SINGLE SIZE ",48,2010-01-04 09:05:00,2.1,12346.0,France
500001,79323P,PINK CHERRY LIGHTS,2,2010-01-04 09:00:00,6.75,12345,United Kingdom
500002,21232,STRAWBERRY CERAMIC TRINKET BOX,6,2010-01-04 09:05:00,1.25,12346.0,France
500005,21733,RED HANGING HEART T-LIGHT HOLDER,1,2010-01-05 10:00:00,2.55,,United Kingdom
C500004,85048,15CM CHRISTMAS GLASS BALL 20 LIGHTS,-2,2010-01-06 11:00:00,6.95,12345,United Kingdom
C500004,79323P,PINK CHERRY LIGHTS,-1,2010-01-06 11:00:00,6.75,12345,United Kingdom
500006,84029G,KNITTED UNION FLAG HOT WATER BOTTLE,1,2010-01-07 12:00:00,0.5,12347,EIRE
500006,84029E,RED WOOLLY HOTTIE WHITE HEART.,1,2010-01-07 12:01:00,0.3,12347,EIRE
500007,22752,SET 7 BABUSHKA NESTING BOXES,2,2010-01-09 08:00:00,7.65,12346,France
500007,21730,GLASS STAR FROSTED T-LIGHT HOLDER,6,2010-01-09 08:00:00,4.25,12346,France
500006,84029G,KNITTED UNION FLAG HOT WATER BOTTLE,1,2010-01-07 12:00:00,0.5,12347,EIRE
500006,84029E,RED WOOLLY HOTTIE WHITE HEART.,1,2010-01-07 12:01:00,0.3,12347,EIRE
"""
INVOICES = {"500001", "500002", "C500004", "500006", "500007"}
# one point per whole unit of a purchase's total: 96.9 -> 96, 108.3 -> 108, 0.8 -> 0, 40.8 -> 40
EXPECTED_BALANCES = {"12345": 96, "12346": 108 + 40, "12347": 0}


@pytest.fixture
def retail_csv(tmp_path: Path) -> Path:
    path = tmp_path / "online_retail_tiny.csv.gz"
    with gzip.open(path, "wt", encoding="utf-8", newline="") as handle:
        handle.write(CSV)
    return path


# --- the reader ---------------------------------------------------------------------------------------


def test_the_reader_groups_lines_by_invoice_and_skips_what_it_must(retail_csv):
    stats = ReadStats()
    records = {r.invoice: r for r in read_invoices(retail_csv, stats=stats)}
    assert set(records) == INVOICES
    assert (stats.rows, stats.rows_without_customer, stats.lines) == (13, 1, 12)
    assert (stats.sheets, stats.repeated_rows, stats.invoices, stats.returns, stats.customers) == (
        2,
        2,
        5,
        1,
        3,
    )
    purchase, ret, split = records["500001"], records["C500004"], records["500006"]
    assert purchase.kind is InteractionKind.PURCHASE and ret.kind is InteractionKind.RETURN
    assert [(line.stock_code, line.quantity, line.price) for line in purchase.lines] == [
        ("85048", 12, Decimal("6.95")),
        ("79323P", 2, Decimal("6.75")),
    ]
    assert purchase.total == Decimal("96.90") and purchase.points == 96
    assert ret.total == Decimal("-20.65") and ret.points == 0
    assert records["500002"].customer_id == "12346" and records["500002"].lines[0].description.endswith(
        "SIZE "
    )
    assert len(split.lines) == 2  # the repeat from the second "sheet" is read once
    assert split.occurred_at.isoformat() == "2010-01-07T12:00:00+00:00"  # earliest line, taken as UTC
    assert purchase.payload() == {
        "invoice": "500001",
        "country": "United Kingdom",
        "lines": [
            {
                "stockCode": "85048",
                "description": "15CM CHRISTMAS GLASS BALL 20 LIGHTS",
                "quantity": 12,
                "price": 6.95,
            },
            {"stockCode": "79323P", "description": "PINK CHERRY LIGHTS", "quantity": 2, "price": 6.75},
        ],
        "total": 96.9,
    }


@pytest.mark.parametrize(
    ("raw", "expected"), [("13085", "13085"), ("13085.0", "13085"), (" 013085 ", "13085"), ("", None)]
)
def test_customer_ids_are_normalised(raw, expected):
    assert normalise_customer_id(raw) == expected


@pytest.mark.parametrize("raw", ["13085.5", "abc", "-1"])
def test_malformed_customer_ids_are_refused(raw):
    with pytest.raises(ValueError, match="not a customer id"):
        normalise_customer_id(raw)


def test_a_file_that_is_not_online_retail_is_refused(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(ValueError, match="not an Online Retail II file"):
        list(read_invoices(path))


def test_a_file_with_more_columns_reads_the_same_and_a_short_row_is_refused(tmp_path, retail_csv):
    """The header's eight columns first; a spreadsheet export may add more after them."""
    wider = tmp_path / "wider.csv"
    lines = CSV.splitlines()
    wider.write_text("\n".join([lines[0] + ",Note"] + [line + ",checked" for line in lines[1:]]) + "\n")
    assert list(read_invoices(wider)) == list(read_invoices(retail_csv))
    short = tmp_path / "short.csv"
    short.write_text("\n".join([*lines[:3], "500009,22041,FRAME,1,2010-01-04 09:05:00,2.1"]) + "\n")
    with pytest.raises(ValueError, match="data row 3: 6 cells where the header has 8"):
        list(read_invoices(short))


RUNS = """\
Invoice,StockCode,Description,Quantity,InvoiceDate,Price,Customer ID,Country
500001,85048,GLASS BALL,1,2010-01-04 09:00:00,6.95,12345,United Kingdom
500001,79323P,PINK CHERRY LIGHTS,2,2010-01-04 09:00:00,6.75,12345.0,United Kingdom
500001,21232,TRINKET BOX,3,2010-01-04 08:59:00,1.25,12345.0,United Kingdom
500002,21733,HEART T-LIGHT HOLDER,1,2010-01-05 10:00:00,2.55,,United Kingdom
500002,21730,STAR T-LIGHT HOLDER,1,2010-01-05 10:00:00,4.25,,United Kingdom
A500003,B,Adjust bad debt,1,2010-01-05 11:00:00,100.0,12345,United Kingdom
A500003,B,Adjust bad debt,1,2010-01-05 11:00:00,100.0,12345,United Kingdom
500004,22752,NESTING BOXES,2,2010-01-06 08:00:00,7.65,12346,France
500004,22752,NESTING BOXES,2,2010-01-06 08:00:00,7.65,12346,France
500001,84029G,HOT WATER BOTTLE,1,2010-01-07 12:00:00,0.5,12345,United Kingdom
"""


def test_rows_that_continue_the_row_before_are_read_as_it_was(tmp_path):
    """Consecutive rows of one invoice (or of one skipped number) share the first row's outcome; a
    customer cell written another way, or the invoice met again later, goes through the lookups."""
    path = tmp_path / "runs.csv"
    path.write_text(RUNS)
    stats = ReadStats()
    records = {r.invoice: r for r in read_invoices(path, stats=stats)}
    assert set(records) == {"500001", "500004"}
    assert (stats.rows, stats.rows_without_customer, stats.rows_not_invoices, stats.lines) == (10, 2, 2, 6)
    assert [line.stock_code for line in records["500001"].lines] == ["85048", "79323P", "21232", "84029G"]
    assert records["500001"].occurred_at.isoformat() == "2010-01-04T08:59:00+00:00"
    assert len(records["500004"].lines) == 2 and stats.customers == 2
    # the same invoice number on the next row with another customer is refused, as anywhere else
    other = tmp_path / "other.csv"
    other.write_text(
        RUNS.replace(
            "TRINKET BOX,3,2010-01-04 08:59:00,1.25,12345.0", "TRINKET BOX,3,2010-01-04 08:59:00,1.25,12399"
        )
    )
    with pytest.raises(ValueError, match="data row 3: invoice 500001 belongs to customers 12345 and 12399"):
        list(read_invoices(other))


@pytest.mark.skipif(not REAL_FILE.exists(), reason=f"the Online Retail II file is not at {REAL_FILE}")
def test_the_real_file():
    stats = ReadStats()
    lines = customers = 0
    seen = set()
    for record in read_invoices(REAL_FILE, stats=stats):
        lines += len(record.lines)
        if record.customer_id not in seen:
            seen.add(record.customer_id)
            customers += 1
    assert (stats.rows, stats.rows_without_customer) == (1_067_371, 243_007)
    assert (stats.invoices, stats.customers, customers) == (44_876, 5_942, 5_942)
    assert stats.lines == 824_364  # rows with a customer id, as in the file
    # the week both workbook sheets cover (2010-12-01..09) is in the file twice: read once
    assert (stats.sheets, stats.repeated_rows, lines) == (2, 14_803, 824_364 - 14_803)
    assert stats.returns == 7_901


# --- the lookup key -----------------------------------------------------------------------------------


def test_the_index_key_is_per_partner_stable_and_rotates_with_the_kek(tmp_path):
    keys = KeyStore(tmp_path / "keys.sqlite")
    ring = KekRing(development=True)
    vault = Vault(keys, ring)
    acme = vault.index_key("acme")
    assert len(acme) == 32 and vault.index_key("borealis") != acme
    stored = keys.get("acme", INDEX_MEMBER)
    assert stored is not None and acme not in stored[1]  # only wrapped
    assert Vault(keys, ring).index_key("acme") == acme  # another process finds the same key
    assert vault.external_ref_hmac("acme", "13085") != vault.external_ref_hmac("borealis", "13085")
    new_kek = bytes(range(32))
    assert vault.rotate_kek("acme", KekRing.fingerprint(new_kek), new_kek) == 1  # the index key, rewrapped
    rewrapped = keys.get("acme", INDEX_MEMBER)
    assert rewrapped is not None and rewrapped[0] == KekRing.fingerprint(new_kek)
    assert Vault(keys, vault._keks).index_key("acme") == acme
    keys.close()


# --- the import ---------------------------------------------------------------------------------------


def run(crm, path, **sizes):
    # small chunks and batches, so that every phase takes several turns even on a tiny file
    sizes = {"chunk_size": 2, "consent_batch": 2, "earn_batch": 2, "heads_per_anchor": 2} | sizes
    return import_online_retail(crm, P("acme"), path, **sizes)


def members(crm) -> dict[str, bytes]:
    return find_customers_by_ref(crm, P("acme"), EXPECTED_BALANCES)


def assert_imported_once(crm, anchors_before):
    """Everything of the tiny file is in the store once, on chain once, and verifies."""
    found = members(crm)
    assert set(found) == set(EXPECTED_BALANCES)
    with crm.unit_of_work() as db:
        keys = db.exec(select(Interaction.external_key)).all()
        assert sorted(keys) == sorted(INVOICES)
        assert db.exec(select(func.count()).select_from(Customer)).one() == 3
        receipts = db.exec(select(ConsentReceipt)).all()
        assert len(receipts) == 3 and all(r.block_number for r in receipts)
        assert {r.collection_method for r in receipts} == {"import"}
        events = db.exec(select(PointEvent)).all()
        assert sorted(e.external_key for e in events) == ["500001", "500002", "500007"]
        assert all(e.block_number for e in events)
        batches = db.exec(select(Batch).where(col(Batch.onchain_batch_id).is_not(None))).all()
    for ref, member in found.items():
        assert consent_valid(crm, OP, "acme", member, LOYALTY)
        assert len(consent_history(crm, OP, member)) == 1  # recorded once, on chain
        assert crm.coalition.loyalty.balance_of(member) == EXPECTED_BALANCES[ref]
    assert crm.coalition.anchor.batch_count() == anchors_before + len(batches)  # none anchored twice
    report = verify_all(crm, "acme")
    assert report.ok and report.counts[Outcome.VERIFIED] == len(INVOICES)
    assert reconcile(crm, OP).ok


def test_an_import_settles_earlier_chunks_anchors_as_it_goes(crm, retail_csv, tmp_path):
    seen = []  # (anchored, submitted) batches at each chunk's anchor step, then at the final settle

    def progress(phase, done, total):
        if phase == "anchor":
            with crm.unit_of_work() as db:
                statuses = db.exec(select(Batch.status)).all()
            seen.append((statuses.count(AnchorStatus.ANCHORED), statuses.count(AnchorStatus.SUBMITTED)))

    report = run(crm, retail_csv, progress=progress)
    assert report.batches_anchored == 3 and seen[-1] == (3, 0)
    chunks = seen[:-1]
    # Two chunks' heads go in one transaction (`heads_per_anchor`), sent at the second chunk and
    # settled by the next once mined (same sender, lower nonce than its points), so at most those two
    # are ever in flight; on eth-tester, which mines as it is sent, exactly those.
    assert max(submitted for _, submitted in chunks) <= 2
    assert any(anchored for anchored, _ in chunks)  # settled before the end of the run
    if isinstance(crm.coalition.chain.backend, EthTesterBackend):
        assert max(submitted for _, submitted in chunks) == 2
    with crm.unit_of_work() as db:
        anchors = db.exec(
            select(Batch.tx_hash, Batch.onchain_batch_id, Batch.root).order_by(col(Batch.first_index))
        ).all()
    assert len({tx for tx, _, _ in anchors}) == 2  # three heads: two and the last one
    for tx_hash, onchain_id, root in anchors:  # each batch has the id the chain gave its own head
        found = crm.coalition.anchor.batch(onchain_id)
        assert found.root == root
        assert crm.coalition.chain.backend.receipt(tx_hash).block_number == found.block_number
    # the auditor's bundle and the monitor check each head of the two-head transaction on its own
    audited = verify_bundle(crm.coalition, make_bundle(crm, P("acme")))
    assert audited.findings == [] and len(audited.heads) == 3
    assert any("3 heads of acme" in line and "3 RFC 9162 consistency" in line for line in audited.checked)
    watched: list[Line] = []
    assert watch(crm.coalition, tmp_path / "monitor", watched.append, once=True) == 0
    acme = crm.coalition.chain.backend.accounts[0].address
    assert sum(f"of {acme} " in line.text and "consistent with" in line.text for line in watched) == 3, (
        watched
    )


def test_an_import_records_everything_once_and_a_repeat_changes_nothing(crm, retail_csv):
    anchors_before = crm.coalition.anchor.batch_count()
    progress = []
    report = run(crm, retail_csv, progress=lambda *args: progress.append(args))
    assert (report.rows_read, report.rows_skipped_no_customer, report.rows_repeated) == (13, 1, 2)
    assert (report.customers_new, report.customers_existing, report.consents_recorded) == (3, 0, 3)
    assert (report.records, report.interactions_new, report.interactions_duplicate) == (5, 5, 0)
    assert (report.point_events, report.points_earned) == (3, 96 + 108 + 40)
    assert report.leaves_anchored == 5 and report.batches_anchored == 3  # a batch per chunk (of 2 here)
    assert set(report.timings) == set(imports.PHASES) and report.elapsed > 0
    assert {p[0] for p in progress} == {"read", "customers", "consent", "interactions", "points", "anchor"}
    assert ("interactions", 5, 5) in progress
    assert_imported_once(crm, anchors_before)
    # the data set has no names: the customer id is the name, and the country its ISO code
    view = show_customer(crm, P("acme"), members(crm)["12346"])
    assert view.pii == {"name": "12346", "country": "FR", "external_ref": "12346"}

    again = run(crm, retail_csv)
    assert (again.customers_new, again.customers_existing, again.consents_recorded) == (0, 3, 0)
    assert (again.interactions_new, again.interactions_duplicate) == (0, 5)
    assert (again.point_events, again.points_duplicate, again.batches_anchored) == (0, 3, 0)
    assert_imported_once(crm, anchors_before)


@pytest.mark.parametrize(
    "crash", ["interactions", "anchor-unsent", "points-signed", "points-sent", "consent-sent"]
)
def test_a_crash_anywhere_is_finished_by_running_the_import_again(crm, retail_csv, monkeypatch, crash):
    anchors_before = crm.coalition.anchor.batch_count()

    def die(*args, **kwargs):
        raise KeyboardInterrupt(f"killed: {crash}")

    if crash == "interactions":  # the second chunk's interactions never reach the store
        calls = iter([record_interactions])
        monkeypatch.setattr(imports, "record_interactions", lambda *a, **k: next(calls, die)(*a, **k))
    elif crash == "anchor-unsent":  # two chunks' batches are in the store, their one anchor never sent
        monkeypatch.setattr(anchoring, "submit", die)
    elif crash == "points-signed":  # a points transaction is signed and its hash stored, never sent
        real_broadcast = crm.coalition.chain.broadcast

        def broadcast(signed):
            with crm.unit_of_work() as db:  # the outbox wrote the hash on point events: die before sending
                if db.exec(select(PointEvent).where(PointEvent.tx_hash == signed.tx_hash)).first():
                    die()
            return real_broadcast(signed)

        monkeypatch.setattr(crm.coalition.chain, "broadcast", broadcast)
    else:  # a points (consent) transaction is mined, the store never hears of it
        rows = points.OUTBOX if crash == "points-sent" else consents.OUTBOX
        real_confirm = outbox.Outbox.confirm

        def confirm(self, mined):
            if self.rows is rows:
                die()
            return real_confirm(self, mined)

        # the one place a mined transaction is confirmed (after sending, or when settling in-flight ones)
        monkeypatch.setattr(outbox.Outbox, "confirm", confirm)
    with pytest.raises(KeyboardInterrupt):
        run(crm, retail_csv)
    monkeypatch.undo()

    report = run(crm, retail_csv)
    assert report.customers_new + report.customers_existing == 3
    assert report.interactions_new + report.interactions_duplicate == 5
    assert_imported_once(crm, anchors_before)


def test_a_batch_the_chain_refuses_stops_the_import_and_the_next_run_finishes_it(
    crm, retail_csv, monkeypatch
):
    """A hostile (or broken) node state mid-import: the last points batch reverts when it is simulated
    (on anvil in the chain's sender thread, on eth-tester where it is broadcast). The import stops with
    the contract's named error, the batch's events are left with a hash the node never saw, and the next
    run stages them again and sends them once."""
    anchors_before = crm.coalition.anchor.batch_count()
    loyalty = crm.coalition.loyalty
    real, calls = loyalty.prepare_earn_batch, itertools.count()

    def refused(sender, members, amounts, refs):
        if next(calls) == 1:  # the second (last) batch, with amounts of 0: earnBatch refuses them
            amounts = [0] * len(amounts)
        return real(sender, members, amounts, refs)

    monkeypatch.setattr(loyalty, "prepare_earn_batch", refused)
    with pytest.raises(errors.LoyaltyZeroAmount):
        run(crm, retail_csv)
    monkeypatch.undo()
    with crm.unit_of_work() as db:
        unsent = db.exec(select(PointEvent).where(col(PointEvent.tx_hash).is_not(None))).all()
        unsent = [e for e in unsent if e.block_number is None]
    assert len(unsent) == 1 and loyalty.chain.lookup(loyalty.contract, unsent[0].tx_hash) is None

    report = run(crm, retail_csv)
    assert report.point_events == 1  # the refused batch's event, sent again (its amount, not 0)
    assert_imported_once(crm, anchors_before)


def _source_processes() -> list[int]:
    """This process's children that run an import's source (api.importers.background)."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == os.getpid() and b"api.importers.background" in command:
            found.append(int(entry.name))
    return found


def test_a_failed_import_stops_its_source_process_at_once(crm, retail_csv, monkeypatch):
    def fail(*args, **kwargs):
        raise RuntimeError("the store is gone")

    monkeypatch.setattr(imports, "record_interactions", fail)
    with pytest.raises(RuntimeError, match="the store is gone") as raised:
        run(crm, retail_csv)
    # still inside the test, with the traceback (and so the import's frames) alive: the child is gone
    assert raised.value is not None and _source_processes() == []


def _dies_at_once(progress):
    """A source whose process ends before it says anything (killed, out of memory)."""
    os._exit(3)
    yield


def test_a_source_process_that_dies_stops_the_import_with_a_named_error_and_nothing_written(crm, retail_csv):
    with pytest.raises(SourceStopped, match="exited with code 3; what it wrote is kept"):
        import_online_retail(crm, P("acme"), retail_csv, reader=ChildSource(_dies_at_once))
    assert _source_processes() == []
    with crm.unit_of_work() as db:
        assert db.exec(select(func.count()).select_from(Interaction)).one() == 0
        assert db.exec(select(func.count()).select_from(Customer)).one() == 0


def test_a_withdrawal_is_never_overridden_by_a_later_import(crm, retail_csv, tmp_path):
    run(crm, retail_csv)
    member = members(crm)["12346"]
    withdraw_consent(crm, P("acme"), member, LOYALTY)
    later = tmp_path / "later.csv"
    later.write_text(
        CSV.splitlines()[0] + "\n"
        "500100,22752,SET 7 BABUSHKA NESTING BOXES,10,2010-02-01 10:00:00,7.65,12346,France\n"
        "500101,22752,SET 7 BABUSHKA NESTING BOXES,10,2010-02-01 11:00:00,7.65,12345,United Kingdom\n"
    )
    report = run(crm, later)
    assert (report.interactions_new, report.consents_recorded) == (2, 0)
    assert (report.point_events, report.points_skipped_no_consent) == (1, 1)
    assert [e.receipt.status.value for e in consent_history(crm, OP, member)] == ["given", "withdrawn"]
    assert crm.coalition.loyalty.balance_of(member) == EXPECTED_BALANCES["12346"]
    assert crm.coalition.loyalty.balance_of(members(crm)["12345"]) == EXPECTED_BALANCES["12345"] + 76


def test_bulk_calls_are_all_or_nothing(crm, alice):
    bob = register_customer(crm, P("borealis"), CustomerCreate(name="Bob"))
    with pytest.raises(NotFound):  # another partner's customer
        record_interactions(
            crm,
            "acme",
            [NewInteraction(alice, "visit", {}, external_key="v1"), NewInteraction(bob, "visit", {})],
        )
    first = record_interactions(crm, "acme", [NewInteraction(alice, "visit", {"n": 1}, external_key="v1")])
    again = record_interactions(
        crm,
        "acme",
        [NewInteraction(alice, "visit", {"n": 1}, external_key="v1"), NewInteraction(alice, "email", {})],
    )
    assert len(first.recorded) == 1 and again.duplicates == ["v1"] and len(again.recorded) == 1
    assert first.recorded[0] < again.recorded[0]
    register_customers(crm, P("acme"), [CustomerCreate(name="C", external_ref="c-1")])
    with pytest.raises(InvalidInput):  # c-1 exists: d-1 must not be left behind
        register_customers(
            crm,
            P("acme"),
            [CustomerCreate(name="D", external_ref="d-1"), CustomerCreate(name="C", external_ref="c-1")],
        )
    assert set(find_customers_by_ref(crm, P("acme"), ["c-1", "d-1"])) == {"c-1"}
    assert find_customers_by_ref(crm, P("borealis"), ["c-1"]) == {}  # lookups are per partner


def test_the_outboxes_send_an_enrolment_before_its_consent_and_a_consent_before_its_points(crm):
    # An import sends its enrolments and consents in full batches, some chunks after it stages them,
    # while its earns go as they fill: each outbox holds back what the chain would refuse before the
    # other's transaction is signed (an earn needs the consent, a consent the enrolment).
    (member,) = register_customers(crm, P("acme"), [CustomerCreate(name="E", external_ref="e-1")])
    assert stage_consents(crm, P("acme"), [member], LOYALTY).staged == [member]
    staged = stage_earnings(
        crm, P("acme"), [PointsRequest(member, 7, external_key="inv-e1")], consent={member: True}
    )
    assert staged.staged == 1
    assert send_staged_points(crm, P("acme")) == []  # its consent is staged: held, not refused on chain
    assert send_staged_consents(crm, P("acme")) == []  # its enrolment is staged
    assert send_staged_enrolments(crm, P("acme"), min_batch=2) == []  # not a full batch yet
    assert crm.coalition.loyalty.balance_of(member) == 0 and not crm.coalition.members.member(member).enrolled
    assert len(send_staged_enrolments(crm, P("acme"))) == 1
    assert send_staged_consents(crm, P("acme"), min_batch=2) == []  # not a full batch yet
    assert len(send_staged_consents(crm, P("acme"))) == 1
    assert [e.amount for e in send_staged_points(crm, P("acme"))] == [7]
    assert crm.coalition.loyalty.balance_of(member) == 7


# --- synthetic data -----------------------------------------------------------------------------------


@pytest.fixture
def memory_crm(tmp_path: Path, tester_coalition: Coalition):
    """One combination only (SQLite, eth-tester): the synthetic import adds nothing store- or
    chain-specific to the tests above."""
    settings = Settings(environment="development", home=tmp_path, batch_max_leaves=16)
    crm = Crm.open(settings, tester_coalition)
    assert isinstance(tester_coalition.chain.backend, EthTesterBackend)
    register_partner(crm, "acme", tester_coalition.chain.backend.accounts[0])
    try:
        yield crm
    finally:
        crm.close()


def test_a_synthetic_import(memory_crm):
    report = import_synthetic(memory_crm, P("acme"), seed=11, customers=6, interactions=40, chunk_size=16)
    assert (report.customers_new, report.consents_recorded, report.interactions_new) == (6, 6, 40)
    assert report.point_events > 0 and report.leaves_anchored == 40
    with memory_crm.unit_of_work() as db:
        kinds = set(db.exec(select(Interaction.kind)).all())
        customers = db.exec(select(Customer)).all()
    assert InteractionKind.PURCHASE in kinds and InteractionKind.SUPPORT_TICKET in kinds
    pii = show_customer(memory_crm, P("acme"), customers[0].member_id).pii
    assert pii["name"] and "@" in pii["email"] and pii["external_ref"].startswith("S11-")
    assert verify_all(memory_crm, "acme").ok and reconcile(memory_crm, OP).ok
    again = import_synthetic(memory_crm, P("acme"), seed=11, customers=6, interactions=40, chunk_size=16)
    assert (again.customers_new, again.interactions_new, again.point_events) == (0, 0, 0)


def test_what_a_refused_import_leaves(memory_crm, tmp_path, monkeypatch):
    """A file refused at its last row leaves no trace (one home: each fixture is ~0.6 s of set-up; an
    off-chain check: one store and chain suffice). Customers come from the reader while it reads (at
    their first line), one a chunk here: none is registered, keyed, enrolled or consented before the
    whole file is read and checked, whether its last row is refused as it is read, or its invoice's date,
    total or points once every row is. On the code before, each customer before the refused row was (a
    thousand a chunk: a real file refused at its end left 5,000); and an invoice over one event's points
    (a price no shop charges but a double holds, 1E+300), or a total no double holds, was refused only as
    its chunk came, after the chunks before it were imported."""
    header, *rows = CSV.splitlines()
    with monkeypatch.context() as patched:
        patched.setattr(imports, "CUSTOMERS_ALONE", 1)
        blocks_before = memory_crm.coalition.chain.block_number()
        for last_row, refused, in_process in [
            (
                "500009,22041,FRAME,x,2010-01-04 09:05:00,2.1,12348,France",
                "data row 4: quantity 'x' is not an",
                True,
            ),
            (
                "500009,22041,FRAME,1,2010-01-04 9h05,2.1,12348,France",
                "data row 4: InvoiceDate '2010-01-04 9h05' is not YYYY-MM-DD HH:MM:SS",
                True,
            ),
            (
                "500009,85048,BALL,1,2010-01-04 09:10:00,1E+300,12348,France",
                "invoice 500009 would earn more than 1,000,000,000 points",
                False,  # the reader's child process, as the CLI runs it
            ),
            (
                "C500009,85048,BALL,-2,2010-01-04 09:10:00,1E+308,12348,France",
                "invoice C500009: its total is out of range",
                True,
            ),
        ]:
            path = tmp_path / "late.csv"
            path.write_text("\n".join([header, rows[0], rows[1], rows[7], last_row]) + "\n")
            with pytest.raises(MalformedInput, match=refused):
                run(memory_crm, path, chunk_size=1, in_process=in_process)
            with memory_crm.unit_of_work() as db:
                for table in (Customer, Enrolment, ConsentReceipt, Interaction, PointEvent):
                    assert db.exec(select(func.count()).select_from(table)).one() == 0, table.__name__
            assert find_customers_by_ref(memory_crm, P("acme"), ["12345", "12346", "12347"]) == {}
            assert memory_crm.coalition.chain.block_number() == blocks_before  # nothing sent


# --- members with a key of their own ------------------------------------------------------------------


def test_an_import_does_not_attest_consent_for_a_member_with_a_key_and_goes_on(crm, retail_csv):
    """12346 joined at the counter with a key of her own before the history was imported. The import
    attests as her home partner, which the chain allows only for a member without a key: her consent
    is left for her to sign, her points wait for it, and everybody else is imported as usual."""
    key = Account.create()
    keyed = register_customer(
        crm,
        P("acme"),
        CustomerCreate(name="Bea", external_ref="12346"),
        signer=key.address,
        binding=customer_binding(crm, key),
    )
    report = run(crm, retail_csv)
    assert (report.customers_new, report.customers_existing) == (2, 1)
    assert (report.consents_recorded, report.consents_need_signature) == (2, 1)
    assert report.points_skipped_no_consent == 2  # 12346's two purchases
    assert consent_history(crm, OP, keyed) == []
    assert crm.coalition.loyalty.balance_of(keyed) == 0
    found = members(crm)
    assert found["12346"] == keyed
    for ref in ("12345", "12347"):
        assert consent_valid(crm, OP, "acme", found[ref], LOYALTY)
        assert crm.coalition.loyalty.balance_of(found[ref]) == EXPECTED_BALANCES[ref]
    with crm.unit_of_work() as db:
        assert not consents.staged(db, crm.partner(db, "acme").id, 10)  # nothing left to block the outbox

    # she signs her consent herself; the next import earns her points and still attests nothing for her
    give_consent(
        crm, P("acme"), keyed, LOYALTY, signed=customer_signs_consent(crm, key, keyed, "acme", LOYALTY)
    )
    again = run(crm, retail_csv)
    assert (again.consents_recorded, again.consents_need_signature) == (0, 0)
    # her two purchases earn now (they were skipped, not staged, the first time); 12345's is a duplicate
    assert (again.point_events, again.points_duplicate, again.points_skipped_no_consent) == (2, 1, 0)
    assert crm.coalition.loyalty.balance_of(keyed) == EXPECTED_BALANCES["12346"]
    assert [e.receipt.collection_method for e in consent_history(crm, OP, keyed)] == ["web-form"]


def test_bulk_consent_is_attested_only_for_the_home_partners_members_and_holds_off_a_key(crm, alice):
    bob = register_customer(crm, P("borealis"), CustomerCreate(name="Bob"))
    with pytest.raises(NotAllowed, match="home partner"):  # acme may not attest for borealis's customer
        stage_consents(crm, P("acme"), [alice, bob], LOYALTY)
    with crm.unit_of_work() as db:
        assert not consents.staged(db, crm.partner(db, "acme").id, 10)  # all or nothing

    # a consent staged for alice (an import cut short): binding her key now would leave it refused on
    # chain, so the bind waits until the consent is sent
    assert stage_consents(crm, P("acme"), [alice], LOYALTY).staged == [alice]
    key = Account.create()
    with pytest.raises(InvalidInput, match="waiting to go on chain"):
        bind_customer_key(crm, P("acme"), alice, key.address, customer_binding(crm, key)(alice))
    assert crm.coalition.members.member(alice).signer is None
    assert len(send_staged_consents(crm, P("acme"))) == 1
    bind_customer_key(crm, P("acme"), alice, key.address, customer_binding(crm, key)(alice))
    assert crm.coalition.members.member(alice).signer == key.address
    assert consent_valid(crm, OP, "acme", alice, LOYALTY)  # attested before the key: it stands


def test_a_run_of_customers_alone_is_chunked_smaller_and_interactions_as_before():
    """A source that sends its customers as it reads (Online Retail II) has them registered a thousand at
    a time, not when a whole chunk of records has come; a chunk with interactions keeps its size."""
    from api.importers.entries import Entry

    pii = CustomerCreate(name="c", external_ref="1")
    customer, invoice = Entry(pii), Entry(pii, InteractionKind.PURCHASE, "1", None, 1, None)
    items = [customer] * 7 + [invoice] * 5 + [customer] * 2 + [invoice] * 4
    chunks = list(imports._chunks(items, 5, 3))
    assert [len(chunk) for chunk in chunks] == [3, 3, 5, 5, 2]  # 3 + 3 customers, then 5 at a time
    assert [item for chunk in chunks for item in chunk] == items
