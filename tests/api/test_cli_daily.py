"""A partner's daily work at the command line, on anvil: listing, updating, histories, consent checks,
an access request's export, reconciliation with the chain, and what another partner may not see."""

from __future__ import annotations

import json
import re
import sqlite3
from importlib.metadata import version
from pathlib import Path

import pytest

from api.cli import app
from tests.api.clirunner import run, runner


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory, anvil_url: str) -> Path:
    path = tmp_path_factory.mktemp("daily") / "home"
    run(path, "init", "--chain", anvil_url)
    for name in ("acme", "borealis"):
        run(path, "partner", "add", name)
    return path


@pytest.fixture(scope="module")
def alice(home: Path) -> str:
    out = run(
        home, "customer", "add", "--partner", "acme", "--name", "Alice Quinn",
        "--email", "alice@example.org", "--external-ref", "C-100", "--country", "GB",
    )  # fmt: skip
    member = out.split()[-1]
    run(home, "consent", "give", "--partner", "acme", "--member", member, "--purpose", "loyalty")
    run(home, "points", "earn", "--partner", "acme", "--member", member, "--amount", "300")
    run(home, "points", "redeem", "--partner", "acme", "--member", member, "--amount", "120")
    run(home, "interaction", "add", "--partner", "acme", "--member", member, "--kind", "purchase",
        "--external-key", "INV-1", "--data", '{"total": 42.5}')  # fmt: skip
    run(home, "anchor")
    run(home, "interaction", "add", "--partner", "acme", "--member", member, "--kind", "visit",
        "--external-key", "V-1", "--data", '{"store": "north"}')  # fmt: skip
    return member


def test_version():
    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"ledgercrm {version('ledger-crm')}"


def test_customer_list_pages_and_searches(home, alice):
    for i in range(3):
        run(home, "customer", "add", "--partner", "acme", "--name", f"Bob {i}", "--external-ref", f"B-{i}")
    everyone = run(home, "customer", "list", "--partner", "acme")
    assert "Alice Quinn" in everyone and "Bob 2" in everyone and "1 of 1: 4 of 4 customers" in everyone
    page = run(home, "customer", "list", "--partner", "acme", "--per-page", "3", "--page", "2")
    assert "page 2 of 2: 1 of 4 customers" in page
    assert "Alice Quinn" in run(home, "customer", "list", "--partner", "acme", "--search", "quinn")
    by_email = run(home, "customer", "list", "--partner", "acme", "--search", "ALICE@example")
    assert "Alice Quinn" in by_email and "Bob" not in by_email
    by_number = run(home, "customer", "list", "--partner", "acme", "--search", "B-1")
    assert "Bob 1" in by_number and "Bob 0" not in by_number and "Alice" not in by_number
    # another partner's customers are not listed
    assert "0 of 0 customers" in run(home, "customer", "list", "--partner", "borealis", "--search", "Alice")


def test_customer_update_changes_only_what_is_given_and_validates_it(home, alice):
    assert "updated" in run(
        home, "customer", "update", alice, "--partner", "acme", "--phone", "+44 20 7946 0000"
    )
    shown = run(home, "customer", "show", alice, "--partner", "acme")
    assert "+44 20 7946 0000" in shown and "alice@example.org" in shown and "GB" in shown
    bad = run(home, "customer", "update", alice, "--partner", "acme", "--email", "nope", code=2)
    assert "valid email address" in bad
    assert "alice@example.org" in run(home, "customer", "show", alice, "--partner", "acme")
    assert "no member" in run(
        home, "customer", "update", alice, "--partner", "borealis", "--name", "X", code=1
    )


def test_interaction_list_shows_keys_kinds_and_anchoring(home, alice):
    out = run(home, "interaction", "list", "--partner", "acme", "--member", alice)
    assert re.search(r"purchase\s*│ INV-1\s*│ anchored in batch \d+", out), out
    assert re.search(r"visit\s*│ V-1\s*│ pending", out), out
    assert "42.5" not in out  # the content is the export's, not the list's
    assert "no member" in run(home, "interaction", "list", "--partner", "borealis", "--member", alice, code=1)


