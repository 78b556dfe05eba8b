"""The registered model: an Explainable Boosting Machine (main effects only) in a canonical, safe form.

An EBM's logit is an intercept plus one score per feature, looked up in that feature's bin. `GlassBox`
holds exactly that (cut points, per-bin scores, intercept) as RFC 8785 JSON: loading it runs no code
(never a pickle), its SHA-256 is the model hash, and `logit` = intercept + sum of `contributions`, which
is the explanation, exactly (the tests hold it to interpret's own `decision_function` within 1e-9).

Formats: `ledgercrm/glassbox/v2` holds a stated action rule (`ml.policy`: a budget or an expected cost)
and its terms are calibrated (`calibrated`: a slope and a shift folded into the terms, so the explanation
stays exact); its counterfactuals are purchases a customer can make (`ml.decision.reach`). The v1 format
(a score threshold) is still read, so that models registered before it score and reproduce as they did;
their counterfactual is searched on the bins: the smallest move of one feature a customer can act on
(then of two) that brings the score under the threshold.
"""

from __future__ import annotations

import bisect
import hashlib
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from itertools import combinations
from typing import Any

import rfc8785

from ml.features import BY_NAME, BgNbd
from ml.policy import THRESHOLD, Policy

FORMAT = "ledgercrm/glassbox/v2"
FORMAT_V1 = "ledgercrm/glassbox/v1"
FORMATS = (FORMAT, FORMAT_V1)


@dataclass(frozen=True)
class Change:
    feature: str
    current: float
    to: float


@dataclass(frozen=True)
class Counterfactual:
    changes: tuple[Change, ...]
    score: float  # the churn probability the changed features would give
    purchases: int = 0  # v2: the purchases that make the change (0: a v1 move on the bins)
    spend_each: float = 0.0  # v2: what each of them spends (the member's mean purchase)

    def as_json(self) -> dict[str, Any]:
        found: dict[str, Any] = {
            "changes": [{"feature": c.feature, "from": c.current, "to": c.to} for c in self.changes],
            "score": self.score,
        }
        if self.purchases:
            found |= {"purchases": self.purchases, "spendEach": self.spend_each}
        return found

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Counterfactual:
        return cls(
            tuple(Change(str(c["feature"]), float(c["from"]), float(c["to"])) for c in data["changes"]),
            float(data["score"]),
            int(data.get("purchases", 0)),
            float(data.get("spendEach", 0.0)),
        )


