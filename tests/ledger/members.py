"""Members for ledger tests: enrolled on chain by a home partner, with loyalty consent unless asked not to."""

from __future__ import annotations

import os
from collections.abc import Sequence

from eth_account.signers.local import LocalAccount

from ledger.clients import ConsentStatus, purpose_id
from ledger.coalition import Coalition

LOYALTY = purpose_id("loyalty")


def enrol(
    coalition: Coalition,
    home: LocalAccount,
    count: int = 1,
    *,
    signers: Sequence[LocalAccount | None] | None = None,
    loyalty: bool = True,
) -> list[bytes]:
    """`count` fresh members enrolled by `home` (with these keys, each signing its own binding), with
    "loyalty" consent towards `home` attested by it unless `loyalty` is false (or the member has a key:
    then it must sign)."""
    members = [os.urandom(32) for _ in range(count)]
    keys = list(signers) if signers else [None] * count
    bindings = [
        None if key is None else coalition.members.authorize_binding(key, m, nonce=0)
        for m, key in zip(members, keys, strict=True)
    ]
    coalition.members.enrol(home, members, [None if key is None else key.address for key in keys], bindings)
    keyless = [m for m, s in zip(members, keys, strict=True) if s is None]
    if loyalty and keyless:
        coalition.consent.record_batch(
            home, keyless, LOYALTY, ConsentStatus.GIVEN, [os.urandom(32) for _ in keyless]
        )
    return members


def customer(coalition: Coalition, home: LocalAccount, *, loyalty: bool = True) -> bytes:
    return enrol(coalition, home, loyalty=loyalty)[0]


def signed_consent(
    coalition: Coalition,
    relayer: LocalAccount,
    key: LocalAccount,
    member: bytes,
    controller: str,
    purpose: bytes = LOYALTY,
    status: ConsentStatus = ConsentStatus.GIVEN,
) -> None:
    """The member (holding `key`) signs a consent event towards `controller`; `relayer` sends it."""
    receipt = os.urandom(32) if status is ConsentStatus.GIVEN else bytes(32)
    auth = coalition.members.authorize_consent(key, member, controller, purpose, status, receipt, 0)
    coalition.consent.record_signed(relayer, member, controller, purpose, status, receipt, 0, auth)


def bind(coalition: Coalition, home: LocalAccount, member: bytes, key: LocalAccount) -> None:
    """`home` binds `key` to its keyless member, with the key's own signature of the binding."""
    coalition.members.bind_signer(home, member, key.address, coalition.members.authorize_binding(key, member))


def attest(coalition: Coalition, home: LocalAccount, members: Sequence[bytes], purpose: str) -> None:
    """`home` attests "given" consent of its (keyless) members for `purpose`."""
    coalition.consent.record_batch(
        home, list(members), purpose_id(purpose), ConsentStatus.GIVEN, [os.urandom(32) for _ in members]
    )
