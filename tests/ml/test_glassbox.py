"""The registered model's explanation is the model: exact to interpret's own scores, canonical bytes,
a counterfactual that really flips the action and touches only what a customer can act on."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from ml.dataset import build_slice, fit_bgnbd
from ml.features import BY_NAME, NAMES
from ml.glassbox import GlassBox
from ml.policy import THRESHOLD, Policy
from ml.training import EBM_SETTINGS

LEGACY = Policy(THRESHOLD, threshold=0.5)

AS_OF = datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def fitted(synthetic):
    from interpret.glassbox import ExplainableBoostingClassifier

    bg = fit_bgnbd(synthetic, AS_OF)
    data = build_slice(synthetic, AS_OF, bg)
    ebm = ExplainableBoostingClassifier(feature_names=list(NAMES), random_state=3, n_jobs=1, **EBM_SETTINGS)
    ebm.fit(data.X, data.y)
    # a v1 model (a score threshold): the bin counterfactual below is what such models still give
    return ebm, GlassBox.from_ebm(ebm, bg, LEGACY), data


def rows(X):
    return [dict(zip(NAMES, row, strict=True)) for row in X]


def test_intercept_plus_contributions_is_interprets_logit_exactly(fitted):
    ebm, model, data = fitted
    theirs = ebm.decision_function(data.X)
    for row, logit in zip(rows(data.X), theirs, strict=True):
        contributions = model.contributions(row)
        assert set(contributions) == set(NAMES)
        # each term is its bin's score, the bin as `bin_of` says (NaN included: bin 0)
        assert contributions == {
            name: model.scores[i][model.bin_of(i, row[name])] for i, name in enumerate(model.features)
        }
        assert abs(model.intercept + sum(contributions.values()) - logit) < 1e-9
        assert model.score(row) == pytest.approx(1 / (1 + math.exp(-logit)), abs=1e-12)
    missing = {**rows(data.X[:1])[0], NAMES[0]: math.nan}
    assert model.contributions(missing)[NAMES[0]] == model.scores[model.features.index(NAMES[0])][0]


def test_values_on_the_cut_points_bin_as_interpret_bins_them(fitted):
    ebm, model, data = fitted
    X = np.repeat(data.X[:1], 64, axis=0)
    for j, cuts in enumerate(model.cuts):
        for k, cut in enumerate(cuts[:64]):
            X[k, j] = cut
    theirs = ebm.decision_function(X)
    assert np.max(np.abs(np.array([model.logit(r) for r in rows(X)]) - theirs)) < 1e-9


def test_the_canonical_bytes_round_trip_and_hash(fitted):
    _, model, data = fitted
    raw = model.to_bytes()
    again = GlassBox.from_bytes(raw)
    assert again.to_bytes() == raw and again.model_hash == model.model_hash
    assert all(again.score(r) == model.score(r) for r in rows(data.X[:50]))
    with pytest.raises(ValueError, match=r"not a model this release reads \(its format is 'pickle'"):
        GlassBox.from_bytes(b'{"format": "pickle"}')
    with pytest.raises(ValueError, match="not a model this release reads"):
        GlassBox.from_bytes(b"\x80\x04K\x01.")  # a pickle's bytes are not even read


def test_training_twice_gives_the_same_bytes(synthetic, fitted):
    from interpret.glassbox import ExplainableBoostingClassifier

    _, model, data = fitted
    ebm = ExplainableBoostingClassifier(feature_names=list(NAMES), random_state=3, n_jobs=1, **EBM_SETTINGS)
    ebm.fit(data.X, data.y)
    assert GlassBox.from_ebm(ebm, fit_bgnbd(synthetic, AS_OF), LEGACY).to_bytes() == model.to_bytes()


def test_the_counterfactual_flips_the_action_with_actionable_features_only(fitted):
    _, model, data = fitted
    acting = [r for r in rows(data.X) if model.acts(r)]
    assert len(acting) > 20
    found = 0
    for row in acting:
        counterfactual = model.counterfactual(row)
        if counterfactual is None:
            continue
        found += 1
        changed = dict(row) | {c.feature: c.to for c in counterfactual.changes}
        assert not model.acts(changed) and counterfactual.score == model.score(changed)
        for change in counterfactual.changes:
            feature = BY_NAME[change.feature]
            assert feature.actionable != 0  # never tenure, the calendar or the customer's country
            assert (change.to - change.current) * feature.actionable > 0
            if feature.integral:
                assert change.to == int(change.to)
        # nothing smaller would do: no single feature moved fewer bins flips it
        if len(counterfactual.changes) == 1:
            (change,) = counterfactual.changes
            i = model.features.index(change.feature)
            steps = abs(model.bin_of(i, change.to) - model.bin_of(i, change.current))
            for name in model.features:
                for moved, _, delta in model._moves(row, name) if BY_NAME[name].actionable else ():
                    if moved < steps:
                        assert model.logit(row) + delta >= math.log(model.threshold / (1 - model.threshold))
    assert found > 10


def test_no_counterfactual_when_no_action(fitted):
    _, model, data = fitted
    calm = next(r for r in rows(data.X) if not model.acts(r))
    assert model.counterfactual(calm) is None


def test_reasons_are_the_largest_terms(fitted):
    _, model, data = fitted
    row = rows(data.X)[0]
    contributions = model.contributions(row)
    reasons = model.reasons(row, top=3)
    assert [name for name, _ in reasons] == sorted(contributions, key=lambda n: -abs(contributions[n]))[:3]
    assert all(direction == (1 if contributions[name] > 0 else -1) for name, direction in reasons)


def test_the_pair_search_finds_what_trying_every_pair_finds():
    """The two-feature search bisects on running minima; trying every pair of moves finds no fewer bins."""
    import random

    from ml.glassbox import Change, _pairs

    rng = random.Random(5)
    for _ in range(2000):
        first = [
            (rng.randint(1, 12), Change("a", 0, i), rng.uniform(-2, 1)) for i in range(rng.randint(0, 8))
        ]
        second = [
            (rng.randint(1, 12), Change("b", 0, i), rng.uniform(-2, 1)) for i in range(rng.randint(0, 8))
        ]
        room = rng.uniform(-3, 0)
        brute = min((s1 + s2 for s1, _, d1 in first for s2, _, d2 in second if d1 + d2 < room), default=None)
        found = list(_pairs(first, second, room))
        assert min((steps for steps, _ in found), default=None) == brute
        by_to = {("a", c.to): d for _, c, d in first} | {("b", c.to): d for _, c, d in second}
        for steps, (c1, c2) in found:  # every pair offered really flips, with the steps it claims
            assert by_to["a", c1.to] + by_to["b", c2.to] < room
            assert steps == next(s for s, c, _ in first if c is c1) + next(s for s, c, _ in second if c is c2)


def test_a_decisions_score_is_the_models_own_bit_for_bit(fitted):
    """`decide_on` sums the terms it read once, as GlassBox.logit sums them: the same score to the bit
    (a decision's basis points and its explanation's score come from it)."""
    from ml.decision import decide_on

    _, model, data = fitted
    for row in rows(data.X[:300]):
        assert decide_on(model, row).score.hex() == model.score(row).hex()
