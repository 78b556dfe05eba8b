"""Evidence bundles: made in a partner's home, verified against the chain alone. A bundle of a populated
store holds no customer's personal data, verifies clean, and each way of tampering with it (a leaf
dropped or moved, a receipt edited, a proof against another head, a head of another deployment or chain,
a model file swapped, a disclosure of another decision) is named in the findings."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from api.context import Crm
from api.errors import InvalidInput, NotFound
from api.evidence.recording import NewInteraction
from api.evidence.verification import Outcome, verified_interactions
from api.principal import Principal
from api.settings import Settings
from api.usecases import audit
from api.usecases.anchoring import anchor_now
from api.usecases.consent import give_consent, send_staged_consents, stage_consents
from api.usecases.customers import register_customer, show_customer
from api.usecases.decisions import disclose_decision, score
from api.usecases.erasure import erase_customer
from api.usecases.interactions import record_interactions
from api.usecases.loyalty import PointsRequest, earn_points, redeem_points
from api.usecases.partners import register_partner
from ledger.coalition import Coalition
from offchain.models import CustomerCreate
from tests.fixtures.trained import TrainedHome, forked

ACME = Principal.of_partner("acme")
HOLDOUT = datetime(2024, 9, 1, tzinfo=UTC)
AS_OF = datetime(2024, 12, 1, tzinfo=UTC)
SECRET = "order for the blue teapot, gate code 4417"


def _crm(coalition: Coalition, home: Path) -> Crm:
    crm = Crm.open(Settings(environment="development", home=home, batch_max_leaves=64), coalition)
    register_partner(crm, "acme", coalition.chain.backend.accounts[0])
    register_partner(crm, "borealis", coalition.chain.backend.accounts[1])
    return crm


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, trained_home: TrainedHome) -> Iterator[dict[str, Any]]:
    """acme with synthetic customers and its registered model (the trained home, forked), decisions on
    chain, two customers of its own (Alice with an interaction, consent and points; Bob erased),
    everything anchored; and its bundle. On anvil: an auditor's node answers eth_getLogs at once,
    eth-tester scans every receipt."""
    with forked(trained_home, tmp_path_factory.mktemp("bundle") / "home", batch_max_leaves=64) as crm:
        yield _world(crm, trained_home.model_id, trained_home.members)


def _world(crm: Crm, model_id: int, members: list[bytes]) -> dict[str, Any]:
    stage_consents(crm, ACME, members[:40], "profiling")
    send_staged_consents(crm, ACME)
    decided = score(crm, ACME, members[:40], model_id=model_id, as_of=AS_OF).decided
    assert len(decided) >= 2
    alice = register_customer(
        crm,
        ACME,
        CustomerCreate(name="Alice Quartermain", email="alice.q@example.org", phone="+44 20 7946 0101"),
    )
    bob = register_customer(crm, ACME, CustomerCreate(name="Bob Underhill", email="bob.u@example.net"))
    record_interactions(crm, ACME, [NewInteraction(alice, "support_ticket", {"text": SECRET})])
    record_interactions(crm, ACME, [NewInteraction(bob, "support_ticket", {"text": "Bob's own words"})])
    give_consent(crm, ACME, alice, "loyalty")
    earn_points(crm, ACME, PointsRequest(alice, 120, "INV-A-1"))
    redeem_points(crm, ACME, PointsRequest(alice, 20, "RED-A-1"))
    anchor_now(crm, ACME)
    erase_customer(crm, ACME, bob)
    anchor_now(crm, ACME)
    disclosure = disclose_decision(crm, ACME, decided[0])
    bundle = audit.make_bundle(crm, ACME, disclosures=[disclosure])
    return {
        "crm": crm,
        "bundle": bundle,
        "alice": alice,
        "bob": bob,
        "members": members,
        "decided": decided,
        "disclosure": disclosure,
    }


def _verify(world: dict[str, Any], bundle: dict[str, Any]) -> audit.AuditReport:
    return audit.verify_bundle(world["crm"].coalition, bundle)


def _named(report: audit.AuditReport, *words: str) -> bool:
    return any(all(w in f"{f.record}: {f.detail}" for w in words) for f in report.findings)


def test_a_bundle_of_a_populated_store_verifies_against_the_chain(world):
    bundle = world["bundle"]
    report = _verify(world, bundle)
    assert report.ok, report.findings
    log = bundle["log"]
    size = world["crm"].coalition.anchor.head(world["crm"].signer("acme").address).size
    assert len(log["heads"]) >= 3 and len(log["leaves"]) == size - 1 > 1000  # leaf 0: the genesis
    assert [leaf["leaf_index"] for leaf in log["leaves"]] == list(range(1, size))
    assert [leaf["kind"] for leaf in log["leaves"]].count("erasure") == 1
    assert len(bundle["decisions"]) == len(world["decided"]) and len(bundle["models"]) == 1
    assert len(bundle["erasureReceipts"]) == 1 and bundle["pointEvents"] and bundle["consentReceipts"]
    checked = "\n".join(report.checked)
    assert "RFC 9162 inclusion proofs" in checked and f"every leaf 1..{size - 1:,} present" in checked
    assert "1 disclosures" in checked and "1 erasure receipts" in checked
    head = log["heads"][-1]
    origin, last, _ = audit.parse_checkpoint(head["checkpoint"])
    assert last == size and origin.startswith(f"ledgercrm/{world['crm'].coalition.chain.chain_id}/")
    assert head["transaction"].startswith("0x") and len(head["transaction"]) == 66


def test_a_bundle_holds_no_personal_data(world):
    """Every customer's name, e-mail, phone, address and number, searched for in the bundle's bytes, and
    every payload's text in all of it but the model (whose card has words of its own) and the disclosure
    the partner chose to add (an explanation: features and reasons): none is there."""
    crm, bundle = world["crm"], world["bundle"]
    raw = audit.dumps(bundle)
    rest = audit.dumps({k: v for k, v in bundle.items() if k not in ("models", "disclosures")})
    people: set[str] = {"Bob Underhill", "bob.u@example.net"}
    for member in world["members"] + [world["alice"]]:
        pii = show_customer(crm, ACME, member).pii
        people |= {str(pii[k]) for k in ("name", "email", "phone", "address", "external_ref") if pii.get(k)}
    payloads: set[str] = {SECRET, "Bob's own words", "INV-A-1", "RED-A-1"}  # + the partner's references
    for item in verified_interactions(crm, "acme", [world["alice"], *world["members"][:30]]):
        assert item.outcome is Outcome.VERIFIED and item.document is not None
        payloads |= {str(v) for v in item.document["data"].values() if isinstance(v, str)}
        payloads |= {str(item.document.get("externalKey") or "")}
    people = {s for s in people if len(s) >= 5}
    # a payload's single words ("account", "product") are the language's, not a customer's: the sentences
    # and the numbers are what would identify one
    payloads = {s for s in payloads if len(s) >= 7 and (" " in s or any(c.isdigit() for c in s))}
    assert len(people) > 200 and len(payloads) > 30

    def held(text: str, where: bytes) -> bool:
        return text.encode() in where or json.dumps(text)[1:-1].encode() in where

    assert sorted(s for s in people if held(s, raw)) == []
    assert sorted(s for s in payloads if held(s, rest)) == []


def test_a_bundle_of_one_member_holds_only_their_records(world):
    crm, alice = world["crm"], world["alice"]
    bundle = audit.make_bundle(crm, ACME, [alice])
    assert [leaf["kind"] for leaf in bundle["log"]["leaves"]] == ["interaction"]
    assert {e["member"] for e in bundle["pointEvents"]} == {"0x" + alice.hex()}
    assert len(bundle["consentReceipts"]) == 1 and bundle["decisions"] == []
    report = _verify(world, bundle)
    assert report.ok, report.findings
    with pytest.raises(NotFound):
        audit.make_bundle(crm, Principal.of_partner("borealis"), [alice])


def test_a_bundle_from_a_block_on_starts_at_the_heads_of_that_block(world):
    crm = world["crm"]
    heads = world["bundle"]["log"]["heads"]
    since = heads[-2]["block"]
    bundle = audit.make_bundle(crm, ACME, from_block=since)
    scoped = [h for h in bundle["log"]["heads"] if h["inScope"]]
    assert scoped and all(h["block"] >= since for h in scoped)
    assert bundle["log"]["leaves"][0]["leaf_index"] > 0
    report = _verify(world, bundle)
    assert report.ok, report.findings
    with pytest.raises(InvalidInput):
        audit.make_bundle(crm, ACME, from_block=-1)


def _drop_leaf(b: dict[str, Any]) -> None:
    del b["log"]["leaves"][7]


def _reorder_leaves(b: dict[str, Any]) -> None:
    leaves = b["log"]["leaves"]
    leaves[3], leaves[4] = leaves[4], leaves[3]


def _swap_leaf_hashes(b: dict[str, Any]) -> None:
    leaves = b["log"]["leaves"]
    leaves[3]["leaf_hash"], leaves[4]["leaf_hash"] = leaves[4]["leaf_hash"], leaves[3]["leaf_hash"]


def _edit_consent(b: dict[str, Any]) -> None:
    receipt = b["consentReceipts"][-1]
    receipt["receipt"] = receipt["receipt"].replace('"given"', '"withdrawn"')


def _edit_erasure(b: dict[str, Any]) -> None:
    receipt = b["erasureReceipts"][0]
    receipt["receipt"] = receipt["receipt"].replace('"interactions":1', '"interactions":0')


def _proof_against_another_head(b: dict[str, Any]) -> None:
    b["log"]["leaves"][0]["batchId"] = b["log"]["heads"][-1]["batchId"]


def _head_of_another_chain(b: dict[str, Any]) -> None:
    head = b["log"]["heads"][1]
    origin, size, root = audit.parse_checkpoint(head["checkpoint"])
    head["checkpoint"] = audit.checkpoint(origin.replace("ledgercrm/", "ledgercrm/999"), size, root)


def _another_chain_id(b: dict[str, Any]) -> None:
    b["deployment"]["chainId"] = 999


def _swap_model(b: dict[str, Any]) -> None:
    model = json.loads(b["models"][0]["model"])
    model["intercept"] = float(model.get("intercept", 0.0)) + 0.25
    b["models"][0]["model"] = json.dumps(model, separators=(",", ":"))


def _disclosure_of_another_decision(b: dict[str, Any]) -> None:
    b["disclosures"][0]["decisionId"] = b["decisions"][1]["decisionId"]


def _edit_decision(b: dict[str, Any]) -> None:
    b["decisions"][0]["scoreBps"] += 1


def _edit_point_event(b: dict[str, Any]) -> None:
    b["pointEvents"][-1]["amount"] += 100


def _drop_genesis_proof(b: dict[str, Any]) -> None:
    assert b["log"]["consistency"][0]["tree_size_1"] == 1
    del b["log"]["consistency"][0]


def _drop_head(b: dict[str, Any]) -> None:
    del b["log"]["heads"][1]


TAMPERING: list[tuple[str, Callable[[dict[str, Any]], None], tuple[str, ...]]] = [
    ("a dropped leaf", _drop_leaf, ("leaf 8 of acme", "leaves it out")),
    ("reordered leaves", _reorder_leaves, ("leaf 4 of acme", "out of order")),
    ("two leaves' hashes swapped", _swap_leaf_hashes, ("leaf 5 of acme", "inclusion proof", "fails")),
    ("an edited consent receipt", _edit_consent, ("consent receipt", "no consent", "receipt's hash")),
    ("an edited erasure receipt", _edit_erasure, ("erasure receipt", "not leaf")),
    ("a proof against another head", _proof_against_another_head, ("leaf 1 of acme", "not this one")),
    ("a head of another chain", _head_of_another_chain, ("head", "another deployment or chain")),
    ("another chain id", _another_chain_id, ("deployment", "chain id 999")),
    ("a model file swapped", _swap_model, ("model", "another model file")),
    (
        "a disclosure of another decision",
        _disclosure_of_another_decision,
        ("disclosure 0", "not the one committed"),
    ),
    ("an edited decision record", _edit_decision, ("decision", "differs from the chain's event in: score")),
    ("an edited point event", _edit_point_event, ("point event", "matches no event on chain")),
    ("a head left out", _drop_head, ("head", "leaves it out")),
    (
        "no proof from the genesis leaf",
        _drop_genesis_proof,
        ("the genesis leaf -> head", "no consistency proof"),
    ),
]


@pytest.mark.parametrize(("what", "tamper", "words"), TAMPERING, ids=[t[0] for t in TAMPERING])
def test_a_tampered_bundle_is_named_in_the_findings(world, what, tamper, words):
    bundle = copy.deepcopy(world["bundle"])
    tamper(bundle)
    report = _verify(world, bundle)
    assert not report.ok, what
    assert _named(report, *words), report.findings


def test_a_bundle_made_on_another_chain_is_refused_and_one_made_before_bundles_said_is_checked(world):
    """Which chain: the block the coalition was deployed in, by hash. A bundle of another chain (a twin
    deployment: same chain id and addresses, tests/api/test_cli_audit.py) is one finding, and nothing in
    it is checked against a chain it was not made on; a bundle written before bundles carried the hash
    is checked against the auditor's node as before, and says so."""
    deployment = world["crm"].coalition.deployment
    stated = world["bundle"]["deployment"]
    assert (stated["deployedAtBlock"], stated["deployedAtBlockHash"]) == (
        deployment.block_number,
        deployment.block_hash,
    )
    bundle = copy.deepcopy(world["bundle"])
    bundle["deployment"]["deployedAtBlockHash"] = "0x" + "5a" * 32
    report = _verify(world, bundle)
    assert [(f.record, f.detail) for f in report.findings] == [
        (
            "deployment",
            f"the bundle was made on another chain: its block {deployment.block_number} is 0x{'5a' * 32},"
            f" your node's block {deployment.block_number} is {deployment.block_hash}: nothing else in it"
            " was checked",
        )
    ]
    assert report.checked == []
    bundle = copy.deepcopy(world["bundle"])
    del bundle["deployment"]["deployedAtBlockHash"]
    report = _verify(world, bundle)
    assert report.ok, report.findings
    assert "the bundle does not say which chain it was made on" in report.checked[0]


