"""The pages' charts, drawn on the server as SVG by matplotlib's SVG backend: no chart code of our own
in the browser, no script to load, and a page that only shows reads without JavaScript.

Every function takes plain data (numbers, names, dates), never the store or a model object, and returns
a `Chart`: SVG markup to put inline in a page, whose root carries `role="img"` and an accessible name
and description (`<title>`, `<desc>`, `aria-labelledby`), so a screen reader says what the picture shows.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from html import escape
from typing import Any

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

# Colours of the GOV.UK palette: each has a contrast of at least 4.5:1 on white.
INK = "#0b0c0c"
BLUE = "#1d70b8"
RED = "#d4351c"
GREEN = "#00703c"
GREY = "#505a5f"
SERIES = (BLUE, "#f47738", GREEN, "#912b88", RED, GREY, "#28a197", "#6f72af")

# rc_context changes matplotlib's global settings: one chart at a time (the server renders pages on
# several threads).
_lock = threading.Lock()
_XML_PROLOGUE = re.compile(r"^.*?(?=<svg\b)", re.S)
_SLUG = re.compile(r"[^a-z0-9]+")
_ID = re.compile(r'\b(id)="([^"]+)"')
_REFERENCE = re.compile(r'(url\(|href=")#([^)"]+)')


@dataclass(frozen=True)
class Chart:
    """An SVG picture with its accessible name (`title`) and description (`description`)."""

    slug: str  # unique on a page: the prefix of every id inside the SVG
    title: str
    description: str
    svg: str

    def __html__(self) -> str:  # Jinja2 puts the markup in as it is
        return self.svg

    def __str__(self) -> str:
        return self.svg


def roc_curve(
    points: Sequence[tuple[float, float]], auc: float | None = None, *, name: str = "model"
) -> Chart:
    """The ROC curve through (false positive rate, true positive rate) `points`, with chance's diagonal."""
    title = f"ROC curve of the {name}"
    description = (
        f"True positive rate against false positive rate over {len(points)} thresholds"
        + (f"; area under the curve {auc:.3f}" if auc is not None else "")
        + "; the diagonal is a model that guesses."
    )
    with _drawing(title, description) as drawing:
        axes = drawing.axes
        axes.plot([0, 1], [0, 1], linestyle="--", color=GREY, linewidth=1, label="chance")
        xs, ys = zip(*points, strict=True) if points else ((), ())
        label = f"{name} (AUC {auc:.3f})" if auc is not None else name
        axes.plot(xs, ys, color=BLUE, linewidth=2, label=label, drawstyle="steps-post")
        axes.set(xlim=(0, 1), ylim=(0, 1.01), xlabel="false positive rate", ylabel="true positive rate")
        axes.legend(loc="lower right", frameon=False)
    return drawing.chart


def calibration_curve(
    bins: Sequence[tuple[float, float, int]], *, name: str = "model", brier: float | None = None
) -> Chart:
    """Calibration: per bin (mean predicted probability, observed fraction of churners, members)."""
    title = f"Calibration of the {name}"
    description = (
        f"Observed churn rate against predicted churn probability in {len(bins)} bins"
        + (f"; Brier score {brier:.3f}" if brier is not None else "")
        + "; on the diagonal, predictions match what happened."
    )
    with _drawing(title, description) as drawing:
        axes = drawing.axes
        axes.plot([0, 1], [0, 1], linestyle="--", color=GREY, linewidth=1, label="perfectly calibrated")
        if bins:
            predicted, observed, counts = zip(*bins, strict=True)
            axes.plot(predicted, observed, color=BLUE, linewidth=2, marker="o", label=name)
            for x, y, n in zip(predicted, observed, counts, strict=True):
                axes.annotate(
                    str(n), (x, y), textcoords="offset points", xytext=(4, -10), fontsize=7, color=GREY
                )
        axes.set(
            xlim=(0, 1), ylim=(0, 1.01), xlabel="predicted churn probability", ylabel="observed churn rate"
        )
        axes.legend(loc="upper left", frameon=False)
    return drawing.chart


