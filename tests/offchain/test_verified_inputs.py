"""The store's half of the memo of verified inputs (api/evidence/inputs.py), on both dialects."""

from __future__ import annotations

import os

from sqlalchemy import Engine

from offchain.db import session
from offchain.models import Customer, Partner, utcnow
from offchain.repositories import customers, verified_inputs


def test_a_memo_is_replaced_in_place_and_dropped_at_erasure(engine: Engine) -> None:
    with session(engine) as db:
        partner = Partner(name="acme", address="0x" + "11" * 20)
        db.add(partner)
        db.flush()
        assert partner.id is not None
        a, b = os.urandom(32), os.urandom(32)
        verified_inputs.replace(db, partner.id, {a: b"one", b: b"two"})
        verified_inputs.replace(db, partner.id, {a: b"three"})  # an upsert: no unique-key error
        assert verified_inputs.of_partner(db, partner.id) == {a: b"three", b: b"two"}
        verified_inputs.drop_member(db, a)
        assert verified_inputs.of_partner(db, partner.id) == {b: b"two"}


def test_a_memo_of_a_member_erased_since_its_run_read_her_is_not_written(engine: Engine) -> None:
    """A scoring run reads a member, she is erased (her memo dropped, her key shredded), then the run
    writes the memo it made before: it must not come back, a blob under a key a restored key store
    would bring back."""
    with session(engine) as db:
        partner = Partner(name="acme", address="0x" + "22" * 20)
        db.add(partner)
        db.flush()
        assert partner.id is not None
        kept, erased = os.urandom(32), os.urandom(32)
        for member in (kept, erased):
            db.add(Customer(member_id=member, partner_id=partner.id, pii_ciphertext=b"sealed"))
        db.flush()
        verified_inputs.replace(db, partner.id, {kept: b"one", erased: b"two"})
        customers.mark_erased(db, erased, utcnow())
        verified_inputs.drop_member(db, erased)
        verified_inputs.replace(db, partner.id, {kept: b"three", erased: b"four"})  # the late write
        assert verified_inputs.of_partner(db, partner.id) == {kept: b"three"}
        verified_inputs.replace(db, partner.id, {erased: b"five"})  # nothing else to write: no error
        assert verified_inputs.of_partner(db, partner.id) == {kept: b"three"}
