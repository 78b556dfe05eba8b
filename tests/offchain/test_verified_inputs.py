"""The store's half of the memo of verified inputs (api/evidence/inputs.py), on both dialects."""

from __future__ import annotations

import os

from sqlalchemy import Engine

from offchain.db import session
from offchain.models import Partner
from offchain.repositories import verified_inputs


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
