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

What the models read comes back as columns (`ml.table.EventTable`): the memos' arrays of every member
read at once, no `Event` per interaction and no tuple per line (making them was most of a warm run's
reading), so that `ml.table.table_features` computes everyone's features from them; a member's events
are made only when asked for (`VerifiedInputs.events`: a counterfactual, `histories`).
"""

from __future__ import annotations

import bisect
import contextlib
import dataclasses
import hashlib
import itertools
import json
import struct
import sys
from array import array
from collections import Counter, defaultdict
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, overload

import numpy as np
import orjson
from numpy.typing import NDArray

from api.context import Crm
from api.evidence import documents
from api.evidence.verification import ROWS_PER_CHUNK, Outcome, _check_content, _Partner
from ml.events import Event, from_document
from ml.table import EXACT_US, KIND_CODES, MAX_QUANTITY, OTHER_EVENT, EventTable, micros, segments
from offchain.errors import VaultError
from offchain.models import InteractionKind
from offchain.repositories import interactions
from offchain.repositories import verified_inputs as memo_rows
from offchain.repositories.interactions import InteractionRow
from offchain.vault import CustomerKeys

MEMO_FIELD = "verified-inputs"
MEMO_VERSION = 5  # bump when `ml.events.from_document` reads a document otherwise: old memos are then unread
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
    """Every member's verified events, oldest first (ties in interaction order): as the columns of
    `table` (read straight from the members' memos, no `Event` made), and as events for the few members
    whose events the table cannot hold (`irregular`: a quantity or a time out of its range, or no memo
    to be written). `histories` gives everyone's as events."""

    table: EventTable = field(default_factory=lambda: EventTable.from_histories({}))
    irregular: dict[str, list[Event]] = field(default_factory=dict)
    leaves: dict[str, list[bytes]] = field(default_factory=dict)  # the leaf of each event, in its order
    ids: dict[str, list[int]] = field(default_factory=dict)  # the interaction id of each
    excluded: Counter[str] = field(default_factory=Counter)  # outcome -> interactions left out
    from_memo: int = 0  # rows whose content check the memo stood in for
    checked: int = 0  # rows checked in full (decrypted, re-hashed)
    pending: dict[bytes, bytes] = field(default_factory=dict)  # member -> new memo blob, to be written
    partner_id: int = 0
    # the members' keys the check read (`Vault.bulk_keys`): a caller that goes on to use them (scoring
    # encrypts each explanation) takes those still fresh instead of reading them again
    keys: dict[bytes, CustomerKeys] = field(default_factory=dict)
    # where each event of `table` came from: its member's memo and its entry there
    sources: list[_Memo] = field(default_factory=list)
    source_of: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    entry_of: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))

    def save(self, crm: Crm) -> None:
        """Write the memos this run made (a caller that writes nothing else may call it on its own)."""
        with crm.unit_of_work() as db:
            memo_rows.replace(db, self.partner_id, self.pending)
        self.pending = {}

    def events(self, member: str) -> list[Event]:
        """A member's events (none if she has no verified event)."""
        if member in self.irregular:
            return self.irregular[member]
        index = self._index().get(member)
        if index is None:
            return []
        lo, hi = int(self.table.bounds[index]), int(self.table.bounds[index + 1])
        return [
            self.sources[s].event(n)
            for s, n in zip(self.source_of[lo:hi].tolist(), self.entry_of[lo:hi].tolist(), strict=True)
        ]

    @property
    def histories(self) -> dict[str, list[Event]]:
        """Every member's events, made from the table (for callers that read events: tests, the few)."""
        found = {member: self.events(member) for member in self.table.members}
        found.update(self.irregular)
        return found

    def latest(self) -> datetime | None:
        """The time of the latest verified event of any member."""
        candidates = [e.at for events in self.irregular.values() for e in events]
        if len(self.table.at_us):
            last = int(np.argmax(self.table.at_us))
            event = self.sources[int(self.source_of[last])].event(int(self.entry_of[last]))
            assert event is not None  # the table holds events only
            candidates.append(event.at)
        return max(candidates, default=None)

    def _index(self) -> dict[str, int]:
        found: dict[str, int] | None = getattr(self, "_members", None)
        if found is None:
            found = {member: m for m, member in enumerate(self.table.members)}
            self._members = found
        return found


