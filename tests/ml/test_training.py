"""Training end to end: the card holds the split, every model's metrics with intervals, fairness with
intervals, calibration, the action rule and its own provenance; the registered model is the refit on
every labelled slice; no calendar feature; the same data gives the same model and card bytes."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from ml import training
from ml.training import TrainConfig, train

CONFIG = TrainConfig(holdout=datetime(2024, 9, 1, tzinfo=UTC), slices=3, backtest=False)


@pytest.fixture(scope="module")
def trained(synthetic):
    return train(synthetic, CONFIG, provenance={"partner": "acme", "trainingRoot": "0x" + "ab" * 32})


def test_the_card_says_what_was_trained_on_and_how_it_did(trained):
    card = trained.card
    assert card["model"]["hash"] == "0x" + trained.model.model_hash.hex()
    assert card["provenance"] == {"partner": "acme", "trainingRoot": "0x" + "ab" * 32}
    holdout = datetime.fromisoformat(card["split"]["holdout"]["asOf"])
    for piece in card["split"]["training"]:
        assert datetime.fromisoformat(piece["asOf"]) + timedelta(days=90) <= holdout
    names = list(card["metrics"])
    assert names[0] == "EBM (registered)" and "HistGradientBoosting (challenger)" in names
    assert {"KNN", "logistic regression", "random forest", "gradient boosting"} <= set(names)
    for values in card["metrics"].values():
        assert set(values) == {"auc", "accuracy", "pr_auc", "brier", "lift_top20"}
        for metric in values.values():
            assert metric["low"] <= metric["value"] <= metric["high"]
    assert card["metrics"]["EBM (registered)"]["auc"]["value"] > 0.6  # the synthetic churners are learnable
    assert card["challengerAdditivityMaxError"] < 1e-6
    assert set(card["rivals"]) == set(names[1:])
    roc, calibration = card["curves"]["roc"], card["curves"]["calibration"]
    assert roc[0] == [0.0, 0.0] and roc[-1] == [1.0, 1.0]
    assert sum(n for _, _, n in calibration) == card["split"]["holdout"]["members"]
    fairness = card["fairness"]
    assert set(fairness["ratios"]) == {"selection_rate", "false_positive_rate"}
    assert all(0 <= v <= 1 for v in fairness["ratios"].values())
    for group in fairness["groups"].values():
        assert group["members"] > 0
        for name in ("base_rate", "auc", "selection_rate", "false_positive_rate", "calibration_error"):
            assert group[name]["low"] <= group[name]["value"] <= group[name]["high"]
    calibration = card["calibration"]
    assert 0 <= calibration["holdoutExpectedCalibrationError"] < 0.2
    assert sum(b["members"] for b in calibration["holdoutReliability"]) == card["split"]["holdout"]["members"]
    policy = card["policy"]
    assert (policy["rule"], policy["share"]) == ("act on the 20% of scored members most at risk", 0.2)
    assert abs(policy["holdoutShareActedOn"] - 0.2) < 1 / card["split"]["holdout"]["members"]


def test_the_registered_model_is_refitted_on_every_slice_labelled_by_the_scoring_date(synthetic, trained):
    from ml.dataset import default_holdout

    card = trained.card
    last = max(e.at for events in synthetic.values() for e in events)
    registered = [datetime.fromisoformat(s["asOf"]) for s in card["registered"]["training"]]
    evaluated = [datetime.fromisoformat(s["asOf"]) for s in card["split"]["training"]]
    # from the evaluated model's first slice, every month up to the latest with a full label window
    assert registered[0] == evaluated[0] and registered[-1] == default_holdout(last)
    assert registered[-1] + timedelta(days=90) <= last + timedelta(days=1)
    assert registered[-1] + timedelta(days=31 + 90) > last  # no later slice has its labels
    assert all((b - a).days in (28, 29, 30, 31) for a, b in itertools.pairwise(registered))
    assert set(evaluated) < set(registered) and len(registered) > len(evaluated)
    slices = card["registered"]["calibration"]["slices"]
    assert [datetime.fromisoformat(c["asOf"]) for c in slices] == registered
    assert slices[-1]["weight"] == 1.0 and slices[-2]["weight"] == 0.5  # the newest month counts most
    assert card["model"]["hash"] == "0x" + trained.model.model_hash.hex() != card["evaluated"]["hash"]
    assert (
        trained.evaluated is not None
        and card["evaluated"]["hash"] == "0x" + trained.evaluated.model_hash.hex()
    )


def test_no_calendar_feature_and_never_observed_ones_are_left_out_with_a_reason(synthetic, trained):
    from ml.features import BY_NAME
    from ml.training import MODEL_FEATURES

    assert not any(BY_NAME[name].calendar for name in trained.model.features)
    left_out = {f["name"]: f["why"] for f in trained.card["featuresLeftOut"]}
    assert "calendar" in left_out["month"]
    with pytest.raises(ValueError, match="not a feature a model may use: month"):
        train(synthetic, TrainConfig(features=(*MODEL_FEATURES, "month")))
    # a feature the data never shows (no support tickets in these histories) is not in the model
    quiet = {m: [e for e in events if e.kind != "support_ticket"] for m, events in synthetic.items()}
    done = train(quiet, TrainConfig(holdout=CONFIG.holdout, slices=3, backtest=False,
                                    features=(*MODEL_FEATURES, "tickets")))  # fmt: skip
    assert "tickets" not in done.model.features
    assert "never observed" in {f["name"]: f["why"] for f in done.card["featuresLeftOut"]}["tickets"]


def test_a_backtest_cut_holds_both_populations_with_paired_intervals(synthetic, trained):
    from ml.training import backtest_cut

    cut = backtest_cut(synthetic, datetime(2024, 6, 1, tzinfo=UTC), CONFIG, trained.model.features)
    assert cut is not None
    active, everyone = (
        cut["populations"]["active in the last 12 months"],
        cut["populations"]["everyone who ever bought"],
    )
    assert everyone["members"] >= active["members"] > 100
    for population in (active, everyone):
        for name, row in population["models"].items():
            assert 0.5 < row["auc"] <= 1
            if name != "EBM (registered)":
                gap = row["minusEbm"]
                assert gap["low"] <= gap["value"] <= gap["high"]
                assert gap["value"] == pytest.approx(
                    row["auc"] - population["models"]["EBM (registered)"]["auc"], abs=2e-6
                )
    assert abs(active["shareActedOn"] - 0.2) < 1 / active["members"]
    assert 0 <= active["expectedCalibrationError"] < 0.2


def test_the_fast_auc_is_scikit_learns():
    import numpy as np
    from sklearn.metrics import roc_auc_score

    from ml.evaluation import fast_auc

    rng = np.random.default_rng(4)
    for _ in range(50):
        y = rng.integers(0, 2, 200)
        p = np.round(rng.random(200), 1)  # ties, which count a half
        assert fast_auc(y, p) == pytest.approx(roc_auc_score(y, p), abs=1e-12)


def test_training_is_deterministic(synthetic, trained, monkeypatch):
    # and the same on one thread as on two: the EBM's bags and the forest's trees are fitted on threads,
    # and the refit (the backtest's further cuts, with a backtest) beside the evaluation
    assert training.FIT_THREADS == 2 and training.BESIDE
    monkeypatch.setattr(training, "FIT_THREADS", 1)
    monkeypatch.setattr(training, "BESIDE", False)
    again = train(synthetic, CONFIG, provenance={"partner": "acme", "trainingRoot": "0x" + "ab" * 32})
    assert again.model.to_bytes() == trained.model.to_bytes()
    assert again.card_bytes == trained.card_bytes and again.card_hash == trained.card_hash


def test_a_holdout_without_a_full_label_window_is_refused(synthetic):
    with pytest.raises(ValueError, match="has no full 90-day label window"):
        train(synthetic, TrainConfig(holdout=datetime(2024, 12, 1, tzinfo=UTC)))


def test_on_online_retail_the_glass_box_holds_its_own(online_retail):
    trained = train(online_retail, TrainConfig(slices=2, backtest=False))
    metrics = trained.card["metrics"]
    ebm = metrics["EBM (registered)"]["auc"]["value"]
    assert trained.card["split"]["holdout"]["asOf"].startswith("2011-09-01")
    assert ebm > 0.72
    # within the challenger's interval or above it: the glass box costs no accuracy here
    assert ebm >= metrics["HistGradientBoosting (challenger)"]["auc"]["low"]
    # the features read from timelines are the direct computation on real invoices too (long histories,
    # returns, same-day purchases, products bought again years apart); here, not in test_features, so
    # that the file is read once
    from tests.ml.test_features import _same_as_the_reference

    dates = [
        datetime(2010, 3, 1, tzinfo=UTC),
        datetime(2010, 12, 1, tzinfo=UTC),
        datetime(2011, 9, 1, tzinfo=UTC),
    ]
    assert _same_as_the_reference(online_retail, dates, 200) > 300


def test_the_same_data_under_other_member_ids_gives_the_same_slices(synthetic):
    """Member ids are random per import: the rows a model is fitted on, and the BG/NBD fit, must not
    depend on them (three imports of one file once gave three model hashes)."""
    import dataclasses
    import os

    import numpy as np

    from ml.dataset import build_slice, fit_bgnbd

    renamed = {}
    for events in synthetic.values():
        new = "0x" + os.urandom(32).hex()
        renamed[new] = [dataclasses.replace(e, member=new) for e in events]
    as_of = datetime(2024, 6, 1, tzinfo=UTC)
    assert fit_bgnbd(synthetic, as_of) == fit_bgnbd(renamed, as_of)
    bgnbd = fit_bgnbd(synthetic, as_of)
    one, other = build_slice(synthetic, as_of, bgnbd), build_slice(renamed, as_of, bgnbd)
    assert one.y is not None and other.y is not None
    assert np.array_equal(one.X, other.X) and np.array_equal(one.y, other.y)
    assert one.countries == other.countries


def test_counterfactuals_on_random_members_are_reachable_and_rescore_as_promised(synthetic, trained):
    """Random members of the population: every counterfactual is purchases added to the history, the
    features they move are moved together and the way a purchase moves them, re-scoring the history
    they make gives the promised score, and one purchase fewer would not have flipped the action."""
    import random

    from ml.dataset import eligible
    from ml.decision import decide, logit_of, member_features, purchases_added
    from ml.policy import budget_cutoff

    model = trained.model
    as_of = datetime(2024, 12, 1, tzinfo=UTC)
    population = sorted(m for m, events in synthetic.items() if eligible(events, as_of))
    roots = {m: m.encode().ljust(32, b"\0")[:32] for m in population}
    rows = {m: member_features(model, synthetic[m], as_of) for m in population}
    cutoff = budget_cutoff(model.policy, [(logit_of(model, rows[m]), roots[m]) for m in population])
    assert cutoff is not None
    checked = 0
    for member in random.Random(7).sample(population, 80):
        scored = decide(model, synthetic[member], as_of, cutoff=cutoff, input_root=roots[member])
        cf = scored.counterfactual
        if cf is None:
            continue
        checked += 1
        reached, spend = purchases_added(synthetic[member], as_of, cf.purchases)
        again = decide(model, reached, as_of, cutoff=cutoff, input_root=roots[member])
        assert again.score == cf.score and again.action == "none" and spend == cf.spend_each
        moved = {c.feature: c for c in cf.changes}
        for name in ("purchases_90d", "months_active_12", "spend_365d"):
            if name in moved:
                assert moved[name].to > moved[name].current
        if "recency_days" in moved:
            assert moved["recency_days"].to < moved["recency_days"].current
        if cf.purchases > 1:
            fewer, _ = purchases_added(synthetic[member], as_of, cf.purchases - 1)
            assert decide(model, fewer, as_of, cutoff=cutoff, input_root=roots[member]).action != "none"
    assert checked >= 5


def test_calibration_reads_no_label_after_the_date_it_calibrates_for(synthetic, trained):
    """Every slice the calibration learns from, last year's seasonal pair included, has its label window
    over by the date the model scores at: the holdout for the evaluated model, the day after the latest
    event for the registered one."""
    last = max(e.at for events in synthetic.values() for e in events)
    for which, target in (("evaluated", CONFIG.holdout), ("registered", None)):
        calibration = trained.card[which]["calibration"]
        when = datetime.fromisoformat(calibration["target"])
        if target is not None:
            assert when == target
        else:
            assert last < when <= last + timedelta(days=1)
        used = [c["asOf"] for c in calibration["slices"]]
        if calibration["season"] is not None:
            season = calibration["season"]
            used += [season["sameSeasonLastYear"]["asOf"], season["latestMonthLastYear"]["asOf"]]
            assert datetime.fromisoformat(season["sameSeasonLastYear"]["asOf"]).month == when.month
        for as_of in used:
            assert datetime.fromisoformat(as_of) + timedelta(days=90) <= when, (which, as_of)
    assert trained.card["registered"]["calibration"]["season"] is not None  # the synthetic data has a year


def test_last_years_season_is_used_only_where_the_data_holds_half_a_year_before_it():
    from ml.training import season_dates

    first = datetime(2009, 12, 1, 7, 45, tzinfo=UTC)
    day = lambda y, m: datetime(y, m, 1, tzinfo=UTC)  # noqa: E731
    assert season_dates(first, day(2011, 6), day(2011, 9)) == (day(2010, 9), day(2010, 6))
    assert season_dates(first, day(2011, 9), datetime(2011, 12, 10, tzinfo=UTC)) == (
        day(2010, 12),
        day(2010, 9),
    )
    assert season_dates(first, day(2011, 3), day(2011, 6)) is None  # March 2010: three months of data
    assert season_dates(first, day(2010, 12), day(2011, 3)) is None
    assert season_dates(day(2009, 12), day(2011, 6), day(2011, 9)) == (day(2010, 9), day(2010, 6))
    assert season_dates(day(2010, 1), day(2011, 6), day(2011, 9)) is None  # June 2010: five months


def test_vectorised_logits_are_the_models_own_to_the_bit(synthetic, trained):
    from ml.dataset import build_slice
    from ml.features import NAMES
    from ml.training import logits

    model = trained.model
    assert CONFIG.holdout is not None
    test = build_slice(synthetic, CONFIG.holdout, model.bgnbd)
    found = logits(model, test)
    for row, value in zip(test.X, found, strict=True):
        assert model.logit(dict(zip(NAMES, map(float, row), strict=True))) == value


def test_the_bootstrap_scores_every_resample_as_the_metric_functions_do():
    """The resamples are scored all at once (counts per tie group); each round's AUC is `fast_auc`'s to
    the bit and its average precision scikit-learn's, on scores with ties."""
    import numpy as np
    from sklearn.metrics import average_precision_score

    from ml.evaluation import Resampled, fast_auc, resamples

    rng = np.random.default_rng(5)
    y = rng.integers(0, 2, 300)
    p = np.round(np.clip(y * 0.2 + rng.random(300), 0, 1), 1)  # ties, which count a half
    chosen = resamples(np.random.default_rng(0), len(y), 25)
    counted = Resampled(y, p, chosen)
    for row, auc, ap in zip(chosen, counted.aucs(), counted.average_precisions(), strict=True):
        assert auc == fast_auc(y[row], p[row])
        assert ap == pytest.approx(average_precision_score(y[row], p[row]), abs=1e-12)


