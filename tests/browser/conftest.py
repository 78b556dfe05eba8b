"""The browser tests' harness: Debian's chromium driven by Playwright, against a live server (uvicorn in
a thread on 127.0.0.1) over one in-process chain and one store for the whole run.

Every page a test opens is watched: a request to any host but the test server is aborted and fails the
test (the pages must work with no internet), so does an uncaught error in the page's scripts, and a
failing test leaves a screenshot under build/browser-failures/.

The server is the real app (`create_app`): the pages sign in through the API's own `/v1/auth/*`.
"""

from __future__ import annotations

import hashlib
import json
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from eth_account import Account
from eth_account.messages import encode_defunct
from fastapi import FastAPI
from playwright.sync_api import BrowserContext, Page, Route

from api.context import Crm
from api.http.app import create_app
from api.principal import Principal
from api.settings import Settings
from api.usecases import access
from api.usecases.access import issue_token
from api.usecases.anchoring import anchor_now
from api.usecases.consent import give_consent, send_staged_consents, stage_consents
from api.usecases.customer_keys import customer_binding, new_customer_key, open_customer_key
from api.usecases.customers import register_customer, register_customers, send_staged_enrolments
from api.usecases.decisions import score
from api.usecases.interactions import NewInteraction, record_interactions
from api.usecases.loyalty import PointsRequest, earn_points, redeem_points
from api.usecases.partners import register_partner
from api.usecases.signing import customer_signs_consent, customer_signs_redeem
from ledger.backends import EthTesterBackend
from ledger.clients import Action
from ledger.coalition import Coalition
from ml.features import BgNbd
from ml.glassbox import FORMAT_V1, GlassBox
from ml.policy import THRESHOLD, Policy
from offchain.canonical import canonical_json
from offchain.models import CustomerCreate, RegisteredModel
from offchain.repositories import models

ROOT = Path(__file__).resolve().parents[2]
FAILURES = ROOT / "build" / "browser-failures"
PASSPHRASE = "correct horse battery"
PARTNERS = ("acme", "borealis", "cafe")


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    """Debian's chromium (Playwright's own browser download needs the internet): we run as root, so
    without its sandbox, and with nothing of its own that would reach for the network."""
    return {
        "executable_path": "/usr/bin/chromium",
        "chromium_sandbox": False,
        "args": ["--no-sandbox", "--disable-background-networking", "--disable-component-update"],
    }


