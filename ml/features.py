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
from array import array
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from operator import itemgetter
from statistics import fmean, pstdev
from typing import Any

from ml import special
from ml.events import PURCHASE, RETURN, SUPPORT_TICKET, Event

DAY = 86_400.0
_CODE, _QUANTITY = itemgetter(0), itemgetter(1)  # of an item: (stock code, quantity)
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
    # the product mix and the basket's make-up (issue #31): from each line's description, unit price and
    # quantity, over the last 365 days' purchases; the kinds of product are `CATEGORIES`
    Feature("christmas_share_365d", "share of the last 365 days' spend on Christmas items"),
    Feature("christmas_share_90d", "share of the last 90 days' spend on Christmas items"),
    Feature("kinds_365d", "kinds of product bought in the last 365 days", integral=True),
    Feature("top_kind_share_365d", "share of the last 365 days' spend on the kind of product bought most"),
    Feature("repeat_line_share_365d", "share of the last 365 days' lines that are products bought before"),
    Feature("unit_price_365d", "mean price paid per item in the last 365 days"),
    Feature("wholesale_line_share_365d", "share of the last 365 days' lines of a dozen items or more"),
)
NAMES: tuple[str, ...] = tuple(f.name for f in FEATURES)
BY_NAME = {f.name: f for f in FEATURES}

# Kinds of product, from the words of a line's description: a small fixed list, the first kind one of
# whose words the description holds (in this order: "CHRISTMAS CARD" is Christmas, "LUNCH BAG" a bag),
# so the grouping needs no catalogue. Words are those of Online Retail II's descriptions (a UK gift
# wholesaler); anything else is "other". A registered model's christmas_share_90d reads this list: a
# change to it would change that model's decisions, so a new grouping must come as a new feature.
CHRISTMAS = "Christmas"
OTHER = "other"
CATEGORIES: tuple[tuple[str, frozenset[str]], ...] = tuple(
    (kind, frozenset(words.split()))
    for kind, words in (
        (CHRISTMAS, "CHRISTMAS XMAS ADVENT SANTA REINDEER SNOWFLAKE NATIVITY BAUBLE BAUBLES"),
        ("party and seasons", "PARTY BIRTHDAY BALLOON BALLOONS BUNTING EASTER HALLOWEEN VALENTINE"),
        ("bags", "BAG BAGS SHOPPER"),
        ("candles and lights", "CANDLE CANDLES T-LIGHT T-LIGHTS LIGHT LIGHTS LANTERN LANTERNS"),
        (
            "kitchen and table",
            "MUG MUGS CUP CUPS SAUCER TEACUP PLATE PLATES BOWL BOWLS TEA COFFEE CAKE CAKES CAKESTAND "
            "BAKING NAPKINS CUTLERY JAR JARS JUG APRON KITCHEN PANTRY LUNCH TRAY SPOON SPOONS COOKIE "
            "CASES TEATIME RECIPE SNACK JAM MILK FOOD DINER PICNIC STRAWS GLASS",
        ),
        (
            "stationery and wrapping",
            "CARD CARDS WRAP PAPER NOTEBOOK PEN PENS PENCIL PENCILS STICKERS STICKER TAPE ENVELOPES "
            "RIBBON RIBBONS TISSUES DOILIES DOILY TAG TAGS PAD CHALKBOARD BOOK ERASER",
        ),
        (
            "toys and children",
            "TOY TOYS CHILDRENS CHILDS SPACEBOY DOLLY DOLL GAME PUZZLE JIGSAW SKIPPING PLAYHOUSE TEDDY "
            "DINOSAUR CIRCUS ALPHABET CRAYONS KIDS",
        ),
        ("garden", "GARDEN PLANT WATERING BIRD BIRDHOUSE FEEDER PARASOL SHED PLANTER"),
        (
            "fashion and accessories",
            "NECKLACE BRACELET EARRINGS RING HAIR CHARM UMBRELLA SCARF GLOVES WARMER BROOCH PURSE "
            "WALLET PASSPORT",
        ),
        (
            "home decoration",
            "SIGN FRAME CLOCK MIRROR CUSHION DOORMAT HOOK HOOKS KNOB DRAWER HEART HEARTS GARLAND "
            "DECORATION ORNAMENT VASE WALL HANGER DOORSTOP CABINET PHOTO PICTURE MAGNETS COVER MAT "
            "HANGING HOME",
        ),
        ("storage", "BOX BOXES BASKET CRATE STORAGE TIN TINS TRINKET"),
    )
)
WHOLESALE_QUANTITY = 12  # a dozen: the commonest pack size of a line after single items


