"""Features of many members at once, from their events as columns (`EventTable`): `table_features` gives
every member what `ml.features.features_at` gives her, bit for bit.

`features_at` reads one member's `Timeline`, made from her `Event`s: a tuple per line and a Python step
per line. Scoring all of a partner's members (809,561 lines on Online Retail II) spent most of its time
making those objects. Here counts, windows and products' identities are numpy over every member's
purchases at once, and each float feature is made with the very operations `features_at` uses (the same
sums in the same order, `fsum`, `fmean`, `round`), once per member over list slices.
tests/ml/test_features.py holds every feature of FEATURES for every member to `features_at`'s, bit for
bit: a decision must reproduce by either path (`decision verify` recomputes one member with
`features_at`). Not in `ml.features` itself: numpy is imported only where many members are read.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from statistics import fmean, pstdev
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ml.events import PURCHASE, RETURN, SUPPORT_TICKET, Event
from ml.features import (
    _KIND_INDEX,
    CHRISTMAS,
    DAY,
    MIX,
    NAMES,
    OTHER,
    WHOLESALE_QUANTITY,
    BgNbd,
    category,
    days,
    sentiment,
)

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
EXACT_US = 2**53  # times within ~285 years of 1970: their microseconds are exact doubles, as `days` needs
MAX_QUANTITY = 2**31  # quantities below this in size: a member's sums of them are exact doubles
KIND_CODES = {PURCHASE: 0, RETURN: 1, SUPPORT_TICKET: 2}  # an event of any other kind: OTHER_EVENT
OTHER_EVENT = 3


def micros(moment: datetime) -> int:
    """An aware time as whole microseconds since the epoch (`days` divides exactly these)."""
    return (moment - _EPOCH) // _MICROSECOND


@dataclass(frozen=True)
class EventTable:
    """Many members' events as columns. Member `m`'s events are `bounds[m]:bounds[m + 1]`, oldest first
    (as `ml.events.by_member` orders them); event `e`'s lines are `line_bounds[e]:line_bounds[e + 1]`.
    A line's `codes` number its stock code: within a member equal numbers are the same product, and no
    two members share a number. `descriptions` index `strings` (-1: none, the kind "other"); `prices` are
    0.0 where an event has no price for each line (as `Timeline.basket` reads it). Every time is within
    EXACT_US microseconds of the epoch and every quantity below MAX_QUANTITY in size."""

    members: tuple[str, ...]
    bounds: NDArray[np.int64]
    kinds: NDArray[np.int8]  # KIND_CODES
    at_us: NDArray[np.int64]  # `micros` of each event's time
    totals: NDArray[np.float64]
    texts: Sequence[str | None]
    line_bounds: NDArray[np.int64]
    codes: NDArray[np.int64]
    descriptions: NDArray[np.int64]
    quantities: NDArray[np.int64]
    prices: NDArray[np.float64]
    strings: Sequence[str]

    @classmethod
    def from_histories(cls, histories: Mapping[str, Sequence[Event]]) -> EventTable:
        """The table of these members' events (each member's oldest first). ValueError where a time or
        a quantity is out of the table's range (`fits`)."""
        strings: dict[str, int] = {}
        bounds: list[int] = [0]
        kinds: list[int] = []
        at_us: list[int] = []
        totals: list[float] = []
        texts: list[str | None] = []
        line_bounds: list[int] = [0]
        codes: list[int] = []
        descriptions: list[int] = []
        quantities: list[int] = []
        prices: list[float] = []
        next_code = 0
        for events in histories.values():
            own: dict[str, int] = {}  # this member's stock codes, numbered apart from everyone else's
            for e in events:
                kinds.append(KIND_CODES.get(e.kind, OTHER_EVENT))
                at_us.append(micros(e.at))
                totals.append(e.total)
                texts.append(e.text)
                for code, quantity in e.items:
                    number = own.get(code)
                    if number is None:
                        number = own[code] = next_code
                        next_code += 1
                    codes.append(number)
                    quantities.append(quantity)
                lines = len(e.items)
                prices.extend(e.prices if len(e.prices) == lines else (0.0,) * lines)
                if len(e.descriptions) == lines:
                    descriptions.extend(strings.setdefault(d, len(strings)) for d in e.descriptions)
                else:
                    descriptions.extend((-1,) * lines)
                line_bounds.append(len(codes))
            bounds.append(len(kinds))
        try:
            table = cls(
                tuple(histories),
                np.array(bounds, dtype=np.int64),
                np.array(kinds, dtype=np.int8),
                np.array(at_us, dtype=np.int64),
                np.array(totals, dtype=np.float64),
                texts,
                np.array(line_bounds, dtype=np.int64),
                np.array(codes, dtype=np.int64),
                np.array(descriptions, dtype=np.int64),
                np.array(quantities, dtype=np.int64),
                np.array(prices, dtype=np.float64),
                list(strings),
            )
        except OverflowError as error:
            raise ValueError("a time or a quantity out of the table's range") from error
        if not table.fits():
            raise ValueError("a time or a quantity out of the table's range")
        return table

    def fits(self) -> bool:
        # bounds on both sides, not np.abs: int64's least value is its own abs, negative, and "fitted"
        return bool(
            ((self.at_us > -EXACT_US) & (self.at_us < EXACT_US)).all()
            and ((self.quantities > -MAX_QUANTITY) & (self.quantities < MAX_QUANTITY)).all()
        )


