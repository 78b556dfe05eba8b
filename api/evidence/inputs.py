"""A partner's verified inputs as the models read them (per member: events oldest first, with the leaf
and interaction id of each), verified from the chain down as `verified_interactions` does, with a memo
of the content checks so that a later run over the same leaves does not decrypt and re-hash 44,876
payloads one by one.

The log is checked from the chain every run, exactly as before (`_Partner`: the chain's heads, every
leaf of every head held once and rebuilding the head's root, batches, erasures), and every row's place
in it. Only then, for a row whose outcome its content decides, the memo may stand in for the content
check. The memo is one blob per member, AES-GCM under the member's data key with the partner, the member
and its own field name in the associated data (`Vault`), so nobody without the partner's key-encryption
key can write one, and one member's cannot pass for another's. Each entry names an interaction id and
one check of its row (`_check_of`: SHA-256 over its leaf hash, the SHA-256 of its payload ciphertext
and its header, `documents.tail`), and holds the event the verified document gave. It is used for a
row only when the row has that id and gives that check now: the content check is a function of exactly
these and the member's key (decrypt, HMAC to the leaf, compare the header), so the entry's outcome is
what checking again would give. Anything else (no blob, a blob that does not open, under a key since
shredded or rotated, an entry whose check the row no longer gives) and the row is checked in full, as
before, and the member's memo written anew. A tampered memo can therefore cost
time, never change an outcome: the hostile tests in tests/api/test_decisions.py (`memo`) try.

Memo writes are handed back (`pending`) for the caller to commit with its own writes, so a command that
fails writes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import struct
import sys
from array import array
from collections import Counter, defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from api.context import Crm
from api.evidence import documents
from api.evidence.verification import ROWS_PER_CHUNK, Outcome, _check_content, _Partner
from ml.events import Event, from_document
from offchain.errors import VaultError
from offchain.models import InteractionKind
from offchain.repositories import interactions
from offchain.repositories import verified_inputs as memo_rows
from offchain.repositories.interactions import InteractionRow
from offchain.vault import CustomerKeys

MEMO_FIELD = "verified-inputs"
MEMO_VERSION = 4  # bump when `ml.events.from_document` reads a document otherwise: old memos are then unread
# the fields of `ml.events.Event` the memo writes and reads back; an Event with others (the models read
# something new) makes every run check in full, and tests/api/test_decisions.py says so
EVENT_FIELDS = ("member", "kind", "at", "total", "items", "country", "text", "prices", "descriptions")
MEMO_USABLE = tuple(f.name for f in dataclasses.fields(Event)) == EVENT_FIELDS

# an entry: interaction id, leaf hash, the row's check (`_check_of`: leaf, payload digest and header in
# one hash), then the event (or None for a change of the customer's record, which verifies but is not an
# event of its behaviour)
_Entry = tuple[int, bytes, bytes, Event | None]


@dataclass
class VerifiedInputs:
    histories: dict[str, list[Event]] = field(default_factory=dict)  # "0x..." -> events, oldest first
    leaves: dict[str, list[bytes]] = field(default_factory=dict)  # the leaf of each, in the same order
    ids: dict[str, list[int]] = field(default_factory=dict)  # the interaction id of each
    excluded: Counter[str] = field(default_factory=Counter)  # outcome -> interactions left out
    from_memo: int = 0  # rows whose content check the memo stood in for
    checked: int = 0  # rows checked in full (decrypted, re-hashed)
    pending: dict[bytes, bytes] = field(default_factory=dict)  # member -> new memo blob, to be written
    partner_id: int = 0

    def save(self, crm: Crm) -> None:
        """Write the memos this run made (a caller that writes nothing else may call it on its own)."""
        with crm.unit_of_work() as db:
            memo_rows.replace(db, self.partner_id, self.pending)
        self.pending = {}


def verified_inputs(crm: Crm, partner_name: str, keep: Collection[bytes] | None = None) -> VerifiedInputs:
    """Every verified interaction of the partner, as events per member; what is left out is counted in
    `excluded` by outcome (of the members in `keep` only, if given; erased members' interactions are not
    counted), and a change of a customer's record is no event. The same outcomes as
    `verified_interactions`, row by row (tests/api/test_decisions.py, `_checked_row_by_row`)."""
    wanted = None if keep is None else set(keep)
    found = VerifiedInputs()
    grouped: dict[str, list[tuple[Event, bytes, int]]] = defaultdict(list)
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        assert partner.id is not None
        found.partner_id = partner.id
        run = _Partner(crm, db, partner, full=True)
        blobs = memo_rows.of_partner(db, partner.id) if MEMO_USABLE else {}
        keys: dict[bytes, CustomerKeys] = {}
        memos: dict[bytes, _Memo] = {}
        fresh: dict[bytes, list[_Entry]] = defaultdict(list)  # member -> every entry this run
        stale: set[bytes] = set()  # members whose memo lacked a row that verified
        for rows in interactions.rows_in_chunks(db, partner.id, None, ROWS_PER_CHUNK):
            readable: list[InteractionRow] = []
            for row in rows:
                batch = run.batches.get(row.batch_id) if row.batch_id is not None else None
                early = run.anchoring(row, batch)
                if early is None:
                    readable.append(row)
                elif early.outcome is not Outcome.ERASED and (wanted is None or row.member_id in wanted):
                    found.excluded[early.outcome.value] += 1
            _fresh_keys(crm, partner_name, keys, {row.member_id for row in readable})
            for row in readable:
                member = row.member_id
                memo = memos.get(member)
                if memo is None:
                    # each blob dropped once opened (a member's is opened once a run): held to the end,
                    # Online Retail II's 44 MB of blobs raised the run's traced peak 132 -> 174 MB
                    memo = memos[member] = _open(keys.get(member), blobs.pop(member, None))
                # the memo opened under her key earlier in the run is used only while she has it: one
                # shredded since (an erasure during the run) has every later row checked in full
                entry = memo.entry(partner_name, row) if member in keys else None
                if entry is not None:
                    found.from_memo += 1
                else:
                    found.checked += 1
                    checked, document = _check_content(crm, partner_name, row, keys.get(member), run.erased)
                    if checked.outcome is not Outcome.VERIFIED or document is None:
                        if checked.outcome is not Outcome.ERASED and (wanted is None or member in wanted):
                            found.excluded[checked.outcome.value] += 1
                        continue  # no memo holds a row that does not verify: nothing to write
                    entry = _entry(partner_name, row, json.loads(document))
                    stale.add(member)
                fresh[member].append(entry)
                event = entry[3]
                if event is not None:
                    grouped[event.member].append((event, entry[1], entry[0]))
    for member in stale if MEMO_USABLE else ():
        member_keys = keys.get(member)
        plain = _memo_bytes(fresh[member]) if member_keys is not None and fresh.get(member) else None
        if member_keys is not None and plain is not None:
            with contextlib.suppress(VaultError):  # erased in the meantime: no memo
                found.pending[member] = member_keys.encrypt(MEMO_FIELD, plain)
    for name, items in grouped.items():
        items.sort(key=lambda t: (t[0].at, t[2]))  # oldest first; ties in interaction order
        found.histories[name] = [t[0] for t in items]
        found.leaves[name] = [t[1] for t in items]
        found.ids[name] = [t[2] for t in items]
    return found


def _fresh_keys(crm: Crm, partner: str, keys: dict[bytes, CustomerKeys], members: set[bytes]) -> None:
    """The keys of `members` that `keys` does not hold fresh, read in one go (as `_check_rows` does)."""
    unread = [m for m in members if m not in keys or not keys[m].fresh]
    if unread:
        for m in unread:
            keys.pop(m, None)
        keys.update(crm.vault.bulk_keys(partner, unread))


def _check_of(partner: str, row: InteractionRow) -> bytes:
    """What the content check of `row` reads besides the member's key, in 32 bytes: its leaf, the SHA-256
    of its payload ciphertext and its header (`documents.tail`, which names the partner, the member, the
    kind, the time and the external key). Leaf and digest are 32 bytes each, so the three cannot be cut
    another way."""
    assert row.payload_ciphertext is not None
    payload = hashlib.sha256(row.payload_ciphertext).digest()
    return hashlib.sha256(bytes(row.leaf_hash) + payload + documents.tail(partner, row)).digest()


def _entry(partner: str, row: InteractionRow, document: dict[str, Any]) -> _Entry:
    event = None if document.get("kind") == InteractionKind.RECORD_UPDATE else from_document(document)
    return (row.id, bytes(row.leaf_hash), _check_of(partner, row), event)


class _Memo:
    """One member's memo as opened: per interaction id, the check its row must still give, and the event."""

    __slots__ = ("checks", "events", "positions")

    def __init__(self, ids: Sequence[int], checks: bytes, events: list[Event | None]) -> None:
        self.positions = {row_id: n for n, row_id in enumerate(ids)}
        self.checks = checks
        self.events = events

    def entry(self, partner: str, row: InteractionRow) -> _Entry | None:
        """The entry of `row` if it names exactly this row's leaf, payload and header (else None: check
        the row in full)."""
        n = self.positions.get(row.id)
        if n is None or row.payload_ciphertext is None:
            return None
        check = _check_of(partner, row)
        if self.checks[32 * n : 32 * n + 32] != check:
            return None
        return (row.id, bytes(row.leaf_hash), check, self.events[n])


