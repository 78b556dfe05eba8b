"""Features of a member as of a date, from that member's events strictly before the date.

Nothing after `as_of` is read: every feature is a function of `history_before(events, as_of)`
(`tests/ml/test_features.py` proves it by appending the future and comparing). Times are in days.

Every feature a registered model ever used stays computable here (a model registered earlier must still
score and reproduce its decisions); which of them a new model uses is `ml.training`'s choice
(`MODEL_FEATURES`), never a calendar feature: a reason a customer reads is about what they did.
"""

from __future__ import annotations

import bisect
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from statistics import fmean, pstdev
from typing import Any

from ml.events import PURCHASE, RETURN, SUPPORT_TICKET, Event

DAY = 86_400.0
WINDOWS = (90, 180, 365)


@dataclass(frozen=True)
class Feature:
    name: str
    meaning: str
    # how a customer could move it (+1 up, -1 down), or 0 where they cannot (tenure, the calendar)
    actionable: int = 0
    integral: bool = False  # a count or a number of days: counterfactual values are whole
    calendar: bool = False  # a property of the date, not of the customer: never a model's reason


FEATURES: tuple[Feature, ...] = (
    Feature("recency_days", "days since the last purchase", actionable=-1, integral=True),
    Feature("frequency", "purchases so far", actionable=+1, integral=True),
    Feature("monetary", "spend so far", actionable=+1),
    Feature("tenure_days", "days since the first purchase", integral=True),
    Feature("gap_mean_days", "mean days between purchases"),
    Feature("gap_std_days", "spread of the days between purchases"),
    Feature("recency_over_gap", "days since the last purchase over the mean gap"),
    *(
        Feature(f"purchases_{w}d", f"purchases in the last {w} days", actionable=+1, integral=True)
        for w in WINDOWS
    ),
    *(Feature(f"spend_{w}d", f"spend in the last {w} days", actionable=+1) for w in WINDOWS),
    Feature("returns", "returned invoices so far", integral=True),
    Feature("basket_size", "mean items per purchase"),
    Feature("distinct_products", "distinct products bought so far", integral=True),
    Feature("month", "month of the as-of date", integral=True, calendar=True),
    Feature("p_alive", "BG/NBD probability that the customer is still active"),
    Feature("tickets", "support tickets so far", integral=True),
    Feature("ticket_sentiment", "mean VADER compound score of the support tickets (0 if none)"),
    # the audit's set (with recency, tenure, purchases_90d, spend_365d, distinct_products above)
    Feature("purchases_90_180d", "purchases between 90 and 180 days ago", integral=True),
    Feature("purchases_180_365d", "purchases between 180 and 365 days ago", integral=True),
    Feature("months_active_12", "30-day periods of the last 12 with a purchase", integral=True),
    Feature("expected_purchases_90d", "BG/NBD expected purchases in the next 90 days"),
    Feature("overdue", "share of the customer's own past gaps shorter than the current one (smoothed)"),
    Feature("same_season_last_year", "purchases in the 90 days starting a year before the as-of date"),
    Feature("return_value_rate", "value returned over value bought"),
    # candidates of the feature search (benchmarks/ml_decisions.py --search)
    Feature("purchases_30d", "purchases in the last 30 days", integral=True),
    Feature("spend_per_purchase_365d", "mean spend per purchase in the last 365 days"),
    Feature("lines_per_basket", "mean distinct products per purchase"),
    Feature("new_product_share", "share of the last 365 days' products never bought before them"),
    Feature("trend_90d", "purchases in the last 90 days minus those in the 90 before"),
)
NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
BY_NAME = {f.name: f for f in FEATURES}


@dataclass(frozen=True)
class BgNbd:
    """Fitted BG/NBD parameters (Fader, Hardie and Lee 2005). Fitted with `lifetimes`; the probability
    alive is evaluated here, in closed form, so that a stored model reproduces it without refitting."""

    r: float
    alpha: float
    a: float
    b: float

    def p_alive(self, repeats: int, recency: float, age: float) -> float:
        """P(alive | x repeat purchase days, t_x days from the first to the last, T days since the first)."""
        if repeats == 0:
            return 1.0
        ratio = (self.alpha + age) / (self.alpha + recency)
        odds = (self.a / (self.b + repeats - 1)) * ratio ** (self.r + repeats)
        return 1.0 / (1.0 + float(odds))

    def expected_purchases(self, repeats: int, recency: float, age: float, horizon: float) -> float:
        """E[purchases in the next `horizon` days | x, t_x, T] (Fader, Hardie and Lee 2005, eq. 10), the
        formula `lifetimes` uses; where it is undefined (a = 1, or a fit at the no-dropout limit) the
        customer's own rate x / T over the horizon."""
        from scipy.special import hyp2f1

        r, alpha, a, b = self.r, self.alpha, self.a, self.b
        x = repeats
        try:
            first = (a + b + x - 1) / (a - 1)
            second = 1 - ((alpha + age) / (alpha + age + horizon)) ** (r + x) * float(
                hyp2f1(r + x, b + x, a + b + x - 1, horizon / (alpha + age + horizon))
            )
            third = 1 + (x > 0) * (a / (b + x - 1)) * ((alpha + age) / (alpha + recency)) ** (r + x)
            value = first * second / third
        except (ZeroDivisionError, OverflowError):
            value = math.nan
        if not math.isfinite(value) or value < 0:
            return x / age * horizon if age > 0 else 0.0
        return float(value)


