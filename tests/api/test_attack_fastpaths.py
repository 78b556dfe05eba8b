"""Attacks on this round's fast paths (issue 32): verify --all's per-batch decision, its cached cipher and
plain consent rows; score's memo of verified inputs read as columns; the import's calldata and its staged
point events kept across batches. The store is untrusted: each test edits it behind the system's back
(a dishonest partner, a broken database, another process) and holds the fast path to what the old one
refused. One store and one chain each (SQLite, eth-tester): what they attack is above the store's dialect."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from eth_utils import to_checksum_address
from hexbytes import HexBytes
from sqlmodel import col, select, update
from web3 import Web3

from api.context import Crm
from api.evidence import inputs as inputs_module
from api.evidence import verification
from api.evidence.anchoring import anchor_pending
from api.evidence.inputs import VerifiedInputs, verified_inputs
from api.evidence.recording import NewInteraction, record_interactions
from api.evidence.verification import Outcome, verify_all
from api.principal import Principal
from api.usecases import loyalty
from api.usecases.consent import give_consent, withdraw_consent
from api.usecases.customers import register_customer
from api.usecases.loyalty import PointsRequest, send_staged_points, stage_earnings
from api.usecases.verification import verify
from ledger.chain import function_calldata
from ledger.clients.loyalty import points_events
from ledger.compiler import compile_contracts
from ml.events import Event
from ml.table import MAX_QUANTITY, EventTable
from offchain.models import ConsentReceipt, CustomerCreate, Interaction, InteractionKind, PointEvent
from offchain.models import VerifiedInputs as MemoRow
from offchain.repositories import interactions as interaction_rows
from tests.api.test_verify_fast import rows_only

P = Principal.of_partner
OPERATOR = Principal.operator()


# one dialect and one chain: these attacks are on the Python paths, not on the store's SQL
def one_store(test: Any) -> Any:
    store = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
    return store(pytest.mark.parametrize("session_coalition", ["eth-tester"], indirect=True)(test))


def customer(crm: Crm, partner: str, name: str) -> bytes:
    return register_customer(crm, P(partner), CustomerCreate(name=name, email=f"{name.lower()}@example.org"))


def record(crm: Crm, partner: str, member: bytes, keys: list[str]) -> list[int]:
    start = datetime(2024, 5, 1, 9, 30, tzinfo=UTC)
    items = [
        NewInteraction(
            member,
            "purchase",
            {"invoice": key, "lines": [{"stockCode": "A1", "quantity": n + 1, "price": 2.5}]},
            occurred_at=start + timedelta(hours=n),
            external_key=key,
        )
        for n, key in enumerate(keys)
    ]
    return record_interactions(crm, partner, items).recorded


# --- verify --all: rows of a settled batch, decided once per batch --------------------------------------


@one_store
def test_one_good_row_does_not_vouch_for_a_bad_one_of_the_same_settled_batch_and_chunk(
    crm: Crm, alice: bytes
):
    """All eight rows in one batch the log check vouches for, and in one chunk: a row whose proof was
    edited (a leaf problem), one whose payload was dropped without an erasure, one whose kind was edited,
    one whose payload is another row's. Each is named as the row-by-row check names it; the rest verify."""
    ids = record(crm, "acme", alice, [f"S-{n}" for n in range(8)])
    anchor_pending(crm, "acme")
    with crm.unit_of_work() as db:
        rows = [db.get(Interaction, i) for i in ids]
        assert all(r is not None and r.batch_id == rows[0].batch_id for r in rows)  # type: ignore[union-attr]
        proofless, payloadless, rekinded, swapped = rows[1], rows[3], rows[5], rows[6]
        assert proofless and payloadless and rekinded and swapped and rows[7]
        proofless.proof = bytes(len(proofless.proof or b""))
        payloadless.payload_ciphertext = None
        rekinded.kind = InteractionKind.VISIT
        swapped.payload_ciphertext = rows[7].payload_ciphertext
    report = verify_all(crm, "acme")
    outcomes = dict(rows_only(report))
    assert [outcomes[i] for i in ids] == [
        Outcome.VERIFIED,
        Outcome.TAMPERED,
        Outcome.VERIFIED,
        Outcome.TAMPERED,
        Outcome.VERIFIED,
        Outcome.TAMPERED,
        Outcome.TAMPERED,
        Outcome.VERIFIED,
    ]
    # the same as each row proven on its own (a member's run: no per-batch decision)
    assert rows_only(report) == rows_only(verify_all(crm, member=alice))