def test_points_history_names_partner_and_block(home, alice):
    out = run(home, "points", "history", "--member", alice)
    assert re.search(r"acme\s*│ earn\s*│ 300\s*│[^│]*│ \d+", out), out
    assert re.search(r"acme\s*│ redeem\s*│ 120\s*│[^│]*│ \d+", out), out


def test_consent_check_exits_zero_only_if_valid(home, alice):
    base = ["consent", "check", "--partner", "acme", "--member", alice]
    assert "valid" in run(home, *base, "--purpose", "loyalty")
    assert "not valid" in run(home, *base, "--purpose", "marketing", code=1)
    assert "not valid" in run(
        home, *base, "--purpose", "loyalty", "--at", "2020-01-01T00:00:00+00:00", code=1
    )
    # consent is towards a partner: acme's consent is not borealis's
    assert "not valid" in run(
        home, "consent", "check", "--partner", "borealis", "--member", alice, "--purpose", "loyalty", code=1
    )


def test_consent_history_by_partner(home, alice):
    assert re.search(
        r"acme\s*│ loyalty\s*│ given .*│ yes", run(home, "consent", "history", "--member", alice)
    )
    mine = run(home, "consent", "history", "--member", alice, "--partner", "borealis")
    assert "loyalty" not in mine


def test_export_is_everything_held_on_the_customer(home, alice):
    exported = json.loads(run(home, "export", "--partner", "acme", "--member", alice))
    assert exported["member"] == alice and exported["personalData"]["name"] == "Alice Quinn"
    documents = {i["document"]["externalKey"]: i for i in exported["interactions"]}
    assert documents["INV-1"]["verification"] == "verified"
    assert documents["INV-1"]["document"]["data"] == {"total": 42.5}
    # not yet anchored: still held, so still exported, with its state
    assert documents["V-1"]["verification"] == "unanchored" and documents["V-1"]["document"]["data"]
    assert [c["receipt"]["purpose"] for c in exported["consents"]] == ["loyalty"]
    assert [(p["kind"], p["amount"]) for p in exported["points"]] == [("earn", 300), ("redeem", 120)]
    assert exported["balance"] == 180
    # another partner may not read acme's customer
    assert "no member" in run(home, "export", "--partner", "borealis", "--member", alice, code=1)


def test_reconcile_finds_edited_points_and_consent(home, alice):
    assert "store and chain agree" in run(home, "reconcile")
    assert "store and chain agree" in run(home, "reconcile", "--partner", "acme")
    db = sqlite3.connect(home / "data.sqlite")
    try:
        with db:
            db.execute("UPDATE point_events SET amount = amount + 1000 WHERE kind = 'earn'")
            db.execute("UPDATE consent_receipts SET status = 'withdrawn'")
        out = run(home, "reconcile", code=1)
        assert f"member {alice}: the store says a balance of 1,180, the chain 180" in out
        assert "partner acme: the store says issued 1,300" in out
        assert "consent receipt 1 of acme: the store says withdrawn, the chain says given" in out
        assert "earn of 1,300 points" in out and "matches no event on chain" in out
        with db:
            db.execute("UPDATE consent_receipts SET status = 'given'")
            db.execute("UPDATE consent_receipts SET receipt_json = replace(receipt_json, 'cli', 'web')")
        edited = run(home, "reconcile", "--partner", "acme", code=1)
        assert "the chain has no consent record with this receipt's document hash" in edited
    finally:
        with db:
            db.execute("UPDATE point_events SET amount = amount - 1000 WHERE kind = 'earn'")
            db.execute("UPDATE consent_receipts SET receipt_json = replace(receipt_json, 'web', 'cli')")
        db.close()
    assert "store and chain agree" in run(home, "reconcile")


def test_a_home_is_movable(home, alice, tmp_path):
    import shutil

    assert str(home) not in (home / "config.json").read_text()
    moved = shutil.copytree(home, tmp_path / "elsewhere")
    assert "Alice Quinn" in run(moved, "customer", "show", alice, "--partner", "acme")