@dataclass(frozen=True)
class GlassBox:
    features: tuple[str, ...]
    cuts: tuple[tuple[float, ...], ...]  # per feature: bin k holds cuts[k-1] <= x < cuts[k]
    scores: tuple[
        tuple[float, ...], ...
    ]  # per feature: index 0 missing, 1..len(cuts)+1 the bins, then unknown
    intercept: float
    bgnbd: BgNbd  # the parameters the BG/NBD features are computed with at scoring time
    policy: Policy  # the stated action rule
    action: str = "retention_offer"
    format: str = FORMAT

    @property
    def threshold(self) -> float:
        """The score at or above which a per-member rule acts (a budget has none: it ranks a run)."""
        found = self.policy.score_threshold
        if found is None:
            raise ValueError("a budget acts on a share of a run, not above a fixed score")
        return found

    @classmethod
    def from_ebm(cls, ebm: Any, bgnbd: BgNbd, policy: Policy) -> GlassBox:
        if any(len(term) != 1 for term in ebm.term_features_):
            raise ValueError("a GlassBox holds main effects only: fit the EBM with interactions=0")
        if any(t != "continuous" for t in ebm.feature_types_in_):
            raise ValueError("every feature must be continuous")
        order = [term[0] for term in ebm.term_features_]
        return cls(
            features=tuple(str(ebm.feature_names_in_[i]) for i in order),
            cuts=tuple(tuple(float(c) for c in ebm.bins_[i][0]) for i in order),
            scores=tuple(tuple(float(s) for s in scores) for scores in ebm.term_scores_),
            intercept=float(ebm.intercept_[0]),
            bgnbd=bgnbd,
            policy=policy,
            format=FORMAT_V1 if policy.rule == THRESHOLD else FORMAT,
        )

    def calibrated(self, slope: float, shift: float) -> GlassBox:
        """The model whose logit is `slope` x this one's + `shift`, the slope folded into every term and
        the shift into the intercept: still exactly intercept + terms, with the same order of reasons."""
        if not slope > 0:
            raise ValueError("a calibration slope is positive (it must keep the ranking)")
        return GlassBox(
            features=self.features,
            cuts=self.cuts,
            scores=tuple(tuple(slope * s for s in scores) for scores in self.scores),
            intercept=slope * self.intercept + shift,
            bgnbd=self.bgnbd,
            policy=self.policy,
            action=self.action,
            format=self.format,
        )

    # --- the canonical form ---------------------------------------------------------------------------

    def to_json(self) -> dict[str, Any]:
        policy = (
            {"threshold": self.threshold, "action": self.action}
            if self.format == FORMAT_V1
            else {**self.policy.to_json(), "action": self.action}
        )
        return {
            "format": self.format,
            "features": list(self.features),
            "cuts": [list(c) for c in self.cuts],
            "scores": [list(s) for s in self.scores],
            "intercept": self.intercept,
            "bgnbd": {"r": self.bgnbd.r, "alpha": self.bgnbd.alpha, "a": self.bgnbd.a, "b": self.bgnbd.b},
            "policy": policy,
        }

    def to_bytes(self) -> bytes:
        return rfc8785.dumps(self.to_json())

    @cached_property  # the canonical bytes of ~800 floats take ~10 ms: once per model, not per decision
    def model_hash(self) -> bytes:
        return hashlib.sha256(self.to_bytes()).digest()

    @classmethod
    def from_bytes(cls, raw: bytes) -> GlassBox:
        import json

        try:
            data = json.loads(raw)
            found = data.get("format") if isinstance(data, dict) else None
        except ValueError:
            found = None
        if found not in FORMATS:
            raise ValueError(
                f"not a model this release reads (its format is {found!r}; it reads {', '.join(FORMATS)})"
            )
        unknown = [name for name in data["features"] if name not in BY_NAME]
        if unknown:
            raise ValueError(f"the model uses features this release does not compute: {', '.join(unknown)}")
        rule = data["policy"]
        policy = (
            Policy(THRESHOLD, threshold=float(rule["threshold"]))
            if found == FORMAT_V1
            else Policy.from_json({k: v for k, v in rule.items() if k != "action"})
        )
        return cls(
            features=tuple(data["features"]),
            cuts=tuple(tuple(float(c) for c in cuts) for cuts in data["cuts"]),
            scores=tuple(tuple(float(s) for s in scores) for scores in data["scores"]),
            intercept=float(data["intercept"]),
            bgnbd=BgNbd(**{k: float(v) for k, v in data["bgnbd"].items()}),
            policy=policy,
            action=str(rule["action"]),
            format=str(found),
        )

    # --- scoring and the exact explanation ------------------------------------------------------------

    def bin_of(self, index: int, value: float) -> int:
        if math.isnan(value):
            return 0
        return bisect.bisect_right(self.cuts[index], value) + 1

    def contributions(self, row: Mapping[str, float]) -> dict[str, float]:
        """Each feature's term in the logit: the model's own explanation, not an approximation. `bin_of`
        written out (a NaN is the one value unequal to itself): a method call per feature was most of
        the ~0.1 CPU s `score --all` spent here (10,356 rows of 16 features)."""
        found: dict[str, float] = {}
        scores, cuts, right = self.scores, self.cuts, bisect.bisect_right
        for i, name in enumerate(self.features):
            value = row[name]
            found[name] = scores[i][0 if value != value else right(cuts[i], value) + 1]
        return found

    def logit(self, row: Mapping[str, float]) -> float:
        total = self.intercept
        for value in self.contributions(row).values():
            total += value
        return total

    def score(self, row: Mapping[str, float]) -> float:
        return _sigmoid(self.logit(row))

    def acts(self, row: Mapping[str, float]) -> bool:
        return self.score(row) >= self.threshold

    def reasons(self, row: Mapping[str, float], top: int = 3) -> list[tuple[str, int]]:
        """The `top` features pushing the score most, each with its direction (+1 towards churn)."""
        ranked = sorted(self.contributions(row).items(), key=lambda kv: (-abs(kv[1]), kv[0]))
        return [(name, 1 if value > 0 else -1) for name, value in ranked[:top] if value != 0]

    # --- the counterfactual ---------------------------------------------------------------------------

    def counterfactual(self, row: Mapping[str, float]) -> Counterfactual | None:
        """A v1 model's counterfactual: the smallest actionable change (one feature, else two) under
        which the action would not be taken, found exactly on the bins; None if no such change exists
        or the action is not taken. "Smallest": fewest features, then the least total move, each move
        measured in bins."""
        if not self.acts(row):
            return None
        limit = _logit(self.threshold)
        base = self.logit(row)
        moves = {name: self._moves(row, name) for name in self.features if BY_NAME[name].actionable}
        singles = [
            (steps, (change,), delta) for name, options in moves.items() for steps, change, delta in options
        ]
        best: tuple[int, tuple[Change, ...]] | None = min(
            ((s, c) for s, c, d in singles if base + d < limit), default=None, key=_order
        )
        if best is None:
            best = min(
                (
                    pair
                    for a, b in combinations(sorted(moves), 2)
                    for pair in _pairs(moves[a], moves[b], limit - base)
                ),
                default=None,
                key=_order,
            )
        if best is None:
            return None
        changed = dict(row) | {c.feature: c.to for c in best[1]}
        return Counterfactual(best[1], self.score(changed))

    def _moves(self, row: Mapping[str, float], name: str) -> list[tuple[int, Change, float]]:
        """Every bin `name` can move to in the direction a customer can act: (bins moved, the change to
        the nearest value in that bin, the change in logit)."""
        i = self.features.index(name)
        feature = BY_NAME[name]
        value = row[name]
        here = self.bin_of(i, value)
        cuts = self.cuts[i]
        found = []
        if feature.actionable > 0:
            for k, cut in enumerate(cuts):
                target = k + 2  # the bin starting at cuts[k]
                if target <= here:
                    continue
                to = float(math.ceil(cut)) if feature.integral else math.ceil(cut * 100) / 100
                if self.bin_of(i, to) != target:
                    continue
                found.append(
                    (target - here, Change(name, value, to), self.scores[i][target] - self.scores[i][here])
                )
        else:
            for k, cut in enumerate(cuts):
                target = k + 1  # the bin ending at cuts[k]
                if target >= here:
                    continue
                to = float(math.ceil(cut) - 1) if feature.integral else math.floor(cut * 100 - 1e-9) / 100
                if to < 0 or self.bin_of(i, to) != target:
                    continue
                found.append(
                    (here - target, Change(name, value, to), self.scores[i][target] - self.scores[i][here])
                )
        return found