def verified_inputs(crm: Crm, partner_name: str, keep: Collection[bytes] | None = None) -> VerifiedInputs:
    """Every verified interaction of the partner, as events per member; what is left out is counted in
    `excluded` by outcome (of the members in `keep` only, if given; erased members' interactions are not
    counted), and a change of a customer's record is no event. The same outcomes as
    `verified_interactions`, row by row (tests/api/test_decisions.py, `_checked_row_by_row`)."""
    wanted = None if keep is None else set(keep)
    found = VerifiedInputs()
    # member -> (row id, leaf, check, her memo's entry number or the event the row's document gave)
    taken: dict[bytes, list[tuple[int, bytes, bytes, int | Event | None]]] = defaultdict(list)
    with crm.unit_of_work() as db:
        partner = crm.partner(db, partner_name)
        assert partner.id is not None
        found.partner_id = partner.id
        run = _Partner(crm, db, partner, full=True)
        blobs = memo_rows.of_partner(db, partner.id) if MEMO_USABLE else {}
        keys: dict[bytes, CustomerKeys] = {}
        memos: dict[bytes, _Memo] = {}
        stale: set[bytes] = set()  # members whose memo lacked a row that verified
        # the rows `anchoring` leaves to the content check, told per batch (44,876 rows of 10 batches:
        # `anchoring` row by row was ~0.1 CPU s)
        settled = run.settled()
        assert settled is not None  # a full run: the log was checked
        for rows in interactions.rows_in_chunks(db, partner.id, None, ROWS_PER_CHUNK):
            readable: list[InteractionRow] = []
            for row in rows:
                early = run.decided(row, settled)
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
                held = memo.entry(partner_name, row) if member in keys else None
                if held is not None:
                    found.from_memo += 1
                    taken[member].append((row.id, bytes(row.leaf_hash), held[1], held[0]))
                    continue
                found.checked += 1
                checked, document = _check_content(crm, partner_name, row, keys.get(member), run.erased)
                if checked.outcome is not Outcome.VERIFIED or document is None:
                    if checked.outcome is not Outcome.ERASED and (wanted is None or member in wanted):
                        found.excluded[checked.outcome.value] += 1
                    continue  # no memo holds a row that does not verify: nothing to write
                parsed = json.loads(document)
                event = None if parsed.get("kind") == InteractionKind.RECORD_UPDATE else from_document(parsed)
                taken[member].append((row.id, bytes(row.leaf_hash), _check_of(partner_name, row), event))
                stale.add(member)
    _assemble(found, taken, memos, stale, keys)
    found.keys = keys
    return found


def _assemble(
    found: VerifiedInputs,
    taken: dict[bytes, list[tuple[int, bytes, bytes, int | Event | None]]],
    memos: dict[bytes, _Memo],
    stale: set[bytes],
    keys: dict[bytes, CustomerKeys],
) -> None:
    """Each member's events into `found`: from her memo as it was opened where every row she has was in
    it; else from her memo written anew (written back unless her key is gone), or as events where none
    can be written."""
    used = _Used()
    grouped: dict[str, list[tuple[Event, bytes, int]]] = defaultdict(list)  # the irregular members'
    for member in list(taken):
        # taken out as it is read: a first run holds every member's events, and her events need not
        # outlive her memo's columns
        items = taken.pop(member)
        memo = memos.pop(member)
        if member in stale:
            entries: list[_Entry] = [
                (row_id, leaf, check, memo.event(x) if isinstance(x, int) else x)
                for row_id, leaf, check, x in items
            ]
            plain = _memo_bytes(entries) if MEMO_USABLE else None
            member_keys = keys.get(member)
            if plain is not None and member_keys is not None:
                with contextlib.suppress(VaultError):  # erased in the meantime: no memo
                    found.pending[member] = member_keys.encrypt(MEMO_FIELD, plain)
            memo = _read_memo(plain) if plain is not None else _NO_MEMO
            if memo is _NO_MEMO:
                for row_id, leaf, _, event in entries:
                    if event is not None:
                        grouped[event.member].append((event, leaf, row_id))
                continue
            items = [(row_id, leaf, check, k) for k, (row_id, leaf, check, _) in enumerate(entries)]
        source = len(found.sources)
        found.sources.append(memo)
        names = memo.names
        for row_id, leaf, _, x in items:
            assert isinstance(x, int)
            name = names[x]
            if name is not None:
                used.names.append(name)
                used.sources.append(source)
                used.entries.append(x)
                used.rows.append(row_id)
                used.leaves.append(leaf)
    _table(found, used, grouped)
    for name, items_ in grouped.items():
        items_.sort(key=lambda t: (t[0].at, t[2]))  # oldest first; ties in interaction order
        found.irregular[name] = [t[0] for t in items_]
        found.leaves[name] = [t[1] for t in items_]
        found.ids[name] = [t[2] for t in items_]


