"""Segments: RFM scores with named segments, and KMeans with k chosen by silhouette (and the elbow shown).

RFM scores are quintiles (1..5) of recency (recent scores high), frequency and monetary value over the
population as of a date; the names follow the usual R x F grid.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy.stats import rankdata

from ml.dataset import eligible
from ml.events import PURCHASE, Event
from ml.features import days

# (name, R scores, F scores), first match wins
SEGMENTS: tuple[tuple[str, range, range], ...] = (
    ("Champions", range(4, 6), range(4, 6)),
    ("Loyal", range(3, 6), range(3, 6)),
    ("New", range(5, 6), range(1, 2)),
    ("Promising", range(4, 5), range(1, 2)),
    ("Potential loyalist", range(4, 6), range(2, 3)),
    ("Need attention", range(3, 4), range(1, 3)),
    ("Cannot lose", range(1, 2), range(5, 6)),
    ("At risk", range(1, 3), range(3, 6)),
    ("Hibernating", range(1, 3), range(1, 3)),
)


@dataclass(frozen=True)
class Rfm:
    member: str
    recency_days: float
    frequency: int
    monetary: float
    r: int
    f: int
    m: int
    segment: str


def quintiles(values: NDArray[np.float64]) -> NDArray[np.int_]:
    """1..5 by rank (ties share their average rank)."""
    ranks = rankdata(values, method="average")
    scores: NDArray[np.int_] = np.minimum(5, 1 + np.floor(5 * (ranks - 0.5) / len(values))).astype(int)
    return scores


def segment_of(r: int, f: int) -> str:
    return next(name for name, rs, fs in SEGMENTS if r in rs and f in fs)


def rfm(histories: Mapping[str, Sequence[Event]], as_of: datetime) -> list[Rfm]:
    """The RFM row of every member of the population as of `as_of` (a purchase in the year before)."""
    now = days(as_of)
    members, raw = [], []
    for member in sorted(histories):
        events = histories[member]
        if not eligible(events, as_of):
            continue
        bought = [e for e in events if e.kind == PURCHASE and e.at < as_of]
        members.append(member)
        raw.append((now - days(bought[-1].at), len(bought), sum(e.total for e in bought)))
    if not raw:
        return []
    recency, frequency, monetary = (np.array(c, dtype=float) for c in zip(*raw, strict=True))
    r, f, m = quintiles(-recency), quintiles(frequency), quintiles(monetary)
    return [
        Rfm(member, rec, int(freq), round(mon, 2), int(ri), int(fi), int(mi), segment_of(int(ri), int(fi)))
        for member, rec, freq, mon, ri, fi, mi in zip(
            members, recency, frequency, monetary, r, f, m, strict=True
        )
    ]


@dataclass(frozen=True)
class Scan:
    ks: list[int]
    inertia: list[float]
    silhouette: list[float]

    @property
    def by_silhouette(self) -> int:
        return self.ks[int(np.argmax(self.silhouette))]

    @property
    def elbow(self) -> int:
        """The k farthest from the chord between the first and last points of the normalised curve."""
        x = (np.array(self.ks) - self.ks[0]) / (self.ks[-1] - self.ks[0])
        inertia = np.array(self.inertia)
        y = (inertia - inertia[-1]) / (inertia[0] - inertia[-1])
        return self.ks[int(np.argmax(np.abs(1 - x - y)))]


def rfm_matrix(rows: Sequence[Rfm]) -> NDArray[np.float64]:
    """log-scaled, standardised recency, frequency and monetary value (spend floored at 0)."""
    data = np.log1p(
        np.array([[r.recency_days, r.frequency, max(r.monetary, 0.0)] for r in rows], dtype=float)
    )
    standardised: NDArray[np.float64] = (data - data.mean(axis=0)) / data.std(axis=0)
    return standardised


def scan(X: NDArray[np.float64], ks: Sequence[int] = range(2, 11), seed: int = 0) -> Scan:
    from sklearn.cluster import KMeans
    from sklearn.metrics import silhouette_score
    from threadpoolctl import threadpool_limits

    inertia, silhouette = [], []
    with threadpool_limits(limits=1):  # KMeans' OpenMP threads spin on a shared machine (ml.training.train)
        for k in ks:
            fitted = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(X)
            inertia.append(float(fitted.inertia_))
            silhouette.append(
                float(silhouette_score(X, fitted.labels_, sample_size=min(len(X), 4000), random_state=seed))
            )
    return Scan(list(ks), inertia, silhouette)


def plot(result: Scan, rows: Sequence[Rfm], path: Path) -> None:
    """Silhouette and inertia by k (elbow marked), and the population by named RFM segment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(12, 4.5))
    left.plot(result.ks, result.inertia, "o-", color="tab:blue", label="inertia")
    left.axvline(result.elbow, color="tab:blue", linestyle=":", label=f"elbow k={result.elbow}")
    left.set_xlabel("k")
    left.set_ylabel("inertia")
    twin = left.twinx()
    twin.plot(result.ks, result.silhouette, "s-", color="tab:orange", label="silhouette")
    twin.axvline(
        result.by_silhouette, color="tab:orange", linestyle="--", label=f"best k={result.by_silhouette}"
    )
    twin.set_ylabel("silhouette")
    left.legend(loc="upper center")
    twin.legend(loc="upper right")
    left.set_title("KMeans on log RFM")
    names = [name for name, _, _ in SEGMENTS]
    counts = [sum(1 for r in rows if r.segment == name) for name in names]
    right.barh(names[::-1], counts[::-1], color="tab:green")
    right.set_title(f"RFM segments ({len(rows):,} members)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
