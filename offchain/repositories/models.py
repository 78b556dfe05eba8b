"""Registered models: their canonical bytes and cards, by on-chain id."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, col, select

from offchain.models import RegisteredModel


def add(db: Session, model: RegisteredModel) -> RegisteredModel:
    db.add(model)
    db.flush()
    return model


def by_onchain_id(db: Session, onchain_id: int) -> RegisteredModel | None:
    return db.exec(select(RegisteredModel).where(RegisteredModel.onchain_id == onchain_id)).first()


def latest_of(db: Session, partner_id: int) -> RegisteredModel | None:
    query = select(RegisteredModel).where(RegisteredModel.partner_id == partner_id)
    return db.exec(query.order_by(col(RegisteredModel.onchain_id).desc())).first()


def every(db: Session) -> Sequence[RegisteredModel]:
    return db.exec(select(RegisteredModel).order_by(col(RegisteredModel.onchain_id))).all()
