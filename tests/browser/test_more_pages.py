"""The pages' later parts in a real browser: a customer invited without a key makes one and binds it;
the partner's desk shows its segments and where its log stands; the auditor reproduces a decision."""

from __future__ import annotations

import json
from pathlib import Path

from eth_account import Account
from playwright.sync_api import Page, expect

from api.principal import Principal
from api.usecases.customers import register_customer
from api.usecases.invitations import invite_customer
from offchain.models import CustomerCreate
from tests.browser.conftest import PASSPHRASE, Live, Watch, World, screenshot


def test_a_customer_invited_without_a_key_makes_one_binds_it_and_is_signed_in(
    page: Page, live: Live, world: World, watch: Watch
) -> None:
    crm, acme = world.crm, Principal.of_partner("acme")
    erin = register_customer(
        crm, acme, CustomerCreate(name="Erin Newkey", email="erin@example.org", country="IE")
    )
    invited = invite_customer(crm, acme, erin)  # what `ledgercrm customer invite` prints
    page.goto(f"{live.url}/me/invite#{invited.code}")
    expect(page.get_by_role("heading", name="Make your key")).to_be_visible()
    expect(page.get_by_label("Invitation code")).to_have_value(invited.code)
    assert "#" not in page.url  # the code is not kept in the address bar
    page.get_by_label("Passphrase for your key file").fill(PASSPHRASE)
    page.get_by_label("The same passphrase again").fill(PASSPHRASE + "!")
    page.get_by_role("button", name="Make my key").click()
    expect(page.get_by_role("alert")).to_contain_text("The two passphrases differ")
    page.get_by_label("The same passphrase again").fill(PASSPHRASE)
    page.get_by_role("button", name="Make my key").click()
    link = page.get_by_role("link", name="Download your key file")
    expect(link).to_be_visible(timeout=60_000)  # scrypt at full strength, in the page
    bind = page.get_by_role("button", name="Bind my key and sign in")
    expect(bind).to_be_disabled()  # not before she has her file
    screenshot(page, "invitation")
    with page.expect_download() as download:
        link.click()
    keystore = json.loads(Path(download.value.path()).read_text())
    address = page.locator("[data-invite-address]").inner_text()
    assert Account.from_key(Account.decrypt(keystore, PASSPHRASE)).address == address
    assert crm.coalition.members.member(erin).signer is None
    bind.click()
    expect(page.get_by_role("heading", name="Your privacy centre")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("erin@example.org")).to_be_visible()
    assert crm.coalition.members.member(erin).signer == address  # the chain shows her key
    # the code went in request bodies only (no URL holds it), and the key never left the page
    assert all(invited.code not in url for _, url, _ in watch.requests)
    assert any(u.endswith("/v1/invitations/binding") and invited.code in b for _, u, b in watch.requests)
    secret = Account.decrypt(keystore, PASSPHRASE).hex()
    assert all(secret not in url + body for _, url, body in watch.requests)