def feature_shape(name: str, cuts: Sequence[float], scores: Sequence[float], meaning: str = "") -> Chart:
    """One feature's term in the glass box's logit, bin by bin: `scores[k]` for `cuts[k-1] <= x <
    cuts[k]` (the bins alone, without the model's missing and unknown slots)."""
    if len(scores) != len(cuts) + 1:
        raise ValueError(f"{name}: {len(cuts)} cut points make {len(cuts) + 1} bins, not {len(scores)}")
    title = f"How {name} moves the churn score"
    lowest, highest = min(scores), max(scores)
    description = (
        f"{meaning + '. ' if meaning else ''}The glass box adds between {lowest:+.2f} and {highest:+.2f}"
        f" to the log-odds of churn depending on {name}, in {len(scores)} steps;"
        " above zero pushes towards churn."
    )
    with _drawing(title, description, height=2.6) as drawing:
        axes = drawing.axes
        if cuts:
            span = (cuts[-1] - cuts[0]) or 1.0
            edges = [cuts[0] - span * 0.05, *cuts, cuts[-1] + span * 0.05]
        else:
            edges = [0.0, 1.0]
        axes.stairs(scores, edges, color=BLUE, linewidth=2, baseline=None)
        axes.axhline(0, color=GREY, linewidth=0.8)
        axes.set(xlabel=name, ylabel="effect on log-odds")
    return drawing.chart


def baselines(metrics: Mapping[str, Mapping[str, float]], metric: str = "auc") -> Chart:
    """Each model's `metric` with its 95% interval: `metrics[model] = {"value", "low", "high"}`."""
    names = list(metrics)
    title = f"{metric.upper()} of the registered model and the baselines"
    best = max(names, key=lambda n: metrics[n]["value"]) if names else ""
    description = (
        f"{metric.upper()} on the holdout with 95% bootstrap intervals for {len(names)} models: "
        + "; ".join(f"{n} {m['value']:.3f} ({m['low']:.3f} to {m['high']:.3f})" for n, m in metrics.items())
        + (f". Highest: {best}." if best else ".")
    )
    with _drawing(title, description, height=0.5 + 0.45 * max(1, len(names))) as drawing:
        axes = drawing.axes
        for row, model in enumerate(reversed(names)):
            m = metrics[model]
            colour = BLUE if row == len(names) - 1 else GREY  # the first model named is the registered one
            axes.errorbar(
                m["value"],
                row,
                xerr=[[m["value"] - m["low"]], [m["high"] - m["value"]]],
                fmt="o",
                color=colour,
                capsize=4,
            )
        axes.set_yticks(range(len(names)), list(reversed(names)))
        axes.set(xlabel=f"{metric} (95% interval)")
        axes.margins(y=0.2)
    return drawing.chart


def segments(counts: Mapping[str, int]) -> Chart:
    """Members per segment."""
    title = "Members per segment"
    total = sum(counts.values())
    description = f"{total} members in {len(counts)} segments: " + "; ".join(
        f"{name} {n}" for name, n in counts.items()
    )
    with _drawing(title, description, height=0.5 + 0.4 * max(1, len(counts))) as drawing:
        axes = drawing.axes
        names = list(counts)
        axes.barh(range(len(names)), [counts[n] for n in names], color=BLUE)
        axes.set_yticks(range(len(names)), names)
        axes.invert_yaxis()
        axes.set(xlabel="members")
    return drawing.chart


def score_distribution(scores: Sequence[float], threshold: float | None = None) -> Chart:
    """How the churn scores spread, with the policy's threshold."""
    title = "Distribution of churn scores"
    above = sum(1 for s in scores if threshold is not None and s >= threshold)
    description = f"{len(scores)} scores between 0 and 1" + (
        f"; {above} at or above the threshold {threshold:.2f}, where the action is taken."
        if threshold is not None
        else "."
    )
    with _drawing(title, description) as drawing:
        axes = drawing.axes
        axes.hist(list(scores), bins=20, range=(0, 1), color=BLUE, edgecolor="white")
        if threshold is not None:
            axes.axvline(
                threshold, color=RED, linewidth=1.5, linestyle="--", label=f"threshold {threshold:.2f}"
            )
            axes.legend(loc="upper right", frameon=False)
        axes.set(xlim=(0, 1), xlabel="churn score", ylabel="members")
    return drawing.chart


