"""Who is scored, what churn means, and the slices a model is trained and evaluated on.

- Population as of a date: members with a purchase in the `ELIGIBLE_DAYS` (365) days before it.
- Label: churned = no purchase in [as_of, as_of + horizon) (default horizon 90 days).
- Training slices: monthly as-of dates whose label windows end on or before the holdout's as-of date,
  so nothing the holdout is judged on was seen in training (a strict temporal holdout).
"""

from __future__ import annotations

import bisect
import contextlib
import io
import math
import threading
import warnings
from array import array
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
from numpy.typing import NDArray

from ml.events import PURCHASE, Event
from ml.features import NAMES, BgNbd, Timeline, days, features_at
from ml.table import EventTable, latest_purchases, micros, table_features

ELIGIBLE_DAYS = 365
NO_DROPOUT = BgNbd(r=1.0, alpha=1.0, a=0.0, b=1.0)  # p_alive = 1 for everyone
DEFAULT_HORIZON_DAYS = 90


@dataclass(frozen=True)
class Slice:
    as_of: datetime
    members: list[str]
    X: NDArray[np.float64]  # one row per member, columns in `ml.features.NAMES` order
    y: NDArray[np.int_] | None  # churned (1) or not (0); None where the label window is not over
    countries: list[str]  # each member's latest country (for the fairness snapshot only: not a feature)


def purchase_times(events: Sequence[Event]) -> list[datetime]:
    return [e.at for e in events if e.kind == PURCHASE]


def eligible(events: Sequence[Event], as_of: datetime) -> bool:
    times = purchase_times(events)
    i = bisect.bisect_left(times, as_of)
    return i > 0 and times[i - 1] >= as_of - timedelta(days=ELIGIBLE_DAYS)


def ever_bought(events: Sequence[Event], as_of: datetime) -> bool:
    """Whether the member bought before `as_of` at all: the population published figures use."""
    times = purchase_times(events)
    return bool(times) and times[0] < as_of


def churned(events: Sequence[Event], as_of: datetime, horizon_days: int) -> bool:
    times = purchase_times(events)
    i = bisect.bisect_left(times, as_of)
    return not (i < len(times) and times[i] < as_of + timedelta(days=horizon_days))


# the features a BG/NBD fit moves: every other feature of a member at a date is the same in every fit
BGNBD_FEATURES = frozenset(("p_alive", "expected_purchases_90d"))


@dataclass(frozen=True)
class Frame:
    """A date's population as `Timelines.frame` finds it: per member, in the histories' order, the
    features no fit moves (a row each, in NAMES order), the label, the country and the BG/NBD summary
    (`Timeline.summary`)."""

    members: list[str]
    fixed: NDArray[np.float64]
    labels: bytearray
    countries: list[str]
    repeats: array[int]
    recency: array[float]
    age: array[float]


class Timelines(dict[str, Timeline]):
    """Each member's `Timeline`, and each date's population (`frame`): a training run builds 38 slices at
    16 distinct dates (the evaluation, two further backtest cuts and the refit overlap, and each fits its
    own BG/NBD), so the features that no fit moves are computed once per date, for all of that date's
    members at once (`ml.table.table_features`, bit for bit `features_at`'s), and only p_alive and
    expected purchases per slice."""

    def __init__(self, histories: Mapping[str, Sequence[Event]]) -> None:
        super().__init__((member, Timeline(events)) for member, events in histories.items())
        self.histories = histories  # the caller's own mapping: the table below is made from it once
        self._table: EventTable | None = None
        self._fits = True  # whether every time and quantity fits the table's columns (`EventTable.fits`)
        # (as_of, features, everyone, horizon) -> that date's population, whatever the fit
        self.frames: dict[tuple[datetime, frozenset[str], bool, int | None], Frame] = {}
        # a training run reads the frames from two threads (`ml.training._train`): a frame missed is
        # made under this lock, as are the table and the timelines' lines it may read on first use
        self._making = threading.RLock()

    def table(self) -> EventTable | None:
        """The members' events as columns, made on the first date's frame and kept for the run's other
        dates; None where a time or a quantity is out of the columns' range (a frame then reads each
        member's `Timeline`, as `features_at` does, with the same values)."""
        if self._table is None and self._fits:
            try:
                self._table = EventTable.from_histories(self.histories)
            except ValueError:
                self._fits = False
        return self._table

    def prefetch(
        self, dates: Iterable[tuple[datetime, bool]], names: frozenset[str], horizon_days: int | None
    ) -> None:
        """The frames of a run's (date, everyone) pairs, then the table dropped: it is needed only to
        make frames, and held to the end of a run it raised the peak RSS of `model train` on Online
        Retail II by ~16 MB (27.6 MB traced). A frame asked for later with another key makes the table
        again: the same values, only slower."""
        with self._making:
            for as_of, everyone in dates:
                self.frame(as_of, names, everyone, horizon_days)
            self._table = None

    def frame(
        self, as_of: datetime, names: frozenset[str], everyone: bool, horizon_days: int | None
    ) -> Frame:
        """The population as of `as_of` (every member who ever bought before it, with `everyone`) with
        all a slice needs of each member that no BG/NBD fit moves: a date's slices under the fits of
        the evaluation, the backtest's cuts and the refit differ only in p_alive and expected
        purchases, so eligibility, labels, countries, the other features and each member's BG/NBD
        summary are found once per date."""
        key = (as_of, names, everyone, horizon_days)
        found = self.frames.get(key)
        if found is not None:
            return found
        with self._making:
            found = self.frames.get(key)  # made by another thread while this one waited
            return found if found is not None else self._frame(key)

    def _frame(self, key: tuple[datetime, frozenset[str], bool, int | None]) -> Frame:
        as_of, names, everyone, horizon_days = key
        wanted = [name for name in NAMES if name in names]
        table = self.table()
        if table is not None:
            bought, latest = latest_purchases(table, as_of)
            chosen = (
                bought if everyone else bought & (latest >= micros(as_of - timedelta(days=ELIGIBLE_DAYS)))
            )
            rows = np.flatnonzero(chosen)
            # no feature of `names` reads the fit (BGNBD_FEATURES are left out by the caller)
            fixed = table_features(table, as_of, NO_DROPOUT, names, among=chosen).values[rows]
            members = [table.members[m] for m in rows.tolist()]
        else:
            members = [m for m, t in self.items() if (_ever(t, as_of) if everyone else _eligible(t, as_of))]
            computed = (features_at(self[m], as_of, NO_DROPOUT, names) for m in members)
            fixed = np.array([[row[name] for name in wanted] for row in computed], dtype=np.float64)
            fixed = fixed.reshape(len(members), len(wanted))
        found = self.frames[key] = Frame(members, fixed, bytearray(), [], array("q"), array("d"), array("d"))
        now = days(as_of)
        for member in members:
            timeline = self[member]
            found.labels.append(
                int(_churned(timeline, as_of, horizon_days)) if horizon_days is not None else 0
            )
            found.countries.append(timeline.country(as_of) or "unknown")
            repeats, recency, age = timeline.summary(timeline.purchases_before(as_of), now)
            found.repeats.append(repeats)
            found.recency.append(recency)
            found.age.append(age)
        return found