@one_store
def test_a_cipher_cached_for_a_member_does_not_open_her_rows_after_her_key_is_shredded_mid_run(
    crm: Crm, alice: bytes, monkeypatch: pytest.MonkeyPatch
):
    """Chunks of two rows: her key's cipher is set up and used in the first chunk; her key is shredded
    before the second. None of her later rows verifies through the cipher kept in the run's keys."""
    record(crm, "acme", alice, [f"E-{n}" for n in range(6)])
    anchor_pending(crm, "acme")
    monkeypatch.setattr(verification, "ROWS_PER_CHUNK", 2)
    real = interaction_rows.rows_in_chunks

    def shred_after_the_first(*args: Any, **kwargs: Any) -> Iterator[Any]:
        for n, rows in enumerate(real(*args, **kwargs)):
            if n == 1:
                crm.vault.shred("acme", alice)  # another thread erasing her right now
            yield rows

    monkeypatch.setattr(interaction_rows, "rows_in_chunks", shred_after_the_first)
    results = list(verify_all(crm, "acme").results)
    assert [r.outcome for r in results] == [Outcome.VERIFIED] * 2 + [Outcome.TAMPERED] * 4
    assert {r.detail for r in results[2:]} == {
        "the customer's key is gone and no erasure of the member is anchored"
    }


@one_store
def test_consent_receipt_rows_edited_to_another_member_or_purpose_are_caught(crm: Crm, alice: bytes):
    """verify reads receipts as plain rows now: a row moved to another member or purpose (its document
    left alone, or rewritten to match, which changes its hash) is named, as are status and expiry."""
    bob = customer(crm, "acme", "Bob")
    moved = give_consent(crm, P("acme"), alice, "profiling")
    repurposed = give_consent(crm, P("acme"), alice, "marketing")
    rewritten = give_consent(crm, P("acme"), alice, "analytics")
    withdrawn = withdraw_consent(crm, P("acme"), alice, "analytics")
    expiring = give_consent(
        crm, P("acme"), alice, "loyalty", expires_at=datetime.now(UTC) + timedelta(days=30)
    )
    assert not [f for f in verify(crm, OPERATOR).failures if f.label.startswith("consent")]
    with crm.unit_of_work() as db:
        row = db.get(ConsentReceipt, moved.id)
        assert row is not None
        row.member_id = bob
        row = db.get(ConsentReceipt, repurposed.id)
        assert row is not None
        row.purpose = "profiling"
        row = db.get(ConsentReceipt, rewritten.id)
        assert row is not None
        row.member_id = bob
        row.receipt_json = row.receipt_json.replace(alice.hex(), bob.hex())
        row = db.get(ConsentReceipt, withdrawn.id)
        assert row is not None
        row.status = type(row.status)("given")
        row = db.get(ConsentReceipt, expiring.id)
        assert row is not None
        row.expires_at = (row.expires_at or datetime.now(UTC)) + timedelta(days=365)
    found = {f.label: f.detail for f in verify(crm, OPERATOR).failures}
    label = "consent receipt {} of acme".format
    assert "document says member" in found[label(moved.id)]
    assert "document says purpose" in found[label(repurposed.id)]
    assert "the chain has no consent record" in found[label(rewritten.id)]
    assert "the store says given, the chain says withdrawn" in found[label(withdrawn.id)]
    assert "expiry" in found[label(expiring.id)]
    # the chain's records the rewritten row no longer hashes to are named as missing receipts
    assert any("that the store has no receipt for" in d for d in found.values())


# --- score: the memo read as columns ----------------------------------------------------------------------