def days(moment: datetime) -> float:
    return moment.timestamp() / DAY


def history_before(events: Sequence[Event], as_of: datetime) -> Sequence[Event]:
    """The member's events strictly before `as_of` (events are oldest first)."""
    cut = bisect.bisect_left([e.at for e in events], as_of)
    return events[:cut]


def bgnbd_summary(events: Sequence[Event], as_of: datetime) -> tuple[int, float, float] | None:
    """(repeat purchase days, first-to-last days, first-to-as-of days), or None without a purchase."""
    purchase_days = sorted(
        {math.floor(days(e.at)) for e in history_before(events, as_of) if e.kind == PURCHASE}
    )
    if not purchase_days:
        return None
    now = days(as_of)
    return len(purchase_days) - 1, float(purchase_days[-1] - purchase_days[0]), now - purchase_days[0]


@lru_cache(maxsize=65_536)
def sentiment(text: str) -> float:
    return float(_vader().polarity_scores(text)["compound"])


@lru_cache(maxsize=1)
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def features(events: Sequence[Event], as_of: datetime, bgnbd: BgNbd) -> dict[str, float]:
    """Every feature of FEATURES for one member as of `as_of`, from events strictly before it. A member
    without a purchase before `as_of` is not in the population (see `ml.dataset`): ValueError."""
    past = history_before(events, as_of)
    purchases = [e for e in past if e.kind == PURCHASE]
    if not purchases:
        raise ValueError("no purchase before the as-of date")
    now = days(as_of)
    times = [days(e.at) for e in purchases]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    recency = now - times[-1]
    gap_mean = fmean(gaps) if gaps else 0.0
    tickets = [e.text or "" for e in past if e.kind == SUPPORT_TICKET]
    summary = bgnbd_summary(events, as_of)
    assert summary is not None
    row: dict[str, float] = {
        "recency_days": math.floor(recency),
        "frequency": len(purchases),
        "monetary": round(sum(e.total for e in purchases), 2),
        "tenure_days": math.floor(now - times[0]),
        "gap_mean_days": gap_mean,
        "gap_std_days": pstdev(gaps) if len(gaps) > 1 else 0.0,
        "recency_over_gap": recency / gap_mean if gap_mean > 0 else 0.0,
        "returns": sum(1 for e in past if e.kind == RETURN),
        "basket_size": fmean(sum(q for _, q in e.items) for e in purchases),
        "distinct_products": len({code for e in purchases for code, _ in e.items}),
        "month": as_of.month,
        "p_alive": bgnbd.p_alive(*summary),
        "tickets": len(tickets),
        "ticket_sentiment": fmean(sentiment(t) for t in tickets) if tickets else 0.0,
    }
    for window in WINDOWS:
        recent = [e for e, t in zip(purchases, times, strict=True) if now - t <= window]
        row[f"purchases_{window}d"] = len(recent)
        row[f"spend_{window}d"] = round(sum(e.total for e in recent), 2)
    ages = [now - t for t in times]
    row["purchases_30d"] = sum(1 for age in ages if age <= 30)
    row["purchases_90_180d"] = row["purchases_180d"] - row["purchases_90d"]
    row["purchases_180_365d"] = row["purchases_365d"] - row["purchases_180d"]
    row["months_active_12"] = len({math.floor(age / 30) for age in ages if age < 360})
    row["expected_purchases_90d"] = round(bgnbd.expected_purchases(*summary, 90.0), 9)
    row["overdue"] = (sum(1 for g in gaps if g < recency) + 0.5) / (len(gaps) + 1)
    row["same_season_last_year"] = sum(1 for age in ages if 275 < age <= 365)
    bought = sum(e.total for e in purchases)
    returned = -sum(e.total for e in past if e.kind == RETURN)
    row["return_value_rate"] = round(returned / bought, 6) if bought > 0 else 0.0
    row["spend_per_purchase_365d"] = (
        round(row["spend_365d"] / row["purchases_365d"], 2) if row["purchases_365d"] else 0.0
    )
    row["lines_per_basket"] = fmean(len({code for code, _ in e.items}) for e in purchases)
    earlier = {code for e, age in zip(purchases, ages, strict=True) if age > 365 for code, _ in e.items}
    lately = {code for e, age in zip(purchases, ages, strict=True) if age <= 365 for code, _ in e.items}
    row["new_product_share"] = len(lately - earlier) / len(lately) if lately else 0.0
    row["trend_90d"] = row["purchases_90d"] - row["purchases_90_180d"]
    return {name: float(row[name]) for name in NAMES}
