"""`anchorMany`: several of a partner's heads in one transaction, each checked as `anchor` checks it,
all or nothing (an import sends four chunks' heads in one block: issue #32). The hostile cases are
refused by name and leave the chain's heads as they were; run on eth-tester and on anvil."""

from __future__ import annotations

import os

import pytest

from api.messages import describe
from ledger import errors
from ledger.clients.anchor import MAX_GROWTH, MAX_HEADS_PER_CALL
from ledger.coalition import Coalition
from ledger.merkle import LogAppend, leaf_hash
from tests.ledger.logs import first_head


def leaves(count: int) -> list[bytes]:
    return [leaf_hash(os.urandom(40)) for _ in range(count)]


def steps(coalition: Coalition, partner, *counts: int) -> list[LogAppend]:
    """Consecutive heads of the partner's log from its genesis leaf, `counts` new leaves each."""
    made = [first_head(coalition, partner, leaves(counts[0]))]
    for count in counts[1:]:
        made.append(LogAppend(made[-1].frontier, leaves(count)))
    return made


def heads(made: list[LogAppend]) -> list[tuple[bytes, int, list[bytes]]]:
    return [(step.root, step.size, step.consistency_proof()) for step in made]


def send(coalition: Coalition, partner, made):
    return coalition.chain.send(
        coalition.anchor.contract, coalition.anchor.prepare_anchor_many(partner, heads(made))
    )


def test_heads_anchored_together_are_each_a_head_of_their_own(coalition):
    a = coalition.chain.backend.accounts
    made = steps(coalition, a[0], 3, 5, 1, 7)
    before = coalition.anchor.batch_count()
    mined = send(coalition, a[0], made)
    events = [e["args"] for e in mined.events_named("BatchAnchored")]
    assert [e["batchId"] for e in events] == list(range(before, before + 4))  # consecutive, in order
    assert [(e["root"], e["size"], e["previousSize"]) for e in events] == [
        (step.root, step.size, step.old.size) for step in made
    ]
    assert coalition.anchor.onchain_id(mined) == before
    for batch_id, step in zip(range(before, before + 4), made, strict=True):
        info = coalition.anchor.batch(batch_id)
        assert (info.root, info.size, info.partner, info.block_number) == (
            step.root,
            step.size,
            a[0].address,
            mined.block_number,
        )
    assert coalition.anchor.head(a[0].address).size == made[-1].size
    # and the log goes on with a head of its own, consistent with the last of them
    nxt = LogAppend(made[-1].frontier, leaves(2))
    coalition.anchor.anchor(a[0], nxt.root, nxt.size, nxt.consistency_proof())
    assert coalition.anchor.head(a[0].address).size == nxt.size


def test_one_bad_head_among_many_refuses_them_all_by_name(coalition):
    """A partner slips a head that does not extend the one before it (a rewritten history), a root
    already anchored, or a head of another partner's log among good ones: the whole call reverts with
    that head's error, and the chain's head stays where it was."""
    a = coalition.chain.backend.accounts
    good = steps(coalition, a[1], 2, 2, 2)
    forged = LogAppend(good[0].frontier, leaves(4))  # from head 1, not head 2: a fork of the log
    with pytest.raises(errors.AnchorInconsistent):
        coalition.chain.send(
            coalition.anchor.contract,
            coalition.anchor.prepare_anchor_many(
                a[1], [*heads(good[:2]), (forged.root, forged.size, good[2].consistency_proof())]
            ),
        )
    assert coalition.anchor.head(a[1].address).size == 1  # nothing anchored, not even the good two
    with pytest.raises(errors.AnchorRootAlreadyAnchored):  # the same root twice in one call
        coalition.chain.send(
            coalition.anchor.contract,
            coalition.anchor.prepare_anchor_many(a[1], [*heads(good[:2]), heads(good[1:2])[0]]),
        )
    other = steps(coalition, a[2], 3)
    with pytest.raises(errors.AnchorNotOwnLog):  # another partner's first head, sent by a[1]
        send(coalition, a[1], [other[0], good[0]])
    assert coalition.anchor.head(a[1].address).size == 1
    send(coalition, a[1], good)  # the honest call goes through after
    assert coalition.anchor.head(a[1].address).size == good[-1].size


