"""Item-to-item recommendations from verified purchases (cosine similarity of items over customers),
evaluated on a temporal split against recommending the most popular items, of all time and of the last
30 days before the split (a catalogue's popular items change with the season)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from numpy.typing import NDArray
from scipy import sparse

from ml.events import PURCHASE, Event

CHUNK = 512  # members scored at once: a CHUNK x items dense block


@dataclass
class ItemItem:
    items: list[str]
    index: dict[str, int]
    normalised: sparse.csr_matrix  # members x items, each item column of unit length
    popularity: NDArray[np.float64]  # buyers per item

    def scores(self, baskets: Sequence[set[str]]) -> NDArray[np.float64]:
        """For each basket, every item's summed cosine similarity to the basket's items."""
        rows, cols = [], []
        for row, basket in enumerate(baskets):
            for item in basket:
                if item in self.index:
                    rows.append(row)
                    cols.append(self.index[item])
        u = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(baskets), len(self.items)))
        # sim = N^T N is never built: (U N^T) N gives the same scores from two sparse products
        return np.asarray(((u @ self.normalised.T) @ self.normalised).todense())

    def recommend(self, basket: set[str], top: int = 10) -> list[str]:
        return self.top_for([basket], top)[0]

    def top_for(self, baskets: Sequence[set[str]], top: int = 10) -> list[list[str]]:
        found = []
        for start in range(0, len(baskets), CHUNK):
            chunk = baskets[start : start + CHUNK]
            scores = self.scores(chunk)
            for row, basket in enumerate(chunk):
                ranked = np.lexsort((-self.popularity, -scores[row]))  # ties: the more popular first
                found.append([self.items[i] for i in ranked if self.items[i] not in basket][:top])
        return found

    def popular(
        self, basket: set[str], top: int = 10, popularity: NDArray[np.float64] | None = None
    ) -> list[str]:
        """The most popular items not in the basket (by `popularity`, default: buyers of all time)."""
        ranked = np.argsort(-(self.popularity if popularity is None else popularity), kind="stable")
        return [self.items[i] for i in ranked if self.items[i] not in basket][:top]

    def buyers(self, bought: Mapping[str, set[str]]) -> NDArray[np.float64]:
        """Buyers per item (in this model's item order) among `bought`."""
        counts = np.zeros(len(self.items))
        for basket in bought.values():
            for item in basket:
                if item in self.index:
                    counts[self.index[item]] += 1
        return counts


def baskets(
    histories: Mapping[str, Sequence[Event]], start: datetime | None, end: datetime | None
) -> dict[str, set[str]]:
    """Each member's distinct purchased items in [start, end)."""
    found: dict[str, set[str]] = {}
    for member, events in histories.items():
        items = {
            code
            for e in events
            if e.kind == PURCHASE and (start is None or e.at >= start) and (end is None or e.at < end)
            for code, quantity in e.items
            if quantity > 0
        }
        if items:
            found[member] = items
    return found


def fit(bought: Mapping[str, set[str]]) -> ItemItem:
    members = sorted(bought)
    items = sorted({item for basket in bought.values() for item in basket})
    index = {item: i for i, item in enumerate(items)}
    rows = [m for m, member in enumerate(members) for _ in bought[member]]
    cols = [index[item] for member in members for item in sorted(bought[member])]
    matrix = sparse.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(len(members), len(items)))
    popularity = np.asarray(matrix.sum(axis=0)).ravel()
    norms = np.sqrt(popularity)
    normalised = sparse.csr_matrix(matrix @ sparse.diags(1.0 / np.where(norms > 0, norms, 1.0)))
    return ItemItem(items, index, normalised, popularity)


def evaluate(
    histories: Mapping[str, Sequence[Event]], cutoff: datetime, top: int = 10
) -> dict[str, dict[str, float]]:
    """Fit on purchases before `cutoff`; for each member who bought before and buys new items after,
    precision@top and recall@top of the new items, for the model and for the most popular items."""
    before = baskets(histories, None, cutoff)
    after = baskets(histories, cutoff, None)
    model = fit(before)
    members = sorted(m for m in after if m in before and after[m] - before[m])
    truth = [after[m] - before[m] for m in members]
    lately = model.buyers(baskets(histories, cutoff - timedelta(days=30), cutoff))
    lists = {
        "item-to-item": model.top_for([before[m] for m in members], top),
        "most popular": [model.popular(before[m], top) for m in members],
        "popular in the last 30 days": [model.popular(before[m], top, lately) for m in members],
    }
    result = {}
    for name, recommended in lists.items():
        hits = [len(set(r) & t) for r, t in zip(recommended, truth, strict=True)]
        result[name] = {
            f"precision@{top}": round(float(np.mean([h / top for h in hits])), 6),
            f"recall@{top}": round(float(np.mean([h / len(t) for h, t in zip(hits, truth, strict=True)])), 6),
            "members": len(members),
        }
    return result
