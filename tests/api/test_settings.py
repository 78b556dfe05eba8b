import pytest
from sqlalchemy import make_url

from api.context import Crm
from api.principal import Principal
from api.settings import Settings
from api.usecases.customers import register_customer
from api.usecases.partners import register_partner
from offchain.db import default_url
from offchain.errors import KekError
from offchain.models import CustomerCreate

P = Principal.of_partner


def test_production_refuses_a_missing_or_development_kek(tester_coalition, tmp_path, monkeypatch):
    settings = Settings(environment="production", home=tmp_path)
    crm = Crm.open(settings, tester_coalition)
    try:
        register_partner(crm, "acme", tester_coalition.chain.backend.accounts[0])
        monkeypatch.delenv("LEDGERCRM_KEK_ACME", raising=False)
        with pytest.raises(KekError):
            register_customer(crm, P("acme"), CustomerCreate(name="Carol"))
        monkeypatch.setenv("LEDGERCRM_KEK_ACME", "11" * 32)
        member = register_customer(crm, P("acme"), CustomerCreate(name="Carol"))
        assert len(member) == 32
    finally:
        crm.close()


def test_settings_come_from_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("LEDGERCRM_HOME", str(tmp_path))
    monkeypatch.setenv("LEDGERCRM_BATCH_MAX_LEAVES", "50")
    settings = Settings()
    assert settings.batch_max_leaves == 50
    assert settings.data_url() == default_url(tmp_path)
    assert make_url(settings.data_url()).database == str(tmp_path / "data.sqlite")
    assert settings.keys_location() == str(tmp_path / "keys.sqlite")
