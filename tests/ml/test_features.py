"""Features see nothing at or after their as-of date; labels and slices keep the holdout strict."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from ml.dataset import build_slice, churned, eligible, fit_bgnbd, training_dates
from ml.events import PURCHASE, SUPPORT_TICKET, Event
from ml.features import NAMES, BgNbd, features

AS_OF = datetime(2024, 6, 1, tzinfo=UTC)
BG = BgNbd(r=0.8, alpha=60.0, a=0.5, b=2.0)


def test_no_feature_sees_past_its_as_of_date(synthetic):
    changed = 0
    for member, events in list(synthetic.items())[:200]:
        if not eligible(events, AS_OF):
            continue
        before = features(events, AS_OF, BG)
        # the future rewritten: every later event doubled, a huge purchase and an angry ticket added
        future = [replace(e, total=e.total * 2) if e.at >= AS_OF else e for e in events] + [
            Event(member, PURCHASE, AS_OF, total=1e6, items=(("X", 999),)),
            Event(member, SUPPORT_TICKET, AS_OF + timedelta(days=1), text="terrible, awful, never again"),
        ]
        future.sort(key=lambda e: e.at)
        assert features(future, AS_OF, BG) == before
        changed += 1
    assert changed > 50


def test_features_are_what_they_say():
    day = timedelta(days=1)
    events = [
        Event("m", PURCHASE, AS_OF - 400 * day, total=10.0, items=(("A", 2),)),
        Event("m", PURCHASE, AS_OF - 100 * day, total=30.0, items=(("A", 1), ("B", 3))),
        Event("m", "return", AS_OF - 90 * day, total=-5.0, items=(("B", -1),)),
        Event("m", SUPPORT_TICKET, AS_OF - 80 * day, text="I love it, thank you!"),
        Event("m", PURCHASE, AS_OF - 10 * day, total=20.0, items=(("C", 1),)),
    ]
    row = features(events, AS_OF, BG)
    assert set(row) == set(NAMES)
    assert (row["recency_days"], row["frequency"], row["monetary"], row["tenure_days"]) == (10, 3, 60.0, 400)
    assert row["gap_mean_days"] == pytest.approx(195.0) and row["recency_over_gap"] == pytest.approx(10 / 195)
    assert (row["purchases_90d"], row["purchases_180d"], row["purchases_365d"]) == (1, 2, 2)
    assert (row["spend_90d"], row["spend_180d"], row["spend_365d"]) == (20.0, 50.0, 50.0)
    assert (row["returns"], row["distinct_products"], row["month"], row["tickets"]) == (1, 3, 6, 1)
    assert row["basket_size"] == pytest.approx(7 / 3) and row["ticket_sentiment"] > 0.5
    assert 0 < row["p_alive"] < 1


def test_label_and_population():
    day = timedelta(days=1)
    events = [Event("m", PURCHASE, AS_OF - 30 * day), Event("m", PURCHASE, AS_OF + 89 * day)]
    assert eligible(events, AS_OF) and not churned(events, AS_OF, 90)
    assert churned(events, AS_OF, 89)  # the window is [as_of, as_of + horizon)
    assert not eligible([Event("m", PURCHASE, AS_OF - 366 * day)], AS_OF)
    assert not eligible([Event("m", PURCHASE, AS_OF)], AS_OF)  # at the as-of date is the future


def test_training_label_windows_end_by_the_holdout(synthetic):
    holdout = datetime(2024, 9, 1, tzinfo=UTC)
    dates = training_dates(datetime(2023, 1, 7, tzinfo=UTC), holdout, 90, slices=6)
    assert len(dates) == 6 and dates == sorted(dates)
    assert all(d + timedelta(days=90) <= holdout for d in dates)
    slice_ = build_slice(synthetic, dates[-1], fit_bgnbd(synthetic, dates[-1]))
    assert slice_.X.shape == (len(slice_.members), len(NAMES)) and slice_.y is not None
    keys = [(list(row), int(label)) for row, label in zip(slice_.X, slice_.y, strict=True)]
    assert keys == sorted(keys) and 0 < slice_.y.mean() < 1  # ordered by content, never by member id


def test_the_no_dropout_limit_keeps_every_member_alive():
    from ml.dataset import NO_DROPOUT

    assert NO_DROPOUT.p_alive(5, 10.0, 400.0) == 1.0 and BG.p_alive(5, 10.0, 400.0) < 1.0
