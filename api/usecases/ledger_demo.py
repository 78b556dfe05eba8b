"""The ledger demo: a coalition's life in a few steps, on any chain, reported step by step."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field

from ledger.backends import Backend
from ledger.clients import Action, ConsentStatus, Decision, purpose_id
from ledger.coalition import Coalition
from ledger.errors import LoyaltyInsufficientBalance, LoyaltyNotPartner
from ledger.merkle import MerkleTree, leaf_hash, verify_inclusion


@dataclass
class DemoReport:
    steps: list[tuple[str, str]] = field(default_factory=list)
    positions: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # name -> issued, redeemed, net
    contracts: dict[str, str] = field(default_factory=dict)
    chain_id: int = 0
    blocks: int = 0


def run_ledger_demo(backend: Backend, on_step: Callable[[str, str], None] | None = None) -> DemoReport:
    report = DemoReport()

    def step(what: str, outcome: str) -> None:
        report.steps.append((what, outcome))
        if on_step:
            on_step(what, outcome)

    accounts = backend.accounts
    names = {
        accounts[0].address: "Acme Retail",
        accounts[1].address: "Borealis Air",
        accounts[2].address: "Cafe Central",
    }
    newcomer, auditor = accounts[3], accounts[4]
    names[newcomer.address] = "Delta Books"

    coalition = Coalition.deploy(backend, founders=accounts[:3], deployer=accounts[0])
    report.contracts = dict(coalition.deployment.contracts)
    report.chain_id = coalition.deployment.chain_id
    step(
        "deploy five contracts", f"chain {report.chain_id}, founders: Acme Retail, Borealis Air, Cafe Central"
    )

    proposal = coalition.consortium.propose(accounts[0], Action.ADMIT_PARTNER, newcomer.address)
    step(
        "Acme proposes Delta Books as partner",
        f"proposal {proposal.proposal_id}: 1 of 3 votes, not yet admitted",
    )
    voted = coalition.consortium.vote(accounts[1], proposal.proposal_id)
    step("Borealis votes", f"2 of 3 votes: {'admitted' if voted.executed else 'still pending'}")
    coalition.consortium.decide(accounts[:3], Action.ADMIT_AUDITOR, auditor.address)
    step(
        "coalition admits an auditor",
        f"{auditor.address[:10]}... is auditor: {coalition.consortium.is_auditor(auditor.address)}",
    )

    # Member ids are random: nothing about the customer can be derived from them.
    alice = os.urandom(32)
    loyalty = purpose_id("loyalty")
    receipt = hashlib.sha256(json.dumps({"purpose": "loyalty", "legalBasis": "consent"}).encode()).digest()
    coalition.consent.record(accounts[0], alice, loyalty, ConsentStatus.GIVEN, receipt)
    step(
        "member 0x" + alice.hex()[:8] + "... consents to loyalty at Acme",
        f"valid: {coalition.consent.is_valid(alice, accounts[0].address, loyalty)}",
    )

    coalition.loyalty.earn(accounts[0], alice, 1200, b"invoice-1001".ljust(32, b"\x00"))
    coalition.loyalty.redeem(accounts[1], alice, 500, b"flight-upgrade".ljust(32, b"\x00"))
    coalition.loyalty.redeem(newcomer, alice, 200, b"book".ljust(32, b"\x00"))
    step(
        "earn 1200 at Acme, redeem 500 at Borealis and 200 at Delta",
        f"balance {coalition.loyalty.balance_of(alice)}",
    )
    try:
        coalition.loyalty.redeem(accounts[2], alice, 10_000)
    except LoyaltyInsufficientBalance as exc:
        step(
            "redeem 10000 at Cafe Central",
            f"refused: {type(exc).__name__}(balance={exc.balance}, needed={exc.needed})",
        )
    try:
        coalition.loyalty.earn(auditor, alice, 5)
    except LoyaltyNotPartner as exc:
        step("the auditor tries to issue points", f"refused: {type(exc).__name__}")

    interactions = [
        json.dumps({"kind": "purchase", "invoice": 1000 + i, "total": 10 * i}).encode() for i in range(1000)
    ]
    tree = MerkleTree.from_data(interactions)
    anchored = coalition.anchor.anchor(accounts[0], tree.root, tree.size)
    step(
        "anchor 1000 interactions in one transaction",
        f"batch {anchored.batch_id}, block {anchored.block_number}, root 0x{tree.root.hex()[:16]}...",
    )
    index = 637
    proof = tree.proof(index)
    in_python = verify_inclusion(leaf_hash(interactions[index]), index, tree.size, proof, tree.root)
    on_chain = coalition.anchor.verify_inclusion(
        anchored.batch_id, index, leaf_hash(interactions[index]), proof
    )
    step(
        f"verify interaction {index} ({len(proof)}-hash proof)",
        f"python: {in_python.ok}, contract: {on_chain}",
    )
    tampered = interactions[index].replace(b'"total": 6370', b'"total": 1')
    forged = coalition.anchor.verify_inclusion(anchored.batch_id, index, leaf_hash(tampered), proof)
    step("verify the same interaction edited afterwards", f"contract: {forged}")

    model_id = coalition.decisions.register_model(accounts[0], os.urandom(32), os.urandom(32), tree.root)
    coalition.decisions.record_decisions(
        accounts[0],
        model_id,
        [Decision(alice, tree.root, 1800, b"retain-offer".ljust(32, b"\x00"), os.urandom(32))],
    )
    step(
        "log an automated decision",
        f"model {model_id}, decisions logged: {coalition.decisions.decision_count()}",
    )

    for address, name in names.items():
        issued, redeemed = coalition.loyalty.issued_by(address), coalition.loyalty.redeemed_at(address)
        report.positions[name] = (issued, redeemed, coalition.loyalty.position_of(address))
    report.blocks = coalition.chain.w3.eth.block_number
    return report
