from collections.abc import Iterator
from pathlib import Path

import pytest

from api.context import Crm
from api.principal import Principal
from api.settings import Settings
from api.usecases.customers import register_customer
from api.usecases.partners import register_partner
from ledger.coalition import Coalition
from offchain.models import CustomerCreate

P = Principal.of_partner

PARTNERS = ("acme", "borealis", "cafe")


@pytest.fixture
def crm(db_url: str, coalition: Coalition, tmp_path: Path) -> Iterator[Crm]:
    """The whole CRM on every combination of store (SQLite, PostgreSQL) and chain (eth-tester, anvil),
    with partners acme, borealis and cafe (the coalition's founders) registered."""
    settings = Settings(
        environment="development",
        home=tmp_path,
        database_url=db_url,
        keystore_url=str(tmp_path / "keys.sqlite"),
        batch_max_leaves=8,
    )
    crm = Crm.open(settings, coalition)
    for name, account in zip(PARTNERS, coalition.chain.backend.accounts, strict=False):
        register_partner(crm, name, account)
    try:
        yield crm
    finally:
        crm.close()


@pytest.fixture
def alice(crm: Crm) -> bytes:
    return register_customer(
        crm,
        P("acme"),
        CustomerCreate(
            name="Alice Quartermain", email="alice.q@example.org", phone="+44 20 7946 0101", country="GB"
        ),
    )