@one_store
def test_a_memo_moved_to_another_member_or_partner_is_never_read(crm: Crm, alice: bytes):
    """acme's memo of alice put in place of bob's (acme) and of carol's (borealis): neither opens under
    the other's key (the partner and member are in its associated data), so each is checked in full and
    the inputs are what a run without memos reads."""
    bob = customer(crm, "acme", "Bob")
    carol = customer(crm, "borealis", "Carol")
    record(crm, "acme", alice, [f"A-{n}" for n in range(3)])
    record(crm, "acme", bob, [f"B-{n}" for n in range(2)])
    record(crm, "borealis", carol, [f"C-{n}" for n in range(2)])
    anchor_pending(crm, "acme")
    anchor_pending(crm, "borealis")
    first = {p: verified_inputs(crm, p) for p in ("acme", "borealis")}
    for found in first.values():
        found.save(crm)
    with crm.unit_of_work() as db:
        blob = db.exec(
            MemoRow.__table__.select().where(MemoRow.member_id == alice)  # type: ignore[attr-defined]
        ).one()[2]
        for member in (bob, carol):
            db.exec(update(MemoRow).where(col(MemoRow.member_id) == member).values(blob=blob))
    for partner, member, rows in (("acme", bob, 2), ("borealis", carol, 2)):
        again = verified_inputs(crm, partner)
        assert again.histories == first[partner].histories and again.ids == first[partner].ids
        assert again.checked == rows and member in again.pending  # hers checked in full, her memo renewed
    assert verified_inputs(crm, "acme").from_memo == 3  # alice's own memo still stands for her rows


Taken = list[tuple[int, bytes, bytes, int | Event | None]]


def _memo_of(events: list[Event]) -> tuple[Any, Taken]:
    entries: list[tuple[int, bytes, bytes, Event | None]] = [
        (n + 1, bytes([n]) * 32, bytes(32), e) for n, e in enumerate(events)
    ]
    raw = inputs_module._memo_bytes(entries)
    assert raw is not None
    return inputs_module._read_memo(raw), [
        (i, leaf, check, n) for n, (i, leaf, check, _) in enumerate(entries)
    ]


@pytest.mark.parametrize(
    ("quantity", "at"),
    [
        (-(2**63), datetime(2011, 3, 1, tzinfo=UTC)),  # int64's least: numpy's abs of it is itself
        (-MAX_QUANTITY, datetime(2011, 3, 1, tzinfo=UTC)),
        (MAX_QUANTITY, datetime(2011, 3, 1, tzinfo=UTC)),
        (1, datetime(9000, 1, 1, tzinfo=UTC)),
        (1, datetime(1, 1, 2, tzinfo=UTC)),
    ],
    ids=["int64-min", "-2**31", "2**31", "year-9000", "year-1"],
)
def test_a_quantity_or_time_the_table_cannot_hold_is_read_as_events_never_as_columns(
    quantity: int, at: datetime
):
    """A member's memo holding a quantity or a time at the limits the columns refuse: she is read as
    events (scored by features_at), and the table itself refuses her events, whichever way they come."""
    member, other = "0x" + "22" * 32, "0x" + "11" * 32

    def bought(who: str, when: datetime, q: int) -> Event:
        return Event(
            who, "purchase", when, total=2.5, items=(("A", q),), country="UK", prices=(2.5,),
            descriptions=("CARD",),
        )  # fmt: skip

    theirs = [bought(member, at, quantity), bought(member, datetime(2011, 1, 1, tzinfo=UTC), 3)]
    memos: dict[bytes, Any] = {}
    taken: dict[bytes, Taken] = {}
    for who, events in ((member, theirs), (other, [bought(other, datetime(2011, 2, 1, tzinfo=UTC), 2)])):
        memos[bytes.fromhex(who[2:])], taken[bytes.fromhex(who[2:])] = _memo_of(events)
    found = VerifiedInputs()
    inputs_module._assemble(found, taken, memos, set(), {})
    assert found.table.members == (other,) and list(found.irregular) == [member]
    assert sorted(found.irregular[member], key=lambda e: e.at) == sorted(theirs, key=lambda e: e.at)
    with pytest.raises(ValueError, match="out of the table's range"):
        EventTable.from_histories({member: theirs})


# --- the import: calldata straight from the ABI, staged point events kept across batches ------------------


CHECKSUMMED = to_checksum_address(b"\xab" * 20)


def _contract(name: str) -> Any:
    return Web3().eth.contract(
        address=to_checksum_address("0x" + "11" * 20), abi=compile_contracts()[name].abi
    )