@lru_cache(maxsize=16_384)
def category(description: str) -> str:
    """The kind of product a description names (`CATEGORIES`), or "other"."""
    words = set(description.upper().replace(",", " ").replace("/", " ").split())
    for kind, keys in CATEGORIES:
        if not words.isdisjoint(keys):
            return kind
    return OTHER


KINDS: tuple[str, ...] = (*(kind for kind, _ in CATEGORIES), OTHER)  # a Basket's kinds index this
_KIND_INDEX = {kind: i for i, kind in enumerate(KINDS)}


@dataclass(frozen=True, slots=True)
class Basket:
    """What one purchase's lines are made of (`Timeline.basket`). Each line's kind and amount are kept
    as a byte and a double (a training run holds the baskets of a million lines: as pairs of objects
    they were ~50 MB)."""

    kinds: bytes  # each line's kind of product, an index into KINDS
    amounts: array[float]  # each line's amount (quantity x price), in the order of `kinds`
    lines: int
    repeat_lines: int  # lines of a product an earlier purchase of the member's held
    wholesale_lines: int  # lines of WHOLESALE_QUANTITY items or more
    units: int


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
        hyp2f1 = special.hyp2f1()  # scipy.special's, without its package's import where unneeded

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


class Timeline:
    """A member's events (oldest first) read once, so that features at many as-of dates cost a few
    bisections and the windows' own purchases each, not a pass over the whole history per date (a
    training run reads each member at a dozen or more dates). Every value `features_at` derives from it
    is the one a direct computation over `history_before(events, as_of)` gives, bit for bit: the same
    comparisons, and sums in the same order (tests/ml/test_features.py holds it to that reference)."""

    __slots__ = (
        "_baskets",
        "_distinct",
        "_first_seen",
        "_lines",
        "_purchases",
        "_quantities",
        "at",
        "countries",
        "day_count",
        "gaps",
        "purchase_at",
        "return_at",
        "returned",
        "spent",
        "texts",
        "ticket_at",
        "times",
        "totals",
    )

    def __init__(self, events: Sequence[Event]) -> None:
        self.at = [e.at for e in events]
        purchases = [e for e in events if e.kind == PURCHASE]
        self.purchase_at = [e.at for e in purchases]
        self.times = [days(e.at) for e in purchases]
        self.totals = [e.total for e in purchases]
        # spent[n]: sum() of the first n totals, added left to right from 0 as sum() does
        self.spent = list(itertools.accumulate(self.totals, initial=0))
        # the purchases' lines are read when a feature asks for them (`_products`): a training run's
        # frames take every feature but BG/NBD's from the events' columns (`ml.table`), and of its
        # timelines reads only times, so these were ~14 MB traced and ~0.5 CPU s unread on Online
        # Retail II
        self._quantities: list[int] | None = None
        self._lines: list[int] = []
        self._first_seen: dict[str, int] = {}
        self._distinct: list[int] = []
        # day_count[n]: distinct purchase days (BG/NBD's repeat purchases) of the first n purchases
        self.day_count = [0]
        last_day: int | None = None
        for t in self.times:
            day = math.floor(t)
            self.day_count.append(self.day_count[-1] + (day != last_day))
            last_day = day
        self.gaps = [b - a for a, b in itertools.pairwise(self.times)]
        returns = [e for e in events if e.kind == RETURN]
        self.return_at = [e.at for e in returns]
        self.returned = list(itertools.accumulate((e.total for e in returns), initial=0))
        tickets = [e for e in events if e.kind == SUPPORT_TICKET]
        self.ticket_at = [e.at for e in tickets]
        self.texts = [e.text or "" for e in tickets]
        self.countries = [(e.at, e.country) for e in events if e.country]
        self._purchases = purchases
        self._baskets: dict[int, Basket] = {}

    def _products(self) -> list[int]:
        """Each purchase's quantity, and the products' fields below, made on first use."""
        if self._quantities is None:
            purchases = self._purchases
            # the same sums and sets as a generator over each line, without a Python step a line
            quantities = [sum(map(_QUANTITY, e.items)) for e in purchases]
            # lines[i]: purchase i's distinct products; distinct[n]: those of the first n purchases;
            # first_seen: code -> its first purchase (no set of codes kept per purchase: ~50 MB on Online
            # Retail II)
            lines = self._lines
            first_seen = self._first_seen
            distinct = self._distinct
            distinct.append(0)
            for i, e in enumerate(purchases):
                codes = set(map(_CODE, e.items))
                lines.append(len(codes))
                for code in codes:
                    first_seen.setdefault(code, i)
                distinct.append(len(first_seen))
            self._quantities = quantities
        return self._quantities

    @property
    def quantities(self) -> list[int]:
        """quantities[i]: the items of purchase i."""
        return self._products()

    @property
    def lines(self) -> list[int]:
        """lines[i]: purchase i's distinct products."""
        self._products()
        return self._lines

    @property
    def first_seen(self) -> dict[str, int]:
        """Each product's first purchase."""
        self._products()
        return self._first_seen

    @property
    def distinct(self) -> list[int]:
        """distinct[n]: the distinct products of the first n purchases."""
        self._products()
        return self._distinct

    def basket(self, i: int) -> Basket:
        """Purchase `i`'s `Basket`, made on first use (only models with product-mix features pay, and
        only for the purchases their windows reach)."""
        found = self._baskets.get(i)
        if found is None:
            event = self._purchases[i]
            prices = event.prices if len(event.prices) == len(event.items) else (0.0,) * len(event.items)
            described = event.descriptions if len(event.descriptions) == len(event.items) else None
            kinds = bytearray()
            amounts = array("d")
            repeat = wholesale = 0
            for j, ((code, quantity), price) in enumerate(zip(event.items, prices, strict=True)):
                kinds.append(_KIND_INDEX[category(described[j]) if described is not None else OTHER])
                amounts.append(quantity * price)
                repeat += self.first_seen[code] < i
                wholesale += quantity >= WHOLESALE_QUANTITY
            found = Basket(bytes(kinds), amounts, len(event.items), repeat, wholesale, self.quantities[i])
            self._baskets[i] = found
        return found

    def codes(self, start: int, end: int) -> set[str]:
        """The distinct products of purchases `start` to `end` (excluded)."""
        return {code for e in self._purchases[start:end] for code, _ in e.items}

    def purchases_before(self, as_of: datetime) -> int:
        return bisect.bisect_left(self.purchase_at, as_of)

    def events_before(self, as_of: datetime) -> int:
        return bisect.bisect_left(self.at, as_of)

    def country(self, as_of: datetime) -> str | None:
        """The latest country named before `as_of`."""
        i = bisect.bisect_left(self.countries, as_of, key=lambda c: c[0])
        return self.countries[i - 1][1] if i else None

    def within(self, n: int, now: float, holds: Callable[[float], bool]) -> int:
        """The first index of the first `n` purchases from which on `holds(now - t)` holds (an age test
        that is true of the newest purchases and stays true: ages fall as purchases get newer)."""
        return bisect.bisect_left(range(n), True, key=lambda i: holds(now - self.times[i]))

    def summary(self, n: int, now: float) -> tuple[int, float, float]:
        """`bgnbd_summary` of the first `n` purchases (n > 0) as of day `now`."""
        first, last = math.floor(self.times[0]), math.floor(self.times[n - 1])
        return self.day_count[n] - 1, float(last - first), now - first