@dataclass
class World:
    """What the session's chain and store hold, and the credentials to reach it."""

    crm: Crm
    keys: dict[str, Path]  # who -> keystore file (made as `ledgercrm customer key new` makes it)
    addresses: dict[str, str]
    members: dict[str, bytes]
    api_keys: dict[str, str]  # partner -> an API key (`ledgercrm token issue`)
    auditor: str
    private_keys: dict[str, bytes]  # for sessions opened without the page (see `session_for`)
    interactions: list[int] = field(default_factory=list)
    model_id: int = 0
    decisions: list[int] = field(default_factory=list)  # acme's, about alice and dana


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = tmp_path_factory.mktemp("home")
    backend = EthTesterBackend()
    accounts = backend.accounts
    coalition = Coalition.deploy(backend, founders=accounts[:3], deployer=accounts[0])
    auditor = Account.create()
    coalition.consortium.decide(accounts[:3], Action.ADMIT_AUDITOR, auditor.address)
    # the tests' requests come from one address: above the limit of requests a credential may send
    settings = Settings(
        environment="development", home=home, batch_max_leaves=8, http_rate_limit="100000/minute"
    )
    crm = Crm.open(settings, coalition)
    for name, account in zip(PARTNERS, accounts, strict=False):
        register_partner(crm, name, account)
    acme, borealis = Principal.of_partner("acme"), Principal.of_partner("borealis")

    keys = {"alice": home / "alice.json", "auditor": home / "auditor.json"}
    alice_address = new_customer_key(keys["alice"], PASSPHRASE)
    keys["auditor"].write_text(json.dumps(Account.encrypt(auditor.key, PASSPHRASE)))
    alice_key = open_customer_key(keys["alice"], PASSPHRASE)
    people = {
        "alice": CustomerCreate(name="Alice Quartermain", email="alice.q@example.org", country="GB"),
        "bruno": CustomerCreate(name="Bruno Diaz", email="bruno@example.org", country="ES"),
        "chen": CustomerCreate(name="Chen Wei", email="chen@example.org", country="SG"),
    }
    members = {
        "alice": register_customer(
            crm, acme, people["alice"], signer=alice_address, binding=customer_binding(crm, alice_key)
        ),
        "bruno": register_customer(crm, acme, people["bruno"]),
        "chen": register_customer(crm, acme, people["chen"]),
    }
    alice = members["alice"]
    for purpose in ("loyalty", "profiling"):
        give_consent(
            crm, acme, alice, purpose, signed=customer_signs_consent(crm, alice_key, alice, "acme", purpose)
        )
    give_consent(
        crm,
        borealis,
        alice,
        "loyalty",
        signed=customer_signs_consent(crm, alice_key, alice, "borealis", "loyalty"),
    )
    give_consent(crm, acme, members["bruno"], "loyalty")
    recorded = []
    for who in ("alice", "bruno"):  # two heads in acme's log
        items = [
            NewInteraction(members[who], "purchase", {"invoice": f"{who}-{n}", "total": 10.0 + n})
            for n in range(4)
        ]
        recorded += record_interactions(crm, acme, items).recorded
        anchor_now(crm, acme)
    earn_points(crm, acme, PointsRequest(members["alice"], 1200))
    redeem_points(
        crm,
        borealis,
        PointsRequest(alice, 500),
        signed=customer_signs_redeem(crm, alice_key, alice, "borealis", 500),
    )
    # dana erases herself in a test: her own key, its keystore with a cheap scrypt (opening `customer key
    # new`'s full-strength file is alice's test)
    dana_key = Account.create()
    keys["dana"] = home / "dana.json"
    keys["dana"].write_text(json.dumps(Account.encrypt(dana_key.key, PASSPHRASE, iterations=1024)))
    members["dana"] = register_customer(
        crm,
        acme,
        CustomerCreate(name="Dana Okafor", email="dana@example.org", country="NG"),
        signer=dana_key.address,
        binding=customer_binding(crm, dana_key),
    )
    give_consent(
        crm,
        acme,
        members["dana"],
        "loyalty",
        signed=customer_signs_consent(crm, dana_key, members["dana"], "acme", "loyalty"),
    )
    # dana also lets acme profile her and buys twice, so acme's model decides about her before she
    # erases herself (the journey's end: the next score skips her)
    give_consent(
        crm,
        acme,
        members["dana"],
        "profiling",
        signed=customer_signs_consent(crm, dana_key, members["dana"], "acme", "profiling"),
    )
    record_interactions(
        crm,
        acme,
        [
            NewInteraction(members["dana"], "purchase", {"invoice": f"dana-{n}", "total": 30.0})
            for n in (1, 2)
        ],
    )
    anchor_now(crm, acme)
    model_id = register_glass_box(crm, "cafe")
    acme_model = register_glass_box(crm, "acme")
    decided = score(crm, acme, model_id=acme_model).decided  # alice and dana (profiling consent)
    # thirteen of cafe's customers with purchases over a year: enough to segment (the latest buyer's
    # purchase is the as-of moment, so twelve)
    now = datetime.now(UTC)
    cafe = Principal.of_partner("cafe")
    # enrolled in one transaction: every block more slows each later read of the chain's logs
    shoppers = register_customers(
        crm, cafe, [CustomerCreate(name=f"Shopper {n}", country="FR") for n in range(13)]
    )
    send_staged_enrolments(crm, cafe)
    stage_consents(crm, cafe, shoppers, "profiling")  # a segment is profiling: it needs their consent
    send_staged_consents(crm, cafe)
    record_interactions(
        crm,
        cafe,
        [
            NewInteraction(
                member,
                "purchase",
                {"invoice": f"cafe-{n}-{k}", "total": 5.0 + 7 * n + k},
                occurred_at=now - timedelta(days=20 * n + 3 * k + 1),
            )
            for n, member in enumerate(shoppers)
            for k in range(1 + n % 4)
        ],
    )
    anchor_now(crm, cafe)
    try:
        yield World(
            crm=crm,
            keys=keys,
            addresses={"alice": alice_address, "auditor": auditor.address},
            members=members,
            api_keys={name: issue_token(crm, Principal.of_partner(name)).key for name in PARTNERS},
            auditor=auditor.address,
            private_keys={"alice": alice_key.key, "auditor": auditor.key, "dana": dana_key.key},
            interactions=recorded,
            model_id=model_id,
            decisions=decided,
        )
    finally:
        crm.close()


