"""The demo: a coalition's life end to end on any chain, with a throwaway store, reported step by step."""

from __future__ import annotations

import json
import secrets
import sqlite3
import tempfile
from collections.abc import Callable
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from eth_account.signers.local import LocalAccount
from sqlalchemy import make_url

from api.context import Crm
from api.errors import CustomerIsErased, MalformedInput, NotAllowed
from api.evidence.verification import Outcome
from api.principal import Principal
from api.settings import Settings
from api.usecases.access import issue_token
from api.usecases.anchoring import anchor_now
from api.usecases.consent import give_consent, send_staged_consents, stage_consents, withdraw_consent
from api.usecases.customer_keys import register_keyed_customer, write_new_file
from api.usecases.customers import register_customer, show_customer
from api.usecases.decisions import disclose_decision, list_decisions, score, show_decision, verify_decision
from api.usecases.erasure import erase_customer
from api.usecases.imports import import_synthetic
from api.usecases.interactions import NewInteraction, record_interactions
from api.usecases.loyalty import PointsRequest, balance, balance_total, earn_points, reconcile, redeem_points
from api.usecases.models import train_model
from api.usecases.partners import positions, register_partner
from api.usecases.signing import customer_signs_binding, customer_signs_consent, customer_signs_redeem
from api.usecases.verification import verify
from ledger.backends import Backend, EthTesterBackend, RpcBackend
from ledger.clients import Action
from ledger.coalition import Coalition
from ledger.errors import LoyaltyInsufficientBalance
from offchain.models import CustomerCreate
from offchain.repositories import customers

Step = Callable[[str, str], None]
# delta's synthetic customers: enough for monthly training slices with churners and stayers in each
DEMO_CUSTOMERS = 150
DEMO_INTERACTIONS = 1800


@dataclass(frozen=True)
class Credentials:
    """How each of the three users signs in to the demo's pages: a partner's API key, and a keystore
    file with its passphrase for a customer (alice) and for the auditor."""

    partner: str  # whose API key `api_key` is
    api_key: str
    customer_key: Path
    auditor_key: Path
    passphrase: str  # of both keystore files


Then = Callable[[Crm, Credentials, "DemoReport"], None]


@dataclass
class DemoReport:
    steps: list[tuple[str, str]] = field(default_factory=list)
    positions: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # issued, redeemed, net
    outstanding: int = 0  # points members still hold: the positions sum to minus this
    summary: dict[str, object] = field(default_factory=dict)


def demo_backend(chain: str) -> Backend:
    """The chain a demo runs on: "memory" (in-process eth-tester) or a JSON-RPC URL."""
    if chain == "memory":
        return EthTesterBackend()
    if chain.startswith(("http://", "https://")):
        return RpcBackend(chain)
    raise MalformedInput(f"--chain: expected 'memory' or an http(s) JSON-RPC URL, got {chain!r}")


def run_demo(chain: Backend | str, on_step: Step | None = None, then: Then | None = None) -> DemoReport:
    """The demo on `chain` (a backend, or what `demo_backend` takes). With `then`, it is called once the
    demo is done, with the demo's `Crm` still open and a credential for each of the three users (the
    demo's home, and the keys in it, are thrown away when it returns)."""
    backend = demo_backend(chain) if isinstance(chain, str) else chain
    report = DemoReport()

    def step(what: str, outcome: str) -> None:
        report.steps.append((what, outcome))
        if on_step:
            on_step(what, outcome)

    accounts = backend.accounts
    acme, borealis, cafe, delta, auditor = accounts[:5]
    coalition = Coalition.deploy(backend, founders=[acme], deployer=acme)
    step("deploy the six contracts", f"chain {coalition.deployment.chain_id}; founding partner acme")

    consortium = coalition.consortium
    consortium.propose(acme, Action.ADMIT_PARTNER, borealis.address)
    step("acme proposes borealis", "1 of 1 partners voted: admitted")
    pending = consortium.propose(acme, Action.ADMIT_PARTNER, cafe.address)
    step(
        "acme proposes cafe", f"1 of 2 votes: {'admitted' if pending.executed else 'waiting for a majority'}"
    )
    consortium.vote(borealis, pending.proposal_id)
    admitted = consortium.is_partner(cafe.address)
    step("borealis votes for cafe", f"2 of 2 votes: {'admitted' if admitted else 'NOT admitted'}")
    consortium.decide([acme, borealis], Action.ADMIT_PARTNER, delta.address)
    consortium.decide([acme, borealis, cafe], Action.ADMIT_AUDITOR, auditor.address)
    step(
        "the partners vote in delta and an auditor",
        f"{len(consortium.partners())} partners, auditor admitted",
    )

    with tempfile.TemporaryDirectory(prefix="ledgercrm-demo-") as home:
        settings = Settings(environment="development", home=Path(home), batch_max_leaves=64)
        crm = Crm.open(settings, coalition)
        try:
            alice_key = _business(
                crm, (acme, borealis, cafe, delta), Principal.of_auditor(auditor.address), step, report
            )
            if then is not None:
                report.summary["blocks on chain"] = coalition.block_number()
                then(crm, hand_out(crm, Path(home), alice_key, auditor), report)
        finally:
            crm.close()
    report.summary["blocks on chain"] = coalition.block_number()
    return report