def _pairs(
    first: list[tuple[int, Change, float]], second: list[tuple[int, Change, float]], room: float
) -> Iterator[tuple[int, tuple[Change, ...]]]:
    """For each move of the first feature, the fewest-bins move of the second with which the logit falls
    by more than `room` allows (d1 + d2 < room), if any. Moves of the second feature sorted by bins, with
    the running minimum of their logit change: the first index whose minimum is under room - d1 is the
    answer, found by bisection (O(n log n) per pair of features instead of every combination)."""
    if not first or not second:
        return
    ranked = sorted(second, key=lambda m: m[0])
    lowest: list[float] = []
    for _, _, delta in ranked:
        lowest.append(min(delta, lowest[-1]) if lowest else delta)
    negated = [-x for x in lowest]  # non-decreasing: bisect finds the first minimum under a bound
    for s1, c1, d1 in first:
        k = bisect.bisect_right(negated, -(room - d1))
        if k < len(ranked):  # the running minimum first falls under the bound at a move that is under it
            yield s1 + ranked[k][0], (c1, ranked[k][1])


def _order(candidate: tuple[int, tuple[Change, ...]]) -> tuple[int, int, str]:
    steps, changes = candidate
    return len(changes), steps, ",".join(c.feature for c in changes)


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def _logit(p: float) -> float:
    return math.log(p / (1.0 - p))