def bgnbd_summary(events: Sequence[Event], as_of: datetime) -> tuple[int, float, float] | None:
    """(repeat purchase days, first-to-last days, first-to-as-of days), or None without a purchase."""
    timeline = Timeline(events)
    n = timeline.purchases_before(as_of)
    return timeline.summary(n, days(as_of)) if n else None


@lru_cache(maxsize=65_536)
def sentiment(text: str) -> float:
    return float(_vader().polarity_scores(text)["compound"])


@lru_cache(maxsize=1)
def _vader() -> Any:
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    return SentimentIntensityAnalyzer()


def features(
    events: Sequence[Event], as_of: datetime, bgnbd: BgNbd, names: Collection[str] | None = None
) -> dict[str, float]:
    """Every feature of FEATURES (or those in `names`) for one member as of `as_of`, from events
    strictly before it. A member without a purchase before `as_of` is not in the population (see
    `ml.dataset`): ValueError."""
    return features_at(Timeline(events), as_of, bgnbd, names)


def features_at(
    timeline: Timeline, as_of: datetime, bgnbd: BgNbd, names: Collection[str] | None = None
) -> dict[str, float]:
    """`features` from a member's `Timeline`: only the features in `names` (all by default) are
    computed, so a model's decisions do not pay for the ones it does not use."""
    n = timeline.purchases_before(as_of)
    if not n:
        raise ValueError("no purchase before the as-of date")
    wanted = NAMES if names is None else tuple(name for name in NAMES if name in names)
    now = days(as_of)
    times = timeline.times
    recency = now - times[n - 1]
    gaps = timeline.gaps[: n - 1]
    row: dict[str, float] = {}

    def count(holds: Callable[[float], bool]) -> int:  # purchases whose age passes the test
        return n - timeline.within(n, now, holds)

    def window(days_: int) -> int:  # the first purchase within the last `days_` days
        return timeline.within(n, now, lambda age: age <= days_)

    def gap_mean() -> float:
        return fmean(gaps) if gaps else 0.0

    for name in wanted:
        if name == "recency_days":
            value: float = math.floor(recency)
        elif name == "frequency":
            value = n
        elif name == "monetary":
            value = round(timeline.spent[n], 2)
        elif name == "tenure_days":
            value = math.floor(now - times[0])
        elif name == "gap_mean_days":
            value = gap_mean()
        elif name == "gap_std_days":
            value = pstdev(gaps) if len(gaps) > 1 else 0.0
        elif name == "recency_over_gap":
            mean = gap_mean()
            value = recency / mean if mean > 0 else 0.0
        elif name.startswith("purchases_") and name.removeprefix("purchases_")[:-1].isdigit():
            value = n - window(int(name[10:-1]))
        elif name.startswith("spend_") and name.removeprefix("spend_")[:-1].isdigit():
            value = round(sum(timeline.totals[window(int(name[6:-1])) : n]), 2)
        elif name == "returns":
            value = bisect.bisect_left(timeline.return_at, as_of)
        elif name == "basket_size":
            value = fmean(timeline.quantities[:n])
        elif name == "distinct_products":
            value = timeline.distinct[n]
        elif name == "month":
            value = as_of.month
        elif name == "p_alive":
            value = bgnbd.p_alive(*timeline.summary(n, now))
        elif name in ("tickets", "ticket_sentiment"):
            texts = timeline.texts[: bisect.bisect_left(timeline.ticket_at, as_of)]
            mean = fmean(sentiment(t) for t in texts) if texts and name == "ticket_sentiment" else 0.0
            value = len(texts) if name == "tickets" else mean
        elif name == "purchases_90_180d":
            value = count(lambda age: age <= 180) - count(lambda age: age <= 90)
        elif name == "purchases_180_365d":
            value = count(lambda age: age <= 365) - count(lambda age: age <= 180)
        elif name == "months_active_12":
            value = len(
                {math.floor((now - t) / 30) for t in times[timeline.within(n, now, lambda a: a < 360) : n]}
            )
        elif name == "expected_purchases_90d":
            value = round(bgnbd.expected_purchases(*timeline.summary(n, now), 90.0), 9)
        elif name == "overdue":
            value = (sum(1 for g in gaps if g < recency) + 0.5) / (len(gaps) + 1)
        elif name == "same_season_last_year":
            value = count(lambda age: age <= 365) - count(lambda age: age <= 275)
        elif name == "return_value_rate":
            bought = timeline.spent[n]
            returned = -timeline.returned[bisect.bisect_left(timeline.return_at, as_of)]
            value = round(returned / bought, 6) if bought > 0 else 0.0
        elif name == "spend_per_purchase_365d":
            recent = count(lambda age: age <= 365)
            spend = round(sum(timeline.totals[window(365) : n]), 2)
            value = round(spend / recent, 2) if recent else 0.0
        elif name == "lines_per_basket":
            value = fmean(timeline.lines[:n])
        elif name == "new_product_share":
            start = window(365)  # purchases before it are the earlier ones (older than 365 days)
            lately = timeline.codes(start, n)
            value = sum(1 for c in lately if timeline.first_seen[c] >= start) / len(lately) if lately else 0.0
        elif name == "trend_90d":
            value = count(lambda age: age <= 90) - (
                count(lambda age: age <= 180) - count(lambda age: age <= 90)
            )
        elif name in MIX:
            start = window(90 if name.endswith("_90d") else 365)
            value = _mix(name, [timeline.basket(i) for i in range(start, n)])
        else:  # pragma: no cover - every name of NAMES has a branch
            raise AssertionError(name)
        row[name] = float(value)
    return row