def register_glass_box(crm: Crm, partner: str) -> int:
    """A glass box and its card registered for `partner` as `model train` registers one (bytes and card
    hashed, hashes on chain, rows in the store), written by hand: fitting one takes a minute, and the
    pages only read what is registered."""
    model = GlassBox(
        features=("recency_days", "frequency", "monetary"),
        cuts=((14.0, 45.0, 120.0), (2.0, 5.0), (50.0, 200.0, 800.0)),
        scores=(
            (0.0, -0.9, -0.2, 0.4, 1.1, 0.0),
            (0.0, 0.6, 0.0, -0.7, 0.0),
            (0.0, 0.3, 0.1, -0.2, -0.5, 0.0),
        ),
        intercept=-0.4,
        bgnbd=BgNbd(r=0.5, alpha=10.0, a=0.8, b=2.5),
        policy=Policy(THRESHOLD, threshold=0.5),  # a v1 model: a score threshold
        format=FORMAT_V1,
    )
    interval = {"auc": {"value": 0.78, "low": 0.74, "high": 0.82}}
    card = {
        "schema": "ledgercrm/model-card/v1",
        "model": {"format": "ledgercrm/glassbox/v1", "hash": "0x" + model.model_hash.hex()},
        "provenance": {"partner": partner},
        "label": "churned: no purchase within 90 days after the as-of date",
        "population": "members with a purchase in the 365 days before the as-of date",
        "policy": {"threshold": 0.5, "action": model.action},
        "metrics": {"EBM (registered)": interval, "KNN": {"auc": {"value": 0.7, "low": 0.64, "high": 0.76}}},
        "metricsNote": "holdout; 95% percentile bootstrap intervals over members",
        "curves": {
            "roc": [[0.0, 0.0], [0.1, 0.45], [0.3, 0.75], [0.6, 0.92], [1.0, 1.0]],
            "calibration": [[0.1, 0.12, 40], [0.35, 0.3, 30], [0.7, 0.66, 20]],
        },
        "limitations": ["written by hand for the browser tests"],
    }
    card_json = canonical_json(card)
    card_hash = hashlib.sha256(card_json).digest()
    training_root = hashlib.sha256(b"no training: a hand-written model").digest()
    model_id = crm.coalition.decisions.register_model(
        crm.signer(partner), model.model_hash, card_hash, training_root
    )
    with crm.unit_of_work() as db:
        models.add(
            db,
            RegisteredModel(
                partner_id=crm.partner(db, partner).id,
                onchain_id=model_id,
                model_hash=model.model_hash,
                model_json=model.to_bytes().decode(),
                card_hash=card_hash,
                card_json=card_json.decode(),
                training_root=training_root,
                block_number=crm.coalition.block_number(),
            ),
        )
    return model_id


@dataclass
class Live:
    url: str
    app: FastAPI