def _business(crm: Crm, signers: tuple, inspector: Principal, step: Step, report: DemoReport) -> LocalAccount:  # type: ignore[type-arg]
    names = ("acme", "borealis", "cafe", "delta")
    for name, signer in zip(names, signers, strict=True):
        register_partner(crm, name, signer)
    acme, borealis, cafe, delta = (Principal.of_partner(name) for name in names)
    operator = Principal.operator()  # this demo's home holds every partner's keys

    people = [
        CustomerCreate(name="Alice Quartermain", email="alice@example.org", country="GB"),
        CustomerCreate(name="Bruno Diaz", email="bruno@example.org", country="ES"),
        CustomerCreate(name="Chen Wei", email="chen@example.org", country="SG"),
    ]
    # a key of her own (in the CLI: `customer key new`, a keystore file); she signs its binding on her
    # side (`customer sign binding`), and acme registers her with that signature, never with her key
    alice_key: LocalAccount = Account.create()
    alice = register_keyed_customer(
        crm, acme, people[0], alice_key.address, customer_signs_binding(crm, alice_key)
    )
    bruno, chen = (register_customer(crm, acme, p) for p in people[1:])
    step(
        "acme registers and enrols three customers",
        f"member ids are random: 0x{alice.hex()[:12]}…, …; alice holds a key of her own",
    )
    give_consent(
        crm, acme, alice, "loyalty", signed=customer_signs_consent(crm, alice_key, alice, "acme", "loyalty")
    )
    for member in (bruno, chen):
        give_consent(crm, acme, member, "loyalty")  # no key: their home partner attests
    give_consent(
        crm,
        borealis,
        alice,
        "loyalty",
        signed=customer_signs_consent(crm, alice_key, alice, "borealis", "loyalty"),
    )
    step(
        "customers consent to the loyalty programme",
        "alice signs hers (to acme and borealis); acme attests bruno's and chen's; hashes on chain",
    )
    try:
        give_consent(crm, cafe, bruno, "loyalty")
        refused = "ACCEPTED"
    except NotAllowed:
        refused = "refused: only bruno's home partner attests for him"
    step("cafe tries to record consent for acme's customer bruno", refused)

    items = [
        NewInteraction(
            m, "purchase", {"invoice": f"A-{i}-{n}", "total": 20.0 + 7 * n}, external_key=f"A-{i}-{n}"
        )
        for i, m in enumerate((alice, bruno, chen))
        for n in range(5)
    ]
    items.append(NewInteraction(chen, "support_ticket", {"text": "my parcel never arrived"}))
    ids = record_interactions(crm, acme, items).recorded
    batches = [outcome for _, outcome in anchor_now(crm, acme).anchored]
    step(
        "acme records 16 interactions",
        f"anchored in {len(batches)} transaction(s), root 0x{batches[0].root.hex()[:16]}…",
    )

    earn_points(crm, acme, PointsRequest(alice, 1200, external_key="A-0-4"))
    redeem_points(
        crm,
        borealis,
        PointsRequest(alice, 500),
        signed=customer_signs_redeem(crm, alice_key, alice, "borealis", 500),
    )
    redeem_points(
        crm,
        delta,
        PointsRequest(alice, 200),
        signed=customer_signs_redeem(crm, alice_key, alice, "delta", 200),
    )
    step(
        "alice earns 1200 at acme, redeems 500 at borealis and 200 at delta (each signed by her)",
        f"balance {balance(crm, acme, alice)}",
    )
    try:
        redeem_points(crm, cafe, PointsRequest(alice, 100))
        unsigned = "ACCEPTED"
    except NotAllowed:
        unsigned = "refused: alice holds a key, so only her signature redeems"
    step("cafe tries to redeem alice's points without her signature", unsigned)
    try:
        redeem_points(
            crm,
            cafe,
            PointsRequest(alice, 10_000),
            signed=customer_signs_redeem(crm, alice_key, alice, "cafe", 10_000),
        )
    except LoyaltyInsufficientBalance as exc:
        step(
            "alice tries to redeem 10000 at cafe",
            f"refused by the contract: balance {exc.balance}, needed {exc.needed}",
        )

    _backdate_behind_the_systems_back(crm, ids[3])
    tampered = verify(crm, operator)
    found = [r for r in tampered.results if r.outcome is Outcome.TAMPERED]
    step(
        f"someone back-dates interaction {ids[3]} in the database",
        f"verify: {len(found)} tampered ({found[0].detail if found else 'not detected'})",
    )

    receipt, anchored = erase_customer(crm, acme, chen)
    try:
        show_customer(crm, acme, chen)
        erased_readable = "STILL READABLE"
    except CustomerIsErased:
        erased_readable = "unreadable"
    frozen = crm.coalition.members.member(chen).erased
    step(
        "chen asks to be erased",
        f"key deleted, {receipt.interactions_count} interactions {erased_readable}; "
        f"receipt anchored in batch {anchored.onchain_batch_id}; on chain: "
        + ("consents withdrawn, member frozen" if frozen else "NOT frozen"),
    )

    audit = verify(crm, inspector)
    proven = audit.counts[Outcome.PROVEN] + audit.counts[Outcome.ERASED]
    step(
        "the auditor verifies with no key at all",
        f"{len(audit.checks)} checks ran (not the content: that needs keys); {proven} leaves proven,"
        f" {len(audit.failures)} findings",
    )

    _decisions(crm, delta, inspector, step)

    final = verify(crm, operator)
    reconciled = reconcile(crm, operator)
    report.outstanding = balance_total(crm, operator)
    for position in positions(crm, operator):
        report.positions[position.name] = (position.issued, position.redeemed, position.net)
    counts = final.counts
    report.summary.update(
        {
            "partners": len(names),
            "customers": 3 + DEMO_CUSTOMERS,
            "decisions logged on chain": crm.coalition.decisions.decision_count(),
            "interactions verified": counts[Outcome.VERIFIED],
            "interactions tampered": counts[Outcome.TAMPERED],
            "interactions erased (leaf still proven)": counts[Outcome.ERASED],
            "points reconciled with the chain": "yes" if reconciled.ok else f"NO: {reconciled.mismatches}",
        }
    )
    return alice_key


