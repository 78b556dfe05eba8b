"""Training the churn model on monthly slices, evaluating it and its rivals on a strict temporal holdout,
and writing its card.

The registered model is the EBM (`ml.glassbox`); the challenger is HistGradientBoosting explained by
SHAP's TreeExplainer; the baselines are those of the Online Retail paper (KNN, logistic regression,
random forest, gradient boosting). All see the same rows and are judged on the same holdout.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import rfc8785

from ml.dataset import (
    DEFAULT_HORIZON_DAYS,
    ELIGIBLE_DAYS,
    build_slice,
    default_holdout,
    fit_bgnbd,
    training_dates,
)
from ml.evaluation import curves, fairness, with_intervals
from ml.events import Event
from ml.features import FEATURES, NAMES
from ml.glassbox import GlassBox

CARD_SCHEMA = "ledgercrm/model-card/v1"
# fitted in seconds on a few monthly slices (see benchmarks/ml_churn.py); more outer bags and bins buy
# little AUC on this data and cost minutes
EBM_SETTINGS: dict[str, Any] = {
    "interactions": 0,
    "outer_bags": 4,
    "max_bins": 32,
    "learning_rate": 0.05,
    "max_rounds": 500,
}


@dataclass(frozen=True)
class TrainConfig:
    horizon_days: int = DEFAULT_HORIZON_DAYS
    holdout: datetime | None = None  # the holdout's as-of date; default: the latest the data allows
    slices: int = 6  # monthly training slices before the holdout
    threshold: float = 0.5  # churn probability at or above which the policy acts
    seed: int = 0


@dataclass
class Trained:
    model: GlassBox
    card: dict[str, Any]
    table: list[tuple[str, dict[str, dict[str, float]]]] = field(default_factory=list)  # name -> metrics

    @property
    def card_bytes(self) -> bytes:
        return rfc8785.dumps(self.card)

    @property
    def card_hash(self) -> bytes:
        return hashlib.sha256(self.card_bytes).digest()


Step = Callable[[str], None]


def train(
    histories: Mapping[str, Sequence[Event]],
    config: TrainConfig = TrainConfig(),
    provenance: Mapping[str, Any] | None = None,
    step: Step | None = None,
) -> Trained:
    """Fit, evaluate and describe. `provenance` (e.g. the partner and the training root over the leaves
    the histories came from) is copied into the card as given."""
    from interpret.glassbox import ExplainableBoostingClassifier

    say = step or (lambda _: None)
    times = [e.at for events in histories.values() for e in events]
    if not times:
        raise ValueError("no verified interactions to train on")
    first, last = min(times), max(times)
    holdout = config.holdout or default_holdout(last, config.horizon_days)
    dates = training_dates(first, holdout, config.horizon_days, config.slices)
    if not dates:
        raise ValueError(f"no training slice fits before the holdout {holdout:%Y-%m-%d}")
    if holdout.timestamp() + config.horizon_days * 86_400 > last.timestamp() + 86_400:
        raise ValueError(f"the holdout {holdout:%Y-%m-%d} has no full {config.horizon_days}-day label window")

    say(f"features of {len(dates)} monthly slices")
    slices = [build_slice(histories, d, fit_bgnbd(histories, d), config.horizon_days) for d in dates]
    # the stored BG/NBD parameters see only what the last training slice saw
    bgnbd = fit_bgnbd(histories, dates[-1])
    test = build_slice(histories, holdout, bgnbd, config.horizon_days)
    X = np.vstack([s.X for s in slices])
    y = np.concatenate([s.y for s in slices if s.y is not None])
    assert test.y is not None
    if len(set(y.tolist())) < 2 or len(set(test.y.tolist())) < 2:
        raise ValueError("both churners and stayers are needed in training and in the holdout")

    say(f"the glass box on {len(y):,} rows")
    ebm = ExplainableBoostingClassifier(
        feature_names=list(NAMES), random_state=config.seed, n_jobs=1, **EBM_SETTINGS
    )
    ebm.fit(X, y)
    model = GlassBox.from_ebm(ebm, bgnbd, config.threshold)
    rows = [dict(zip(NAMES, row, strict=True)) for row in test.X]
    p_model = np.array([model.score(r) for r in rows])

    table: list[tuple[str, dict[str, dict[str, float]]]] = [
        ("EBM (registered)", with_intervals(test.y, p_model, config.threshold, config.seed))
    ]
    shap_error = 0.0
    for name, make in _rivals(config.seed):
        say(name)
        rival = make()
        rival.fit(X, y)
        p = rival.predict_proba(test.X)[:, 1]
        table.append((name, with_intervals(test.y, p, config.threshold, config.seed)))
        if name.startswith("HistGradientBoosting"):
            shap_error = _shap_additivity(rival, test.X)

    card = {
        "schema": CARD_SCHEMA,
        "model": {"format": "ledgercrm/glassbox/v1", "hash": "0x" + model.model_hash.hex(), **EBM_SETTINGS},
        "provenance": dict(provenance or {}),
        "data": {
            "firstEvent": first.isoformat(),
            "lastEvent": last.isoformat(),
            "members": len(histories),
        },
        "label": f"churned: no purchase within {config.horizon_days} days after the as-of date",
        "population": f"members with a purchase in the {ELIGIBLE_DAYS} days before the as-of date",
        "features": [{"name": f.name, "meaning": f.meaning} for f in FEATURES],
        "split": {
            "training": [{"asOf": s.as_of.isoformat(), "members": len(s.members)} for s in slices],
            "holdout": {"asOf": holdout.isoformat(), "members": len(test.members)},
            "rule": "each training label window ends on or before the holdout's as-of date",
        },
        "policy": {"threshold": config.threshold, "action": model.action},
        "metrics": {name: values for name, values in table},
        "metricsNote": "holdout; 95% percentile bootstrap intervals over members",
        "curves": curves(test.y, p_model),  # the registered model's ROC and calibration on the holdout
        "challengerShapAdditivityMaxError": shap_error,
        "fairness": fairness(test.y, p_model, test.countries, config.threshold),
        "intendedUse": "rank a partner's customers by churn risk to choose whom to offer retention; "
        "one input to a person's decision, with its reasons and a counterfactual",
        "limitations": [
            "trained on one retailer's invoices (UK online gifts, 2009-2011): other partners need their own",
            "country is not a feature, but correlated features may still differ by country group "
            "(see fairness)",
            "a member with no verified purchase in the last year is not scored",
        ],
    }
    return Trained(model, card, table)


def _rivals(seed: int) -> list[tuple[str, Callable[[], Any]]]:
    from sklearn.ensemble import (
        GradientBoostingClassifier,
        HistGradientBoostingClassifier,
        RandomForestClassifier,
    )
    from sklearn.linear_model import LogisticRegression
    from sklearn.neighbors import KNeighborsClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return [
        ("HistGradientBoosting (challenger)", lambda: HistGradientBoostingClassifier(random_state=seed)),
        ("KNN", lambda: make_pipeline(StandardScaler(), KNeighborsClassifier(n_neighbors=25))),
        ("logistic regression", lambda: make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))),
        ("random forest", lambda: RandomForestClassifier(n_estimators=200, random_state=seed, n_jobs=1)),
        ("gradient boosting", lambda: GradientBoostingClassifier(random_state=seed)),
    ]


def _shap_additivity(model: Any, X: np.ndarray[Any, Any]) -> float:
    """The challenger's explanation is SHAP's: its values plus the expected value must give the model's
    raw margin; the largest gap over the holdout goes in the card."""
    import shap

    explainer = shap.TreeExplainer(model)
    values = explainer.shap_values(X)
    margin = model.decision_function(X) if hasattr(model, "decision_function") else None
    if margin is None:
        return float("nan")
    expected = np.ravel(explainer.expected_value)[0]
    return round(float(np.max(np.abs(values.sum(axis=1) + expected - margin))), 9)