def heads_over_time(heads: Mapping[str, Sequence[tuple[datetime | int, int]]]) -> Chart:
    """Each partner's log size at each anchored head: `heads[partner] = [(when, tree size), ...]`, when
    a time or a block number."""
    title = "Log heads over time"
    description = "Tree size of each partner's log at each anchored head: " + "; ".join(
        f"{partner} {len(points)} heads, now {points[-1][1] if points else 0} leaves"
        for partner, points in heads.items()
    )
    with _drawing(title, description) as drawing:
        axes = drawing.axes
        for colour, (partner, points) in zip(SERIES * 4, heads.items(), strict=False):
            if points:
                when, size = zip(*points, strict=True)
                axes.step(when, size, where="post", color=colour, linewidth=2, marker="o", label=partner)
        by_block = all(isinstance(when, int) for points in heads.values() for when, _ in points)
        axes.yaxis.set_major_locator(MaxNLocator(integer=True))  # leaves and blocks are counts
        if by_block:
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.set(xlabel="block" if by_block else "anchored at", ylabel="leaves in the log")
        if heads:
            axes.legend(loc="upper left", frameon=False)
        if not by_block:
            drawing.figure.autofmt_xdate()
    return drawing.chart


def settlement(positions: Mapping[str, int]) -> Chart:
    """Each partner's net settlement position in points (issued minus redeemed elsewhere)."""
    title = "Settlement positions"
    description = "Net position of each partner in points: " + "; ".join(
        f"{name} {net:+d}" for name, net in positions.items()
    )
    with _drawing(title, description, height=0.5 + 0.4 * max(1, len(positions))) as drawing:
        axes = drawing.axes
        names = list(positions)
        values = [positions[n] for n in names]
        axes.barh(range(len(names)), values, color=[GREEN if v >= 0 else RED for v in values])
        axes.axvline(0, color=INK, linewidth=0.8)
        axes.set_yticks(range(len(names)), names)
        axes.invert_yaxis()
        axes.set(xlabel="net points (owed to the partner when positive)")
    return drawing.chart


class _Drawing:
    def __init__(self, height: float) -> None:
        self.figure = Figure(figsize=(6.4, height), layout="constrained")
        FigureCanvasSVG(self.figure)
        self.axes = self.figure.add_subplot()
        self.axes.spines[["top", "right"]].set_visible(False)
        self.axes.tick_params(colors=INK, labelsize=8)
        self._chart: Chart | None = None

    @property
    def chart(self) -> Chart:
        if self._chart is None:
            raise RuntimeError("the chart is drawn when its `with _drawing(...)` block ends")
        return self._chart


@contextmanager
def _drawing(title: str, description: str, height: float = 3.4) -> Iterator[_Drawing]:
    """A figure to draw on, under this module's settings; rendered to the `Chart` when the block ends.
    The settings hold for the whole drawing (text sizes are fixed when a text is made)."""
    slug = _SLUG.sub("-", title.lower()).strip("-")
    settings: dict[Any, Any] = {  # typed loosely: matplotlib types the keys as a Literal of every name
        "svg.fonttype": "none",  # text stays text: smaller, selectable, read by screen readers
        "svg.hashsalt": slug,  # the ids inside the SVG differ between the charts of one page
        "font.size": 10,
        "text.color": INK,
        "axes.labelcolor": INK,
        "xtick.color": INK,
        "ytick.color": INK,
    }
    with _lock, matplotlib.rc_context(settings):
        drawing = _Drawing(height)
        yield drawing
        buffer = io.StringIO()
        drawing.figure.savefig(buffer, format="svg", metadata={"Date": None})
    drawing._chart = _labelled(buffer.getvalue(), slug, title, description)


def _labelled(raw: str, slug: str, title: str, description: str) -> Chart:
    """The SVG without its XML prologue (it goes inline in HTML), named and described for assistive
    technology."""
    svg = _XML_PROLOGUE.sub("", raw, count=1)
    # matplotlib numbers its groups the same in every figure (figure_1, axes_1, ...): prefix every id,
    # and every reference to one, with the chart's slug, so that ids stay unique on a page of charts
    svg = _ID.sub(lambda m: f'{m.group(1)}="{slug}-{m.group(2)}"', svg)
    svg = _REFERENCE.sub(lambda m: f"{m.group(1)}#{slug}-{m.group(2)}", svg)
    labels = (
        f'<title id="{slug}-title">{escape(title)}</title><desc id="{slug}-desc">{escape(description)}</desc>'
    )
    svg = re.sub(
        r"<svg\b([^>]*)>",
        lambda m: (
            f'<svg{m.group(1)} role="img" aria-labelledby="{slug}-title" aria-describedby="{slug}-desc"'
            f' class="chart">{labels}'
        ),
        svg,
        count=1,
    )
    return Chart(slug=slug, title=title, description=description, svg=svg)