def timelines(histories: Mapping[str, Sequence[Event]]) -> Timelines:
    """Each member's `Timeline`: read once, then shared by every slice and fit of a training run."""
    return Timelines(histories)


def _ever(timeline: Timeline, as_of: datetime) -> bool:
    return timeline.purchases_before(as_of) > 0


def _eligible(timeline: Timeline, as_of: datetime) -> bool:
    n = timeline.purchases_before(as_of)
    return n > 0 and timeline.purchase_at[n - 1] >= as_of - timedelta(days=ELIGIBLE_DAYS)


def _churned(timeline: Timeline, as_of: datetime, horizon_days: int) -> bool:
    i = timeline.purchases_before(as_of)
    bought = timeline.purchase_at
    return not (i < len(bought) and bought[i] < as_of + timedelta(days=horizon_days))


def fit_bgnbd(
    histories: Mapping[str, Sequence[Event]],
    as_of: datetime,
    prepared: Mapping[str, Timeline] | None = None,
) -> BgNbd:
    """BG/NBD fitted on the eligible population's purchases before `as_of` (nothing later)."""
    read = prepared if prepared is not None else timelines(histories)
    now = days(as_of)
    summaries = sorted(  # in content order, not the (random) member ids': sums in one order only
        t.summary(t.purchases_before(as_of), now) for t in read.values() if _eligible(t, as_of)
    )
    with _FITTING_BGNBD:
        return _fit_bgnbd(summaries)


# one BG/NBD fit at a time in the process: a fit swaps the process's stdout and warnings filters (below),
# which two threads doing so at once could leave swapped (a training run fits on two threads,
# `ml.training._train`); a fit takes a tenth of a second
_FITTING_BGNBD = threading.Lock()


def _fit_bgnbd(summaries: list[tuple[int, float, float]]) -> BgNbd:
    from lifetimes import BetaGeoFitter
    from lifetimes.utils import ConvergenceError

    x, t_x, age = (np.array(column, dtype=float) for column in zip(*summaries, strict=True))
    # a small population can leave the likelihood flat: a larger penalizer then regularises it
    for penalizer in (0.001, 0.01, 0.1):
        fitter = BetaGeoFitter(penalizer_coef=penalizer)
        try:
            # the optimiser probes parameters where the likelihood is undefined (a sqrt of a negative)
            # and moves on; whether it converged is what ConvergenceError says, not those warnings; and
            # lifetimes prints scipy's whole result to stdout before raising it, which is a command's output
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore", RuntimeWarning)
                fitter.fit(x, t_x, age)
            break
        except ConvergenceError:
            continue
    else:
        # seen on small synthetic populations: the likelihood is maximal as a -> 0 (no dropout in the
        # data), where the optimiser stops on precision loss; that limit is "every member alive"
        return NO_DROPOUT
    p = fitter.params_
    return BgNbd(r=float(p["r"]), alpha=float(p["alpha"]), a=float(p["a"]), b=float(p["b"]))


