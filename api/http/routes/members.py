"""Partners' votes on a member: move the home of a member whose home left the consortium or who has no
key to sign the move, erase a member who holds a key, or give one who lost her key a new one. Any
current partner votes on any member of the coalition, whoever holds her record: that is what the
votes are for, and the member's id and the tally are public on chain. The MemberRegistry counts a
strict majority of the current partners, each vote lapsing after seven days."""

from __future__ import annotations

from datetime import datetime
from typing import Literal, Self

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field, model_validator

from api.http.deps import CrmDep, PartnerDep, needs
from api.http.idempotency import IdempotentRoute
from api.http.problems import responses
from api.http.routes.common import PARTNER_OR_ADDRESS, MemberPath, hexid, member_bytes
from api.usecases import customer_keys, members

router = APIRouter(prefix="/v1/members", tags=["members"], route_class=IdempotentRoute)
ERRORS = responses(401, 403, 404, 409, 422)


class VoteIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    kind: Literal["move-home", "erase", "reset-key"]
    to: str | None = Field(
        None,
        pattern=PARTNER_OR_ADDRESS,
        description="move-home only: the new home, a partner's name or address",
    )
    signer: str | None = Field(
        None, pattern=r"^0x[0-9a-fA-F]{40}$", description="reset-key only: the member's new key's address"
    )

    @model_validator(mode="after")
    def _fields_of_its_kind(self) -> Self:
        wanted = {"move-home": {"to"}, "erase": set(), "reset-key": {"signer"}}[self.kind]
        given = {name for name in ("to", "signer") if getattr(self, name) is not None}
        if given != wanted:
            needs_ = " and ".join(sorted(wanted)) or "neither to nor signer"
            raise ValueError(f"a {self.kind} vote takes {needs_}")
        return self


class VoteOut(BaseModel):
    member: str
    kind: str
    target: str | None = Field(description="the new home (move-home) or the new key (reset-key)")
    votes: int = Field(description="votes of current partners for this very change, yours included")
    needed: int = Field(description="a strict majority of the current partners")
    partners: int
    done: bool = Field(description="the change was made on chain")
    counts_until: datetime | None = Field(description="when your vote lapses; null once done")


@router.post("/{member}/votes", response_model=VoteOut, responses=ERRORS, **needs("governance:write"))
def vote(member: MemberPath, body: VoteIn, who: PartnerDep, crm: CrmDep) -> VoteOut:
    """Your vote on a member; the change is made once a strict majority of the current partners voted
    for it. Voting again for the same change while your vote counts is refused."""
    member_id = member_bytes(member)
    counted: members.MemberVoteResult | customer_keys.KeyResetVote
    target: str | None
    if body.kind == "reset-key":
        assert body.signer is not None  # the model's validator
        counted = customer_keys.vote_key_reset(crm, who, member_id, body.signer)
        target, done = counted.new_signer, counted.reset
    else:
        counted = (
            members.vote_erasure(crm, who, member_id)
            if body.kind == "erase"
            else members.vote_home_move(crm, who, member_id, str(body.to))
        )
        target, done = counted.target, counted.done
    return VoteOut(
        member=hexid(member_id),
        kind=body.kind,
        target=target,
        votes=counted.votes,
        needed=counted.needed,
        partners=counted.partners,
        done=done,
        counts_until=counted.counts_until,
    )
