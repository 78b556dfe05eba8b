"""The ledger layer's behaviour, run identically against eth-tester (in process) and anvil (JSON-RPC).

Every test starts from the same deployment (partners = accounts 0, 1, 2) and is rolled back after.
"""

import json
import os
from pathlib import Path

import pytest
from eth_account import Account
from starlette.requests import Request

from api.http.problems import from_exception
from api.messages import describe
from ledger import errors
from ledger.backends import RpcBackend
from ledger.clients import Action, ConsentStatus, Decision, Role, purpose_id
from ledger.clients.anchor import Head
from ledger.coalition import Coalition
from ledger.deployment import Deployment
from ledger.errors import DeploymentMismatch
from ledger.merkle import LogAppend, MerkleTree, leaf_hash
from tests.ledger.logs import anchor_first, first_head, genesis
from tests.ledger.members import attest, customer, enrol, signed_consent

VECTORS = json.loads((Path(__file__).parent / "vectors" / "rfc6962.json").read_text())
LOYALTY = purpose_id("loyalty")


def member() -> bytes:
    return os.urandom(32)


def now(coalition: Coalition) -> int:
    return int(coalition.chain.w3.eth.get_block("latest")["timestamp"])


class TestEventLogs:
    def test_a_history_read_a_window_of_blocks_at_a_time_is_the_whole_history(self, coalition, monkeypatch):
        """Windows of a block or two, halved and doubled as the answers go, give every event exactly
        once and in order: the same list as one eth_getLogs over the whole range."""
        import ledger.logwindows

        a = coalition.chain.backend.accounts
        for _ in range(3):  # enrolments (and consents) in blocks of their own
            enrol(coalition, a[0], 2)
        address = coalition.members.address
        monkeypatch.setattr(ledger.logwindows, "LOG_RANGE_MAX", 1 << 30)
        monkeypatch.setattr(ledger.logwindows, "LOG_WINDOW_FIRST", 1 << 30)  # one answer
        whole = coalition.chain.raw_logs({"address": address, "fromBlock": 0, "toBlock": "latest"})
        assert len(whole) >= 6
        monkeypatch.setattr(ledger.logwindows, "LOG_WINDOW_FIRST", 1)
        monkeypatch.setattr(ledger.logwindows, "LOG_WINDOW_EVENTS", 1)  # every answer of 2+ events halves
        windowed = coalition.chain.raw_logs({"address": address, "fromBlock": 0, "toBlock": "latest"})
        assert windowed == whole
        middle = whole[len(whole) // 2].block_number
        part = coalition.chain.raw_logs({"address": address, "fromBlock": middle, "toBlock": middle})
        assert part == [log for log in whole if log.block_number == middle]
        empty = {"address": address, "fromBlock": middle + 1, "toBlock": middle}
        assert coalition.chain.raw_logs(empty) == []


class TestNonces:
    def test_a_transaction_whose_nonce_another_took_is_refused_by_name_and_said_in_words(self, coalition):
        """Two transactions signed from one account before either is sent take the same nonce (two
        senders of one partner, one in another process): the second is refused as NonceTaken, never as
        the node's raw "nonce too low" / "Invalid transaction nonce", and nothing of it happens."""
        sender = coalition.chain.backend.accounts[0]
        decisions = coalition.decisions
        before = decisions.model_count()

        def register(n: int):
            fn = decisions.contract.functions.registerModel(bytes([n]) * 32, bytes([n]) * 32, bytes([n]) * 32)
            return coalition.chain.prepare(fn, sender)

        first, second = register(1), register(2)
        coalition.chain.send(decisions.contract, first)
        with pytest.raises(errors.NonceTaken) as refused:
            coalition.chain.broadcast(second)
        said = describe(refused.value)
        assert said.startswith("another sender used the partner's account") and "nonce" not in said
        assert decisions.model_count() == before + 1
        # over HTTP: 409 busy with those words, not 503 "the chain is not answering" (it answered)
        request = Request({"type": "http", "method": "POST", "path": "/v1/points/earn", "headers": []})
        answer = from_exception(refused.value, request)
        assert answer.status_code == 409
        assert json.loads(bytes(answer.body))["detail"] == said


class TestConsortium:
    def test_founders_are_the_partners(self, coalition):
        accounts = coalition.chain.backend.accounts
        assert coalition.consortium.partners() == [a.address for a in accounts[:3]]
        assert coalition.consortium.role_of(accounts[0].address) is Role.PARTNER
        assert coalition.consortium.role_of(accounts[5].address) is Role.NONE

    def test_admission_needs_a_strict_majority(self, coalition):
        a = coalition.chain.backend.accounts
        created = coalition.consortium.propose(a[0], Action.ADMIT_PARTNER, a[3].address)
        assert not created.executed  # 1 of 3 is no majority
        assert created.tx.event("ProposalCreated")["args"]["account"] == a[3].address
        assert not coalition.consortium.is_partner(a[3].address)

        voted = coalition.consortium.vote(a[1], created.proposal_id)
        assert voted.executed  # 2 of 3
        admitted = voted.tx.event("MemberAdmitted")["args"]
        assert (admitted["account"], admitted["role"]) == (a[3].address, Role.PARTNER)
        assert coalition.consortium.is_partner(a[3].address)
        assert coalition.consortium.proposal(created.proposal_id).executed

    def test_auditor_is_a_member_without_partner_rights(self, coalition):
        a = coalition.chain.backend.accounts
        coalition.consortium.decide(a[:3], Action.ADMIT_AUDITOR, a[4].address)
        assert coalition.consortium.is_auditor(a[4].address)
        assert not coalition.consortium.is_partner(a[4].address)
        with pytest.raises(errors.LoyaltyNotPartner) as raised:
            coalition.loyalty.earn(a[4], member(), 10)
        assert raised.value.account == a[4].address

    def test_voting_errors_are_named(self, coalition):
        a = coalition.chain.backend.accounts
        with pytest.raises(errors.ConsortiumNotPartner):
            coalition.consortium.propose(a[5], Action.ADMIT_PARTNER, a[5].address)
        created = coalition.consortium.propose(a[0], Action.ADMIT_PARTNER, a[3].address)
        with pytest.raises(errors.ConsortiumAlreadyVoted) as raised:
            coalition.consortium.vote(a[0], created.proposal_id)
        assert (raised.value.proposalId, raised.value.voter) == (created.proposal_id, a[0].address)
        with pytest.raises(errors.ConsortiumUnknownProposal):
            coalition.consortium.vote(a[1], 99)
        with pytest.raises(errors.ConsortiumAlreadyMember) as already:
            coalition.consortium.propose(a[0], Action.ADMIT_PARTNER, a[1].address)
        assert already.value.role == Role.PARTNER
        with pytest.raises(errors.ConsortiumInvalidAction):
            coalition.consortium.propose(a[0], 7, a[6].address)
        with pytest.raises(errors.ConsortiumNotMember):
            coalition.consortium.propose(a[0], Action.REMOVE_MEMBER, a[6].address)
        coalition.consortium.vote(a[1], created.proposal_id)
        with pytest.raises(errors.ConsortiumProposalClosed):
            coalition.consortium.vote(a[2], created.proposal_id)

    def test_removed_partner_loses_every_right_at_once(self, coalition):
        a = coalition.chain.backend.accounts
        coalition.consortium.decide(a[:3], Action.ADMIT_PARTNER, a[3].address)
        m = customer(coalition, a[3])
        coalition.loyalty.earn(a[3], m, 50)
        removal = coalition.consortium.decide(a[:3], Action.REMOVE_MEMBER, a[3].address)
        assert removal.tx.event("MemberRemoved")["args"]["account"] == a[3].address
        assert a[3].address not in coalition.consortium.partners()

        with pytest.raises(errors.LoyaltyNotPartner):
            coalition.loyalty.earn(a[3], m, 1)
        with pytest.raises(errors.LoyaltyNotPartner):
            coalition.loyalty.redeem(a[3], m, 1)
        with pytest.raises(errors.ConsentNotPartner):
            coalition.consent.record(a[3], m, LOYALTY, ConsentStatus.GIVEN, member())
        with pytest.raises(errors.AnchorNotPartner):
            coalition.anchor.anchor(a[3], member(), 1)
        with pytest.raises(errors.DecisionNotPartner):
            coalition.decisions.register_model(a[3], member(), member(), member())
        with pytest.raises(errors.ConsortiumNotPartner):
            coalition.consortium.propose(a[3], Action.ADMIT_PARTNER, a[7].address)
        assert coalition.loyalty.balance_of(m) == 50  # what it issued stays issued
        # its attested consents stop counting from its removal
        assert not coalition.consent.is_valid(m, a[3].address, LOYALTY)

    def test_a_removed_partners_vote_stops_counting(self, coalition):
        a = coalition.chain.backend.accounts
        coalition.consortium.decide(a[:3], Action.ADMIT_PARTNER, a[3].address)  # 4 partners now
        pending = coalition.consortium.propose(a[3], Action.ADMIT_AUDITOR, a[8].address)
        coalition.consortium.vote(a[0], pending.proposal_id)  # 2 of 4: not yet
        coalition.consortium.decide(a[:3], Action.REMOVE_MEMBER, a[3].address)  # 3 partners left
        assert coalition.consortium.proposal(pending.proposal_id).votes == 1  # a[3]'s vote is gone
        with pytest.raises(errors.ConsortiumQuorumNotReached) as raised:
            coalition.consortium.execute(a[0], pending.proposal_id)
        assert (raised.value.votes, raised.value.needed) == (1, 2)
        assert coalition.consortium.vote(a[1], pending.proposal_id).executed
        assert coalition.consortium.is_auditor(a[8].address)


class TestLoyaltyPoints:
    def test_earn_here_redeem_there_with_settlement_positions(self, coalition):
        a = coalition.chain.backend.accounts
        key = Account.create()
        (m,) = enrol(coalition, a[0], signers=[key])
        signed_consent(coalition, a[0], key, m, a[0].address)
        ref = b"order-1".ljust(32, b"\x00")
        earned = coalition.loyalty.earn(a[0], m, 500, ref).event("PointsEarned")["args"]
        assert (earned["member"], earned["partner"], earned["amount"], earned["ref"]) == (
            m,
            a[0].address,
            500,
            ref,
        )
        auth = coalition.members.authorize_redeem(key, m, a[1].address, 200, bytes(32))
        redeemed = coalition.loyalty.redeem_signed(a[1], m, 200, bytes(32), auth).event("PointsRedeemed")[
            "args"
        ]
        assert (redeemed["partner"], redeemed["amount"]) == (a[1].address, 200)
        assert coalition.loyalty.balance_of(m) == 300
        assert coalition.loyalty.issued_by(a[0].address) == 500
        assert coalition.loyalty.redeemed_at(a[1].address) == 200
        assert coalition.loyalty.position_of(a[0].address) == -500
        assert coalition.loyalty.position_of(a[1].address) == 200
        assert coalition.loyalty.total_supply() == 300

    def test_cannot_redeem_more_than_the_balance(self, coalition):
        a = coalition.chain.backend.accounts
        m = customer(coalition, a[0])
        coalition.loyalty.earn(a[0], m, 10)
        with pytest.raises(errors.LoyaltyInsufficientBalance) as raised:
            coalition.loyalty.redeem(a[0], m, 11)
        assert (raised.value.member, raised.value.balance, raised.value.needed) == (m, 10, 11)
        assert coalition.loyalty.balance_of(m) == 10

    def test_bad_amounts_and_members_are_refused(self, coalition):
        a = coalition.chain.backend.accounts
        with pytest.raises(errors.LoyaltyZeroAmount):
            coalition.loyalty.earn(a[0], customer(coalition, a[0]), 0)
        with pytest.raises(errors.LoyaltyInvalidMember):
            coalition.loyalty.earn(a[0], bytes(32), 5)
        with pytest.raises(errors.LoyaltyNotPartner):
            coalition.loyalty.earn(a[5], member(), 5)
        with pytest.raises(errors.LoyaltyNotPartner):
            coalition.loyalty.redeem(a[5], member(), 5)

    def test_earn_batch_is_one_transaction_and_all_or_nothing(self, coalition):
        a = coalition.chain.backend.accounts
        members = enrol(coalition, a[0], 100)
        refs = [i.to_bytes(32, "big") for i in range(100)]
        tx = coalition.loyalty.earn_batch(a[0], members, list(range(1, 101)), refs)
        assert len(tx.events_named("PointsEarned")) == 100
        assert [coalition.loyalty.balance_of(m) for m in members[:3]] == [1, 2, 3]

        block = coalition.chain.w3.eth.block_number
        with pytest.raises(errors.LoyaltyZeroAmount):
            coalition.loyalty.earn_batch(a[0], members[:3], [5, 0, 5], refs[:3])
        with pytest.raises(errors.LoyaltyLengthMismatch):
            coalition.loyalty.earn_batch(a[0], members[:3], [5, 5], refs[:3])
        with pytest.raises(errors.LoyaltyEmptyBatch):
            coalition.loyalty.earn_batch(a[0], [], [], [])
        assert coalition.chain.w3.eth.block_number == block  # nothing was sent
        assert coalition.loyalty.balance_of(members[0]) == 1

    def test_redeem_batch(self, coalition):
        a = coalition.chain.backend.accounts
        members = enrol(coalition, a[0], 2)
        coalition.loyalty.earn_batch(a[0], members, [10, 20], [bytes(32)] * 2)
        with pytest.raises(errors.LoyaltyInsufficientBalance):
            coalition.loyalty.redeem_batch(a[0], members, [5, 21], [bytes(32)] * 2)
        assert coalition.loyalty.balance_of(members[0]) == 10
        with pytest.raises(errors.LoyaltyNotHomePartner):
            coalition.loyalty.redeem_batch(a[1], members, [5, 20], [bytes(32)] * 2)
        coalition.loyalty.redeem_batch(a[0], members, [5, 20], [bytes(32)] * 2)
        assert coalition.loyalty.position_of(a[0].address) == 25 - 30


class TestConsentRegistry:
    def test_history_answers_for_earlier_times(self, coalition):
        a = coalition.chain.backend.accounts
        m, controller = customer(coalition, a[0], loyalty=False), a[0].address
        receipt = member()
        before = now(coalition)
        given = coalition.consent.record(a[0], m, LOYALTY, ConsentStatus.GIVEN, receipt)
        args = given.event("ConsentRecorded")["args"]
        assert (args["member"], args["controller"], args["purpose"], args["status"], args["receiptHash"]) == (
            m,
            controller,
            LOYALTY,
            1,
            receipt,
        )
        given_at = now(coalition)
        coalition.chain.backend.time_travel(given_at + 100)
        withdrawn = coalition.consent.record(a[0], m, LOYALTY, ConsentStatus.WITHDRAWN, member())
        withdrawn_at = now(coalition)

        assert not coalition.consent.is_valid(m, controller, LOYALTY)
        assert not coalition.consent.is_valid_at(m, controller, LOYALTY, before - 1)
        assert coalition.consent.is_valid_at(m, controller, LOYALTY, given_at)
        assert coalition.consent.is_valid_at(m, controller, LOYALTY, withdrawn_at - 1)
        assert not coalition.consent.is_valid_at(m, controller, LOYALTY, withdrawn_at)
        assert coalition.consent.is_valid_at_block(m, controller, LOYALTY, given.block_number)
        assert not coalition.consent.is_valid_at_block(m, controller, LOYALTY, withdrawn.block_number)
        history = coalition.consent.history(m, controller, LOYALTY)
        assert [r.status for r in history] == [ConsentStatus.GIVEN, ConsentStatus.WITHDRAWN]
        assert history[0].receipt_hash == receipt and history[0].block_number == given.block_number

    def test_consent_expires(self, coalition):
        a = coalition.chain.backend.accounts
        m, controller = customer(coalition, a[0], loyalty=False), a[0].address
        start = now(coalition)
        coalition.consent.record(a[0], m, LOYALTY, ConsentStatus.GIVEN, member(), expires_at=start + 1000)
        assert coalition.consent.is_valid(m, controller, LOYALTY)
        assert coalition.consent.is_valid_at(m, controller, LOYALTY, start + 999)
        assert not coalition.consent.is_valid_at(m, controller, LOYALTY, start + 1000)
        coalition.chain.backend.time_travel(start + 2000)
        assert not coalition.consent.is_valid(m, controller, LOYALTY)

    def test_consent_is_per_controller_and_purpose(self, coalition):
        a = coalition.chain.backend.accounts
        m = customer(coalition, a[0], loyalty=False)
        coalition.consent.record(a[0], m, LOYALTY, ConsentStatus.GIVEN, member())
        assert coalition.consent.is_valid(m, a[0].address, LOYALTY)
        assert not coalition.consent.is_valid(m, a[1].address, LOYALTY)
        assert not coalition.consent.is_valid(m, a[0].address, purpose_id("profiling"))

    def test_bad_records_are_refused(self, coalition):
        a = coalition.chain.backend.accounts
        with pytest.raises(errors.ConsentNotPartner):
            coalition.consent.record(a[5], member(), LOYALTY, ConsentStatus.GIVEN, member())
        with pytest.raises(errors.ConsentInvalidStatus) as raised:
            coalition.consent.record(a[0], member(), LOYALTY, 3, member())
        assert raised.value.status == 3
        with pytest.raises(errors.ConsentExpiryInPast):
            coalition.consent.record(a[0], member(), LOYALTY, ConsentStatus.GIVEN, member(), expires_at=1)
        with pytest.raises(errors.MemberUnknown):
            coalition.consent.record(a[0], member(), LOYALTY, ConsentStatus.GIVEN, member())
        with pytest.raises(errors.ConsentInvalidMember):
            coalition.consent.record(a[0], bytes(32), LOYALTY, ConsentStatus.GIVEN, member())
        with pytest.raises(errors.ConsentUnknownRecord):
            coalition.chain.call(
                coalition.consent.contract.functions.recordAt(member(), a[0].address, LOYALTY, 0)
            )

    def test_record_batch(self, coalition):
        a = coalition.chain.backend.accounts
        members = enrol(coalition, a[0], 20, loyalty=False)
        tx = coalition.consent.record_batch(
            a[0], members, LOYALTY, ConsentStatus.GIVEN, [member() for _ in members]
        )
        assert len(tx.events_named("ConsentRecorded")) == 20
        assert all(coalition.consent.is_valid(m, a[0].address, LOYALTY) for m in members[:3])
        with pytest.raises(errors.ConsentLengthMismatch):
            coalition.consent.record_batch(a[0], members, LOYALTY, ConsentStatus.GIVEN, [member()])
        with pytest.raises(errors.ConsentEmptyBatch):
            coalition.consent.record_batch(a[0], [], LOYALTY, ConsentStatus.GIVEN, [])


class TestInteractionAnchor:
    def test_anchor_a_batch_and_verify_every_leaf_on_chain(self, coalition):
        a = coalition.chain.backend.accounts
        leaves = [leaf_hash(os.urandom(40)) for _ in range(12)]
        _, anchored = anchor_first(coalition, a[1], leaves)
        tree = MerkleTree([coalition.anchor.genesis_leaf(a[1].address), *leaves])
        event = anchored.tx.event("BatchAnchored")["args"]
        assert (event["batchId"], event["partner"], event["root"], event["size"]) == (
            anchored.batch_id,
            a[1].address,
            tree.root,
            13,
        )
        info = coalition.anchor.batch(anchored.batch_id)
        assert (info.root, info.size, info.partner, info.block_number) == (
            tree.root,
            13,
            a[1].address,
            anchored.block_number,
        )
        for index in range(tree.size):
            assert coalition.anchor.verify_inclusion(
                anchored.batch_id, index, tree.leaf(index), tree.proof(index)
            )
        assert not coalition.anchor.verify_inclusion(anchored.batch_id, 3, tree.leaf(4), tree.proof(3))
        assert not coalition.anchor.verify_inclusion(anchored.batch_id, 13, tree.leaf(12), tree.proof(12))
        assert not coalition.anchor.verify_inclusion(anchored.batch_id, 2**64, tree.leaf(1), tree.proof(1))

    @pytest.mark.parametrize("case", VECTORS["inclusion"], ids=lambda c: c["name"])
    def test_contract_agrees_with_the_golden_vectors(self, coalition, case):
        answer = coalition.anchor.verify_against(
            bytes.fromhex(case["root"]),
            case["treeSize"],
            case["leafIndex"],
            bytes.fromhex(case["leafHash"]),
            [bytes.fromhex(p) for p in case["proof"]],
        )
        assert answer is case["valid"]

    def test_a_prepared_anchor_is_recognised_before_and_after_sending(self, coalition):
        a = coalition.chain.backend.accounts
        step = first_head(coalition, a[0], [member(), member()])
        root = step.root
        signed = coalition.anchor.prepare_anchor(a[0], root, 3, step.consistency_proof())
        assert coalition.anchor.lookup_anchor(signed.tx_hash) is None  # never sent: safe to prepare anew
        sent = coalition.anchor.send_anchor(signed)
        found = coalition.anchor.lookup_anchor(signed.tx_hash)
        assert found is not None and found != "pending"
        assert (found.batch_id, found.block_number) == (sent.batch_id, sent.block_number)
        assert coalition.anchor.batch(sent.batch_id).root == root

    def test_a_log_grows_only_by_consistent_heads(self, coalition):
        a = coalition.chain.backend.accounts
        leaves = [
            coalition.anchor.genesis_leaf(a[1].address),
            *(leaf_hash(os.urandom(40)) for _ in range(39)),
        ]
        frontier = genesis(coalition, a[1])
        heads = []
        for cut in (5, 8, 21, 40):
            step = LogAppend(frontier, leaves[frontier.size : cut])
            anchored = coalition.anchor.anchor(a[1], step.root, cut, step.consistency_proof())
            event = anchored.tx.event("BatchAnchored")["args"]
            assert (event["size"], event["previousSize"], event["partner"]) == (
                cut,
                frontier.size,
                a[1].address,
            )
            heads.append((anchored.batch_id, step.root, cut))
            for index in range(frontier.size, cut):  # each new leaf proves against its head, on chain
                assert coalition.anchor.verify_inclusion(
                    anchored.batch_id, index, leaves[index], step.proof(index)
                )
            frontier = step.frontier
        assert coalition.anchor.head(a[1].address) == Head(40, frontier.root, 4)
        assert [(h.batch_id, h.root, h.size) for h in coalition.anchor.heads(a[1].address)] == heads
        assert a[1].address in coalition.anchor.partners()
        assert coalition.anchor.batch_of_root(heads[1][1]) == heads[1][0]
        tree = MerkleTree(leaves)
        assert coalition.anchor.verify_inclusion(
            heads[-1][0], 2, leaves[2], tree.proof(2)
        )  # old leaf, new head
        # the event log says the same, read apart from the contract's storage
        other, _ = anchor_first(coalition, a[2], [leaf_hash(b"other partner")])
        events = coalition.anchor.anchored_events(a[1].address)
        assert [(e.batch_id, e.root, e.size) for e in events] == heads
        assert [e.previous_size for e in events] == [1, 5, 8, 21]
        assert {e.partner for e in events} == {a[1].address}
        everyone = coalition.anchor.anchored_events()
        assert [e.root for e in everyone] == [h[1] for h in heads] + [other.root]
        assert everyone[-1].partner == a[2].address

    def test_a_head_that_rewrites_or_shrinks_the_log_is_refused(self, coalition):
        a = coalition.chain.backend.accounts
        leaves = [
            coalition.anchor.genesis_leaf(a[0].address),
            *(leaf_hash(os.urandom(40)) for _ in range(11)),
        ]
        first, _ = anchor_first(coalition, a[0], leaves[1:7])
        # a log that drops leaf 3 and adds two: its proof from the real head cannot exist
        rewritten = leaves[:3] + leaves[4:] + [leaf_hash(b"x"), leaf_hash(b"y")]
        forged_tree = MerkleTree(rewritten)
        forged = LogAppend(first_head(coalition, a[0], rewritten[1:7]).frontier, rewritten[7:])
        with pytest.raises(errors.AnchorInconsistent) as raised:
            coalition.anchor.anchor(a[0], forged_tree.root, 13, forged.consistency_proof())
        assert (raised.value.headSize, raised.value.size) == (7, 13)
        honest = LogAppend(first.frontier, leaves[7:])
        with pytest.raises(errors.AnchorInconsistent):  # the right proof for another root
            coalition.anchor.anchor(a[0], forged_tree.root, 12, honest.consistency_proof())
        with pytest.raises(errors.AnchorNotGrowing) as shrink:
            coalition.anchor.anchor(a[0], member(), 7, [member()])
        assert (shrink.value.headSize, shrink.value.size) == (7, 7)
        with pytest.raises(errors.AnchorNotGrowing):
            coalition.anchor.anchor(a[0], MerkleTree(leaves[:5]).root, 5, [])
        coalition.anchor.anchor(a[0], honest.root, 12, honest.consistency_proof())
        assert coalition.anchor.head(a[0].address).size == 12

    def test_no_partner_anchors_a_root_anyone_anchored(self, coalition):
        a = coalition.chain.backend.accounts
        leaves = [leaf_hash(os.urandom(40)) for _ in range(5)]
        theirs, anchored = anchor_first(coalition, a[0], leaves)
        with pytest.raises(errors.AnchorRootAlreadyAnchored) as raised:  # partner C copies A's head
            coalition.anchor.anchor(a[2], theirs.root, 6, theirs.consistency_proof())
        assert (raised.value.root, raised.value.batchId) == (theirs.root, anchored.batch_id)
        with pytest.raises(errors.AnchorRootAlreadyAnchored):  # nor A itself, again
            coalition.anchor.anchor(a[0], theirs.root, 7, [member()])
        g = coalition.anchor.genesis_leaf(a[2].address)
        assert coalition.anchor.head(a[2].address) == Head(1, g, 0)

    @pytest.mark.parametrize("case", VECTORS["consistency"], ids=lambda c: f"{c['oldSize']}-{c['newSize']}")
    def test_contract_agrees_with_the_consistency_vectors(self, coalition, case):
        roots = [bytes.fromhex(r) for r in VECTORS["roots"]]
        m, n = case["oldSize"], case["newSize"]
        proof = [bytes.fromhex(p) for p in case["proof"]]
        assert coalition.anchor.verify_consistency(m, n, roots[m], roots[n], proof)
        if proof:
            assert not coalition.anchor.verify_consistency(m, n, roots[m], roots[n], proof[:-1])
            assert not coalition.anchor.verify_consistency(m, n, roots[m], roots[n - 1], proof)
            flipped = [bytes([proof[0][0] ^ 1]) + proof[0][1:], *proof[1:]]
            assert not coalition.anchor.verify_consistency(m, n, roots[m], roots[n], flipped)

    def test_bad_anchors_are_refused(self, coalition):
        a = coalition.chain.backend.accounts
        with pytest.raises(errors.AnchorNotPartner):
            coalition.anchor.anchor(a[5], member(), 1)
        with pytest.raises(errors.AnchorZeroRoot):
            coalition.anchor.anchor(a[0], bytes(32), 1)
        with pytest.raises(errors.AnchorNotGrowing):
            coalition.anchor.anchor(a[0], member(), 0)
        with pytest.raises(errors.AnchorNotGrowing):  # the genesis leaf alone is the log before any head
            coalition.anchor.anchor(a[0], member(), 1)
        with pytest.raises(errors.AnchorNotOwnLog):  # a first head that does not start with its genesis
            coalition.anchor.anchor(a[0], member(), 2, [member()])
        with pytest.raises(errors.AnchorUnknownBatch) as raised:
            coalition.anchor.batch(10**6)
        assert raised.value.batchId == 10**6
        with pytest.raises(errors.AnchorUnknownBatch):
            coalition.anchor.verify_inclusion(10**6, 0, member(), [])


class TestDecisionLog:
    def test_register_model_and_log_decisions(self, coalition):
        a = coalition.chain.backend.accounts
        model_hash, card_hash, training_root = member(), member(), member()
        model_id = coalition.decisions.register_model(a[2], model_hash, card_hash, training_root)
        info = coalition.decisions.model(model_id)
        assert (info.model_hash, info.card_hash, info.training_root, info.registrant) == (
            model_hash,
            card_hash,
            training_root,
            a[2].address,
        )
        members = enrol(coalition, a[2], 3, loyalty=False)
        attest(coalition, a[2], members, "profiling")
        decisions = [
            Decision(m, member(), score, b"retain".ljust(32, b"\x00"), member(), b"\x83\x02".ljust(32, b"\0"))
            for m, score in zip(members, [0, 5000, 10000], strict=True)
        ]
        tx = coalition.decisions.record_decisions(a[2], model_id, decisions)
        logged = tx.events_named("DecisionRecorded")
        assert [
            (e["args"]["member"], e["args"]["scoreBps"], e["args"]["modelId"], e["args"]["partner"])
            for e in logged
        ] == [(d.member, d.score_bps, model_id, a[2].address) for d in decisions]
        assert [e["args"]["decisionId"] for e in logged] == [0, 1, 2]
        assert coalition.decisions.onchain_id(tx) == 0
        assert coalition.decisions.decision_count() == 3
        mine = coalition.decisions.decisions(member=members[1])
        assert [d.decision for d in mine] == [decisions[1]]
        assert [(d.partner, d.decision_id, d.model_id) for d in mine] == [(a[2].address, 1, model_id)]
        assert coalition.decisions.decision(2) == coalition.decisions.decisions(partner=a[2].address)[2]
        assert coalition.decisions.decision(3) is None

    def test_bad_decisions_are_refused(self, coalition):
        a = coalition.chain.backend.accounts
        model_id = coalition.decisions.register_model(a[0], member(), member(), member())
        scored = enrol(coalition, a[0], 2, loyalty=False)
        attest(coalition, a[0], scored, "profiling")
        good = Decision(scored[0], member(), 100, member(), member())
        with pytest.raises(errors.DecisionNotPartner):
            coalition.decisions.record_decisions(a[5], model_id, [good])
        with pytest.raises(errors.DecisionUnknownModel):
            coalition.decisions.record_decisions(a[0], model_id + 1, [good])
        with pytest.raises(errors.DecisionScoreOutOfRange) as raised:
            coalition.decisions.record_decisions(
                a[0], model_id, [good, Decision(scored[1], member(), 10001, member(), member())]
            )
        assert raised.value.scoreBps == 10001
        with pytest.raises(errors.DecisionEmptyBatch):
            coalition.decisions.record_decisions(a[0], model_id, [])
        with pytest.raises(errors.DecisionInvalidMember):
            coalition.decisions.record_decisions(
                a[0], model_id, [Decision(bytes(32), member(), 1, member(), member())]
            )
        with pytest.raises(errors.DecisionZeroModelHash):
            coalition.decisions.register_model(a[0], bytes(32), member(), member())
        assert coalition.decisions.decision_count() == 0


class TestFees:
    def test_a_fixed_gas_price_is_used_as_given(self, coalition):
        """Free-gas networks (Besu with min-gas-price 0) need a fixed legacy price, not EIP-1559 fees."""
        backend = coalition.chain.backend
        if backend.rpc_url is None:
            pytest.skip("a fixed gas price is an RpcBackend option")
        fixed = RpcBackend(backend.rpc_url, gas_price=7 * 10**9)
        attached = Coalition.attach(fixed, coalition.deployment)
        tx = attached.loyalty.earn(fixed.accounts[0], customer(coalition, backend.accounts[0]), 1)
        sent = fixed.w3.eth.get_transaction(tx.tx_hash)  # type: ignore[arg-type]
        assert sent["gasPrice"] == 7 * 10**9
        assert sent["type"] == 0


class TestDeployment:
    def test_attach_checks_the_code_against_the_manifest(self, coalition):
        backend = coalition.chain.backend
        attached = Coalition.attach(backend, Deployment.from_json(coalition.deployment.to_json()))
        assert attached.consortium.partners() == coalition.consortium.partners()

        swapped = coalition.deployment.to_json()
        swapped["contracts"]["LoyaltyPoints"], swapped["contracts"]["ConsentRegistry"] = (
            swapped["contracts"]["ConsentRegistry"],
            swapped["contracts"]["LoyaltyPoints"],
        )
        # the Consortium records where each contract is: the first one it records elsewhere is named
        with pytest.raises(DeploymentMismatch, match="ConsentRegistry: the manifest says"):
            Coalition.attach(backend, Deployment.from_json(swapped))

        empty = coalition.deployment.to_json()
        empty["contracts"]["Consortium"] = backend.accounts[9].address
        with pytest.raises(DeploymentMismatch, match="Consortium: no contract"):
            Coalition.attach(backend, Deployment.from_json(empty))

        rehashed = coalition.deployment.to_json()
        rehashed["codeHashes"]["DecisionLog"] = "0x" + "00" * 32
        with pytest.raises(DeploymentMismatch, match=r"DecisionLog at .*: code hash"):
            Coalition.attach(backend, Deployment.from_json(rehashed))

        other_chain = {**coalition.deployment.to_json(), "chainId": 1}
        with pytest.raises(DeploymentMismatch, match="chain id"):
            Coalition.attach(backend, Deployment.from_json(other_chain))

    def test_attach_refuses_a_contract_that_is_not_ours_even_with_a_matching_hash(self, coalition):
        backend = coalition.chain.backend
        # A manifest whose hashes were rewritten to match foreign code: the build comparison catches it.
        forged = coalition.deployment.to_json()
        forged["contracts"]["Consortium"] = forged["contracts"]["InteractionAnchor"]
        forged["codeHashes"]["Consortium"] = forged["codeHashes"]["InteractionAnchor"]
        with pytest.raises(DeploymentMismatch, match=r"Consortium at .* other sources"):
            Coalition.attach(backend, Deployment.from_json(forged))


class TestPrepareWithAGasBound:
    def test_a_bounded_batch_still_reverts_by_name_before_sending(self, coalition):
        a = coalition.chain.backend.accounts
        fn = coalition.loyalty.contract.functions.earnBatch(
            enrol(coalition, a[0], 2), [1, 0], [bytes(32)] * 2
        )
        block = coalition.chain.w3.eth.block_number
        with pytest.raises(errors.LoyaltyZeroAmount):
            coalition.chain.prepare(fn, a[0], gas=200_000)
        assert coalition.chain.w3.eth.block_number == block

    def test_a_bounded_batch_is_mined_with_the_bound_as_its_limit(self, coalition):
        a = coalition.chain.backend.accounts
        members = enrol(coalition, a[0], 10)
        fn = coalition.loyalty.contract.functions.earnBatch(members, [5] * 10, [bytes(32)] * 10)
        signed = coalition.chain.prepare(fn, a[0], gas=900_000)
        result = coalition.chain.send(coalition.loyalty.contract, signed)
        assert len(result.events_named("PointsEarned")) == 10 and result.gas_used < 500_000
        assert coalition.chain.w3.eth.get_transaction(signed.tx_hash)["gas"] == 900_000
