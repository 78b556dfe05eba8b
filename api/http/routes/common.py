"""What several routers share: path parameters in the API's spelling, and conversions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Path

from api.errors import InvalidInput
from api.http.deps import CrmDep, PartnerDep
from api.usecases import signing
from api.usecases.customers import check_reach

SIGNATURE = r"^0x[0-9a-fA-F]{130}$"
MEMBER_PATTERN = r"^0x[0-9a-fA-F]{64}$"
PARTNER_OR_ADDRESS = r"^([a-z0-9-]{1,63}|0x[0-9a-fA-F]{40})$"  # a partner named here, or any by address
MemberPath = Annotated[
    str,
    Path(pattern=MEMBER_PATTERN, description="member id: 0x and 64 hex digits", examples=["0x" + "ab" * 32]),
]


def member_bytes(value: str) -> bytes:
    text = value.removeprefix("0x")
    if len(text) != 64:
        raise InvalidInput(f"a member id is 0x followed by 64 hex digits, not {value!r}")
    try:
        return bytes.fromhex(text)
    except ValueError:
        raise InvalidInput(f"a member id is 0x followed by 64 hex digits, not {value!r}") from None


def hexid(value: bytes) -> str:
    return "0x" + value.hex()


def utc(when: datetime) -> datetime:
    """`when` with its zone: SQLite hands back naive datetimes for what was written as UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _own_member(member: MemberPath, who: PartnerDep, crm: CrmDep) -> bytes:
    member_id = member_bytes(member)
    check_reach(crm, who, member_id)
    return member_id


def _reachable_member(member: MemberPath, who: PartnerDep, crm: CrmDep) -> bytes:
    member_id = member_bytes(member)
    check_reach(crm, who, member_id, by_its_signature=True)
    return member_id


# The {member} of a partner's route, checked before the body is read: another partner's member is 404
# whatever the request holds, as for a member that does not exist (a validation error would tell them
# apart). `ReachableMember`: also a member of another partner that holds a key of its own, for the acts
# its own signature authorizes (consent, points).
OwnMember = Annotated[bytes, Depends(_own_member)]
ReachableMember = Annotated[bytes, Depends(_reachable_member)]


def signed_message(
    typed_data: dict[str, Any] | None, signature: str | None, receipt: dict[str, Any] | None = None
) -> signing.SignedMessage | None:
    """A customer's signature sent in a body, as the use cases take it (read as a signature file is)."""
    if typed_data is None or signature is None:
        return None
    document = {"schema": signing.SIGNATURE_SCHEMA, "typedData": typed_data, "signature": signature}
    if receipt is not None:
        document["receipt"] = receipt
    return signing.parse_signed(document)