def build_slice(
    histories: Mapping[str, Sequence[Event]],
    as_of: datetime,
    bgnbd: BgNbd,
    horizon_days: int | None = DEFAULT_HORIZON_DAYS,
    members: Sequence[str] | None = None,
    everyone: bool = False,
    prepared: Mapping[str, Timeline] | None = None,
    names: Collection[str] | None = None,
) -> Slice:
    """The population as of `as_of` (or those of `members` in it; with `everyone`, every member who
    ever bought before it), its features and, with a horizon, its labels. Rows are ordered by their
    content (features, label, country), never by member id: ids are random per import, and the order
    rows reach a model in changes the model's bytes, so the same data imported twice trains the same
    model. With `names`, only those features are computed (the other columns hold NaN); `prepared`:
    the members' timelines, where a caller reads the same histories at many dates."""
    chosen = members if members is not None else list(histories)
    computed = [i for i, name in enumerate(NAMES) if names is None or name in names]
    # with a run's memo (`Timelines`), the features no BG/NBD fit moves come from it
    memo = prepared if isinstance(prepared, Timelines) and members is None else None
    fixed = frozenset(NAMES[i] for i in computed) - BGNBD_FEATURES
    moved = BGNBD_FEATURES & {NAMES[i] for i in computed}
    fixed_at = [i for i in computed if NAMES[i] in fixed]
    found: list[tuple[list[float], int, str, str, list[float]]] = []
    if memo is not None:
        # the date's population from the run's memo; only the fit's features computed here, as
        # `features_at` computes them (tests/ml/test_features.py holds the two equal to the bit)
        frame = memo.frame(as_of, fixed, everyone, horizon_days)
        alive = "p_alive" in moved
        expected = "expected_purchases_90d" in moved
        at_alive, at_expected = NAMES.index("p_alive"), NAMES.index("expected_purchases_90d")
        summaries = zip(frame.repeats, frame.recency, frame.age, strict=True)
        for member, fixed_values, label, country, summary in zip(
            frame.members, frame.fixed.tolist(), frame.labels, frame.countries, summaries, strict=True
        ):
            values = [math.nan] * len(NAMES)
            for i, value in zip(fixed_at, fixed_values, strict=True):
                values[i] = value
            if alive:
                values[at_alive] = float(bgnbd.p_alive(*summary))
            if expected:
                values[at_expected] = float(round(bgnbd.expected_purchases(*summary, 90.0), 9))
            found.append(([values[i] for i in computed], label, country, member, values))
        chosen = []
    for member in chosen:
        timeline = prepared.get(member) if prepared is not None else None
        if timeline is None:
            timeline = Timeline(histories.get(member, ()))
        n = timeline.purchases_before(as_of)
        if not (n > 0 if everyone else _eligible(timeline, as_of)):
            continue
        row = features_at(timeline, as_of, bgnbd, names)
        values = [row.get(name, math.nan) for name in NAMES]
        label = int(_churned(timeline, as_of, horizon_days)) if horizon_days is not None else 0
        country = timeline.country(as_of) or "unknown"
        found.append(([values[i] for i in computed], label, country, member, values))
    found.sort(key=lambda f: f[:4])
    rows = [f[4] for f in found]
    kept = [f[3] for f in found]
    labels = [f[1] for f in found]
    countries = [f[2] for f in found]
    X = np.array(rows, dtype=np.float64).reshape(len(rows), len(NAMES))
    y = np.array(labels, dtype=np.int_) if horizon_days is not None else None
    return Slice(as_of, kept, X, y, countries)


def first_of_month(moment: datetime) -> datetime:
    return datetime(moment.year, moment.month, 1, tzinfo=UTC)


def add_months(moment: datetime, months: int) -> datetime:
    index = moment.year * 12 + moment.month - 1 + months
    return datetime(index // 12, index % 12 + 1, 1, tzinfo=UTC)


def default_holdout(last_event: datetime, horizon_days: int = DEFAULT_HORIZON_DAYS) -> datetime:
    """The latest first-of-month whose label window ends by the last event the data holds."""
    return first_of_month(last_event - timedelta(days=horizon_days))


def labelled_dates(start: datetime, end: datetime) -> list[datetime]:
    """Every first of the month from `start` to `end`, both included."""
    dates, moment = [], first_of_month(start)
    while moment <= end:
        if moment >= start:
            dates.append(moment)
        moment = add_months(moment, 1)
    return dates


def training_dates(
    first_event: datetime, holdout: datetime, horizon_days: int = DEFAULT_HORIZON_DAYS, slices: int = 6
) -> list[datetime]:
    """Up to `slices` monthly as-of dates, latest first back in time, each with a year of history
    before it where the data has one and a label window that ends by `holdout`."""
    dates: list[datetime] = []
    moment = first_of_month(holdout - timedelta(days=horizon_days))
    earliest = (
        first_of_month(first_event) if first_event.day == 1 else add_months(first_of_month(first_event), 1)
    )
    while len(dates) < slices and moment > earliest:
        if moment + timedelta(days=horizon_days) <= holdout:
            dates.append(moment)
        moment = add_months(moment, -1)
    return sorted(dates)
