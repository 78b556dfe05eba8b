"""The three users' pages in a real browser: each signs in as it would, sees its own data and only its
own, and what a page shows agrees with the chain and the store."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from playwright.sync_api import BrowserContext, FilePayload, Page, Route, expect
from sqlalchemy import make_url

from api.errors import CustomerIsErased
from api.principal import Principal
from api.usecases.customers import PII_FIELD, show_customer
from api.usecases.decisions import list_decisions, score
from ledger.clients import purpose_id
from ledger.clients.consent import ConsentSource
from offchain.errors import CustomerErased
from offchain.repositories import customers
from tests.browser.conftest import (
    PASSPHRASE,
    Live,
    Watch,
    World,
    assert_accessible,
    screenshot,
    session_for,
    sign_in_partner,
    sign_in_with_key,
)


def test_partner_signs_in_finds_a_customer_and_sees_settlement(page: Page, live: Live, world: World) -> None:
    sign_in_partner(page, live, world, "acme")
    expect(page.get_by_role("heading", name="Customers of acme")).to_be_visible()
    expect(page.get_by_role("link", name="Alice Quartermain")).to_be_visible()
    screenshot(page, "partner-desk")
    page.get_by_label("Search customers").fill("bruno")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("status").first).to_contain_text("1 customer match “bruno”")
    expect(page.get_by_role("link", name="Alice Quartermain")).to_have_count(0)
    page.get_by_role("link", name="Bruno Diaz").click()
    expect(page.get_by_role("heading", name="Bruno Diaz", level=1)).to_be_visible()
    rows = page.locator("table").nth(1).locator("tbody tr")
    expect(rows).to_have_count(4)
    expect(rows.first).to_contain_text("anchored in batch")
    page.get_by_role("link", name="Settlement").click()
    chart = page.get_by_role("img", name="Settlement positions")
    expect(chart).to_be_visible()
    position = world.crm.coalition.loyalty.position_of(world.crm.signer("acme").address)
    expect(page.locator("[data-net]")).to_have_text(f"{position:+d}")


def test_customer_signs_in_with_a_keystore_and_sees_their_consents(
    page: Page, live: Live, world: World
) -> None:
    sign_in_with_key(page, live, "/me", world.keys["alice"])
    expect(page.get_by_role("heading", name="Your privacy centre")).to_be_visible(timeout=30_000)
    for name in ("loyalty - acme", "profiling - acme", "loyalty - borealis"):
        expect(page.get_by_role("checkbox", name=name)).to_be_checked()
    expect(page.get_by_role("checkbox", name="profiling - cafe")).not_to_be_checked()
    expect(page.get_by_text("alice.q@example.org")).to_be_visible()
    expect(page.locator("[data-balance]")).to_have_text("700")
    expect(page.get_by_text("redeemed").first).to_be_visible()
    # the key stays in the page after signing in: the page holds it for the signatures to come
    held = page.evaluate("async () => (await import('/static/js/keys.js')).heldAddress()")
    assert held == world.addresses["alice"]
    screenshot(page, "privacy-centre")
    assert_accessible(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download everything held about you").click()
    exported = Path(download.value.path()).read_text()
    assert "alice.q@example.org" in exported and world.members["alice"].hex() in exported

    # withdraw profiling from acme: signed in this page with the key it opened at sign-in, relayed by
    # acme; the box stays as the chain has it until the API answers that the signed event is mined
    consent = world.crm.coalition.consent
    acme, profiling = world.crm.signer("acme").address, purpose_id("profiling")
    box = page.get_by_role("checkbox", name="profiling - acme")
    box.click()
    expect(box).to_be_checked()  # at once: not before the chain has it
    expect(box).not_to_be_checked(timeout=30_000)
    expect(page.locator(f"#{box.get_attribute('id')}-state")).to_have_text("Withdrawn just now")
    assert not consent.is_valid(world.members["alice"], acme, profiling)
    latest = consent.history(world.members["alice"], acme, profiling)[-1]
    assert latest.source is ConsentSource.SIGNED  # her signature, not acme's attestation
    page.reload()
    expect(page.get_by_role("checkbox", name="profiling - acme")).not_to_be_checked()


def test_auditor_signs_in_sees_heads_and_a_finding_for_a_record_edited_behind_the_system(
    page: Page, live: Live, world: World, watch: Watch
) -> None:
    sign_in_with_key(page, live, "/audit", world.keys["auditor"])
    expect(page.get_by_role("heading", name="Each partner's log")).to_be_visible(timeout=30_000)
    expect(page.get_by_role("img", name="Log heads over time")).to_be_visible()
    screenshot(page, "auditor-console")
    page.get_by_role("link", name="Verification").click()
    page.wait_for_load_state()  # the run follows the API's job once the page's script is there
    page.get_by_role("button", name="Run a verification").click()
    expect(page.get_by_text("No findings")).to_be_visible(timeout=30_000)
    # a job of the API's, followed to its end in the page: the page did not reload
    expect(page.locator("[data-job-status]")).to_have_text("Verification finished.")
    assert any(m == "POST" and u.endswith("/v1/audit/verifications") for m, u, _ in watch.requests)

    # what an auditor's run covers without any key: here a consent receipt's document, whose hash the
    # chain holds, edited in the database file with plain SQL
    path = make_url(world.crm.settings.data_url()).database
    assert path is not None
    with closing(sqlite3.connect(path)) as db, db:
        (receipt, before) = db.execute(
            "SELECT id, receipt_json FROM consent_receipts WHERE member_id = ?", (world.members["bruno"],)
        ).fetchone()
        db.execute(
            "UPDATE consent_receipts SET receipt_json = ? WHERE id = ?",
            (before.replace('"noticeVersion":"1"', '"noticeVersion":"2"'), receipt),
        )
    try:
        page.get_by_role("button", name="Run a verification").click()
        findings = page.locator("[data-findings]")
        expect(findings).to_contain_text(f"consent receipt {receipt} of acme", timeout=30_000)
        expect(findings).to_contain_text("tampered")
        screenshot(page, "auditor-finding")
        assert_accessible(page)
    finally:
        with closing(sqlite3.connect(path)) as db, db:
            db.execute("UPDATE consent_receipts SET receipt_json = ? WHERE id = ?", (before, receipt))


def test_each_role_opening_another_role_s_page_gets_the_sign_in_page(
    context: BrowserContext, live: Live, world: World
) -> None:
    alice = "0x" + world.members["alice"].hex()
    private = ("Alice", "alice.q@example.org", "Bruno", alice)
    principals = {"customer": "alice", "partner": "acme", "auditor": "auditor"}
    pages = {
        "customer": ["/me"],
        "partner": [
            "/partner",
            f"/partner/customers/{alice}",
            "/partner/settlement",
            "/partner/models",
            "/partner/segments",
            "/partner/log",
            "/partner/verification/jobs/0",
        ],
        "auditor": [
            "/audit",
            "/audit/verification?run=true",
            "/audit/proofs?partner=acme&leaf=0",
            "/audit/erasures",
            "/audit/report",
            "/audit/verification/jobs/0",
            "/audit/decisions",
            "/audit/decisions?decision=0",
        ],
    }
    for role in ("anonymous", *principals):
        context.clear_cookies()
        if role in principals:
            session_for(context, live, world, principals[role])
        for owner, paths in pages.items():
            if owner == role:
                continue
            for path in paths:
                # the browser's own request (its cookies, as a page load sends them), without rendering
                response = context.request.get(live.url + path)
                assert response.status == 401, (role, path)
                text = response.text()
                assert f"Sign in as {'an' if owner == 'auditor' else 'a'} {owner}" in text, (role, path)
                leaked = [value for value in private if value in text]
                assert not leaked, f"{role} opening {path} saw {leaked}"


def test_a_partner_opening_another_partner_s_customer_sees_no_data(
    context: BrowserContext, page: Page, live: Live, world: World
) -> None:
    session_for(context, live, world, "borealis")
    response = page.goto(f"{live.url}/partner/customers/0x{world.members['alice'].hex()}")
    assert response is not None and response.status == 404
    assert "Alice" not in page.locator("main").inner_text()
    page.goto(live.url + "/partner?q=alice")
    expect(page.get_by_role("status").first).to_contain_text("0 customers")


def test_pages_that_only_show_read_without_javascript(browser: object, live: Live, world: World) -> None:
    from playwright.sync_api import Browser

    assert isinstance(browser, Browser)
    context = browser.new_context(java_script_enabled=False)
    try:
        session_for(context, live, world, "acme")
        page = context.new_page()
        page.goto(f"{live.url}/partner/customers/0x{world.members['alice'].hex()}")
        expect(page.get_by_role("heading", name="Alice Quartermain", level=1)).to_be_visible()
        page.goto(live.url + "/partner?q=chen")
        expect(page.get_by_role("link", name="Chen Wei")).to_be_visible()
        page.goto(live.url + "/partner/settlement")
        expect(page.get_by_role("img", name="Settlement positions")).to_be_visible()
    finally:
        context.close()


def test_pages_fit_a_phone(context: BrowserContext, page: Page, live: Live, world: World) -> None:
    session_for(context, live, world, "acme")
    page.set_viewport_size({"width": 360, "height": 740})
    for path in ("/partner", f"/partner/customers/0x{world.members['alice'].hex()}", "/partner/settlement"):
        page.goto(live.url + path)
        overflow = page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"{path} scrolls sideways by {overflow}px at 360px wide"


def test_the_model_card_s_charts_render(
    context: BrowserContext, page: Page, live: Live, world: World
) -> None:
    session_for(context, live, world, "acme")  # model cards are the consortium's to read
    page.goto(live.url + "/partner/models")
    page.get_by_role("link", name=f"Model {world.model_id}").click()
    for name in (
        "AUC of the registered model and the baselines",
        "ROC curve of the glass box",
        "Calibration of the glass box",
        "How recency_days moves the churn score",
        "How frequency moves the churn score",
        "How monetary moves the churn score",
    ):
        chart = page.get_by_role("img", name=name)
        expect(chart).to_be_visible()
        box = chart.bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 60, name
    screenshot(page, "model-card")
    assert_accessible(page)


def test_partner_awards_points_and_sees_settlement_move(
    context: BrowserContext, page: Page, live: Live, world: World
) -> None:
    loyalty = world.crm.coalition.loyalty
    acme = world.crm.signer("acme").address
    before = loyalty.position_of(acme)
    session_for(context, live, world, "acme")
    page.goto(f"{live.url}/partner?q=bruno")
    page.get_by_role("link", name="Bruno Diaz").click()
    page.wait_for_load_state()  # the write is sent by htmx, which starts once the page has loaded
    expect(page.locator("[data-balance]")).to_have_text("0")

    page.get_by_label("Points to award").fill("12.5")
    page.get_by_role("button", name="Award points").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter the points as a whole number")
    page.get_by_label("Points to award").fill("250")
    page.get_by_role("button", name="Award points").click()
    expect(page.locator("[data-balance]")).to_have_text("250")
    assert loyalty.balance_of(world.members["bruno"]) == 250
    screenshot(page, "partner-customer")

    page.get_by_role("link", name="Settlement").click()
    expect(page.locator("[data-net]")).to_have_text(f"{before - 250:+d}")
    assert loyalty.position_of(acme) == before - 250


def test_a_write_without_the_csrf_token_or_by_another_partner_changes_nothing(
    context: BrowserContext, live: Live, world: World
) -> None:
    bruno = world.members["bruno"]
    url = f"{live.url}/partner/customers/0x{bruno.hex()}/points"
    balance = world.crm.coalition.loyalty.balance_of(bruno)
    session_for(context, live, world, "acme")
    # the session cookie rides along (as with a form another site posts), the CSRF header does not
    forged = context.request.post(url, form={"amount": "100"})
    assert forged.status == 401 and "Sign in as a partner" in forged.text()
    csrf = next(c["value"] for c in context.cookies() if c["name"] == "lcrm_csrf")
    context.clear_cookies()
    session_for(context, live, world, "borealis")
    other = next(c["value"] for c in context.cookies() if c["name"] == "lcrm_csrf")
    stranger = context.request.post(url, form={"amount": "100"}, headers={"X-CSRF-Token": other})
    assert stranger.status == 404 and "Bruno" not in stranger.text()
    # borealis's session with acme's token: the token is the session's, not any session's
    mixed = context.request.post(url, form={"amount": "100"}, headers={"X-CSRF-Token": csrf})
    assert mixed.status == 401
    # the auditor's one write-shaped page (a disclosure sent to reproduce a decision): the same rule
    context.clear_cookies()
    session_for(context, live, world, "auditor")
    sent: dict[str, str | float | bool | bytes | FilePayload] = {
        "disclosure": {"name": "d.json", "mimeType": "application/json", "buffer": b"{}"}
    }
    forged = context.request.post(f"{live.url}/audit/decisions?decision=0", multipart=sent)
    assert forged.status == 401 and "Sign in as an auditor" in forged.text()
    assert world.crm.coalition.loyalty.balance_of(bruno) == balance


def test_a_refused_signature_leaves_the_toggle_and_says_why(
    context: BrowserContext, page: Page, live: Live, world: World
) -> None:
    session_for(context, live, world, "alice")
    page.goto(live.url + "/me")
    box = page.get_by_role("checkbox", name="loyalty - cafe")
    expect(box).not_to_be_checked()
    # signed in with no key in the page (a new tab, a reload): the page asks for the key file first
    box.click()
    expect(page.get_by_role("alert")).to_contain_text("Your key is needed to sign")
    page.get_by_label("Your key file").set_input_files(world.keys["alice"])
    page.get_by_label("Passphrase of the key file").fill(PASSPHRASE)

    def tamper(route: Route) -> None:  # what reaches the API is signed over other data
        body = json.loads(route.request.post_data or "{}")
        body["typed_data"]["message"]["purpose"] = "0x" + purpose_id("marketing").hex()
        route.continue_(post_data=json.dumps(body))

    page.route("**/v1/me/consents", tamper)
    box.click()
    summary = page.locator("[data-error-summary]")
    expect(summary).to_be_visible(timeout=30_000)
    problem = summary.inner_text()
    # the API's problem detail, in words: the data signed is not what arrived
    assert "There is a problem" in problem and "the signature was made by" in problem
    assert "Traceback" not in problem and "{" not in problem
    expect(box).not_to_be_checked()
    cafe = world.crm.signer("cafe").address
    assert not world.crm.coalition.consent.is_valid(world.members["alice"], cafe, purpose_id("loyalty"))


def test_auditor_checks_a_leaf_and_two_heads_with_the_contract(
    context: BrowserContext, page: Page, live: Live, world: World
) -> None:
    session_for(context, live, world, "auditor")
    page.goto(live.url + "/audit")
    page.get_by_role("link", name="Check a leaf's inclusion or the consistency of two heads").click()
    page.get_by_label("Leaf number").fill("5")
    page.get_by_role("button", name="Check inclusion").click()
    found = page.locator("[data-inclusion]")
    expect(found).to_contain_text("5 of acme")
    expect(found).to_contain_text("included")
    heads = world.crm.coalition.anchor.heads(world.crm.signer("acme").address)
    first, second = heads[0].size, heads[1].size
    page.get_by_label("Leaves in the earlier head").fill(str(first))
    page.get_by_label("Leaves in the later head").fill(str(second))
    page.get_by_role("button", name="Check consistency").click()
    expect(page.locator("[data-consistency] tbody tr")).to_have_count(1)
    expect(page.locator("[data-consistency]")).to_contain_text("consistent")
    # a leaf the log does not hold is the use case's refusal, in words, not a traceback
    page.goto(live.url + "/audit/proofs?partner=acme&leaf=99")
    expect(page.get_by_role("alert")).to_be_visible()
    assert "Traceback" not in page.locator("main").inner_text()
    page.get_by_role("link", name="Erasures").click()
    expect(page.get_by_role("heading", name="Erasure receipts")).to_be_visible()


def test_the_audit_report_is_one_html_file_that_holds_no_personal_data(
    context: BrowserContext, page: Page, live: Live, world: World, watch: Watch
) -> None:
    session_for(context, live, world, "auditor")
    page.goto(live.url + "/audit/report")
    expect(page.get_by_role("heading", name="Audit report")).to_be_visible()
    expect(page.get_by_role("img", name="Log heads over time")).to_be_visible()
    assert [url for _, url, _ in watch.requests] == [live.url + "/audit/report"]  # nothing else to load
    assert_accessible(page)
    with page.expect_download() as download:
        page.get_by_role("link", name="Save this report as one HTML file").click()
    saved = Path(download.value.path()).read_text()
    assert "<style>" in saved and "<svg" in saved and 'href="/static' not in saved and "<script" not in saved
    for private in ("Alice", "alice.q@example.org", "Bruno", "bruno@example.org", "Chen Wei"):
        assert private not in saved


def test_a_customer_moves_her_home_by_her_signature_and_back(page: Page, live: Live, world: World) -> None:
    members, alice = world.crm.coalition.members, world.members["alice"]
    acme, borealis = world.crm.signer("acme").address, world.crm.signer("borealis").address
    assert members.member(alice).home == acme
    sign_in_with_key(page, live, "/me", world.keys["alice"])
    home = page.locator("[data-home]")
    expect(home).to_have_text("acme", timeout=30_000)
    page.get_by_label("Move your home to").select_option("borealis")
    page.get_by_role("button", name="Move my home").click()
    expect(home).to_have_text("borealis", timeout=30_000)  # once the chain moved it, by her signature
    assert members.member(alice).home == borealis
    page.get_by_label("Move your home to").select_option("acme")  # the old home is a choice now
    page.get_by_role("button", name="Move my home").click()
    expect(home).to_have_text("acme", timeout=30_000)
    assert members.member(alice).home == acme


def test_a_customer_erases_herself_after_a_confirmation(
    context: BrowserContext, page: Page, live: Live, world: World
) -> None:
    dana = world.members["dana"]
    crm, acme = world.crm, Principal.of_partner("acme")
    # before: acme's model decided about her, and her record opens with acme's keys
    assert any(d.member == dana for d in list_decisions(crm, acme, dana))
    with crm.unit_of_work() as db:
        sealed = customers.owned(db, crm.partner(db, "acme").id, dana)
        assert sealed is not None
        pii = sealed.pii_ciphertext
    assert b"Dana Okafor" in crm.vault.decrypt("acme", dana, PII_FIELD, pii)
    session_for(context, live, world, "dana")
    page.goto(live.url + "/me")
    page.get_by_role("link", name="Ask for everything about you to be erased").click()
    expect(page.get_by_role("heading", name="Erase everything about you")).to_be_visible()
    expect(page.get_by_text("This cannot be undone.")).to_be_visible()
    page.wait_for_load_state()
    page.get_by_role("button", name="Erase me").click()
    expect(page.get_by_role("alert")).to_contain_text("Tick that you understand this cannot be undone")
    assert not world.crm.coalition.members.member(dana).erased
    page.get_by_label("I understand that this cannot be undone").check()
    page.get_by_role("button", name="Erase me").click()
    expect(page.get_by_role("alert")).to_contain_text("Your key is needed to sign")
    page.get_by_label("Your key file").set_input_files(world.keys["dana"])
    page.get_by_label("Passphrase of the key file").fill(PASSPHRASE)
    page.get_by_role("button", name="Erase me").click()
    expect(page.get_by_role("heading", name="You have been erased")).to_be_visible(timeout=30_000)

    assert crm.coalition.members.member(dana).erased
    assert not crm.coalition.consent.is_valid(dana, crm.signer("acme").address, purpose_id("loyalty"))
    with pytest.raises(CustomerIsErased):
        show_customer(crm, Principal.of_partner("acme"), dana)  # her data no longer decrypts
    response = context.request.get(live.url + "/me")  # her session ended with the erasure
    assert response.status == 401 and "Dana" not in response.text()
    # the partner's next score skips her, and what was sealed under her key no longer opens
    before = {d.decision_id for d in list_decisions(crm, acme)}
    again = score(crm, acme)
    assert again.erased == 1  # counted as erased, never scored
    new = [d for d in list_decisions(crm, acme) if d.decision_id not in before]
    assert len(new) == len(again.decided) and dana not in {d.member for d in new}
    with pytest.raises(CustomerErased):
        crm.vault.decrypt("acme", dana, PII_FIELD, pii)