def test_anchor_many_is_for_partners_and_takes_matching_lists_of_1_to_32(coalition):
    a = coalition.chain.backend.accounts
    stranger = a[5]
    made = steps(coalition, a[0], 1, 1)
    with pytest.raises(errors.AnchorNotPartner):
        send(coalition, stranger, made)
    fn = coalition.anchor.contract.functions.anchorMany
    root, size, proof = heads(made[:1])[0]
    for roots, sizes, proofs in (
        ([], [], []),
        ([root], [size, size], [proof]),
        ([root], [size], []),
        (
            [root] * (MAX_HEADS_PER_CALL + 1),
            [size] * (MAX_HEADS_PER_CALL + 1),
            [proof] * (MAX_HEADS_PER_CALL + 1),
        ),
    ):
        with pytest.raises(errors.AnchorHeadsMalformed) as raised:
            coalition.chain.send(
                coalition.anchor.contract,
                coalition.chain.prepare(fn(roots, sizes, proofs), a[0], gas=2_000_000),
            )
        assert (raised.value.roots, raised.value.sizes, raised.value.proofs) == (
            len(roots),
            len(sizes),
            len(proofs),
        )
    assert (
        coalition.chain.call(coalition.anchor.contract.functions.MAX_HEADS_PER_CALL()) == MAX_HEADS_PER_CALL
    )
    assert coalition.anchor.head(a[0].address).size == 1


def test_heads_out_of_order_a_zero_root_or_growth_over_the_cap_among_many_are_refused_by_name(coalition):
    """Each later head is checked against the one before it in the same call, not against the chain's
    head when the call began: a head that goes back, stays, has no root or grows by more than the cap
    after a good one refuses the whole call, by name and in words."""
    a = coalition.chain.backend.accounts
    good = steps(coalition, a[2], 4, 4)
    first, second = heads(good)
    for bad, refusal in (
        ((first[0], first[1], []), errors.AnchorRootAlreadyAnchored),  # the first head again
        ((second[0], first[1], second[2]), errors.AnchorNotGrowing),  # the second root at the first size
        ((os.urandom(32), first[1] - 1, []), errors.AnchorNotGrowing),  # back before the first head
        ((bytes(32), second[1], second[2]), errors.AnchorZeroRoot),
        ((os.urandom(32), first[1] + MAX_GROWTH + 1, []), errors.AnchorGrowthAboveCap),
    ):
        with pytest.raises(refusal) as raised:
            coalition.chain.send(
                coalition.anchor.contract, coalition.anchor.prepare_anchor_many(a[2], [first, bad])
            )
        assert describe(raised.value).startswith("refused by the chain: ")
    assert coalition.anchor.head(a[2].address).size == 1
    with pytest.raises(errors.AnchorGrowthAboveCap) as raised:
        coalition.chain.send(
            coalition.anchor.contract,
            coalition.anchor.prepare_anchor_many(
                a[2], [first, (os.urandom(32), first[1] + MAX_GROWTH + 1, [])]
            ),
        )
    assert (raised.value.headSize, raised.value.cap) == (
        first[1],
        MAX_GROWTH,
    )  # against the call's first head
    assert "got 0 roots, 1 sizes and 0 proofs" in describe(
        errors.AnchorHeadsMalformed(roots=0, sizes=1, proofs=0)
    )


def test_the_most_heads_one_call_takes_go_through_within_the_clients_gas(coalition):
    a = coalition.chain.backend.accounts
    made = steps(coalition, a[0], *([1] * MAX_HEADS_PER_CALL))
    before = coalition.anchor.batch_count()
    mined = send(coalition, a[0], made)
    assert len(mined.events_named("BatchAnchored")) == MAX_HEADS_PER_CALL
    assert coalition.anchor.batch(before + MAX_HEADS_PER_CALL - 1).root == made[-1].root
    with pytest.raises(ValueError, match="1 to 32 heads"):  # one more is refused before it is signed
        coalition.anchor.prepare_anchor_many(a[0], heads(steps(coalition, a[0], *([1] * 33))))