@dataclass
class _Used:
    """The events the table is made of, one column a field (each event's member, memo, entry there,
    interaction id and leaf): numpy reads a list of ints at once, where taking tuples apart item by item
    was most of `_table`'s Python time."""

    names: list[str] = field(default_factory=list)
    sources: list[int] = field(default_factory=list)
    entries: list[int] = field(default_factory=list)
    rows: list[int] = field(default_factory=list)
    leaves: list[bytes] = field(default_factory=list)


def _table(
    found: VerifiedInputs,
    used: _Used,
    grouped: dict[str, list[tuple[Event, bytes, int]]],
) -> None:
    """The table of the events read from memos (each member's oldest first, ties in interaction order),
    every memo's columns read at once; a member whose memo holds a time or a quantity the table cannot
    hold exactly (`ml.table.EventTable`) goes to `grouped`, as events."""
    sources = found.sources
    # every memo's lines one after the other: a line's place is its memo's offset plus its own
    line_base = np.zeros(len(sources) + 1, np.int64)
    np.cumsum([memo.line_total for memo in sources], out=line_base[1:])
    string_base = np.zeros(len(sources) + 1, np.int64)
    np.cumsum([len(memo.strings) for memo in sources], out=string_base[1:])

    def joined(part: int, size: int, code: str) -> NDArray[Any]:
        raw = b"".join(memo.part(part, size) for memo in sources)
        return np.frombuffer(raw, code).astype(np.int64 if code != "<f8" else np.float64)

    quantities = joined(2, 8, "<i8")
    names, leaves = used.names, used.leaves
    source = np.array(used.sources, np.int64)
    entry = np.array(used.entries, np.int64)
    row_ids = np.array(used.rows, np.int64)
    # a time as `micros` fits int64 whatever the year (datetime's range is ~3e17 microseconds wide)
    times = np.array([sources[s].at_us(n) for s, n in zip(used.sources, used.entries, strict=True)], np.int64)
    # both sides, not np.abs: the abs of int64's least value is itself, negative, and passed for small
    wide = (quantities >= MAX_QUANTITY) | (quantities <= -MAX_QUANTITY)
    far = ~((times > -EXACT_US) & (times < EXACT_US))
    if wide.any() or far.any():
        line_source = np.repeat(np.arange(len(sources)), np.diff(line_base))
        out = set(line_source[wide].tolist()) | set(source[far].tolist())
        gone = np.isin(source, np.array(sorted(out), np.int64))
        for i in np.flatnonzero(gone).tolist():
            event = sources[used.sources[i]].event(used.entries[i])
            assert event is not None  # `used` holds events only
            grouped[names[i]].append((event, leaves[i], used.rows[i]))
        kept = np.flatnonzero(~gone)
        names = [names[i] for i in kept.tolist()]
        leaves = [leaves[i] for i in kept.tolist()]
        source, entry, row_ids, times = source[kept], entry[kept], row_ids[kept], times[kept]
    number: dict[str, int] = {}
    owner = np.array([number.setdefault(name, len(number)) for name in names], np.int64)
    order = np.lexsort((row_ids, times, owner))
    owner, source, entry, times = owner[order], source[order], entry[order], times[order]
    leaves = [leaves[i] for i in order.tolist()]
    ids = row_ids[order].tolist()
    members = tuple(number)
    bounds = np.zeros(len(members) + 1, np.int64)
    np.cumsum(np.bincount(owner, minlength=len(members)), out=bounds[1:])
    edges = bounds.tolist()
    for m, name in enumerate(members):
        lo, hi = edges[m], edges[m + 1]
        found.leaves[name] = leaves[lo:hi]
        found.ids[name] = ids[lo:hi]
    # each memo's entries one after the other, as the lines above: an event's place is its memo's offset
    # plus its entry's, and every column is read once and indexed (item by item through each memo's own
    # lists, five columns were ~0.05 CPU s of 44,876 events)
    entry_base = np.zeros(len(sources) + 1, np.int64)
    np.cumsum([len(memo.ids) for memo in sources], out=entry_base[1:])
    at = entry_base[:-1][source] + entry
    every = itertools.chain.from_iterable
    entries = int(entry_base[-1])
    starts = np.fromiter(every(m.line_start[:-1] for m in sources), np.int64, entries)[at] + line_base[source]
    counts = np.fromiter(every(m.line_counts for m in sources), np.int64, entries)[at]
    texts = list(every(m.header["text"] for m in sources))
    lines = segments(starts, counts)
    line_bounds = np.zeros(len(at) + 1, np.int64)
    np.cumsum(counts, out=line_bounds[1:])
    strings_of_line = np.repeat(string_base[:-1], np.diff(line_base))
    strings = _JoinedStrings([memo.strings for memo in sources])
    found.table = EventTable(
        members,
        bounds,
        np.fromiter(every(m.kinds for m in sources), np.int8, entries)[at],
        times,
        # a record change's entry holds None here (nan in the array), and no event of the table is one
        np.array(list(every(m.header["total"] for m in sources)), np.float64)[at],
        [texts[i] for i in at.tolist()],
        line_bounds,
        (joined(0, 4, "<i4") + strings_of_line)[lines],
        (joined(1, 4, "<i4") + strings_of_line)[lines],
        quantities[lines],
        joined(3, 8, "<f8")[lines],
        strings,
    )
    found.source_of = source
    found.entry_of = entry


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


