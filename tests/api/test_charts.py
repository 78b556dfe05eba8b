"""The pages' charts: well-formed SVG, inline-ready, each with its accessible name and description."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime

import pytest

from api.http import charts

SVG = "{http://www.w3.org/2000/svg}"


def _check(chart: charts.Chart, *texts: str) -> ET.Element:
    assert chart.svg.startswith("<svg"), "inline SVG carries no XML declaration or doctype"
    root = ET.fromstring(chart.svg)
    assert root.get("role") == "img"
    title = root.find(f"{SVG}title")
    desc = root.find(f"{SVG}desc")
    assert title is not None and desc is not None
    assert root.get("aria-labelledby") == title.get("id") and title.text == chart.title
    assert root.get("aria-describedby") == desc.get("id") and desc.text == chart.description
    drawn = " ".join(t for t in root.itertext())
    for text in texts:
        assert text in drawn, f"{text!r} is not in the chart {chart.title!r}"
    ids = [e.get("id") for e in root.iter() if e.get("id")]
    assert len(ids) == len(set(ids))
    return root


def test_roc_curve_names_its_auc() -> None:
    chart = charts.roc_curve([(0.0, 0.0), (0.1, 0.6), (0.4, 0.9), (1.0, 1.0)], 0.8125, name="glass box")
    _check(chart, "false positive rate", "true positive rate", "glass box (AUC 0.812)", "chance")
    assert "area under the curve 0.812" in chart.description


def test_calibration_curve() -> None:
    chart = charts.calibration_curve([(0.1, 0.15, 40), (0.45, 0.5, 25), (0.8, 0.7, 12)], brier=0.181)
    _check(chart, "predicted churn probability", "observed churn rate", "40")
    assert "3 bins" in chart.description and "Brier score 0.181" in chart.description


def test_feature_shape_from_the_glass_box_bins() -> None:
    chart = charts.feature_shape("recency_days", [14.0, 45.0, 120.0], [-0.6, -0.1, 0.3, 0.9], "days since")
    _check(chart, "recency_days", "effect on log-odds")
    assert "between -0.60 and +0.90" in chart.description


def test_feature_shape_refuses_scores_that_do_not_fit_the_cuts() -> None:
    with pytest.raises(ValueError, match="3 cut points make 4 bins, not 3"):
        charts.feature_shape("recency_days", [1.0, 2.0, 3.0], [0.1, 0.2, 0.3])


def test_baselines_with_intervals() -> None:
    metrics = {
        "EBM (registered)": {"value": 0.78, "low": 0.74, "high": 0.82},
        "KNN": {"value": 0.70, "low": 0.65, "high": 0.75},
    }
    chart = charts.baselines(metrics)
    _check(chart, "EBM (registered)", "KNN")
    assert (
        "KNN 0.700 (0.650 to 0.750)" in chart.description and "Highest: EBM (registered)" in chart.description
    )


def test_segments_distribution_heads_and_settlement() -> None:
    _check(charts.segments({"champions": 12, "at risk": 5}), "champions", "at risk", "members")
    scores = charts.score_distribution([0.05, 0.2, 0.55, 0.9], threshold=0.5)
    _check(scores, "threshold 0.50", "churn score")
    assert "2 at or above the threshold 0.50" in scores.description
    day = datetime(2026, 3, 1, tzinfo=UTC)
    heads = charts.heads_over_time({"acme": [(day, 8), (day.replace(day=2), 16)], "delta": [(day, 4)]})
    _check(heads, "acme", "delta", "leaves in the log")
    assert "acme 2 heads, now 16 leaves" in heads.description
    settled = charts.settlement({"acme": 700, "borealis": -500, "delta": -200})
    _check(settled, "acme", "borealis")
    assert "borealis -500" in settled.description


def test_two_charts_on_one_page_share_no_id() -> None:
    a = ET.fromstring(charts.roc_curve([(0.0, 0.0), (1.0, 1.0)]).svg)
    b = ET.fromstring(charts.calibration_curve([(0.5, 0.5, 3)]).svg)
    ids_a = {e.get("id") for e in a.iter() if e.get("id")}
    ids_b = {e.get("id") for e in b.iter() if e.get("id")}
    assert ids_a and ids_b and not ids_a & ids_b


def test_text_is_escaped_in_the_labels() -> None:
    chart = charts.segments({"<script>": 1})
    assert "<script>" not in chart.svg
    _check(chart, "<script>")
