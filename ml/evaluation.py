"""Metrics on a holdout, with bootstrap 95% intervals, and a fairness snapshot by country group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, average_precision_score, brier_score_loss, roc_auc_score

METRICS = ("auc", "accuracy", "pr_auc", "brier", "lift_top20")
BOOTSTRAP_ROUNDS = 200


def lift_at(y: NDArray[Any], p: NDArray[Any], fraction: float = 0.2) -> float:
    """The churn rate among the `fraction` scored highest over the overall rate (ties broken by order)."""
    top = max(1, round(len(p) * fraction))
    chosen = np.argsort(-p, kind="stable")[:top]
    return float(np.mean(y[chosen]) / np.mean(y))


def metrics(y: NDArray[Any], p: NDArray[Any], threshold: float = 0.5) -> dict[str, float]:
    return {
        "auc": float(roc_auc_score(y, p)),
        "accuracy": float(accuracy_score(y, p >= threshold)),
        "pr_auc": float(average_precision_score(y, p)),
        "brier": float(brier_score_loss(y, p)),
        "lift_top20": lift_at(y, p),
    }


def with_intervals(
    y: NDArray[Any], p: NDArray[Any], threshold: float = 0.5, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Each metric with a percentile bootstrap 95% interval (members resampled with replacement, the
    same resamples for every metric and, with the same seed, for every model)."""
    from sklearn import config_context

    point = metrics(y, p, threshold)
    rng = np.random.default_rng(seed)
    samples = []
    with config_context(skip_parameter_validation=True, assume_finite=True):  # 200 x 5 metric calls
        for _ in range(BOOTSTRAP_ROUNDS):
            chosen = rng.integers(0, len(y), len(y))
            if len(np.unique(y[chosen])) < 2:
                continue  # AUC needs both classes
            found = metrics(y[chosen], p[chosen], threshold)
            samples.append([found[name] for name in METRICS])
    low, high = np.percentile(np.array(samples), [2.5, 97.5], axis=0)
    return {
        name: {"value": round(point[name], 6), "low": round(float(lo), 6), "high": round(float(hi), 6)}
        for name, lo, hi in zip(METRICS, low, high, strict=True)
    }


def country_group(country: str) -> str:
    # the retailer is British: the one comparison with enough members on both sides
    return "domestic" if country == "United Kingdom" else "international"


def fairness(y: NDArray[Any], p: NDArray[Any], countries: Sequence[str], threshold: float) -> dict[str, Any]:
    """Selection rate (share who get the action), true positive rate and AUC per country group, and
    the between-group ratios (fairlearn's MetricFrame: min over max)."""
    from fairlearn.metrics import MetricFrame, selection_rate, true_positive_rate

    groups = [country_group(c) for c in countries]
    decided = (p >= threshold).astype(int)
    frame = MetricFrame(
        metrics={"selection_rate": selection_rate, "true_positive_rate": true_positive_rate},
        y_true=y,
        y_pred=decided,
        sensitive_features=np.array(groups),
    )
    by_group = frame.by_group.to_dict(orient="index")
    counts = {g: groups.count(g) for g in sorted(set(groups))}
    return {
        "groups": {
            str(g): {"members": counts[str(g)], **{k: round(float(v), 6) for k, v in row.items()}}
            for g, row in sorted(by_group.items())
        },
        "ratios": {k: round(float(v), 6) for k, v in frame.ratio().to_dict().items()},
    }


def curves(
    y: NDArray[Any], p: NDArray[Any], bins: int = 10, points: int = 60
) -> dict[str, list[list[float]]]:
    """The points the model card draws: the ROC curve (false and true positive rates, thinned to at most
    `points` corners, the ends kept) and the calibration per bin of equal width (mean predicted
    probability, observed churn rate, members), empty bins left out. Rounded to 4 places: they are
    pictures, and the card is hashed."""
    from sklearn.metrics import roc_curve

    fpr, tpr, _ = roc_curve(y, p, drop_intermediate=True)
    keep = np.unique(np.round(np.linspace(0, len(fpr) - 1, min(points, len(fpr)))).astype(int))
    roc = [[round(float(fpr[i]), 4), round(float(tpr[i]), 4)] for i in keep]
    which = np.minimum((p * bins).astype(int), bins - 1)
    calibration = [
        [
            round(float(np.mean(p[which == k])), 4),
            round(float(np.mean(y[which == k])), 4),
            int(np.sum(which == k)),
        ]
        for k in range(bins)
        if np.any(which == k)
    ]
    return {"roc": roc, "calibration": calibration}