class _Memo:
    """One member's memo as opened: per interaction id, the check its row must still give, and the event
    it holds (made only when asked for, `event`: the table reads every memo's columns at once)."""

    def __init__(
        self, ids: list[int], checks: bytes, header: dict[str, Any], strings: _Strings, lines: bytes
    ) -> None:
        self.ids = ids
        self.positions = dict(zip(ids, range(len(ids)), strict=True))
        self.checks = checks
        self.strings = strings
        self.header = header
        kinds = header["kind"]
        members = {m: strings[m] for m in set(header["member"]) if m is not None}
        self.names: list[str | None] = [
            None if kind == -1 else members[member]
            for kind, member in zip(kinds, header["member"], strict=True)
        ]
        kind_code = {k: KIND_CODES.get(self.strings[k], OTHER_EVENT) for k in set(kinds) if k != -1}
        self.kinds = [kind_code.get(kind, OTHER_EVENT) for kind in kinds]
        self.line_counts: list[int] = [n or 0 for n in header["lines"]]
        self.line_start = list(itertools.accumulate(self.line_counts, initial=0))
        self.line_total = self.line_start[-1]
        self.lines = lines  # codes and descriptions (int32), quantities (int64), prices (float64)

    def part(self, number: int, size: int) -> bytes:
        """Column `number` of the lines (0 codes, 1 descriptions, 2 quantities, 3 prices), `size`
        bytes an item."""
        total = self.line_total
        offset = (0, 4 * total, 8 * total, 16 * total)[number]
        return self.lines[offset : offset + size * total]

    def at_us(self, n: int) -> int:
        return micros(datetime.fromisoformat(self.header["at"][n]))

    def entry(self, partner: str, row: InteractionRow) -> tuple[int, bytes] | None:
        """The number of `row`'s entry and its check, if it names exactly this row's leaf, payload and
        header (else None: check the row in full)."""
        n = self.positions.get(row.id)
        if n is None or row.payload_ciphertext is None:
            return None
        check = _check_of(partner, row)
        if self.checks[32 * n : 32 * n + 32] != check:
            return None
        return n, check

    def event(self, n: int) -> Event | None:
        """Entry `n`'s event as `from_document` made it (None for a change of the customer's record)."""
        header, strings = self.header, self.strings
        kind = header["kind"][n]
        if kind == -1:
            return None
        lo, hi = self.line_start[n], self.line_start[n + 1]
        text_of = strings.__getitem__
        country = header["country"][n]

        def column(number: int, code: str) -> list[Any]:
            size = array(code).itemsize
            return _array(code, self.part(number, size)[size * lo : size * hi]).tolist()

        return Event(
            sys.intern(strings[header["member"][n]]),
            sys.intern(strings[kind]),
            datetime.fromisoformat(header["at"][n]),
            header["total"][n],
            tuple(zip((sys.intern(c) for c in map(text_of, column(0, "i"))), column(2, "q"), strict=True)),
            sys.intern(country) if isinstance(country, str) else country,
            header["text"][n],
            tuple(column(3, "d")),
            tuple(sys.intern(d) for d in map(text_of, column(1, "i"))),
        )