def test_the_bootstrap_intervals_are_the_same_whatever_chunks_the_rounds_are_scored_in(monkeypatch):
    """`with_intervals` and the paired intervals score the rounds a chunk at a time (memory): one chunk,
    uneven chunks and one round at a time give the same figures, also where some rounds draw one class
    only (left out)."""
    import numpy as np

    from ml import evaluation

    rng = np.random.default_rng(8)
    for y in (rng.integers(0, 2, 400), np.array([0, 1, 1, 0, 1])):  # of five, ~6% of rounds: one class
        p = np.round(np.clip(y * 0.3 + rng.random(len(y)), 0, 1), 1)
        other = np.round(np.clip(y * 0.1 + rng.random(len(y)), 0, 1), 1)
        found, paired = [], []
        for chunk in (evaluation.BOOTSTRAP_ROUNDS, 7, 1):
            monkeypatch.setattr(evaluation, "INTERVAL_CHUNK", chunk)
            found.append(evaluation.with_intervals(y, p, 0.5, seed=2))
            # and the paired intervals of the backtest, scored in the same chunks
            paired.append(evaluation.paired_auc_differences(y, p, [other, p[::-1].copy()], seed=4))
        assert found[0] == found[1] == found[2] and paired[0] == paired[1] == paired[2]