def test_a_swapped_model_is_one_finding_and_its_decisions_one_more(world):
    bundle = copy.deepcopy(world["bundle"])
    _swap_model(bundle)
    report = _verify(world, bundle)
    records = [f.record for f in report.findings]
    model_id = bundle["models"][0]["modelId"]
    assert records == [f"model {model_id}", f"decisions of model {model_id}", "disclosure 0 (decision "
                       f"{bundle['disclosures'][0]['decisionId']})"]  # fmt: skip
    assert f"{len(bundle['decisions'])} decisions" in report.findings[1].detail


def test_a_tampered_shared_node_is_one_finding_naming_it_and_the_leaves_it_breaks(world):
    """Leaf 1's third path node is the subtree of leaves 4..7, which leaves 1..3 use (leaf 0, the
    genesis, is in no bundle): forged, it breaks those three proofs, and the proofs of leaves 4..7, which
    pass through that subtree, show which node it is."""
    bundle = copy.deepcopy(world["bundle"])
    first = bundle["log"]["leaves"][0]
    assert first["leaf_index"] == 1 and first["inclusion_path"][:3] == [0, 1, 2]  # nodes in order of use
    head = next(h for h in bundle["log"]["heads"] if h["batchId"] == first["batchId"])
    head["nodes"][2] = audit.b64(bytes(32))
    report = _verify(world, bundle)
    assert [f.record for f in report.findings] == [f"node 2 of head {head['batchId']} of acme"]
    assert "not the hash of leaves 4..7" in report.findings[0].detail
    assert "the 3 leaves that use it fail (leaves 1..3)" in report.findings[0].detail


