"""The pages' later parts in a real browser: a customer invited without a key makes one and binds it;
the partner's desk shows its segments and where its log stands; the auditor reproduces a decision."""

from __future__ import annotations

import json
import re
from pathlib import Path

from eth_account import Account
from playwright.sync_api import BrowserContext, Page, expect

from api.principal import Principal
from api.usecases.anchoring import anchor_now, log_state
from api.usecases.customers import register_customer
from api.usecases.decisions import disclose_decision, list_decisions
from api.usecases.interactions import NewInteraction, record_interactions
from api.usecases.invitations import invite_customer
from api.usecases.models import segments
from offchain.models import CustomerCreate
from tests.browser.conftest import (
    PASSPHRASE,
    Live,
    Watch,
    World,
    assert_accessible,
    screenshot,
    session_for,
)


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
    assert_accessible(page)
    with page.expect_download() as download:
        link.click()
    keystore = json.loads(Path(download.value.path()).read_text())
    address = page.locator("[data-invite-address]").inner_text()
    secret = Account.decrypt(keystore, PASSPHRASE)  # full-strength scrypt: once
    assert Account.from_key(secret).address == address
    assert crm.coalition.members.member(erin).signer is None
    bind.click()
    expect(page.get_by_role("heading", name="Your privacy centre")).to_be_visible(timeout=30_000)
    expect(page.get_by_text("erin@example.org")).to_be_visible()
    assert crm.coalition.members.member(erin).signer == address  # the chain shows her key
    # the code went in request bodies only (no URL holds it), and the key never left the page
    assert all(invited.code not in url for _, url, _ in watch.requests)
    assert any(u.endswith("/v1/invitations/binding") and invited.code in b for _, u, b in watch.requests)
    assert all(secret.hex() not in url + body for _, url, body in watch.requests)


def test_partner_sees_its_segments_as_a_chart(
    context: BrowserContext, page: Page, live: Live, world: World
) -> None:
    session_for(context, live, world, "cafe")
    page.goto(live.url + "/partner")
    page.get_by_role("link", name="Segments").click()
    expect(page.get_by_role("heading", name="Segments of your customers")).to_be_visible()
    chart = page.get_by_role("img", name="Members per segment")
    expect(chart).to_be_visible()
    box = chart.bounding_box()
    assert box is not None and box["width"] > 200 and box["height"] > 60
    counts = page.locator("[data-segments] tbody tr td:nth-child(2)").all_inner_texts()
    segmented = segments(world.crm, Principal.of_partner("cafe")).rows
    assert len(segmented) >= 12 and sum(int(n) for n in counts) == len(segmented)  # each in one segment
    screenshot(page, "partner-segments")
    assert_accessible(page)
    # acme has four buying customers, two with profiling consent (which the privacy centre's tests may
    # have withdrawn by now): too few to segment, or none, said in words either way
    context.clear_cookies()
    session_for(context, live, world, "acme")
    page.goto(live.url + "/partner/segments")
    expect(page.get_by_role("alert")).to_contain_text(
        re.compile("too few to segment|no verified interactions to segment of customers who consented")
    )
    assert_accessible(page)


def _leaves(n: int) -> str:
    return f"{n} {'leaf' if n == 1 else 'leaves'}"


def test_partner_sees_its_log_and_runs_a_verification_with_progress(
    context: BrowserContext, page: Page, live: Live, world: World, watch: Watch
) -> None:
    crm = world.crm
    session_for(context, live, world, "acme")
    page.goto(live.url + "/partner/log")
    acme = crm.signer("acme").address
    last = crm.coalition.anchor.heads(acme)[-1]
    head = page.locator("[data-head]")
    expect(head).to_contain_text(
        f"{last.size} leaves, root 0x{last.root.hex()}, in block {last.block_number}"
    )
    waiting = log_state(crm, Principal.of_partner("acme")).pending
    expect(page.locator("[data-pending]")).to_contain_text(
        f"{waiting} {'leaf' if waiting == 1 else 'leaves'}"
    )
    # a leaf recorded and not yet anchored shows as waiting
    record_interactions(
        crm, Principal.of_partner("acme"), [NewInteraction(world.members["chen"], "visit", {"store": "N1"})]
    )
    page.reload()
    expect(page.locator("[data-pending]")).to_contain_text(_leaves(waiting + 1) + ", the oldest recorded")
    page.wait_for_load_state()
    page.get_by_role("button", name="Verify my records").click()
    expect(page.locator("[data-job-status]")).to_have_text("Verification finished.", timeout=30_000)
    expect(page.locator("[data-verification-result]")).to_contain_text("No findings")
    expect(page.locator("[data-verification-result]")).to_contain_text(
        _leaves(waiting + 1) + " not yet anchored"
    )
    assert any(m == "POST" and u.endswith("/v1/verifications") for m, u, _ in watch.requests)
    page.reload()  # the last run's result and when, kept
    expect(page.locator("[data-verification-result]")).to_contain_text("Finished")
    screenshot(page, "partner-log")
    assert_accessible(page)
    anchor_now(crm, Principal.of_partner("acme"))


def test_auditor_reproduces_a_decision_with_the_partner_s_disclosure(
    context: BrowserContext, page: Page, live: Live, world: World, tmp_path: Path
) -> None:
    crm = world.crm
    # alice's (dana's may be erased by now: its explanation is then unlinkable, by design)
    decision = next(
        d.decision_id
        for d in list_decisions(crm, Principal.of_partner("acme"), world.members["alice"])
        if d.decision_id in world.decisions
    )
    logged = crm.coalition.decisions.decision(decision)
    assert logged is not None
    model_hash = crm.coalition.decisions.model(logged.model_id).model_hash
    session_for(context, live, world, "auditor")
    page.goto(live.url + "/audit")
    page.get_by_role("link", name="Decisions").click()
    page.get_by_role("link", name=f"Decision {decision}", exact=True).click()
    found = page.locator("[data-reproduction]")
    expect(found).to_contain_text(f"0x{model_hash.hex()}")
    expect(found).to_contain_text(f"0x{logged.decision.input_root.hex()}")
    expect(page.locator("[data-reproduced-score]")).to_contain_text("needs the deciding partner's disclosure")
    expect(page.locator("[data-verdict]")).to_contain_text("Partly checked")
    disclosure = tmp_path / "disclosure.json"  # what `ledgercrm decision disclose` writes for acme
    disclosure.write_text(json.dumps(disclose_decision(crm, Principal.of_partner("acme"), decision)))
    page.wait_for_load_state()
    page.get_by_label("The partner's disclosure file").set_input_files(disclosure)
    page.get_by_role("button", name="Reproduce the score").click()
    score = f"{logged.decision.score_bps / 100:.2f}%"
    expect(page.locator("[data-reproduced-score]")).to_have_text(f"{score}: the same as the ledger's")
    expect(page.locator("[data-verdict]")).to_contain_text("Reproduced")
    screenshot(page, "auditor-decision")
    assert_accessible(page)
    text = page.locator("main").inner_text()  # no personal data: not her name, id or features' values
    for private in (
        "Alice",
        "alice.q@example.org",
        world.members["alice"].hex(),
        world.members["dana"].hex(),
    ):
        assert private not in text
    # a file that is not a disclosure of this decision: said in words, nothing else
    disclosure.write_text(json.dumps({"format": "something else"}))
    page.get_by_label("The partner's disclosure file").set_input_files(disclosure)
    page.get_by_role("button", name="Reproduce the score").click()
    expect(page.locator("[data-verdict]")).to_contain_text("Does not reproduce")
