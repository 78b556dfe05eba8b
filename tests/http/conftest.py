"""One API over one in-process chain and one SQLite store for every HTTP test of a process: partners
acme, borealis and cafe (the founders), an auditor voted in, and helpers that give each principal its
credentials. Tests share the state and make their own customers, so none depends on another's rows."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from eth_account.signers.local import LocalAccount
from fastapi.testclient import TestClient

from api.context import Crm
from api.http.app import create_app
from api.principal import Principal
from api.settings import Settings
from api.usecases import access
from api.usecases.customer_keys import customer_binding
from api.usecases.customers import register_customer
from api.usecases.partners import register_partner
from ledger.backends import EthTesterBackend
from ledger.clients.consortium import Action
from ledger.coalition import Coalition
from offchain.models import CustomerCreate

PARTNERS = ("acme", "borealis", "cafe")


@dataclass
class Api:
    crm: Crm
    client: TestClient
    auditor: LocalAccount

    def key(self, partner: str, scopes: tuple[str, ...] = ()) -> dict[str, str]:
        issued = access.issue_token(self.crm, Principal.of_partner(partner), scopes)
        return {"Authorization": f"Bearer {issued.key}"}

    def customer(self, partner: str = "acme", *, name: str = "Bea Rowe", keyed: bool = False) -> Customer:
        account = Account.create() if keyed else None
        member = register_customer(
            self.crm,
            Principal.of_partner(partner),
            CustomerCreate(name=name, email=f"{name.split()[0].lower()}@example.org", country="GB"),
            signer=None if account is None else account.address,
            binding=None if account is None else customer_binding(self.crm, account),
        )
        return Customer(member, "0x" + member.hex(), account)

    def sign_in(self, account: LocalAccount) -> dict[str, Any]:
        """Sign in with `account` over the API; the session's JSON (its token under "token")."""
        return sign_in_over(self.client, account)

    def bearer(self, account: LocalAccount) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.sign_in(account)['token']}"}


@dataclass
class Customer:
    member: bytes
    hex: str
    key: LocalAccount | None


@contextmanager
def open_api(home: Path, *, batch_max_leaves: int = 8) -> Iterator[Api]:
    """An API over a new in-process chain and a store in `home`: the founders acme, borealis and cafe,
    and an auditor voted in."""
    backend = EthTesterBackend()
    founders = backend.accounts[:3]
    coalition = Coalition.deploy(backend, founders=founders, deployer=founders[0])
    auditor = Account.create()
    coalition.consortium.decide(founders, Action.ADMIT_AUDITOR, auditor.address)
    settings = Settings(
        environment="development",
        home=home,
        batch_max_leaves=batch_max_leaves,
        http_rate_limit="100000/minute",
    )
    crm = Crm.open(settings, coalition)
    for name, account in zip(PARTNERS, founders, strict=True):
        register_partner(crm, name, account)
    app = create_app(settings, crm)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Api(crm, client, auditor)
    crm.close()


@pytest.fixture(scope="session")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    with open_api(tmp_path_factory.mktemp("http")) as opened:
        yield opened


def sign_in_over(client: TestClient, account: LocalAccount) -> dict[str, Any]:
    """Sign in with `account` (EIP-4361) through `client`; the session's JSON."""
    message = client.post("/v1/auth/challenge", json={"address": account.address}).json()["message"]
    signed = account.sign_message(encode_defunct(text=message))
    answer = client.post(
        "/v1/auth/session", json={"message": message, "signature": "0x" + signed.signature.hex()}
    )
    assert answer.status_code == 200, answer.text
    client.cookies.clear()  # tests send bearer tokens unless they test cookies on purpose
    return dict(answer.json())
