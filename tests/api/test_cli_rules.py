"""Issue 11's table, rows 1 and 4 to 8, as a hostile partner (or a careless operator) tried them from the
command line on a real node (anvil): each is refused in one line, and nothing is written."""

from __future__ import annotations

import re
import stat

import pytest

from api.usecases.home import HomeConfig, open_crm
from offchain.vault import KekRing
from tests.api.clirunner import new_home
from tests.api.clirunner import run as cli


@pytest.fixture
def home(tmp_path, anvil_url):
    return new_home(tmp_path / "home", anvil_url)


def customer(home, partner="acme"):
    return cli(home, "customer", "add", "--partner", partner, "--name", "Ann").strip().splitlines()[-1]


def chain_state(home):
    crm = open_crm(home)
    try:
        consortium = crm.coalition.consortium
        return consortium.partners(), consortium.proposal_count(), crm.coalition.chain.w3.eth.block_number
    finally:
        crm.close()


def test_row1_a_partner_cannot_redeem_another_partners_customer(home):
    for name in ("acme", "borealis"):
        cli(home, "partner", "add", name)
    member = customer(home)
    cli(home, "consent", "give", "--partner", "acme", "--member", member, "--purpose", "loyalty")
    cli(home, "points", "earn", "--partner", "acme", "--member", member, "--amount", "100")
    refused = cli(
        home, "points", "redeem", "--partner", "borealis", "--member", member, "--amount", "100", code=1
    )
    assert "only member" in refused and "home partner" in refused and len(refused.strip().splitlines()) == 1
    assert re.search(r"borealis .* 0 .* 0 .* \+0", cli(home, "partner", "list"))
    assert cli(home, "points", "balance", "--member", member).strip() == "100"


def test_row4_after_erase_consent_is_gone_and_points_are_refused(home):
    cli(home, "partner", "add", "acme")
    member = customer(home)
    cli(home, "consent", "give", "--partner", "acme", "--member", member, "--purpose", "loyalty")
    cli(home, "points", "earn", "--partner", "acme", "--member", member, "--amount", "10")
    cli(home, "erase", member, "--partner", "acme")
    check = ["consent", "check", "--partner", "acme", "--member", member, "--purpose", "loyalty"]
    assert "not valid" in cli(home, *check, code=1)
    assert cli(home, "points", "balance", "--member", member).strip() == "0"
    for kind in ("earn", "redeem"):
        assert "was erased" in cli(
            home, "points", kind, "--partner", "acme", "--member", member, "--amount", "1", code=1
        )
    assert "store and chain agree" in cli(home, "reconcile")


def test_row5_each_partner_gets_its_own_kek_and_nobody_votes_unasked(home):
    for name in ("acme", "borealis", "cafe"):  # the deployment's founders
        cli(home, "partner", "add", name)
    config = HomeConfig.load(home)
    kek = home / "keys" / "acme.kek"
    # kept relative to the home, so that the home can move
    assert config.keks["acme"] == "keys/acme.kek" and len(set(config.keks.values())) == 3
    assert stat.S_IMODE(kek.stat().st_mode) == 0o600 and len(kek.read_bytes()) == 32
    assert kek.read_bytes() != KekRing.development_kek("acme")
    partners, proposals, _ = chain_state(home)
    assert "not a partner of the consortium yet" in cli(home, "partner", "add", "newcomer")
    assert chain_state(home)[:2] == (partners, proposals)  # no proposal, no vote: nobody was asked
    assert "no partner called 'newcomer'" in cli(
        home, "customer", "add", "--partner", "newcomer", "--name", "X", code=1
    )

    public = home.parent / "dev.kek"
    public.write_bytes(KekRing.development_kek("delta"))
    refused = cli(home, "partner", "add", "delta", "--kek-file", str(public), code=1)
    assert "public development KEK" in refused
    assert not (home / "keys" / "delta.key").exists()


def test_row6_a_bad_name_is_refused_before_anything_is_written(home):
    for name in ("acme", "borealis", "cafe"):  # the founders: the next key is not a partner yet
        cli(home, "partner", "add", name)
    before = chain_state(home)
    files = sorted((home / "keys").iterdir())
    refused = cli(home, "partner", "add", "BAD NAME", code=2)
    assert "BAD NAME" in refused and len(refused.strip().splitlines()) == 1
    assert chain_state(home) == before
    assert sorted((home / "keys").iterdir()) == files


def test_row7_no_key_file_is_ever_overwritten(home, tmp_path):
    cli(home, "partner", "add", "acme")
    key, kek = home / "keys" / "acme.key", home / "keys" / "acme.kek"
    saved = (key.read_bytes(), kek.read_bytes())
    for store in home.glob("data.sqlite*"):
        store.unlink()
    cli(home, "partner", "add", "acme")  # a fresh store: acme is registered again with the same keys
    assert (key.read_bytes(), kek.read_bytes()) == saved

    other = tmp_path / "other.key"
    other.write_text("0x" + "11" * 32 + "\n")
    for store in home.glob("data.sqlite*"):
        store.unlink()
    assert "never overwritten" in cli(home, "partner", "add", "acme", "--key-file", str(other), code=1)
    assert key.read_bytes() == saved[0]

    secret = tmp_path / "bea.json"
    secret.write_text("keep me")
    passphrase = tmp_path / "pass"
    passphrase.write_text("a long passphrase\n")
    assert "never overwritten" in cli(
        home, "customer", "key", "new", "--out", str(secret), "--passphrase-file", str(passphrase), code=2
    )
    assert secret.read_text() == "keep me"


def test_row8_withdrawing_nothing_and_erasing_twice_are_refused(home):
    cli(home, "partner", "add", "acme")
    member = customer(home)
    _, _, block = chain_state(home)
    refused = cli(
        home, "consent", "withdraw", "--partner", "acme", "--member", member, "--purpose", "loyalty", code=1
    )
    assert "no 'loyalty' consent" in refused
    assert chain_state(home)[2] == block  # nothing was sent
    assert "loyalty" not in cli(home, "consent", "history", "--member", member)
    cli(home, "erase", member, "--partner", "acme")
    assert "already erased" in cli(home, "erase", member, "--partner", "acme", code=1)
