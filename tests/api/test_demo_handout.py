"""`ledgercrm demo --serve`'s credentials: each opens a session of its user's role, as the API's sign-in
does, and the key files are the keystores `customer key new` writes (readable by their owner only)."""

from __future__ import annotations

import stat
from pathlib import Path

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount

from api.context import Crm
from api.principal import Principal, Role
from api.settings import Settings
from api.usecases import access
from api.usecases.customer_keys import customer_binding, open_customer_key
from api.usecases.customers import register_customer
from api.usecases.demo import hand_out
from api.usecases.partners import register_partner
from ledger.clients import Action
from ledger.coalition import Coalition
from offchain.models import CustomerCreate


def _signed_in(crm: Crm, key: LocalAccount) -> access.OpenedSession:
    message = access.sign_in_challenge(crm, key.address, domain="127.0.0.1:8000", uri="http://127.0.0.1:8000")
    signature = Account.sign_message(encode_defunct(text=message), key.key).signature
    return access.sign_in(crm, message, "0x" + signature.hex())


def test_each_credential_signs_its_user_in(tester_coalition: Coalition, tmp_path: Path) -> None:
    accounts = tester_coalition.chain.backend.accounts
    auditor: LocalAccount = Account.create()
    tester_coalition.consortium.decide(accounts[:3], Action.ADMIT_AUDITOR, auditor.address)
    crm = Crm.open(Settings(environment="development", home=tmp_path), tester_coalition)
    try:
        register_partner(crm, "acme", accounts[0])
        alice: LocalAccount = Account.create()
        member = register_customer(
            crm,
            Principal.of_partner("acme"),
            CustomerCreate(name="Alice"),
            signer=alice.address,
            binding=customer_binding(crm, alice),
        )
        handout = hand_out(crm, tmp_path, alice, auditor)

        partner = access.partner_session(crm, handout.api_key)
        assert (partner.role, partner.partner) == (Role.PARTNER, "acme")
        for path in (handout.customer_key, handout.auditor_key):
            assert stat.S_IMODE(path.stat().st_mode) == 0o600
        opened = open_customer_key(handout.customer_key, handout.passphrase)
        assert opened.address == alice.address
        customer = _signed_in(crm, opened)
        assert (customer.role, customer.member) == (Role.CUSTOMER, member)
        inspector = _signed_in(crm, open_customer_key(handout.auditor_key, handout.passphrase))
        assert inspector.role is Role.AUDITOR
    finally:
        crm.close()
