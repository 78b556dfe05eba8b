"""Decisions: each automated decision about a member, staged here and sent through the outbox."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from offchain.db import insert_rows
from offchain.models import DecisionRecord
from offchain.repositories.outbox import HashedRows

_TABLE = DecisionRecord.__table__  # type: ignore[attr-defined]
_C = _TABLE.c


class _DecisionRows(HashedRows):
    """The outbox's view of the table. A mined recordDecisions numbers its decisions consecutively from
    the id the chain hands back, in the order the transaction carried them, which is row id order."""

    def confirm(self, db: Session, tx_hash: str, block_number: int, onchain_id: int | None) -> list[Any]:
        rows = super().confirm(db, tx_hash, block_number, onchain_id)
        if onchain_id is None:
            raise ValueError("a mined recordDecisions names its first decision id")
        if rows:  # one executemany: an UPDATE per decision was a third of logging a batch of 500
            db.connection().execute(
                update(_TABLE).where(_C.id == bindparam("row_id")).values(decision_id=bindparam("number")),
                [{"row_id": row.id, "number": onchain_id + rank} for rank, row in enumerate(rows)],
            )
        return [(row.id, onchain_id + rank) for rank, row in enumerate(rows)]


# a confirmed decision, as the outbox hands it back: (row id, decision id)
OUTBOX = _DecisionRows(_TABLE, ("id",))


def insert(db: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert decision rows (plain dicts with the table's columns) in one executemany."""
    insert_rows(db.connection(), _TABLE, rows)


# what a staged decision's transaction carries: read as plain rows, not ORM objects (4,265 decisions'
# objects, with their explanations' ciphertexts, were ~0.07 CPU s of `score --all`'s logging)
_SENT_COLUMNS = (
    "id",
    "model_id",
    "member_id",
    "input_root",
    "score_bps",
    "action",
    "reasons",
    "explanation_hash",
)


def staged(db: Session, partner_id: int, limit: int) -> Sequence[Any]:
    """The partner's oldest decisions not yet sent: rows of `_SENT_COLUMNS` (named as DecisionRecord's
    fields)."""
    query = (
        core_select(*(_C[name] for name in _SENT_COLUMNS))
        .where(_C.partner_id == partner_id, _C.tx_hash.is_(None), _C.block_number.is_(None))
        .order_by(_C.id)
        .limit(limit)
        # PostgreSQL: locked until the hash is recorded; one sender per partner holds its lock
        # (api.evidence.outbox.sending), and should another reach these rows it waits, never skips ahead
        .with_for_update()
    )
    return db.connection().execute(query).all()


def by_decision_id(db: Session, decision_id: int) -> DecisionRecord | None:
    return db.exec(select(DecisionRecord).where(DecisionRecord.decision_id == decision_id)).first()


def of_partner(db: Session, partner_id: int, member: bytes | None = None) -> Sequence[DecisionRecord]:
    """The partner's decisions (of one member, or all), in the order they were made."""
    query = select(DecisionRecord).where(DecisionRecord.partner_id == partner_id)
    if member is not None:
        query = query.where(DecisionRecord.member_id == member)
    return db.exec(query.order_by(col(DecisionRecord.id))).all()


def drop_explanations(db: Session, member: bytes) -> None:
    """Erasure: the explanations go with the key that encrypted them (the on-chain commitments stay,
    unlinkable once the key is gone)."""
    db.connection().execute(update(_TABLE).where(_C.member_id == member).values(explanation_ciphertext=None))
