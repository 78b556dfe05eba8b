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
            Event(
                member,
                PURCHASE,
                AS_OF,
                total=1e6,
                items=(("X", 999),),
                prices=(1e3,),
                descriptions=("CHRISTMAS TREE",),
            ),
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


def test_the_product_mix_is_what_it_says():
    day = timedelta(days=1)

    def bought(ago, lines):
        codes, quantities, prices, texts = zip(*lines, strict=True)
        total = sum(q * p for q, p in zip(quantities, prices, strict=True))
        items = tuple(zip(codes, quantities, strict=True))
        return Event("m", PURCHASE, AS_OF - ago * day, total, items, prices=prices, descriptions=texts)

    events = [
        bought(400, [("A", 2, 1.0, "RED LUNCH BAG")]),  # older than the window: only makes A a repeat
        bought(100, [("A", 1, 1.0, "RED LUNCH BAG"), ("B", 12, 0.5, "CHRISTMAS CARD")]),
        bought(10, [("C", 1, 3.0, "WHITE MUG")]),
    ]
    row = features(events, AS_OF, BG)
    assert row["christmas_share_365d"] == 0.6 and row["christmas_share_90d"] == 0.0
    assert row["kinds_365d"] == 3 and row["top_kind_share_365d"] == 0.6  # bags, Christmas, kitchen
    assert row["repeat_line_share_365d"] == round(1 / 3, 6)  # A, bought 400 days ago
    assert row["wholesale_line_share_365d"] == round(1 / 3, 6)  # the dozen Christmas cards
    assert row["unit_price_365d"] == round(10.0 / 14, 4)
    # a document without prices or descriptions (or a history before them) reads as spend on nothing
    bare = [Event("m", PURCHASE, AS_OF - 10 * day, 3.0, (("C", 1),))]
    assert features(bare, AS_OF, BG, ["christmas_share_365d", "kinds_365d"]) == {
        "christmas_share_365d": 0.0,
        "kinds_365d": 0.0,
    }


def test_kinds_of_product_come_from_the_description_first_match_first():
    from ml.features import category

    assert category("CHRISTMAS CARD") == "Christmas" == category("paper chain kit 50's christmas")
    assert category("JUMBO BAG RED RETROSPOT") == "bags" and category("LUNCH BAG SPACEBOY DESIGN") == "bags"
    assert category("WHITE HANGING HEART T-LIGHT HOLDER") == "candles and lights"
    assert category("POSTAGE") == "other" and category("") == "other"


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


def test_slices_from_a_runs_memo_are_those_computed_afresh(synthetic):
    """A training run's `Timelines` keeps the features no BG/NBD fit moves per date (38 slices, 16
    dates), and each date's population (`frame`): a slice built through it, under another fit, for
    either population and for a subset of the features, is the slice computed from scratch, to the bit
    and in the same row order."""
    import numpy as np

    from ml.dataset import BGNBD_FEATURES, timelines
    from ml.features import features_at
    from ml.training import MODEL_FEATURES

    histories = dict(list(synthetic.items())[:250])  # a few hundred members show it, in a tenth of a second
    read = timelines(histories)
    plain = dict(read)  # the same timelines without the memo
    other = BgNbd(r=0.5, alpha=30.0, a=0.2, b=3.0)
    for as_of in (datetime(2024, 3, 1, tzinfo=UTC), AS_OF):
        for bgnbd in (BG, other):  # the memo is filled under the first and read under the other
            for everyone in (False, True):
                for names in (set(MODEL_FEATURES), {"recency_days", "p_alive", "christmas_share_90d"}):
                    fresh, memo = (
                        build_slice(histories, as_of, bgnbd, everyone=everyone, prepared=given, names=names)
                        for given in (plain, read)
                    )
                    assert len(fresh.members) > 20
                    assert memo.members == fresh.members and memo.countries == fresh.countries
                    assert memo.y is not None and fresh.y is not None and np.array_equal(memo.y, fresh.y)
                    assert memo.X.tobytes() == fresh.X.tobytes()  # NaN where not computed, as fresh
    assert len(read.frames) == 2 * 2 * 2  # each date's population once per set of features, whatever the fit
    # what the memo relies on: no other feature reads the fit (one that did belongs in BGNBD_FEATURES)
    moved: set[str] = set()
    for timeline in read.values():
        if timeline.purchases_before(AS_OF):
            one, two = features_at(timeline, AS_OF, BG), features_at(timeline, AS_OF, other)
            moved |= {name for name in NAMES if one[name] != two[name]}
    assert moved == BGNBD_FEATURES