@pytest.mark.parametrize(
    ("name", "function", "arguments"),
    [
        ("LoyaltyPoints", "earnBatch", ([], [], [])),  # empty: the contract refuses it, by name
        ("LoyaltyPoints", "earnBatch", ([b"\x01" * 32] * 3, [2**256 - 1, 0, 2**255], [b"\x00" * 32] * 3)),
        (
            "LoyaltyPoints",
            "earnBatch",
            ([b"\x01" * 32, b"\x02" * 32, b"\x01" * 32], [1, 2, 3], [b"\xff" * 32] * 3),
        ),
        (
            "ConsentRegistry",
            "recordBatch",
            ([b"\x01" * 32] * 2, b"\x02" * 32, 0, [b"\x03" * 32] * 2, 2**64 - 1),
        ),
        (
            "MemberRegistry",
            "enrolBatch",
            ([b"\x01" * 32] * 2, [to_checksum_address(b"\xff" * 20)] * 2, [], []),
        ),
    ],
    ids=["empty", "max-uint-and-zero", "duplicate-members", "uint64-max", "duplicate-max-address"],
)
def test_calldata_of_edge_values_is_web3s(name, function, arguments):
    contract = _contract(name)
    expected = HexBytes(getattr(contract.functions, function)(*arguments)._encode_transaction_data())
    assert function_calldata(contract, function, arguments) == expected


@pytest.mark.parametrize(
    "address",
    ["0x" + "ab" * 20, "0x" + "AB" * 20, "ab" * 20, "0x" + "".join(c.swapcase() for c in CHECKSUMMED[2:])],
    ids=["lower", "upper", "no-prefix", "bad-checksum"],
)
def test_an_address_in_odd_case_is_never_encoded_as_another_address(address):
    """The word encoder takes checksummed addresses only; anything else goes to eth_abi's codec (as
    before this round: `encode_call`), which reads the same 20 bytes whatever the case. The clients
    checksum every address they pass (`to_checksum_address`), so web3's typo check is theirs."""
    contract = _contract("MemberRegistry")
    odd = function_calldata(contract, "enrolBatch", ([b"\x01" * 32], [address], [], []))
    assert odd == function_calldata(contract, "enrolBatch", ([b"\x01" * 32], [CHECKSUMMED], [], []))


@one_store
def test_staged_points_kept_across_batches_are_not_sent_once_gone_or_claimed_meanwhile(
    crm: Crm, monkeypatch: pytest.MonkeyPatch
):
    """One event per batch (the gas bound made to fit one), the window read once and kept: after the
    first batch, another sender claims and confirms one kept event and one is deleted from the store.
    Neither may go on chain from this call: the claimed one would earn its points twice."""
    members = [customer(crm, "acme", f"Member{n}") for n in range(4)]
    for member in members:
        give_consent(crm, P("acme"), member, "loyalty")
    stage_earnings(
        crm, P("acme"), [PointsRequest(m, 10 + n, external_key=f"K-{n}") for n, m in enumerate(members)]
    )
    with crm.unit_of_work() as db:
        staged = list(db.exec(select(PointEvent).order_by(col(PointEvent.id))))
    by_member = {bytes(r.member_id): r for r in staged}
    first, claimed, gone, last = (by_member[m] for m in sorted(by_member))
    monkeypatch.setattr(loyalty, "earn_batch_fits", lambda members, budget=0: 1)
    real = crm.coalition.loyalty.broadcast
    sent_txs: list[Any] = []

    def meanwhile(signed: Any) -> Any:
        found = real(signed)
        sent_txs.append(signed)
        if len(sent_txs) == 1:  # the first batch went; another process now sends one and deletes one
            with crm.unit_of_work() as db:
                db.exec(
                    update(PointEvent)
                    .where(col(PointEvent.id) == claimed.id)
                    .values(tx_hash="0x" + "ab" * 32, block_number=1)
                )
                db.exec(PointEvent.__table__.delete().where(PointEvent.id == gone.id))  # type: ignore[attr-defined]
        return found

    monkeypatch.setattr(crm.coalition.loyalty, "broadcast", meanwhile)
    send_staged_points(crm, P("acme"), batch_size=4)
    earned = points_events(crm.coalition.loyalty, crm.signer("acme").address)
    sent = [bytes(e.member) for e in earned if e.kind == "earn"]
    assert sorted(sent) == sorted([bytes(first.member_id), bytes(last.member_id)])
