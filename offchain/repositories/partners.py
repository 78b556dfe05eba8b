"""Partner organizations (the store's tenants)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlmodel import Session, col, select

from offchain.models import Partner


@dataclass(frozen=True)
class PartnerRecord:
    """A partner as the store holds it (so it has an id)."""

    id: int
    name: str
    address: str


def _record(partner: Partner) -> PartnerRecord:
    assert partner.id is not None  # rows read from the store, or flushed, always have one
    return PartnerRecord(partner.id, partner.name, partner.address)


def by_name(db: Session, name: str) -> PartnerRecord | None:
    found = db.exec(select(Partner).where(Partner.name == name)).first()
    return None if found is None else _record(found)


def by_address(db: Session, address: str) -> PartnerRecord | None:
    found = db.exec(select(Partner).where(Partner.address == address)).first()
    return None if found is None else _record(found)


def every(db: Session) -> list[PartnerRecord]:
    """Every partner, in the order they were registered."""
    return [_record(p) for p in db.exec(select(Partner).order_by(col(Partner.id)))]


def add(db: Session, name: str, address: str) -> PartnerRecord:
    """Insert a partner (IntegrityError if its name or address is taken)."""
    partner = Partner(name=name, address=address)
    db.add(partner)
    db.flush()
    return _record(partner)


def by_id(db: Session, partner_id: int) -> PartnerRecord | None:
    found = db.get(Partner, partner_id)
    return None if found is None else _record(found)