def test_a_history_out_of_the_tables_range_gives_the_same_slices(synthetic):
    """A run's frames read every member's features at once from the events as columns; where one event's
    time is out of the columns' range (centuries away), the frames read each member's timeline instead,
    and the slices are the same to the bit as computed from scratch."""
    import numpy as np

    from ml.dataset import timelines

    histories = dict(list(synthetic.items())[:120])
    member, events = next(iter(histories.items()))
    histories[member] = [*events, Event(member, PURCHASE, datetime(2400, 1, 1, tzinfo=UTC), 5.0)]
    read = timelines(histories)
    assert read.table() is None  # the fallback is what is compared below
    for everyone in (False, True):
        fresh, memo = (
            build_slice(histories, AS_OF, BG, everyone=everyone, prepared=given)
            for given in (dict(read), read)
        )
        assert len(fresh.members) > 10 and memo.members == fresh.members
        assert memo.countries == fresh.countries
        assert memo.y is not None and fresh.y is not None and np.array_equal(memo.y, fresh.y)
        assert memo.X.tobytes() == fresh.X.tobytes()


def test_the_no_dropout_limit_keeps_every_member_alive():
    from ml.dataset import NO_DROPOUT

    assert NO_DROPOUT.p_alive(5, 10.0, 400.0) == 1.0 and BG.p_alive(5, 10.0, 400.0) < 1.0