class _Strings(Sequence[str]):
    """A memo's table of strings as written (a count, each string's end, then their UTF-8 bytes): a
    string is decoded when it is read (the table needs a description's text only where its kind is
    read; parsing 993,348 strings from JSON, one object each, was most of opening the memos)."""

    def __init__(self, raw: bytes) -> None:
        (count,) = _SIZE.unpack_from(raw, 0)
        # an array, not a list: a run reads the ends of few of its 993,348 strings (0.02-0.03 CPU s)
        self.ends = _array("I", _SIZE.pack(0) + raw[4 : 4 + 4 * count])
        self.text = raw[4 + 4 * count :]
        if len(self.ends) != count + 1 or (count and self.ends[-1] != len(self.text)):
            raise ValueError("a table of strings that does not add up")

    def __len__(self) -> int:
        return len(self.ends) - 1

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        if not 0 <= i < len(self.ends) - 1:
            raise IndexError(i)
        return self.text[self.ends[i] : self.ends[i + 1]].decode()


class _JoinedStrings(Sequence[str]):
    """Several memos' tables of strings one after the other (`ml.table.EventTable.strings`)."""

    def __init__(self, parts: list[_Strings]) -> None:
        self.parts = parts
        self.bases = list(itertools.accumulate((len(p) for p in parts), initial=0))

    def __len__(self) -> int:
        return self.bases[-1]

    @overload
    def __getitem__(self, i: int) -> str: ...
    @overload
    def __getitem__(self, i: slice) -> Sequence[str]: ...
    def __getitem__(self, i: int | slice) -> str | Sequence[str]:
        if isinstance(i, slice):
            return [self[k] for k in range(*i.indices(len(self)))]
        part = bisect.bisect_right(self.bases, i) - 1
        if not 0 <= i < self.bases[-1]:
            raise IndexError(i)
        return self.parts[part][i - self.bases[part]]

    def encoded_many(self, indices: Iterable[int]) -> Iterator[bytes]:
        """The UTF-8 bytes of each of these items, undecoded, one at a time (`ml.table.kinds_of`)."""
        bases, parts, count = self.bases, self.parts, self.bases[-1]
        for i in indices:
            if not 0 <= i < count:
                raise IndexError(i)
            p = bisect.bisect_right(bases, i) - 1
            part = parts[p]
            k = i - bases[p]
            yield part.text[part.ends[k] : part.ends[k + 1]]


