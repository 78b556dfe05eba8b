"""Who acts: every use case is told by a `Principal` instead of being handed a partner's name.

The CLI builds one from its options, the HTTP API from the caller's credentials. A use case asks the
principal what it may do (`acting_partner`, `partners_in_scope`) and refuses with `NotAllowed`
otherwise, so the same rule holds whichever front end called it.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

from api.errors import NotAllowed


class Role(StrEnum):
    PARTNER = "partner"  # a partner organization: its own customers, its own keys
    AUDITOR = "auditor"  # reads hashes, proofs and decisions; never personal data
    CUSTOMER = "customer"  # a member: its own data only
    # The operator of a home that holds several partners' keys (the demo, a single-machine CLI): acts
    # for each of those partners, one at a time, where a command names none.
    OPERATOR = "operator"


@dataclass(frozen=True)
class Principal:
    role: Role
    partner: str | None = None  # PARTNER: the partner's name
    address: str | None = None  # AUDITOR: the auditor's consortium address
    member: bytes | None = None  # CUSTOMER: the member id
    # PARTNER over HTTP: what its API key may do (`resource:action`); None: everything a partner may
    scopes: frozenset[str] | None = None
    signer: str | None = None  # CUSTOMER signed in: the address of the key she signed in with

    @classmethod
    def of_partner(cls, name: str, *, scopes: frozenset[str] | None = None) -> Principal:
        return cls(Role.PARTNER, partner=name, scopes=scopes)

    @classmethod
    def of_auditor(cls, address: str) -> Principal:
        return cls(Role.AUDITOR, address=address)

    @classmethod
    def of_customer(cls, member: bytes, *, signer: str | None = None) -> Principal:
        return cls(Role.CUSTOMER, member=member, signer=signer)

    @classmethod
    def operator(cls) -> Principal:
        return cls(Role.OPERATOR)

    def acting_partner(self) -> str:
        """The partner this principal acts as; NotAllowed for anyone who is not a partner."""
        if self.role is not Role.PARTNER or self.partner is None:
            raise NotAllowed(f"only a partner may do this, not {self}")
        return self.partner

    def require_scope(self, scope: str) -> None:
        """NotAllowed unless this principal's credential carries `scope` (a partner's API key may be
        narrowed to some scopes; every other principal is bounded by its role alone)."""
        if self.scopes is not None and scope not in self.scopes:
            raise NotAllowed(f"this API key may not do this: it lacks the scope {scope!r}")

    def acting_member(self) -> bytes:
        """The member this principal is; NotAllowed for anyone who is not a signed-in customer."""
        if self.role is not Role.CUSTOMER or self.member is None:
            raise NotAllowed(f"only a member may do this, not {self}")
        return self.member

    def partners_in_scope(self, registered: Iterable[str]) -> list[str]:
        """The partners whose records this principal may work on, of those `registered`."""
        names = list(registered)
        if self.role in (Role.OPERATOR, Role.AUDITOR):  # an auditor reads every partner's evidence
            return names
        partner = self.acting_partner()
        return [name for name in names if name == partner]

    def may_reconcile(self, partner: str | None) -> None:
        """NotAllowed unless this principal may compare `partner`'s records (None: the whole store, the
        operator's task) with the chain."""
        if partner is None and self.role is not Role.OPERATOR:
            raise NotAllowed("reconciling the whole store is the operator's task: name your partner")
        if partner is not None and self.role is not Role.OPERATOR and self.acting_partner() != partner:
            raise NotAllowed(f"{self} may not reconcile partner {partner}")

    def __str__(self) -> str:
        if self.role is Role.PARTNER:
            return f"partner {self.partner}"
        if self.role is Role.AUDITOR:
            return f"auditor {self.address}"
        if self.role is Role.CUSTOMER and self.member is not None:
            return f"member 0x{self.member.hex()}"
        return str(self.role)