_NO_MEMO = _Memo((), b"", [])


# The memo's bytes (before AES-GCM): the magic, then three parts. A JSON header with a table of the
# member's distinct strings and one column per field of an event (one item per entry; kind -1 where
# the entry is no event); the entries' ids (int64) and checks (32 bytes each); and the lines of every
# event, in order, as four arrays: stock code and description (int32 indices into the strings),
# quantity (int64) and unit price (float64, exact), little-endian. One `json.loads` and four
# `array.frombytes` per member, where reading the events of 44,876 interactions line by line as JSON
# lists took 2.4 CPU s a run.
_MAGIC = b"ledgercrm/verified-inputs/4\n"
_SIZE = struct.Struct("<I")


def _memo_bytes(entries: list[_Entry]) -> bytes | None:
    """The memo of these entries (in interaction order); None if an event cannot be written exactly
    (a quantity beyond 64 bits, lines of unequal lengths): that member is then checked in full."""
    strings: dict[str, int] = {}

    def ref(text: str) -> int:
        return strings.setdefault(text, len(strings))

    columns: dict[str, list[Any]] = {
        name: [] for name in ("member", "kind", "at", "total", "country", "text", "lines")
    }
    member, kind, at, total = columns["member"], columns["kind"], columns["at"], columns["total"]
    country, text, lines = columns["country"], columns["text"], columns["lines"]
    codes: list[int] = []
    descriptions: list[int] = []
    quantities: list[int] = []
    prices: list[float] = []
    for _, _, _, e in entries:
        if e is None:
            for column in (member, at, total, country, text, lines):
                column.append(None)
            kind.append(-1)
            continue
        if not len(e.items) == len(e.prices) == len(e.descriptions):
            return None
        member.append(ref(e.member))
        kind.append(ref(e.kind))
        at.append(e.at.isoformat())
        total.append(e.total)
        country.append(e.country)
        text.append(e.text)
        lines.append(len(e.items))
        for code, quantity in e.items:
            codes.append(ref(code))
            quantities.append(quantity)
        descriptions.extend(ref(d) for d in e.descriptions)
        prices.extend(e.prices)
    header = {"v": MEMO_VERSION, "strings": list(strings), **columns}
    try:
        arrays: list[array[Any]] = [
            array("i", codes + descriptions),
            array("q", quantities),
            array("d", prices),
        ]
    except OverflowError:
        return None
    ids = array("q", [i for i, *_ in entries])
    for part in (*arrays, ids):
        if sys.byteorder == "big":
            part.byteswap()
    try:
        head = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode()
    except ValueError:  # a lone surrogate, which no canonical document holds
        return None
    rows = ids.tobytes() + b"".join(check for _, _, check, _ in entries)
    return b"".join(
        [_MAGIC, _SIZE.pack(len(head)), head, _SIZE.pack(len(rows)), rows, *(a.tobytes() for a in arrays)]
    )


