"""Partners: registering a tenant, and the coalition's settlement positions."""

from __future__ import annotations

from dataclasses import dataclass

from eth_account.signers.local import LocalAccount
from sqlalchemy.exc import IntegrityError

from api.context import Crm
from api.errors import InvalidInput, MalformedInput, NotAConsortiumPartner, NotAllowed
from api.principal import Principal, Role
from offchain.repositories import partners
from offchain.repositories.partners import PartnerRecord
from offchain.vault import check_partner


def register_partner(crm: Crm, name: str, signer: LocalAccount) -> PartnerRecord:
    """Register a tenant whose signing key is already a partner of the Consortium contract."""
    try:
        check_partner(name)
    except ValueError as exc:
        raise MalformedInput(str(exc)) from exc
    if not crm.coalition.consortium.is_partner(signer.address):
        raise NotAConsortiumPartner(
            f"{signer.address} is not a partner of the consortium: admit it by vote first"
        )
    try:
        with crm.unit_of_work() as db:
            partner = partners.add(db, name, signer.address)
    except IntegrityError as exc:
        raise InvalidInput(f"a partner called {name!r} or with address {signer.address} exists") from exc
    crm.signers[name] = signer
    return partner


@dataclass(frozen=True)
class Position:
    name: str
    address: str
    issued: int  # points this partner issued
    redeemed: int  # points redeemed at this partner
    net: int  # redeemed minus issued: what the coalition owes the partner, if positive


def positions(crm: Crm, who: Principal) -> list[Position]:
    """The settlement position of each partner in scope, from the chain (public to every partner)."""
    with crm.unit_of_work() as db:
        names = who.partners_in_scope(p.name for p in partners.every(db))
        found = [crm.partner(db, name) for name in names]
    loyalty = crm.coalition.loyalty
    return [
        Position(
            p.name,
            p.address,
            loyalty.issued_by(p.address),
            loyalty.redeemed_at(p.address),
            loyalty.position_of(p.address),
        )
        for p in found
    ]


def coalition_positions(crm: Crm, who: Principal) -> list[Position]:
    """Every registered partner's settlement position: what each partner and the auditor may see (the
    figures are on chain for all of them to read); a member may not."""
    if who.role not in (Role.PARTNER, Role.AUDITOR, Role.OPERATOR):
        raise NotAllowed(f"{who} may not read the coalition's settlement")
    return positions(crm, Principal.operator())


def partner_names(crm: Crm, who: Principal) -> list[str]:
    """The partners `who` may act for, of those registered, in registration order."""
    with crm.unit_of_work() as db:
        return who.partners_in_scope(p.name for p in partners.every(db))
