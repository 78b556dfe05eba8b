"""A partner's verified inputs as the models read them (per member: events oldest first, with the leaf
and interaction id of each), verified from the chain down as `verified_interactions` does, with a memo
of the content checks so that a later run over the same leaves does not decrypt and re-hash 44,876
payloads one by one.

The log is checked from the chain every run, exactly as before (`_Partner`: the chain's heads, every
leaf of every head held once and rebuilding the head's root, batches, erasures), and every row's place
in it. Only then, for a row whose outcome its content decides, the memo may stand in for the content
check. The memo is one blob per member, AES-GCM under the member's data key with the partner, the member
and its own field name in the associated data (`Vault`), so nobody without the partner's key-encryption
key can write one, and one member's cannot pass for another's. Each entry names an interaction id, its
leaf hash, the SHA-256 of its payload ciphertext and its header (`documents.tail`), and holds the event
the verified document gave. It is used for a row only when all four are what the row holds now: the
content check is a function of exactly these and the member's key (decrypt, HMAC to the leaf, compare
the header), so the entry's outcome is what checking again would give. Anything else (no blob, a blob
that does not open, under a key since shredded or rotated, an entry that names other bytes) and the row
is checked in full, as before, and the member's memo written anew. A tampered memo can therefore cost
time, never change an outcome: the hostile tests in tests/api/test_decisions.py (`memo`) try.

Memo writes are handed back (`pending`) for the caller to commit with its own writes, so a command that
fails writes nothing.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import sys
from collections import Counter, defaultdict
from collections.abc import Collection
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
MEMO_VERSION = 3  # bump when `ml.events.from_document` reads a document otherwise: old memos are then unread
# the fields of `ml.events.Event` the memo writes and reads back; an Event with others (the models read
# something new) makes every run check in full, and tests/api/test_decisions.py says so
EVENT_FIELDS = ("member", "kind", "at", "total", "items", "country", "text", "prices", "descriptions")
MEMO_USABLE = tuple(f.name for f in dataclasses.fields(Event)) == EVENT_FIELDS

# an entry: interaction id, leaf hash, payload digest, header, then the event (or None for a change of
# the customer's record, which verifies but is not an event of its behaviour)
_Entry = tuple[int, bytes, bytes, bytes, Event | None]


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
        memos: dict[bytes, dict[int, _Entry]] = {}
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
                if member not in memos:
                    memos[member] = _open(keys.get(member), blobs.get(member))
                # the memo opened under her key earlier in the run is used only while she has it: one
                # shredded since (an erasure during the run) has every later row checked in full
                entry = _from_memo(memos[member].get(row.id), partner_name, row) if member in keys else None
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
                event = entry[4]
                if event is not None:
                    grouped[event.member].append((event, entry[1], entry[0]))
    for member in stale if MEMO_USABLE else ():
        member_keys = keys.get(member)
        if member_keys is not None and fresh.get(member):
            with contextlib.suppress(VaultError):  # erased in the meantime: no memo
                found.pending[member] = member_keys.encrypt(MEMO_FIELD, _memo_bytes(fresh[member]))
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


def _from_memo(entry: _Entry | None, partner: str, row: InteractionRow) -> _Entry | None:
    """The entry, if it names exactly this row's leaf, payload and header (else None: check in full)."""
    if entry is None or row.payload_ciphertext is None:
        return None
    if entry[1] != bytes(row.leaf_hash) or entry[3] != documents.tail(partner, row):
        return None
    if entry[2] != hashlib.sha256(row.payload_ciphertext).digest():
        return None
    return entry


def _entry(partner: str, row: InteractionRow, document: dict[str, Any]) -> _Entry:
    assert row.payload_ciphertext is not None
    event = None if document.get("kind") == InteractionKind.RECORD_UPDATE else from_document(document)
    digest = hashlib.sha256(row.payload_ciphertext).digest()
    return (row.id, bytes(row.leaf_hash), digest, documents.tail(partner, row), event)


def _memo_bytes(entries: list[_Entry]) -> bytes:
    def event_json(e: Event | None) -> list[Any] | None:
        if e is None:
            return None
        codes = [code for code, _ in e.items]
        quantities = [quantity for _, quantity in e.items]
        # every field of the event (a field left out would change features, scores and explanations)
        return [
            e.member,
            e.kind,
            e.at.isoformat(),
            e.total,
            codes,
            quantities,
            e.country,
            e.text,
            list(e.prices),
            list(e.descriptions),
        ]

    return json.dumps(
        {
            "v": MEMO_VERSION,
            "entries": [
                [i, leaf.hex(), digest.hex(), tail.decode(), event_json(event)]
                for i, leaf, digest, tail, event in entries
            ],
        },
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()


def _open(keys: CustomerKeys | None, blob: bytes | None) -> dict[int, _Entry]:
    """The memo's entries by interaction id; none if there is no blob, or it does not open under the
    member's key as it is now, or does not read as a memo of this version."""
    if keys is None or blob is None:
        return {}
    try:
        memo = json.loads(keys.decrypt(MEMO_FIELD, blob))
        if memo.get("v") != MEMO_VERSION:
            return {}
        found: dict[int, _Entry] = {}
        for i, leaf, digest, tail, e in memo["entries"]:
            event = None
            if e is not None:
                member, kind, at, total, codes, quantities, country, text, prices, descriptions = e
                # the blob authenticated under the member's key: written by this code, its types as
                # written (an invoice's lines were a third of a warm run as a str() and int() each);
                # strings interned as `from_document` interns them
                items = tuple(zip(map(sys.intern, codes), quantities, strict=True))
                event = Event(
                    sys.intern(member),
                    sys.intern(kind),
                    datetime.fromisoformat(at),
                    float(total),
                    items,
                    sys.intern(country) if isinstance(country, str) else country,
                    text,
                    tuple(prices),
                    tuple(map(sys.intern, descriptions)),
                )
            found[int(i)] = (int(i), bytes.fromhex(leaf), bytes.fromhex(digest), tail.encode(), event)
        return found
    except (VaultError, ValueError, KeyError, TypeError, AttributeError):
        return {}