MIX = frozenset(
    (
        "christmas_share_365d",
        "christmas_share_90d",
        "kinds_365d",
        "top_kind_share_365d",
        "repeat_line_share_365d",
        "unit_price_365d",
        "wholesale_line_share_365d",
    )
)


def _mix(name: str, baskets: Sequence[Basket]) -> float:
    """A product-mix feature over `baskets` (the window's purchases). Amounts are added with math.fsum,
    exact and so independent of the order they come in; a share of nothing is 0."""
    if name in ("repeat_line_share_365d", "wholesale_line_share_365d"):
        lines = sum(b.lines for b in baskets)
        counted = sum(b.repeat_lines if name.startswith("repeat") else b.wholesale_lines for b in baskets)
        return round(counted / lines, 6) if lines else 0.0
    by_kind: dict[str, list[float]] = {}
    for basket in baskets:
        for kind, amount in zip(basket.kinds, basket.amounts, strict=True):
            by_kind.setdefault(KINDS[kind], []).append(amount)
    spend = {kind: math.fsum(amounts) for kind, amounts in by_kind.items()}
    total = math.fsum(amount for b in baskets for amount in b.amounts)
    if name == "kinds_365d":
        return float(sum(1 for kind, amount in spend.items() if kind != OTHER and amount > 0))
    if name == "unit_price_365d":
        units = sum(b.units for b in baskets)
        return round(total / units, 4) if units > 0 else 0.0
    if total <= 0:
        return 0.0
    if name == "top_kind_share_365d":
        return round(max(spend.values()) / total, 6)
    return round(spend.get(CHRISTMAS, 0.0) / total, 6)  # christmas_share_*