@dataclass(frozen=True)
class TableFeatures:
    """`table_features`' answer: `values[m]` are member `m`'s features (`names`, in NAMES order) where
    `bought[m]` (she has a purchase before the as-of date); NaN elsewhere."""

    names: tuple[str, ...]
    values: NDArray[np.float64]
    bought: NDArray[np.bool_]
    last_purchase_us: NDArray[np.int64]  # `micros` of each one's latest purchase before it (else 0)

    def row(self, m: int) -> dict[str, float]:
        return dict(zip(self.names, self.values[m].tolist(), strict=True))


def table_features(
    table: EventTable,
    as_of: datetime,
    bgnbd: BgNbd,
    names: Collection[str] | None = None,
    among: NDArray[np.bool_] | None = None,
) -> TableFeatures:
    """`features_at` of each member of `table` (of those `among` marks, if given) as of `as_of`: every
    value bit for bit the one `features_at` gives from her `Timeline`."""
    wanted = NAMES if names is None else tuple(name for name in NAMES if name in names)
    read = _Read(table, as_of, bgnbd, among)
    values = np.full((len(table.members), len(wanted)), np.nan)
    for j, name in enumerate(wanted):
        values[:, j] = read.feature(name)
    values[~read.has] = np.nan
    read.release()
    last = np.zeros(len(table.members), np.int64)
    last[read.has] = table.at_us[read.at[read.last]]
    return TableFeatures(wanted, values, read.has, last)