def _open(keys: CustomerKeys | None, blob: bytes | None) -> _Memo:
    """The member's memo; none if there is no blob, or it does not open under the member's key as it is
    now, or does not read as a memo of this version."""
    if keys is None or blob is None:
        return _NO_MEMO
    try:
        plain = keys.decrypt(MEMO_FIELD, blob)
        if not plain.startswith(_MAGIC):
            return _NO_MEMO
        at = len(_MAGIC)
        (size,) = _SIZE.unpack_from(plain, at)
        header = json.loads(plain[at + 4 : at + 4 + size])
        at += 4 + size
        (size,) = _SIZE.unpack_from(plain, at)
        rows = plain[at + 4 : at + 4 + size]
        at += 4 + size
        if header["v"] != MEMO_VERSION:
            return _NO_MEMO
        count = len(header["kind"])
        ids = _array("q", rows[: 8 * count])
        checks = rows[8 * count :]
        line_count = sum(n for n in header["lines"] if n is not None)
        indices = _array("i", plain[at : at + 8 * line_count]).tolist()
        at += 8 * line_count
        quantities = _array("q", plain[at : at + 8 * line_count]).tolist()
        prices_read = _array("d", plain[at + 8 * line_count :]).tolist()
        if len(ids) != count or len(checks) != 32 * count or len(prices_read) != line_count:
            return _NO_MEMO
        # the blob authenticated under the member's key: written by `_memo_bytes`, its types as written;
        # strings interned as `from_document` interns them (once per member here, not once per line)
        strings = list(map(sys.intern, header["strings"]))
        text_of = strings.__getitem__
        # tuples, so that an event's slice of each is its field as it is (one object, not a list and a copy)
        items = tuple(zip(map(text_of, indices[:line_count]), quantities, strict=True))
        descriptions = tuple(map(text_of, indices[line_count:]))
        prices = tuple(prices_read)
        events: list[Event | None] = []
        start = 0
        columns = (header[name] for name in ("member", "kind", "at", "total", "country", "text", "lines"))
        for member, kind, moment, total, country, text, n in zip(*columns, strict=True):
            if kind == -1:
                events.append(None)
                continue
            end = start + n
            events.append(
                Event(
                    strings[member],
                    strings[kind],
                    datetime.fromisoformat(moment),
                    total,
                    items[start:end],
                    sys.intern(country) if isinstance(country, str) else country,
                    text,
                    prices[start:end],
                    descriptions[start:end],
                )
            )
            start = end
        return _Memo(ids, checks, events)
    except (VaultError, ValueError, KeyError, TypeError, IndexError, struct.error):
        return _NO_MEMO


def _array(typecode: str, raw: bytes) -> array[Any]:
    found = array(typecode)
    found.frombytes(raw)
    if sys.byteorder == "big":
        found.byteswap()
    return found
