"""Training through the use case: only interactions that verify against the chain are trained on, the
model is registered on chain before anything uses it, and its card says what was left out."""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from api.context import Crm
from api.errors import ConsentRequired, InvalidInput, NotFound
from api.principal import Principal
from api.usecases.anchoring import anchor_now
from api.usecases.consent import withdraw_consent
from api.usecases.customers import update_customer
from api.usecases.models import (
    list_models,
    model_card,
    recommendations,
    segments,
    train_model,
    verified_inputs,
)
from ledger.merkle import merkle_root
from offchain.repositories import customers
from tests.fixtures.trained import TrainedHome, forked

ACME = Principal.of_partner("acme")
HOLDOUT = datetime(2024, 9, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def crm(tmp_path_factory: pytest.TempPathFactory, trained_home: TrainedHome) -> Iterator[Crm]:
    """acme's 300 synthetic customers and 4,000 interactions (the trained home, forked: its model is
    not used here, the tests train their own), every one of them with profiling consent."""
    with forked(trained_home, tmp_path_factory.mktemp("models") / "home", batch_max_leaves=512) as crm:
        yield crm


def test_training_uses_verified_inputs_only_and_registers_on_chain(crm: Crm):
    store = Path(crm.settings.home) / "data.sqlite"
    with sqlite3.connect(store) as db:  # one interaction edited behind the system's back
        db.execute("UPDATE interactions SET occurred_at = '2020-01-01 00:00:00.000000' WHERE id = 7")
    # a change of a customer's record today: a verified leaf of her history, but no behaviour of hers
    changed = _members(crm)[1]
    update_customer(crm, ACME, changed, {"phone": "+44 20 7946 0111"})
    anchor_now(crm, ACME)
    inputs = verified_inputs(crm, "acme")  # row by row: the leaves an auditor recomputes the root from
    assert inputs.excluded == {"tampered": 1} and len(inputs.leaves) == 4000
    # training is profiling: a customer who withdrew her profiling consent is not trained on
    withdrawn = next(m for m in inputs.members if m != "0x" + changed.hex())
    withdraw_consent(crm, ACME, bytes.fromhex(withdrawn[2:]), "profiling")
    consenting = [leaf for leaf, m in zip(inputs.leaves, inputs.members, strict=True) if m != withdrawn]
    assert 0 < len(consenting) < 4000

    trained = train_model(crm, ACME, horizon_days=90, as_of=HOLDOUT, backtest=False)
    assert trained.inputs == len(consenting) and trained.without_consent == 1
    card = model_card(crm, ACME, trained.model_id)
    # the change is no event: no date of the model moves to today (the refit would have run to months
    # without a purchase), as scoring's histories have no such event either
    assert card["data"]["lastEvent"] < "2025"
    assert card["policy"]["rule"] == "act on the 20% of scored members most at risk"
    assert (
        card["backtest"] == []
        and card["registered"]["training"][-1]["asOf"] > card["split"]["holdout"]["asOf"]
    )
    provenance = card["provenance"]
    assert provenance["leavesTrainedOn"] == len(consenting) and provenance["leftOut"] == {"tampered": 1}
    assert provenance["membersWithoutProfilingConsent"] == 1
    assert provenance["trainingRoot"] == "0x" + merkle_root(consenting).hex()
    onchain = crm.coalition.decisions.model(trained.model_id)
    assert onchain.model_hash == trained.trained.model.model_hash
    assert onchain.card_hash == trained.trained.card_hash
    assert onchain.training_root == merkle_root(consenting)
    (line,) = [m for m in list_models(crm, ACME) if m.model_id == trained.model_id]
    assert line.on_chain and line.partner == "acme" and line.holdout_auc is not None


def _members(crm: Crm) -> list[bytes]:
    with crm.unit_of_work() as db:
        return sorted(customers.members_of_partner(db, crm.partner(db, "acme").id))


def test_refusals(crm: Crm):
    with pytest.raises(InvalidInput, match="no verified interactions to train on"):
        train_model(crm, Principal.of_partner("borealis"))
    with pytest.raises(InvalidInput, match="a horizon is 1 to 730 days"):
        train_model(crm, ACME, horizon_days=0)
    from api.usecases.models import action_policy

    assert action_policy("500").count == 500 and action_policy("12.5%").share == 0.125
    assert action_policy(offer_cost=5, loss_cost=100).score_threshold == 0.05
    for budget, offer, loss, words in [
        ("0%", None, None, "over 0 and at most 100%"),
        ("0", None, None, "at least 1 member"),
        ("-3", None, None, "a share (e.g. 20%) or a number"),
        (None, 5.0, None, "needs both"),
        (None, 5.0, -1.0, "positive amounts"),
        (None, float("nan"), 10.0, "needs the cost"),
        ("10%", 5.0, 10.0, "not both"),
    ]:
        with pytest.raises(InvalidInput, match=re.escape(words)):
            action_policy(budget, offer, loss)
    with pytest.raises(NotFound):
        model_card(crm, ACME, 999)


def test_segments_and_recommendations(crm: Crm, tmp_path: Path):
    report = segments(crm, ACME, as_of=HOLDOUT, plot=tmp_path / "s.png")
    assert report.rows and report.scan.elbow in report.scan.ks and (tmp_path / "s.png").exists()
    member = bytes.fromhex(report.rows[0].member[2:])
    picks = recommendations(crm, ACME, member, top=5)
    assert len(picks) == 5
    with pytest.raises(NotFound):
        recommendations(crm, Principal.of_partner("borealis"), member)  # not borealis's customer


def test_a_customer_who_withdrew_profiling_consent_is_neither_segmented_nor_recommended_to(crm: Crm):
    before = segments(crm, ACME, as_of=HOLDOUT)
    member = before.rows[0].member
    withdraw_consent(crm, ACME, bytes.fromhex(member[2:]), "profiling")
    after = segments(crm, ACME, as_of=HOLDOUT)
    assert after.without_consent == before.without_consent + 1
    assert member not in {row.member for row in after.rows} and len(after.rows) == len(before.rows) - 1
    with pytest.raises(ConsentRequired, match="no valid profiling consent"):
        recommendations(crm, ACME, bytes.fromhex(member[2:]))