class _Read:
    """One `table_features` call: the purchases before the as-of date (a prefix of each member's), and
    what several features share, computed once."""

    def __init__(
        self, table: EventTable, as_of: datetime, bgnbd: BgNbd, among: NDArray[np.bool_] | None
    ) -> None:
        self.table, self.as_of, self.bgnbd = table, as_of, bgnbd
        self.size = members = len(table.members)
        self.owner = np.repeat(np.arange(members, dtype=np.int64), np.diff(table.bounds))
        self.before = table.at_us < micros(as_of)
        if among is not None:
            self.before &= among[self.owner]
        self.now = now = days(as_of)
        self.at = np.flatnonzero(self.before & (table.kinds == KIND_CODES[PURCHASE]))
        self.p_owner = self.owner[self.at]
        self.n = np.bincount(self.p_owner, minlength=members)
        self.start = np.zeros(members + 1, np.int64)
        np.cumsum(self.n, out=self.start[1:])
        self.has = self.n > 0
        self.buyers = np.flatnonzero(self.has)
        self.first = self.start[:-1][self.has]  # each buyer's first and latest purchase
        self.last = self.start[1:][self.has] - 1
        # as `days`: the microseconds over 10**6 (an exact division of integers), then over DAY
        self.times = table.at_us[self.at] / 1e6 / DAY
        self.ages = now - self.times
        self.local = np.arange(len(self.at), dtype=np.int64) - self.start[self.p_owner]
        self.recency = np.zeros(members)
        self.recency[self.has] = now - self.times[self.last]
        self._within: dict[float, NDArray[np.int64]] = {}
        self._lines: _Lines | None = None
        self._summaries: list[tuple[int, float, float]] | None = None

    def release(self) -> None:
        """Drop the lines' arrays now: `_Lines` refers back to this object, and the cycle (~30 MB of
        arrays on Online Retail II) would otherwise wait for the cyclic garbage collector."""
        self._lines = None

    def count(self, mask: NDArray[np.bool_]) -> NDArray[np.int64]:
        """Per member, her purchases that `mask` marks."""
        return np.bincount(self.p_owner[mask], minlength=self.size)

    def within(self, days_: float) -> NDArray[np.int64]:
        """Per member, her purchases no older than `days_` (`features_at`'s `n - window(days_)`)."""
        found = self._within.get(days_)
        if found is None:
            found = self._within[days_] = self.count(self.ages <= days_)
        return found

    def lines(self) -> _Lines:
        if self._lines is None:
            self._lines = _Lines(self)
        return self._lines

    def per_buyer(self, compute: Callable[..., float], *columns: Sequence[Any]) -> NDArray[np.float64]:
        """`compute` once per member with a purchase, from her item of each column (one per buyer)."""
        found = np.full(self.size, np.nan)
        found[self.buyers] = [compute(*items) for items in zip(*columns, strict=True)]
        return found

    def summaries(self) -> list[tuple[int, float, float]]:
        """`Timeline.summary` of each buyer: (repeat purchase days, first to last day, first day to now)."""
        if self._summaries is None:
            day = np.floor(self.times)
            new_day = np.ones(len(day), dtype=bool)
            new_day[1:] = day[1:] != day[:-1]
            new_day[self.local == 0] = True
            repeats = (self.count(new_day) - 1)[self.buyers].tolist()
            first, last = day[self.first], day[self.last]
            self._summaries = list(
                zip(repeats, (last - first).tolist(), (self.now - first).tolist(), strict=True)
            )
        return self._summaries

    def slices(
        self, values: list[float], starts: NDArray[np.int64], ends: NDArray[np.int64]
    ) -> list[list[float]]:
        return [values[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]

    def feature(self, name: str) -> NDArray[np.float64]:
        n, has, buyers = self.n, self.has, self.buyers
        if name == "recency_days":
            return np.floor(self.recency) + 0.0  # + 0.0: math.floor never gives -0.0
        if name == "frequency":
            return n.astype(np.float64)
        if name == "tenure_days":
            tenure = np.zeros(self.size)
            tenure[has] = np.floor(self.now - self.times[self.first]) + 0.0
            return tenure
        if name.startswith("purchases_") and name.removeprefix("purchases_")[:-1].isdigit():
            return self.within(int(name[10:-1])).astype(np.float64)
        if (
            name in ("monetary", "return_value_rate")
            or (name.startswith("spend_") and name.removeprefix("spend_")[:-1].isdigit())
            or name == "spend_per_purchase_365d"
        ):
            return self._spend(name)
        if name in ("gap_mean_days", "gap_std_days", "recency_over_gap"):
            gaps = self.slices(np.diff(self.times).tolist(), self.first, self.last)
            if name == "gap_std_days":
                return self.per_buyer(lambda g: pstdev(g) if len(g) > 1 else 0.0, gaps)
            means = [fmean(g) if g else 0.0 for g in gaps]
            if name == "gap_mean_days":
                return self.per_buyer(float, means)
            return self.per_buyer(
                lambda r, mean: r / mean if mean > 0 else 0.0, self.recency[buyers].tolist(), means
            )
        if name in ("returns", "tickets"):
            kind = KIND_CODES[RETURN if name == "returns" else SUPPORT_TICKET]
            marked = self.before & (self.table.kinds == kind)
            return np.bincount(self.owner[marked], minlength=self.size).astype(np.float64)
        if name == "ticket_sentiment":
            marked = np.flatnonzero(self.before & (self.table.kinds == KIND_CODES[SUPPORT_TICKET]))
            texts: list[list[str]] = [[] for _ in range(self.size)]
            for m, e in zip(self.owner[marked].tolist(), marked.tolist(), strict=True):
                texts[m].append(self.table.texts[e] or "")
            return self.per_buyer(
                lambda t: fmean(sentiment(x) for x in t) if t else 0.0, [texts[m] for m in buyers.tolist()]
            )
        if name == "month":
            return np.full(self.size, float(self.as_of.month))
        if name == "p_alive":
            return self.per_buyer(lambda s: self.bgnbd.p_alive(*s), self.summaries())
        if name == "expected_purchases_90d":
            return self.per_buyer(
                lambda s: round(self.bgnbd.expected_purchases(s[0], s[1], s[2], 90.0), 9), self.summaries()
            )
        if name == "purchases_90_180d":
            return (self.within(180) - self.within(90)).astype(np.float64)
        if name == "purchases_180_365d":
            return (self.within(365) - self.within(180)).astype(np.float64)
        if name == "same_season_last_year":
            return (self.within(365) - self.within(275)).astype(np.float64)
        if name == "trend_90d":
            return (self.within(90) - (self.within(180) - self.within(90))).astype(np.float64)
        if name == "months_active_12":
            recent = self.ages < 360
            buckets = np.floor(self.ages[recent] / 30)
            return _distinct_per_member(self.p_owner[recent], buckets, self.size).astype(np.float64)
        if name == "overdue":
            diffs = np.diff(self.times)
            short = (self.local[1:] > 0) & (diffs < self.recency[self.p_owner[1:]])
            # (gaps shorter than the recency + 0.5) / (gaps + 1): n - 1 gaps
            return (np.bincount(self.p_owner[1:][short], minlength=self.size) + 0.5) / np.maximum(n, 1)
        if name in ("distinct_products", "basket_size", "lines_per_basket", "new_product_share"):
            return self.lines().feature(name)
        if name in MIX:
            return self.lines().mix(name)
        raise AssertionError(name)  # pragma: no cover - every name of NAMES has a branch

    def _spend(self, name: str) -> NDArray[np.float64]:
        totals = self.table.totals[self.at].tolist()
        ends = self.start[1:][self.buyers]
        if name == "monetary":  # Timeline.spent: accumulate's running sum, left to right from 0
            return self.per_buyer(lambda t: round(_running(t), 2), self.slices(totals, self.first, ends))
        if name == "return_value_rate":
            marked = np.flatnonzero(self.before & (self.table.kinds == KIND_CODES[RETURN]))
            returned_by = self.owner[marked]
            r_start = np.zeros(self.size + 1, np.int64)
            np.cumsum(np.bincount(returned_by, minlength=self.size), out=r_start[1:])
            returns = self.slices(
                self.table.totals[marked].tolist(), r_start[:-1][self.buyers], r_start[1:][self.buyers]
            )

            def rate(bought_totals: list[float], returned_totals: list[float]) -> float:
                bought = _running(bought_totals)
                returned = -_running(returned_totals)
                return round(returned / bought, 6) if bought > 0 else 0.0

            return self.per_buyer(rate, self.slices(totals, self.first, ends), returns)
        window = 365 if name == "spend_per_purchase_365d" else int(name[6:-1])
        recent = self.within(window)[self.buyers]
        spends = [round(sum(t), 2) for t in self.slices(totals, ends - recent, ends)]
        if name != "spend_per_purchase_365d":
            return self.per_buyer(float, spends)
        return self.per_buyer(
            lambda spend, count: round(spend / count, 2) if count else 0.0, spends, recent.tolist()
        )


def _running(values: Sequence[float]) -> float:
    """The running sum `itertools.accumulate` makes (`Timeline.spent`): left to right from 0."""
    total: float = 0
    for value in values:
        total = total + value
    return total


def _distinct_per_member(owners: NDArray[np.int64], values: NDArray[Any], size: int) -> NDArray[np.int64]:
    """Per member, how many distinct `values` her items hold."""
    if len(owners) == 0:
        return np.zeros(size, np.int64)
    order = np.lexsort((values, owners))
    o, v = owners[order], values[order]
    new = np.ones(len(o), dtype=bool)
    new[1:] = (o[1:] != o[:-1]) | (v[1:] != v[:-1])
    return np.bincount(o[new], minlength=size)


class _Lines:
    """The lines of the purchases before the as-of date, in table order (a member's, purchase after
    purchase), with each product's first and latest line of the member."""

    def __init__(self, read: _Read) -> None:
        self.read = read
        table = read.table
        starts = table.line_bounds[read.at]
        counts = table.line_bounds[read.at + 1] - starts
        self.purchase_start = np.zeros(len(read.at) + 1, np.int64)  # lines of purchase i: [i]:[i + 1]
        np.cumsum(counts, out=self.purchase_start[1:])
        self.index = segments(starts, counts)  # into the table's line columns
        self.purchase = np.repeat(np.arange(len(read.at), dtype=np.int64), counts)
        self.owner = read.p_owner[self.purchase]
        self.local = read.local[self.purchase]  # the purchase's number among the member's
        self.codes = table.codes[self.index]
        self.quantities = table.quantities[self.index]
        self.code_count = int(self.codes.max()) + 1 if len(self.codes) else 0
        self._firsts: tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.int64]] | None = None

    def firsts(self) -> tuple[NDArray[np.bool_], NDArray[np.bool_], NDArray[np.int64]]:
        """Which lines are the member's first of their product, which her latest, and the number of
        the purchase each line's product was first bought in (`Timeline.first_seen`)."""
        if self._firsts is None:
            places = np.arange(len(self.index), dtype=np.int64)
            first = np.full(self.code_count, len(places), np.int64)
            np.minimum.at(first, self.codes, places)
            latest = np.full(self.code_count, -1, np.int64)
            np.maximum.at(latest, self.codes, places)
            self._firsts = (
                first[self.codes] == places,
                latest[self.codes] == places,
                self.local[first[self.codes]],
            )
        return self._firsts

    def window(self, days_: int) -> tuple[NDArray[np.int64], NDArray[np.bool_]]:
        """Each member's first purchase (her number) within the last `days_` days, and which lines are
        of purchases within it."""
        read = self.read
        start = read.n - read.within(days_)
        return start, self.local >= start[self.owner]

    def feature(self, name: str) -> NDArray[np.float64]:
        read = self.read
        size, n = read.size, np.maximum(read.n, 1)
        if name == "distinct_products":  # no two members share a product's number
            seen = np.zeros(self.code_count, dtype=bool)
            seen[self.codes] = True
            owner_of = np.zeros(self.code_count, np.int64)
            owner_of[self.codes] = self.owner  # the same member wherever a number repeats
            return np.bincount(owner_of[seen], minlength=size).astype(np.float64)
        if name == "basket_size":  # fmean of whole numbers: their exact sum over n
            return np.bincount(self.owner, weights=self.quantities, minlength=size) / n
        if name == "lines_per_basket":  # distinct products per purchase, over n
            keys = self.purchase * (int(self.codes.max()) + 1 if len(self.codes) else 1) + self.codes
            distinct = _unique(keys)
            owners = read.p_owner[distinct // (int(self.codes.max()) + 1 if len(self.codes) else 1)]
            return np.bincount(owners, minlength=size) / n
        # new_product_share: the window is the latest purchases, so a product is among its products
        # if the member's latest line of it is in it, and new to it if her first line of it is
        _, inside = self.window(365)
        is_first, is_latest, _ = self.firsts()
        lately = np.bincount(self.owner[inside & is_latest], minlength=size)
        new = np.bincount(self.owner[inside & is_first], minlength=size)
        return np.where(lately > 0, new / np.maximum(lately, 1), 0.0)

    def mix(self, name: str) -> NDArray[np.float64]:
        read = self.read
        _start, inside = self.window(90 if name.endswith("_90d") else 365)
        lines = np.flatnonzero(inside)
        owners = self.owner[lines]
        bounds = np.zeros(read.size + 1, np.int64)
        np.cumsum(np.bincount(owners, minlength=read.size), out=bounds[1:])
        lo, hi = bounds[:-1][read.buyers], bounds[1:][read.buyers]
        if name in ("repeat_line_share_365d", "wholesale_line_share_365d"):
            if name.startswith("repeat"):
                marked = self.firsts()[2][lines] < self.local[lines]
            else:
                marked = self.quantities[lines] >= WHOLESALE_QUANTITY
            counted = np.bincount(owners[marked], minlength=read.size)[read.buyers]
            return read.per_buyer(
                lambda c, total: round(c / total, 6) if total else 0.0, counted.tolist(), (hi - lo).tolist()
            )
        table = read.table
        index = self.index[lines]
        amounts = (self.quantities[lines] * table.prices[index]).tolist()
        every = read.slices(amounts, lo, hi)
        totals = [math.fsum(a) for a in every]
        if name == "unit_price_365d":
            units = np.bincount(owners, weights=self.quantities[lines], minlength=read.size)[read.buyers]
            return read.per_buyer(
                lambda total, u: round(total / u, 4) if u > 0 else 0.0, totals, units.tolist()
            )
        described = table.descriptions[index]
        texts = _unique(described)
        kind_of = np.array(kinds_of(table.strings, texts.tolist()), np.int64)
        kinds = kind_of[np.searchsorted(texts, described)] if len(texts) else np.zeros(0, np.int64)
        if name.startswith("christmas_share"):
            christmas = kinds == _KIND_INDEX[CHRISTMAS]
            c_bounds = np.zeros(read.size + 1, np.int64)
            np.cumsum(np.bincount(owners[christmas], minlength=read.size), out=c_bounds[1:])
            spent = read.slices(
                np.compress(christmas, amounts).tolist(),
                c_bounds[:-1][read.buyers],
                c_bounds[1:][read.buyers],
            )
            return read.per_buyer(
                lambda part, total: round(math.fsum(part) / total, 6) if total > 0 else 0.0, spent, totals
            )
        # kinds_365d, top_kind_share_365d: each kind's spend, a member's kinds one after the other
        order = np.lexsort((kinds, owners))
        o, k = owners[order], kinds[order]
        sorted_amounts = np.array(amounts)[order].tolist()
        group = np.ones(len(o), dtype=bool)
        group[1:] = (o[1:] != o[:-1]) | (k[1:] != k[:-1])
        heads = [*np.flatnonzero(group).tolist(), len(o)]
        spend_by: list[list[tuple[int, float]]] = [[] for _ in range(read.size)]
        for a, b in itertools.pairwise(heads):
            spend_by[int(o[a])].append((int(k[a]), math.fsum(sorted_amounts[a:b])))
        spends = [spend_by[m] for m in read.buyers.tolist()]
        if name == "kinds_365d":
            other = _KIND_INDEX[OTHER]
            return read.per_buyer(
                lambda s: float(sum(1 for kind, amount in s if kind != other and amount > 0)), spends
            )
        return read.per_buyer(
            lambda s, total: round(max(a for _, a in s) / total, 6) if total > 0 else 0.0, spends, totals
        )


def _unique(values: NDArray[np.int64]) -> NDArray[np.int64]:
    """`np.unique` of whole numbers (sorted, each once): np.unique asks `np.ma.is_masked` of a plain
    array, which imports numpy.ma (~0.02 CPU s of a `score` that needs nothing else of it)."""
    ordered = np.sort(values)
    first = np.ones(len(ordered), dtype=bool)
    first[1:] = ordered[1:] != ordered[:-1]
    return ordered[first]


def kinds_of(strings: Sequence[str], indices: list[int]) -> list[int]:
    """The kind of product (`_KIND_INDEX` of `category`) of each description `strings[i]` (-1: none,
    "other"), each distinct text classified once. A table of strings that gives its items' UTF-8 bytes
    (`encoded_many`, as a memo's table does: `api.evidence.inputs`) is read as bytes, one at a time, not
    decoded item by item: on Online Retail II a season's lines name ~54,000 items of the members' own
    tables and ~5,000 distinct texts."""
    encoded_many: Callable[[Iterable[int]], Iterator[bytes]] | None = getattr(strings, "encoded_many", None)
    wanted = (i for i in indices if i >= 0)
    texts: Iterator[Any] = (
        encoded_many(wanted) if encoded_many is not None else map(strings.__getitem__, wanted)
    )
    seen: dict[Any, int] = {}
    other = _KIND_INDEX[OTHER]
    kinds = []
    for i in indices:
        if i < 0:
            kinds.append(other)
            continue
        text = next(texts)
        kind = seen.get(text)
        if kind is None:
            kind = seen[text] = _KIND_INDEX[category(text.decode() if type(text) is bytes else text)]
        kinds.append(kind)
    return kinds


def segments(starts: NDArray[np.int64], counts: NDArray[np.int64]) -> NDArray[np.int64]:
    """starts[i], starts[i] + 1, .., starts[i] + counts[i] - 1 for every i, one segment after another."""
    total = int(counts.sum())
    if total == 0:
        return np.zeros(0, np.int64)
    offsets = np.repeat(starts - np.concatenate(([0], np.cumsum(counts)[:-1])), counts)
    return np.arange(total, dtype=np.int64) + offsets


def latest_purchases(table: EventTable, as_of: datetime) -> tuple[NDArray[np.bool_], NDArray[np.int64]]:
    """Per member, whether she bought before `as_of`, and `micros` of her latest purchase before it (0
    where none)."""
    owner = np.repeat(np.arange(len(table.members), dtype=np.int64), np.diff(table.bounds))
    at = np.flatnonzero((table.at_us < micros(as_of)) & (table.kinds == KIND_CODES[PURCHASE]))
    latest = np.full(len(table.members), np.iinfo(np.int64).min, np.int64)
    np.maximum.at(latest, owner[at], table.at_us[at])
    bought = np.bincount(owner[at], minlength=len(table.members)) > 0
    return bought, np.where(bought, latest, 0)


def events_before(table: EventTable, as_of: datetime) -> NDArray[np.int64]:
    """Per member, how many of her events are before `as_of` (`ml.decision.inputs_before`)."""
    owner = np.repeat(np.arange(len(table.members), dtype=np.int64), np.diff(table.bounds))
    return np.bincount(owner[table.at_us < micros(as_of)], minlength=len(table.members))