def hand_out(crm: Crm, home: Path, customer: LocalAccount, auditor: LocalAccount) -> Credentials:
    """A credential for each user of the demo's pages: an API key of acme's, and the customer's and
    the auditor's keys as keystore files in `home` under one new passphrase (the files `customer key
    new` writes)."""
    passphrase = secrets.token_urlsafe(12)
    files = {}
    for name, account in (("alice", customer), ("auditor", auditor)):
        files[name] = home / f"{name}-key.json"
        write_new_file(files[name], (json.dumps(Account.encrypt(account.key, passphrase)) + "\n").encode())
    key = issue_token(crm, Principal.of_partner("acme")).key
    return Credentials("acme", key, files["alice"], files["auditor"], passphrase)


def _decisions(crm: Crm, delta: Principal, inspector: Principal, step: Step) -> None:
    """delta imports a year of synthetic customers with loyalty and profiling consent, trains a churn
    model, scores everyone (decisions on chain), shows one, has it checked by the auditor and reproduced
    with its keys; a customer who withdrew profiling consent gets no decision."""
    imported = import_synthetic(
        crm, delta, seed=3, customers=DEMO_CUSTOMERS, interactions=DEMO_INTERACTIONS, in_process=True
    )
    with crm.unit_of_work() as db:
        members = [c.member_id for c in customers.of_partner(db, crm.partner(db, "delta").id)]
    stage_consents(crm, delta, members, "profiling")
    send_staged_consents(crm, delta)
    withdrawn = members[0]
    withdraw_consent(crm, delta, withdrawn, "profiling")
    step(
        "delta imports synthetic customers",
        f"{imported.customers_new} customers, {imported.interactions_new} interactions; profiling consent "
        f"from all, then 0x{withdrawn.hex()[:12]}… withdraws it",
    )
    # the card's three-cut backtest takes minutes: `ledgercrm model train` makes it; the demo shows the rest
    trained = train_model(crm, delta, horizon_days=90, backtest=False)
    auc = trained.trained.card["metrics"]["EBM (registered)"]["auc"]
    step(
        "delta trains a churn model on its verified interactions",
        f"model {trained.model_id} registered on chain"
        f" (hash 0x{trained.trained.model.model_hash.hex()[:16]}…);"
        f" holdout AUC {auc['value']:.3f} [{auc['low']:.3f}, {auc['high']:.3f}]",
    )
    scored = score(crm, delta, model_id=trained.model_id)
    step(
        "delta scores every customer",
        f"{len(scored.decided)} decided and logged on chain, {scored.skipped_for_consent} skipped for"
        f" consent (the withdrawn one), {scored.no_inputs + scored.outside_population} not in the population",
    )
    lines = list_decisions(crm, delta)
    acted = next((line for line in lines if line.action != "none"), lines[0])
    shown = show_decision(crm, delta, acted.decision_id).explanation
    reasons = ", ".join(f"{r['feature']} {r['direction']}" for r in shown["reasons"])
    counterfactual = shown["counterfactual"]
    what_if = (
        " and ".join(f"{c['feature']} {c['from']:g} -> {c['to']:g}" for c in counterfactual["changes"])
        + f" would give {counterfactual['score']:.2f}"
        if counterfactual
        else "no actionable change flips it"
    )
    step(
        f"decision {acted.decision_id}",
        f"churn score {shown['score']:.2f}: {shown['action']}; reasons: {reasons}; counterfactual: {what_if}",
    )
    audit = verify_decision(crm, inspector, acted.decision_id)
    passed = [s.name for s in audit.steps if s.ok]
    step(
        "the auditor checks it with no key",
        f"{', '.join(passed)}: ok; not run: {', '.join(audit.not_run)} (they read personal data)",
    )
    disclosure = disclose_decision(crm, delta, acted.decision_id)
    disclosed = verify_decision(crm, inspector, acted.decision_id, disclosure=disclosure)
    step(
        "delta discloses that decision's explanation and its one key to the auditor",
        "the auditor reproduces score and explanation bit for bit"
        if disclosed.ok
        else "NOT reproduced: " + "; ".join(s.detail for s in disclosed.steps if not s.ok),
    )
    full = verify_decision(crm, Principal.operator(), acted.decision_id)
    step(
        "delta reproduces it from the chain down",
        "score, reasons and explanation reproduced bit for bit"
        if full.ok
        else "NOT reproduced: " + "; ".join(s.detail for s in full.steps if not s.ok),
    )
    again = score(crm, delta, members=[withdrawn], model_id=trained.model_id)
    step(
        "delta tries to score the customer who withdrew",
        "no decision: skipped for consent" if again.skipped_for_consent == 1 else "DECIDED",
    )


def _backdate_behind_the_systems_back(crm: Crm, interaction_id: int) -> None:
    """What someone with write access to the database file could do: move an interaction a year back,
    with plain SQL on the file, past every layer of the application."""
    path = make_url(crm.settings.data_url()).database
    assert path is not None  # the demo's store is always a SQLite file in its throwaway home
    with closing(sqlite3.connect(path)) as db, db:
        db.execute(
            "UPDATE interactions SET occurred_at ="
            " printf('%04d', substr(occurred_at, 1, 4) - 1) || substr(occurred_at, 5) WHERE id = ?",
            (interaction_id,),
        )