def test_a_leaf_that_names_no_node_of_its_head_is_named(world):
    bundle = copy.deepcopy(world["bundle"])
    leaf = bundle["log"]["leaves"][5]
    leaf["inclusion_path"][0] = 10**6
    leaf = bundle["log"]["leaves"][6]
    leaf["inclusion_path"] = "0,1,2"
    report = _verify(world, bundle)
    assert _named(report, "leaf 6 of acme", "names node 1000000 of head")
    assert _named(report, "leaf 7 of acme", "not a list of positions")
    assert len(report.findings) == 2


def test_a_bundle_of_another_deployment_fails_on_ours(world, tmp_path):
    """A genuine bundle of a second deployment on the same chain (its own contracts, its own partner
    log): its deployment and every head are named, not taken for ours."""
    backend = world["crm"].coalition.chain.backend
    other = Coalition.deploy(backend, founders=backend.accounts[:3])
    crm = _crm(other, tmp_path)
    try:
        member = register_customer(crm, ACME, CustomerCreate(name="Carol Other"))
        record_interactions(crm, ACME, [NewInteraction(member, "support_ticket", {"text": "elsewhere"})])
        anchor_now(crm, ACME)
        foreign = audit.make_bundle(crm, ACME)
        assert audit.verify_bundle(other, foreign).ok
        report = _verify(world, foreign)
        assert _named(report, "deployment", "InteractionAnchor")
        assert _named(report, "log of acme", "origin")
        assert _named(report, "head", "another deployment or chain")
    finally:
        crm.close()