@pytest.fixture(scope="session")
def live(world: World) -> Iterator[Live]:
    app = create_app(world.crm.settings, world.crm)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Live(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


@dataclass
class Watch:
    foreign: list[str] = field(default_factory=list)  # requests to other hosts, aborted
    errors: list[str] = field(default_factory=list)  # uncaught errors in the page
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, url, body


@pytest.fixture
def watch() -> Watch:
    return Watch()


@pytest.fixture
def page(context: BrowserContext, live: Live, watch: Watch, request: pytest.FixtureRequest) -> Iterator[Page]:
    def guard(route: Route) -> None:
        url = route.request.url
        if url.startswith(live.url + "/"):
            watch.requests.append((route.request.method, url, route.request.post_data or ""))
            route.continue_()
        else:
            watch.foreign.append(url)
            route.abort()

    context.route("**/*", guard)
    opened = context.new_page()
    opened.on("pageerror", lambda error: watch.errors.append(str(error)))
    yield opened
    failed = getattr(request.node, "report_call", None)
    if failed is not None and failed.failed:
        FAILURES.mkdir(parents=True, exist_ok=True)
        name = re.sub(r"[^\w.-]+", "_", request.node.nodeid)
        opened.screenshot(path=FAILURES / f"{name}.png", full_page=True)
    assert not watch.foreign, f"the page asked another host for {watch.foreign}"
    assert not watch.errors, f"uncaught errors in the page: {watch.errors}"


def sign_in_with_key(page: Page, live: Live, path: str, key: Path, passphrase: str = PASSPHRASE) -> None:
    """Open `path`, which shows its keystore sign-in form, and sign in with `key`."""
    page.goto(live.url + path)
    page.get_by_label("Your key file").set_input_files(key)
    page.get_by_label("Passphrase of the key file").fill(passphrase)
    page.get_by_role("button", name="Sign in").click()


def sign_in_partner(page: Page, live: Live, world: World, partner: str) -> None:
    page.goto(live.url + "/partner")
    page.get_by_label("API key").fill(world.api_keys[partner])
    page.get_by_role("button", name="Sign in").click()


def session_for(context: BrowserContext, live: Live, world: World, who: str) -> None:
    """Sign `who` (a partner's name, "alice" or "auditor") in to `context` without the sign-in form
    (each role's form has a test of its own), through the same use cases the API's sign-in calls."""
    crm = world.crm
    if who in world.api_keys:
        opened = access.partner_session(crm, world.api_keys[who])
    else:
        account = Account.from_key(world.private_keys[who])
        host = live.url.removeprefix("http://")
        message = access.sign_in_challenge(crm, account.address, domain=host, uri=live.url)
        signature = Account.sign_message(encode_defunct(text=message), account.key).signature
        opened = access.sign_in(crm, message, "0x" + signature.hex())
    context.add_cookies(
        [
            {"name": "lcrm_session", "value": opened.token, "url": live.url},
            {"name": "lcrm_csrf", "value": opened.csrf_token, "url": live.url},
        ]
    )


SCREENSHOTS = ROOT / "build" / "screenshots"


def screenshot(page: Page, name: str) -> Path:
    """A small PNG of the top of the page, 1000 x 700 in 64 colours (the README's pictures, in
    docs/screenshots/, are copied from these)."""
    from PIL import Image

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    size = page.viewport_size
    page.set_viewport_size({"width": 1000, "height": 700})
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=path, full_page=False)
    if size is not None:
        page.set_viewport_size(size)
    with Image.open(path) as shot:
        shot.convert("RGB").quantize(colors=64).save(path, optimize=True)
    return path


AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"  # axe-core, vendored (vendor/VERSIONS)
# WCAG 2.0-2.2 A and AA, and axe's best practices (landmarks, one main, headings)
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]
# landmark rules are "moderate" in axe's scale; a page outside its landmarks fails here all the same
LANDMARK_RULES = {"region", "landmark-one-main", "landmark-unique", "landmark-no-duplicate-main"}


def accessibility_problems(page: Page) -> list[str]:
    """axe-core's violations in the page as it is now that a person would meet: every serious or
    critical one (labels, names, contrast, ARIA) and every landmark one, each with where it is."""
    page.add_script_tag(content=AXE.read_text())  # inline: no request, so the guard sees none
    found: list[dict[str, Any]] = page.evaluate(
        """async (tags) => {
          const result = await axe.run(document, {
            runOnly: { type: "tag", values: tags }, resultTypes: ["violations"],
          });
          return result.violations.map((v) => ({
            id: v.id, impact: v.impact, help: v.help,
            where: v.nodes.slice(0, 3).map((n) => n.target.join(" ")),
          }));
        }""",
        AXE_TAGS,
    )
    return [
        f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(v['where'])}"
        for v in found
        if v["impact"] in ("serious", "critical") or v["id"] in LANDMARK_RULES
    ]


def assert_accessible(page: Page) -> None:
    problems = accessibility_problems(page)
    assert not problems, f"{page.url}:\n" + "\n".join(problems)
