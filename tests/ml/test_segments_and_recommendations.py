from __future__ import annotations

from datetime import UTC, datetime

import numpy as np

from ml import recommend, segments
from ml.events import PURCHASE, Event


def test_quintiles_and_names():
    assert segments.quintiles(np.arange(10, dtype=float)).tolist() == [1, 1, 2, 2, 3, 3, 4, 4, 5, 5]
    assert segments.segment_of(5, 5) == "Champions" and segments.segment_of(1, 1) == "Hibernating"
    assert segments.segment_of(1, 4) == "At risk" and segments.segment_of(5, 1) == "New"
    # every cell of the grid has a name
    assert all(segments.segment_of(r, f) for r in range(1, 6) for f in range(1, 6))


def test_rfm_and_the_scan(synthetic):
    rows = segments.rfm(synthetic, datetime(2024, 12, 1, tzinfo=UTC))
    assert len(rows) > 300 and {r.segment for r in rows} >= {"Champions", "Hibernating"}
    best = max(rows, key=lambda r: (r.r + r.f, r.member))
    assert best.segment == "Champions"
    scan = segments.scan(segments.rfm_matrix(rows), ks=range(2, 7))
    assert scan.ks == [2, 3, 4, 5, 6] and scan.inertia == sorted(scan.inertia, reverse=True)
    assert scan.by_silhouette in scan.ks and scan.elbow in scan.ks


def test_the_elbow_of_a_known_curve():
    scan = segments.Scan([1, 2, 3, 4, 5, 6], [100.0, 40.0, 12.0, 10.0, 9.0, 8.0], [0.0] * 6)
    assert scan.elbow == 3


def test_plot_writes_a_png(synthetic, tmp_path):
    rows = segments.rfm(synthetic, datetime(2024, 12, 1, tzinfo=UTC))
    path = tmp_path / "segments.png"
    segments.plot(segments.scan(segments.rfm_matrix(rows), ks=range(2, 5)), rows, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_item_to_item_recommends_what_is_bought_together():
    day = datetime(2024, 1, 1, tzinfo=UTC)

    def bought(member, *items):
        return [Event(member, PURCHASE, day, items=tuple((i, 1) for i in items))]

    histories = {
        "a": bought("a", "tea", "cups"),
        "b": bought("b", "tea", "cups", "milk"),
        "c": bought("c", "pens", "ink"),
        "d": bought("d", "pens", "ink", "paper"),
        "e": bought("e", "pens", "paper"),
    }
    model = recommend.fit(recommend.baskets(histories, None, None))
    assert model.recommend({"tea"}, top=2) == ["cups", "milk"]
    assert model.recommend({"ink"}, top=1) == ["pens"]
    assert "tea" not in model.recommend({"tea"}) and model.popular(set(), top=1) == ["pens"]


def test_the_temporal_evaluation_scores_both_on_the_same_members(synthetic):
    result = recommend.evaluate(synthetic, datetime(2024, 7, 1, tzinfo=UTC))
    model, popular = result["item-to-item"], result["most popular"]
    assert model["members"] == popular["members"] > 50
    assert 0 <= popular["precision@10"] <= 1 and 0 <= model["recall@10"] <= 1


def test_popular_in_the_last_30_days_ranks_by_recent_buyers_only():
    from datetime import timedelta

    cutoff = datetime(2024, 7, 1, tzinfo=UTC)

    def bought(member, at, *items):
        return Event(member, PURCHASE, at, items=tuple((i, 1) for i in items))

    long_ago, lately, after = (
        cutoff - timedelta(days=200),
        cutoff - timedelta(days=5),
        cutoff + timedelta(days=3),
    )
    histories = {
        "a": [bought("a", long_ago, "tea"), bought("a", after, "fan")],
        "b": [bought("b", long_ago, "tea"), bought("b", lately, "fan")],
        "c": [bought("c", long_ago, "tea", "cups"), bought("c", after, "fan")],
    }
    result = recommend.evaluate(histories, cutoff, top=1)
    # of all time "tea" is the most bought (a's and c's baskets hold it already, so "cups", then "fan");
    # in the 30 days before the cut only "fan" was bought, and it is what a and c buy next
    assert result["popular in the last 30 days"]["precision@1"] == 1.0
    assert result["most popular"]["precision@1"] < 1.0
    assert result["popular in the last 30 days"]["members"] == result["item-to-item"]["members"] == 2