def test_a_bundle_file_round_trips_plain_and_compressed(world, tmp_path):
    for name in ("b.json", "b.json.gz"):
        path = tmp_path / name
        size = audit.write_bundle(world["bundle"], path)
        assert size == path.stat().st_size
        assert audit.read_bundle(path) == json.loads(audit.dumps(world["bundle"]))
        with pytest.raises(InvalidInput, match="exists"):
            audit.write_bundle(world["bundle"], path)
    (tmp_path / "x.json").write_text('{"format": "something else"}')
    with pytest.raises(InvalidInput, match="not an evidence bundle"):
        audit.read_bundle(tmp_path / "x.json")
    for version in ("v1", "v3"):  # v1 wrote every leaf's path out whole; v3 is a release not yet made
        (tmp_path / f"{version}.json").write_text(
            json.dumps({**world["bundle"], "format": f"ledgercrm/evidence-bundle/{version}"})
        )
        with pytest.raises(InvalidInput, match=f"format 'ledgercrm/evidence-bundle/{version}', which this"):
            audit.read_bundle(tmp_path / f"{version}.json")
    report = _verify(world, {**world["bundle"], "format": "ledgercrm/evidence-bundle/v1"})
    assert [f.record for f in report.findings] == ["bundle"] and "does not read" in report.findings[0].detail
    (tmp_path / "y.json").write_bytes(b"\x1f\x8b broken")
    with pytest.raises(InvalidInput, match="not an evidence bundle"):
        audit.read_bundle(tmp_path / "y.json")
