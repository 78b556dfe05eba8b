"""Metrics on a holdout, with bootstrap 95% intervals, and a fairness snapshot by country group."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.metrics import accuracy_score, average_precision_score, brier_score_loss, roc_auc_score

METRICS = ("auc", "accuracy", "pr_auc", "brier", "lift_top20")
BOOTSTRAP_ROUNDS = 200
INTERVAL_CHUNK = 50  # bootstrap rounds scored at once by `with_intervals`


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


def resamples(rng: np.random.Generator, n: int, rounds: int = BOOTSTRAP_ROUNDS) -> NDArray[np.int64]:
    """`rounds` bootstrap resamples of `n` members, one row each: the draws `rng.integers(0, n, n)` makes
    round after round (drawn so, not as one matrix, so the rows are those draws on any numpy)."""
    return np.stack([rng.integers(0, n, n) for _ in range(rounds)]) if rounds else np.empty((0, n), np.int64)


class Resampled:
    """Bootstrap resamples of one holdout (`chosen`: one row of member positions per round) as counts:
    how often each member is drawn in each round, the members in score order and grouped by tied score,
    so that a rank statistic of every round is a few sums over the matrix instead of a sort per round."""

    def __init__(self, y: NDArray[Any], p: NDArray[Any], chosen: NDArray[np.int64]) -> None:
        n = len(y)
        order = np.argsort(p, kind="stable")
        ranked = p[order]
        starts = np.flatnonzero(np.r_[True, ranked[1:] != ranked[:-1]])  # each tie group's first member
        rows = len(chosen)
        counts = np.bincount((chosen + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n)
        counts = counts.reshape(rows, n)[:, order]
        positive = y[order] == 1
        # per round and tie group (lowest score first): the positives and negatives drawn
        self.positives = np.add.reduceat(np.where(positive, counts, 0), starts, axis=1).astype(np.float64)
        self.negatives = np.add.reduceat(np.where(positive, 0, counts), starts, axis=1).astype(np.float64)

    def aucs(self) -> NDArray[np.float64]:
        """`fast_auc` of every round, to the bit: the Mann-Whitney count (a positive over a negative 1, a
        tie a half) is the rank sum less n1(n1+1)/2, both exact in binary, over the same n1 x n0."""
        below = np.cumsum(self.negatives, axis=1) - self.negatives
        pairs = (self.positives * (below + 0.5 * self.negatives)).sum(axis=1)
        n1, n0 = self.positives.sum(axis=1), self.negatives.sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where((n1 > 0) & (n0 > 0), pairs / (n1 * n0), np.nan)

    def average_precisions(self) -> NDArray[np.float64]:
        """scikit-learn's `average_precision_score` of every round (the step integral of the
        precision-recall curve over the distinct scores): each positive counts the precision among the
        members scored at least as high as it, over the positives."""
        tp = np.cumsum(self.positives[:, ::-1], axis=1)
        drawn = np.cumsum((self.positives + self.negatives)[:, ::-1], axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            precision = np.where(drawn > 0, tp / drawn, 0.0)
            found: NDArray[np.float64] = (self.positives[:, ::-1] * precision).sum(axis=1) / tp[:, -1]
        return found


def _lifts(y: NDArray[Any], p: NDArray[Any], fraction: float = 0.2) -> NDArray[np.float64]:
    """`lift_at` of every row (ties broken by order within the row, as there)."""
    top = max(1, round(y.shape[1] * fraction))
    chosen = np.argsort(-p, axis=1, kind="stable")[:, :top]
    found: NDArray[np.float64] = np.take_along_axis(y, chosen, axis=1).mean(axis=1) / y.mean(axis=1)
    return found


def with_intervals(
    y: NDArray[Any], p: NDArray[Any], threshold: float = 0.5, seed: int = 0
) -> dict[str, dict[str, float]]:
    """Each metric with a percentile bootstrap 95% interval (members resampled with replacement, the
    same resamples for every metric and, with the same seed, for every model). The resamples are
    scored all at once, each metric as the point value's function computes it (tests/ml hold the two
    equal)."""
    point = metrics(y, p, threshold)
    chosen = resamples(np.random.default_rng(seed), len(y))
    # scored INTERVAL_CHUNK rounds at a time: every figure of a round is computed from its own row, so
    # the chunks give the same figures, and the rounds x members temporaries (labels, scores, counts,
    # orders) are a quarter as large at once (on Online Retail II's holdout they raised `model train`'s
    # peak by ~58 MB)
    parts = []
    for start in range(0, len(chosen), INTERVAL_CHUNK):
        rows = chosen[start : start + INTERVAL_CHUNK]
        ys, ps = y[rows], p[rows]
        both = (ys == 1).any(axis=1) & (ys != 1).any(axis=1)  # AUC needs both classes
        ys, ps = ys[both], ps[both]
        counted = Resampled(y, p, rows[both])
        parts.append(
            np.column_stack(
                [
                    counted.aucs(),
                    (ys == (ps >= threshold)).mean(axis=1),
                    counted.average_precisions(),
                    ((ys - ps) ** 2).mean(axis=1),
                    _lifts(ys, ps),
                ]
            )
        )
    samples = np.vstack(parts)
    low, high = np.percentile(samples, [2.5, 97.5], axis=0)
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


# --- calibration -----------------------------------------------------------------------------------------

CALIBRATION_BINS = 10


def reliability(y: NDArray[Any], p: NDArray[Any], bins: int = CALIBRATION_BINS) -> list[dict[str, Any]]:
    """The reliability table: per equal-width score bin, its members, mean predicted probability and
    observed churn rate (empty bins left out)."""
    index = np.clip(np.floor(p * bins).astype(int), 0, bins - 1)
    table = []
    for b in range(bins):
        chosen = index == b
        n = int(chosen.sum())
        if n:
            table.append(
                {
                    "bin": f"[{b / bins:.1f}, {(b + 1) / bins:.1f}{']' if b == bins - 1 else ')'}",
                    "members": n,
                    "predicted": round(float(p[chosen].mean()), 6),
                    "observed": round(float(y[chosen].mean()), 6),
                }
            )
    return table


def expected_calibration_error(y: NDArray[Any], p: NDArray[Any], bins: int = CALIBRATION_BINS) -> float:
    """ECE: the members-weighted mean gap between predicted and observed churn over the reliability
    table's bins."""
    index = np.clip(np.floor(p * bins).astype(int), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        chosen = index == b
        if chosen.any():
            total += float(chosen.sum()) * abs(float(p[chosen].mean()) - float(y[chosen].mean()))
    return total / len(y)


# --- paired comparisons ----------------------------------------------------------------------------------


def fast_auc(y: NDArray[Any], p: NDArray[Any]) -> float:
    """ROC AUC as the Mann-Whitney statistic on average ranks: `roc_auc_score`'s value (ties count a
    half), without its input validation, which is most of its time in a bootstrap of thousands of calls
    (tests/ml hold the two equal)."""
    from scipy.stats import rankdata

    positives = y == 1
    n1 = int(positives.sum())
    n0 = len(y) - n1
    if n1 == 0 or n0 == 0:
        return float("nan")
    ranks = rankdata(p)
    return float((ranks[positives].sum() - n1 * (n1 + 1) / 2) / (n1 * n0))


def paired_auc_difference(
    cuts: Sequence[tuple[NDArray[Any], NDArray[Any], NDArray[Any]]], seed: int = 0
) -> dict[str, float]:
    """The mean over cuts of AUC(other) - AUC(reference), with a paired percentile bootstrap 95% interval:
    each round resamples the members of every cut once and scores both models on the same resample.
    `cuts`: (labels, reference scores, other scores) per cut. The draws are made round by round, cut by
    cut (a round whose resample of a cut lacks a class is dropped, its later cuts not drawn), and every
    round's AUCs are then computed at once (`aucs`)."""
    point = float(np.mean([fast_auc(y, other) - fast_auc(y, ref) for y, ref, other in cuts]))
    drawn = _paired_draws([y for y, _, _ in cuts], seed)
    differences = [
        _resampled_aucs(y, other, kept) - _resampled_aucs(y, ref, kept)
        for (y, ref, other), kept in zip(cuts, drawn, strict=True)
        if kept
    ]
    return _interval(point, differences)


def paired_auc_differences(
    y: NDArray[Any], reference: NDArray[Any], others: Sequence[NDArray[Any]], seed: int = 0
) -> list[dict[str, float]]:
    """`paired_auc_difference([(y, reference, other)], seed)` of each of `others` on one cut, the same
    figures to the bit, with the resamples and the reference's AUCs on them computed once (a backtest
    compares five rivals to the glass box on each population)."""
    kept = _paired_draws([y], seed)[0]
    base = _resampled_aucs(y, reference, kept) if kept else None
    found = []
    for other in others:
        point = float(np.mean([fast_auc(y, other) - fast_auc(y, reference)]))
        differences = [_resampled_aucs(y, other, kept) - base] if base is not None else []
        found.append(_interval(point, differences))
    return found


def _resampled_aucs(
    y: NDArray[Any], p: NDArray[Any], kept: Sequence[NDArray[np.int64]]
) -> NDArray[np.float64]:
    """`Resampled(y, p, rounds).aucs()` of the rounds `kept`, INTERVAL_CHUNK rounds at a time (as
    `with_intervals` scores them): each round's AUC is its own row's, so the same figures, with the
    rounds x members temporaries (the draws, counts, tie groups' sums) a quarter as large at once."""
    return np.concatenate(
        [
            Resampled(y, p, np.array(kept[start : start + INTERVAL_CHUNK])).aucs()
            for start in range(0, len(kept), INTERVAL_CHUNK)
        ]
    )


def _paired_draws(labels: Sequence[NDArray[Any]], seed: int) -> list[list[NDArray[np.int64]]]:
    """The bootstrap rounds' resamples of each cut (`paired_auc_difference` says how they are drawn)."""
    rng = np.random.default_rng(seed)
    drawn: list[list[NDArray[np.int64]]] = [[] for _ in labels]
    for _ in range(BOOTSTRAP_ROUNDS):
        found = []
        for y in labels:
            chosen = rng.integers(0, len(y), len(y))
            drawn_labels = y[chosen]
            if drawn_labels.min() == drawn_labels.max():  # one class only: no AUC
                break
            found.append(chosen)
        else:
            for kept, chosen in zip(drawn, found, strict=True):
                kept.append(chosen)
    return drawn


def _interval(point: float, differences: Sequence[NDArray[np.float64]]) -> dict[str, float]:
    rounds = np.mean(differences, axis=0)
    low, high = np.percentile(rounds, [2.5, 97.5])
    return {"value": round(point, 6), "low": round(float(low), 6), "high": round(float(high), 6)}


# --- fairness with intervals -----------------------------------------------------------------------------

GROUP_METRICS = ("base_rate", "auc", "selection_rate", "false_positive_rate", "calibration_error")


def _group_metrics(y: NDArray[Any], p: NDArray[Any], acted: NDArray[Any]) -> dict[str, float]:
    """The group's figures (fairlearn's definitions, computed directly: this runs 200 times a group)."""
    stayers = y == 0
    return {
        "base_rate": float(np.mean(y)),
        "auc": fast_auc(y, p),
        "selection_rate": float(np.mean(acted)),
        "false_positive_rate": float(np.mean(acted[stayers])) if stayers.any() else float("nan"),
        "calibration_error": expected_calibration_error(y, p),
    }


def fairness_with_intervals(
    y: NDArray[Any], p: NDArray[Any], acted: NDArray[Any], countries: Sequence[str], seed: int = 0
) -> dict[str, Any]:
    """Per country group: members, base rate (observed churn), AUC, selection rate (the share acted on),
    false positive rate (stayers acted on) and calibration error, each with a percentile bootstrap 95%
    interval over the group's members; and fairlearn's between-group ratios of the rates."""
    from fairlearn.metrics import MetricFrame, false_positive_rate, selection_rate

    groups = np.array([country_group(c) for c in countries])
    rng = np.random.default_rng(seed)
    found: dict[str, Any] = {}
    for group in sorted(set(groups.tolist())):
        chosen = groups == group
        gy, gp, ga = y[chosen], p[chosen], acted[chosen]
        point = _group_metrics(gy, gp, ga)
        samples = []
        for _ in range(BOOTSTRAP_ROUNDS):
            pick = rng.integers(0, len(gy), len(gy))
            values = _group_metrics(gy[pick], gp[pick], ga[pick])
            samples.append([values[name] for name in GROUP_METRICS])
        low, high = np.nanpercentile(np.array(samples), [2.5, 97.5], axis=0)
        found[group] = {"members": int(chosen.sum())} | {
            name: {"value": round(point[name], 6), "low": round(float(lo), 6), "high": round(float(hi), 6)}
            for name, lo, hi in zip(GROUP_METRICS, low, high, strict=True)
        }
    frame = MetricFrame(
        metrics={"selection_rate": selection_rate, "false_positive_rate": false_positive_rate},
        y_true=y,
        y_pred=acted.astype(int),
        sensitive_features=groups,
    )
    return {
        "groups": found,
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