# The memo's bytes (before AES-GCM): the magic, then four parts. A JSON header with one column per
# field of an event (one item per entry; kind -1 where the entry is no event); the entries' ids (int64)
# and checks (32 bytes each); the member's distinct strings (a count, each one's end as uint32, then
# their UTF-8 bytes: decoded only where read, `_Strings`); and the lines of every event, in order, as
# four arrays: stock code and description (int32 indices into the strings), quantity (int64) and unit
# price (float64, exact), little-endian. Version 4 held the strings in the JSON header: parsing them
# (993,348 on Online Retail II) was most of opening the memos, and they stayed in memory as objects.
_MAGIC = b"ledgercrm/verified-inputs/5\n"
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
    header = {"v": MEMO_VERSION, **columns}
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
        encoded = [text.encode() for text in strings]
        ends = array("I", itertools.accumulate(map(len, encoded)))
    except ValueError:  # a lone surrogate, which no canonical document holds
        return None
    except OverflowError:  # more than 4 GB of strings
        return None
    if sys.byteorder == "big":
        ends.byteswap()
    table = _SIZE.pack(len(encoded)) + ends.tobytes() + b"".join(encoded)
    rows = ids.tobytes() + b"".join(check for _, _, check, _ in entries)
    return b"".join(
        [
            _MAGIC, _SIZE.pack(len(head)), head, _SIZE.pack(len(rows)), rows, _SIZE.pack(len(table)), table,
            *(a.tobytes() for a in arrays),
        ]
    )  # fmt: skip


def _open(keys: CustomerKeys | None, blob: bytes | None) -> _Memo:
    """The member's memo; none if there is no blob, or it does not open under the member's key as it is
    now, or does not read as a memo of this version."""
    if keys is None or blob is None:
        return _NO_MEMO
    try:
        plain = keys.decrypt(MEMO_FIELD, blob)
    except VaultError:
        return _NO_MEMO
    return _read_memo(plain)


def _read_memo(plain: bytes) -> _Memo:
    """A memo's bytes as `_Memo` (`_NO_MEMO` if they do not read as a memo of this version). Only bytes
    that opened under the member's key (or that this run wrote) come here: written by `_memo_bytes`,
    their types as written."""
    try:
        if not plain.startswith(_MAGIC):
            return _NO_MEMO
        at = len(_MAGIC)
        (size,) = _SIZE.unpack_from(plain, at)
        # orjson: 5,942 headers parsed in a third of json's time (its JSONDecodeError is a ValueError)
        header = orjson.loads(plain[at + 4 : at + 4 + size])
        at += 4 + size
        (size,) = _SIZE.unpack_from(plain, at)
        rows = plain[at + 4 : at + 4 + size]
        at += 4 + size
        (size,) = _SIZE.unpack_from(plain, at)
        strings = _Strings(plain[at + 4 : at + 4 + size])
        at += 4 + size
        if header["v"] != MEMO_VERSION:
            return _NO_MEMO
        count = len(header["kind"])
        ids = _array("q", rows[: 8 * count]).tolist()
        checks = rows[8 * count :]
        line_count = sum(n for n in header["lines"] if n is not None)
        lines = plain[at:]
        if len(ids) != count or len(checks) != 32 * count or len(lines) != 24 * line_count:
            return _NO_MEMO
        _check_string_refs(lines[: 8 * line_count], len(strings))
        return _Memo(ids, checks, header, strings, lines)
    except (ValueError, KeyError, TypeError, IndexError, struct.error):
        return _NO_MEMO


class UnreadableMemo(ValueError):
    """A memo whose bytes opened under the member's key but do not hold together: it is not used (the
    rows are checked in full and the memo written anew), whoever wrote it."""


def _check_string_refs(refs: bytes, count: int) -> None:
    """Every line's stock code and description (int32) names a string of the memo's own table: the table
    joins every memo's strings one after another (`_JoinedStrings`), so an index past a memo's end would
    read a neighbour's string, and one past the last memo's, or below 0, fail or wrap in numpy."""
    if not refs:
        return
    found = np.frombuffer(refs, "<i4")
    low, high = int(found.min()), int(found.max())
    if low < 0 or high >= count:
        raise UnreadableMemo(
            f"a line names string {low if low < 0 else high:,} of a table of {count:,}: the memo is not used"
        )


def _array(typecode: str, raw: bytes) -> array[Any]:
    found = array(typecode)
    found.frombytes(raw)
    if sys.byteorder == "big":
        found.byteswap()
    return found


_NO_MEMO = _Memo(
    [],
    b"",
    {"kind": [], "member": [], "at": [], "total": [], "text": [], "lines": []},
    _Strings(_SIZE.pack(0)),
    b"",
)
