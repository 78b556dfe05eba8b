"""A customer's own secp256k1 key: created as an encrypted keystore file (the format eth-account and
geth write: scrypt, AES-128-CTR), opened with its passphrase, and bound to the member on chain.

With a key bound, the member signs its consents and redemptions itself (EIP-712) and any partner relays
them; without one, its home partner acts for it. The key never leaves the customer's file: partners
see only its address."""

from __future__ import annotations

import json
import os
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount

from api.context import Crm
from api.errors import CustomerIsErased, InvalidInput, NotAllowed
from api.principal import Principal
from api.usecases.customers import owned_customer
from offchain.repositories import enrolments

MIN_PASSPHRASE = 8


def new_customer_key(path: Path, passphrase: str) -> str:
    """Write a new key to `path` as an encrypted keystore (mode 0600); its address. Refuses a file that
    exists: no key file is ever overwritten."""
    if len(passphrase) < MIN_PASSPHRASE:
        raise InvalidInput(f"a passphrase has at least {MIN_PASSPHRASE} characters")
    account = Account.create()
    keystore = Account.encrypt(account.key, passphrase)
    write_new_file(path, (json.dumps(keystore) + "\n").encode())
    return str(account.address)


def open_customer_key(path: Path, passphrase: str) -> LocalAccount:
    """The key in keystore file `path`; InvalidInput if it cannot be read or the passphrase is wrong."""
    try:
        keystore = json.loads(path.read_text())
    except OSError as exc:
        raise InvalidInput(f"cannot read the key file {path}: {exc.strerror}") from None
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise InvalidInput(f"{path} is not a keystore file") from None
    try:
        account: LocalAccount = Account.from_key(Account.decrypt(keystore, passphrase))
        return account
    except (ValueError, KeyError, TypeError):
        raise InvalidInput(f"cannot open {path}: wrong passphrase, or not a keystore file") from None


def bind_customer_key(crm: Crm, who: Principal, member: bytes, key: LocalAccount) -> str:
    """Bind `key` (a key the customer handed over) as the member's signer: its home partner only, and
    only for a member without one (changing a key needs the old key's signature, or a vote)."""
    partner_name = who.acting_partner()
    with crm.unit_of_work() as db:
        owned_customer(crm, db, partner_name, member)
        partner_address = crm.partner(db, partner_name).address
    info = crm.coalition.members.member(member)
    if info.erased:
        raise CustomerIsErased(f"member 0x{member.hex()} was erased")
    if not info.enrolled or info.home != partner_address:
        raise NotAllowed(f"member 0x{member.hex()} is not enrolled on chain by {partner_name!r}")
    if info.signer is not None:
        raise InvalidInput(
            f"member 0x{member.hex()} already has a key ({info.signer}): changing it needs that key's"
            " signature, or a vote of the partners"
        )
    crm.coalition.members.bind_signer(crm.signer(partner_name), member, key.address)
    with crm.unit_of_work() as db:
        enrolments.set_signer(db, member, key.address)
    return str(key.address)


def write_new_file(path: Path, content: bytes) -> None:
    """Create `path` readable by its owner only, with `content`; refuses (InvalidInput) if it exists."""
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise InvalidInput(f"{path} exists: a key file is never overwritten") from None
    except OSError as exc:
        raise InvalidInput(f"cannot create {path}: {exc.strerror}") from None
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(content)
