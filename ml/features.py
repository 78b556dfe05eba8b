"""Features of a member as of a date, from that member's events strictly before the date.

Nothing after `as_of` is read: every feature is a function of `history_before(events, as_of)`
(`tests/ml/test_features.py` proves it by appending the future and comparing). Times are in days.
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
    Feature("month", "month of the as-of date", integral=True),
    Feature("p_alive", "BG/NBD probability that the customer is still active"),
    Feature("tickets", "support tickets so far", integral=True),
    Feature("ticket_sentiment", "mean VADER compound score of the support tickets (0 if none)"),
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
    return {name: float(row[name]) for name in NAMES}