def test_paired_intervals_resample_both_models_alike_round_by_round():
    """The paired interval is the one a loop of rounds gives (each round draws every cut once, in
    order; both models scored on the same draw), and a model against itself differs by exactly 0."""
    import numpy as np

    from ml.evaluation import BOOTSTRAP_ROUNDS, fast_auc, paired_auc_difference, paired_auc_differences

    rng = np.random.default_rng(9)
    cuts = []
    for n in (120, 90):
        y = rng.integers(0, 2, n)
        cuts.append((y, y * 0.3 + rng.random(n), y * 0.2 + np.round(rng.random(n), 1)))
    draw = np.random.default_rng(3)
    rounds = []
    for _ in range(BOOTSTRAP_ROUNDS):
        found = []
        for y, ref, other in cuts:
            c = draw.integers(0, len(y), len(y))
            found.append(fast_auc(y[c], other[c]) - fast_auc(y[c], ref[c]))
        rounds.append(float(np.mean(found)))
    low, high = np.percentile(rounds, [2.5, 97.5])
    paired = paired_auc_difference(cuts, seed=3)
    assert (paired["low"], paired["high"]) == (round(float(low), 6), round(float(high), 6))
    y, ref, _ = cuts[0]
    assert paired_auc_difference([(y, ref, ref.copy())]) == {"value": 0.0, "low": 0.0, "high": 0.0}
    # several models against one reference on one cut (the backtest's rivals): each one's figures as alone
    others = [y * 0.1 + rng.random(len(y)), 1 - ref, ref.copy()]
    assert paired_auc_differences(y, ref, others, seed=5) == [
        paired_auc_difference([(y, ref, other)], seed=5) for other in others
    ]


def test_the_challengers_path_contributions_add_up_and_the_check_catches_another_path():
    """Base plus contributions is the challenger's own margin, also for rows with missing values (routed
    where each split learnt to send them); an explanation that walks a different path is caught."""
    import copy

    import numpy as np
    from sklearn.ensemble import HistGradientBoostingClassifier
    from threadpoolctl import threadpool_limits

    from ml.training import additivity_error, path_contributions

    rng = np.random.default_rng(2)
    X = rng.random((600, 4))
    y = (X[:, 0] + 0.5 * X[:, 1] + 0.3 * rng.random(600) > 0.9).astype(int)
    X[rng.random((600, 4)) < 0.1] = np.nan
    with threadpool_limits(limits=1):  # OpenMP threads spin on a shared machine
        model = HistGradientBoostingClassifier(max_iter=20, random_state=0).fit(X, y)
    assert additivity_error(model, X) < 1e-9
    moved = copy.deepcopy(model)
    root = moved._predictors[0][0].nodes[0]
    moved._predictors[0][0].nodes[0]["num_threshold"] = root["num_threshold"] + 0.2
    base, contributions = path_contributions(moved, X)
    assert np.max(np.abs(base + contributions.sum(axis=1) - model.decision_function(X))) > 1e-3