def reference_features(events, as_of, bgnbd):
    """The direct computation over the history before `as_of` (what `features` computed before it read
    a member's timeline once): `features` must give these values bit for bit, or the decisions of a
    model registered earlier would no longer reproduce."""
    import itertools
    import math
    from statistics import fmean, pstdev

    from ml.events import RETURN
    from ml.features import days, history_before, sentiment

    past = history_before(events, as_of)
    purchases = [e for e in past if e.kind == PURCHASE]
    now = days(as_of)
    times = [days(e.at) for e in purchases]
    gaps = [b - a for a, b in itertools.pairwise(times)]
    recency = now - times[-1]
    gap_mean = fmean(gaps) if gaps else 0.0
    tickets = [e.text or "" for e in past if e.kind == SUPPORT_TICKET]
    purchase_days = sorted({math.floor(t) for t in times})
    summary = (len(purchase_days) - 1, float(purchase_days[-1] - purchase_days[0]), now - purchase_days[0])
    row = {
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
    for window in (90, 180, 365):
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
    row.update(reference_mix(purchases, ages))
    return {name: float(row[name]) for name in NAMES}


def reference_mix(purchases, ages):
    """The product-mix features, directly: every line of the window's purchases at once."""
    import math

    from ml.features import CHRISTMAS, OTHER, WHOLESALE_QUANTITY, category

    def lines_within(window):
        found = []
        for i, (e, age) in enumerate(zip(purchases, ages, strict=True)):
            if age <= window:
                before = {code for p in purchases[:i] for code, _ in p.items}
                for (code, quantity), price, text in zip(e.items, e.prices, e.descriptions, strict=True):
                    found.append((category(text), quantity * price, quantity, code in before))
        return found

    def share(part, whole):
        return round(part / whole, 6) if whole > 0 else 0.0

    row = {}
    for window in (90, 365):
        lines = lines_within(window)
        total = math.fsum(amount for _, amount, _, _ in lines)
        christmas = math.fsum(amount for kind, amount, _, _ in lines if kind == CHRISTMAS)
        row[f"christmas_share_{window}d"] = share(christmas, total)
    kinds = {kind for kind, *_ in lines}
    spend = {k: math.fsum(amount for kind, amount, _, _ in lines if kind == k) for k in kinds}
    row["kinds_365d"] = sum(1 for k in kinds if k != OTHER and spend[k] > 0)
    row["top_kind_share_365d"] = share(max(spend.values(), default=0.0), total)
    units = sum(quantity for _, _, quantity, _ in lines)
    row["unit_price_365d"] = round(total / units, 4) if units > 0 else 0.0
    n = len(lines)
    row["repeat_line_share_365d"] = round(sum(1 for *_, repeat in lines if repeat) / n, 6) if n else 0.0
    wholesale = sum(1 for _, _, quantity, _ in lines if quantity >= WHOLESALE_QUANTITY)
    row["wholesale_line_share_365d"] = round(wholesale / n, 6) if n else 0.0
    return row


def _bits(row):
    return {name: float(value).hex() for name, value in row.items()}


def _same_as_the_reference(histories, dates, limit):
    import random

    from ml.features import Timeline, features_at

    members = sorted(histories)
    compared = 0
    for member in random.Random(5).sample(members, min(limit, len(members))):
        events = histories[member]
        timeline = Timeline(events)
        for as_of in dates:
            if not any(e.kind == PURCHASE and e.at < as_of for e in events):
                continue
            expected = _bits(reference_features(events, as_of, BG))
            assert _bits(features(events, as_of, BG)) == expected, (member, as_of)
            assert _bits(features_at(timeline, as_of, BG)) == expected, (member, as_of)
            some = ("recency_days", "new_product_share", "overdue", "spend_365d")
            assert _bits(features(events, as_of, BG, some)) == {n: expected[n] for n in NAMES if n in some}
            compared += 1
    return compared


def test_features_read_from_a_timeline_are_the_direct_computation_bit_for_bit(synthetic):
    dates = [
        datetime(2023, 9, 1, tzinfo=UTC),
        AS_OF,
        datetime(2024, 6, 1, 12, tzinfo=UTC),
        datetime(2025, 1, 1, tzinfo=UTC),
    ]
    assert _same_as_the_reference(synthetic, dates, 150) > 300


def test_every_members_features_at_once_are_features_at_bit_for_bit(synthetic):
    """`table_features` reads every member's events as columns at once; each of its values must be the
    one `features_at` gives from her own timeline, to the last bit (`score --all` decides with the
    first, `decision verify` recomputes with the second): every feature of FEATURES, every member of the
    test data (purchases, returns, tickets), at dates inside and between purchases; a subset of names
    and of members gives the same values for them."""
    import numpy as np

    from ml.features import Timeline, features_at
    from ml.table import EventTable, table_features

    table = EventTable.from_histories(synthetic)
    timelines = [Timeline(synthetic[member]) for member in table.members]
    compared = 0
    for as_of in (datetime(2023, 12, 15, 7, 30, tzinfo=UTC), AS_OF):
        found = table_features(table, as_of, BG)
        assert found.names == NAMES
        bought = [m for m, timeline in enumerate(timelines) if timeline.purchases_before(as_of)]
        assert np.flatnonzero(found.bought).tolist() == bought
        assert np.isnan(found.values[~found.bought]).all()
        expected = np.array([list(features_at(timelines[m], as_of, BG).values()) for m in bought])
        same = found.values[bought].view(np.uint64) == expected.view(np.uint64)  # every bit
        wrong = [(table.members[bought[i]], NAMES[j], as_of) for i, j in zip(*np.nonzero(~same), strict=True)]
        assert not wrong, wrong[:5]
        compared += len(bought)
    assert compared > 800
    some = ("spend_365d", "overdue", "christmas_share_90d", "distinct_products", "expected_purchases_90d")
    among = np.arange(len(table.members)) % 3 == 0
    part = table_features(table, AS_OF, BG, some, among=among)  # `found` is AS_OF's, every name
    assert part.names == tuple(n for n in NAMES if n in some)
    assert (part.bought == (found.bought & among)).all()
    columns = [NAMES.index(n) for n in part.names]
    both = part.bought
    assert (part.values[both].view(np.uint64) == found.values[both][:, columns].view(np.uint64)).all()


def test_an_event_table_refuses_what_it_cannot_hold_exactly():
    """A quantity beyond MAX_QUANTITY or a time beyond EXACT_US microseconds would make its sums or
    `days` inexact as columns: such a member is scored from her events instead (`ml.features`)."""
    from ml.table import MAX_QUANTITY, EventTable

    bought = Event("m", PURCHASE, AS_OF - timedelta(days=3), total=5.0, items=(("A", MAX_QUANTITY),))
    with pytest.raises(ValueError, match="out of the table's range"):
        EventTable.from_histories({"m": [bought]})
    far = replace(bought, items=(("A", 1),), at=datetime(9000, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="out of the table's range"):
        EventTable.from_histories({"m": [far]})
