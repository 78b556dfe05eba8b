"""The monitor between audits: it follows new heads, re-checks each one's consistency with the last it
saw, resumes from its own state after a restart, and names a history that differs from what it saw: a
chain rewound (snapshot and revert), rewritten at the same height, or another deployment."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.context import Crm
from api.evidence.recording import NewInteraction
from api.principal import Principal
from api.settings import Settings
from api.usecases.anchoring import anchor_now
from api.usecases.customers import register_customer
from api.usecases.interactions import record_interactions
from api.usecases.monitor import STATE_FILE, Line, MonitorState, load_state, poll, save_state, watch
from api.usecases.partners import register_partner
from ledger.coalition import Coalition
from ledger.merkle import LogAppend, leaf_hash
from offchain.models import CustomerCreate
from tests.ledger.logs import first_head

ACME = Principal.of_partner("acme")
BOREALIS = Principal.of_partner("borealis")


@pytest.fixture
def crm(coalition: Coalition, tmp_path: Path) -> Iterator[Crm]:
    crm = Crm.open(Settings(environment="development", home=tmp_path / "home", batch_max_leaves=8), coalition)
    register_partner(crm, "acme", coalition.chain.backend.accounts[0])
    register_partner(crm, "borealis", coalition.chain.backend.accounts[1])
    try:
        yield crm
    finally:
        crm.close()


def _anchor(crm: Crm, who: Principal, count: int, tag: str) -> None:
    member = register_customer(crm, who, CustomerCreate(name=f"Customer {tag}"))
    items = [NewInteraction(member, "visit", {"n": i, "tag": tag}) for i in range(count)]
    record_interactions(crm, who, items)
    anchor_now(crm, who)


def _texts(lines: list[Line]) -> tuple[list[str], list[str]]:
    return [line.text for line in lines if not line.finding], [line.text for line in lines if line.finding]


def test_the_monitor_follows_heads_checks_consistency_and_resumes(crm, tmp_path):
    coalition, folder = crm.coalition, tmp_path / "monitor"
    _anchor(crm, ACME, 5, "a")
    _anchor(crm, BOREALIS, 3, "b")
    seen: list[Line] = []
    assert watch(coalition, folder, seen.append, once=True) == 0
    notes, findings = _texts(seen)
    assert findings == [] and sum("consistent with its genesis leaf" in n for n in notes) == 2
    _anchor(crm, ACME, 20, "c")  # 3 heads at 8 leaves a batch
    seen.clear()
    assert watch(coalition, folder, seen.append, once=True) == 0  # a restart: from the state on disk
    notes, findings = _texts(seen)
    heads = [n for n in notes if n.startswith("head ")]
    assert findings == [] and len(heads) == 3 and all("consistent with head" in n for n in heads)
    assert [n for n in notes if n not in heads] == [n for n in notes if n.endswith(": 1 MemberEnrolled")]
    assert len(notes) == 4  # and the other events of the range, counted: the customer's enrolment
    state = load_state(folder, coalition)
    assert state.block == coalition.block_number()
    assert sum(len(h) for h in state.heads.values()) == 5
    assert (folder / STATE_FILE).stat().st_size < 4096  # a few hundred bytes a head
    seen.clear()
    assert watch(coalition, folder, seen.append, once=True) == 0 and seen == []  # nothing new


def test_a_rewound_chain_is_named_and_the_state_kept(crm, tmp_path):
    """anvil's (and eth-tester's) snapshot and revert: heads the monitor saw disappear; then the chain
    grows again to the same height with other heads. Both are named; the state still holds what was
    seen."""
    coalition, folder = crm.coalition, tmp_path / "monitor"
    backend = coalition.chain.backend
    _anchor(crm, ACME, 4, "a")
    assert watch(coalition, folder, lambda _: None, once=True) == 0
    snapshot = backend.snapshot()
    _anchor(crm, ACME, 4, "b")
    assert watch(coalition, folder, lambda _: None, once=True) == 0
    before = (folder / STATE_FILE).read_text()
    backend.revert(snapshot)
    lines: list[Line] = []
    assert watch(coalition, folder, lines.append, once=True) >= 1
    _, findings = _texts(lines)
    assert any("rewound" in f for f in findings) and any("not on the chain any more" in f for f in findings)
    assert (folder / STATE_FILE).read_text() == before
    # the same height again, with another history: the block read last is not the one seen
    state = load_state(folder, coalition)
    while coalition.block_number() < state.block:  # new blocks: enrolments, not anchors (the store
        register_customer(crm, BOREALIS, CustomerCreate(name="Filler"))  # keeps the reverted batches)
    lines.clear()
    watch(coalition, folder, lines.append, once=True)
    _, findings = _texts(lines)
    assert any(f"block {state.block} is now" in f and "rewritten" in f for f in findings), findings
    assert any("head" in f and "not on the chain any more" in f for f in findings)


def test_another_deployment_is_not_the_watched_one(crm, tmp_path):
    coalition, folder = crm.coalition, tmp_path / "monitor"
    _anchor(crm, ACME, 2, "a")
    assert watch(coalition, folder, lambda _: None, once=True) == 0
    backend = coalition.chain.backend
    other = Coalition.deploy(backend, founders=backend.accounts[:3])
    lines = poll(other, load_state(folder, coalition))
    assert [line.finding for line in lines] == [True]
    assert "another chain or deployment" in lines[0].text


def test_an_inconsistent_state_is_caught(crm, tmp_path):
    """A state whose last head of a partner is not the chain's: the chain's next head does not extend
    it, and the kept head is named as not on chain."""
    coalition, folder = crm.coalition, tmp_path / "monitor"
    _anchor(crm, ACME, 3, "a")
    assert watch(coalition, folder, lambda _: None, once=True) == 0
    state = load_state(folder, coalition)
    (kept,) = state.heads.values()
    kept[-1].root = bytes(32)
    save_state(folder, state)
    lines: list[Line] = []
    assert watch(coalition, folder, lines.append, once=True) == 1
    assert "not on the chain any more" in lines[0].text


def test_a_state_file_that_is_not_one_is_one_line(crm, tmp_path):
    folder = tmp_path / "monitor"
    folder.mkdir()
    (folder / STATE_FILE).write_text(json.dumps({"format": "x"}))
    from api.errors import InvalidInput

    with pytest.raises(InvalidInput, match="not a monitor's state"):
        load_state(folder, crm.coalition)
    assert MonitorState.from_json(MonitorState(1, "0x" + "00" * 20).to_json()).chain_id == 1


def test_heads_anchored_together_are_each_checked_against_the_one_before(crm, tmp_path):
    """`anchorMany` (the import sends four chunks' heads in one transaction): the monitor re-checks
    each head with the proof that transaction gave for it, from the head before it in the same call."""
    coalition, folder = crm.coalition, tmp_path / "monitor"
    partner = coalition.chain.backend.accounts[2]
    made = [first_head(coalition, partner, [leaf_hash(os.urandom(8)) for _ in range(3)])]
    for count in (5, 1, 2):
        made.append(LogAppend(made[-1].frontier, [leaf_hash(os.urandom(8)) for _ in range(count)]))
    first_id = coalition.anchor.batch_count()
    for group in (made[:3], made[3:]):  # three heads from the genesis leaf in one call, then one more
        heads = [(step.root, step.size, step.consistency_proof()) for step in group]
        coalition.chain.send(coalition.anchor.contract, coalition.anchor.prepare_anchor_many(partner, heads))
    seen: list[Line] = []
    assert watch(coalition, folder, seen.append, once=True) == 0, seen
    notes, findings = _texts(seen)
    assert findings == []
    assert [n.split(": ", 1)[1] for n in notes if n.startswith("head ")] == [
        "the partner's first head, consistent with its genesis leaf",
        f"consistent with head {first_id}",
        f"consistent with head {first_id + 1}",
        f"consistent with head {first_id + 2}",
    ]
