"""The action rule a partner states for a model, stored in the model's bytes (so the chain's model hash
covers it) and printed in its card.

- `budget`: act on the `share` of the scored members most at risk (or on at most `count` of them):
  the share acted on is the partner's budget whatever the season's score level.
- `expected-cost`: act where the expected loss avoided exceeds the offer's cost, i.e. where
  p(churn) x `loss_cost` >= `offer_cost`: a threshold of offer/loss on a calibrated probability.
- `threshold`: a fixed score threshold, the rule of models registered before these two existed
  (read back so that their decisions still reproduce; never chosen for a new model).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

BUDGET = "budget"
EXPECTED_COST = "expected-cost"
THRESHOLD = "threshold"


@dataclass(frozen=True)
class Policy:
    rule: str
    share: float | None = None  # budget: the share of scored members acted on
    count: int | None = None  # budget: or at most this many members
    offer_cost: float | None = None  # expected cost: what one retention offer costs
    loss_cost: float | None = None  # expected cost: what a lost customer costs
    threshold: float | None = None  # the legacy rule's score threshold

    def __post_init__(self) -> None:
        if self.rule == BUDGET:
            if (self.share is None) == (self.count is None):
                raise ValueError("a budget is a share of members or a number of them (one of the two)")
            if self.share is not None and not 0 < self.share <= 1:
                raise ValueError(f"a budget share is over 0 and at most 100%, not {self.share:.2%}")
            if self.count is not None and self.count < 1:
                raise ValueError(f"a budget is at least 1 member, not {self.count}")
        elif self.rule == EXPECTED_COST:
            offer, loss = self.offer_cost, self.loss_cost
            if offer is None or loss is None or not (math.isfinite(offer) and math.isfinite(loss)):
                raise ValueError("an expected-cost rule needs the cost of an offer and of a lost customer")
            if offer <= 0 or loss <= 0:
                raise ValueError("the costs of an offer and of a lost customer are positive amounts")
            if offer >= loss:
                raise ValueError(
                    f"an offer costing {offer:g} is never worth making to keep a customer worth {loss:g}"
                )
        elif self.rule == THRESHOLD:
            if self.threshold is None or not 0 < self.threshold < 1:
                raise ValueError("a threshold rule needs a score threshold between 0 and 1")
        else:
            raise ValueError(f"no action rule {self.rule!r}: budget or expected-cost")

    @property
    def batch(self) -> bool:
        """Whether a member's action depends on the others scored with them (a budget ranks them)."""
        return self.rule == BUDGET

    @property
    def score_threshold(self) -> float | None:
        """The churn probability at or above which the action is taken, for a per-member rule."""
        if self.rule == EXPECTED_COST:
            assert self.offer_cost is not None and self.loss_cost is not None
            return self.offer_cost / self.loss_cost
        return self.threshold

    def acted_on(self, members: int) -> int:
        """How many of `members` scored members a budget acts on."""
        if self.share is not None:
            return min(members, math.ceil(self.share * members - 1e-9))
        assert self.count is not None
        return min(members, self.count)

    def to_json(self) -> dict[str, Any]:
        if self.rule == BUDGET:
            return (
                {"rule": BUDGET, "share": self.share}
                if self.share is not None
                else {
                    "rule": BUDGET,
                    "count": self.count,
                }
            )
        if self.rule == EXPECTED_COST:
            return {"rule": EXPECTED_COST, "offerCost": self.offer_cost, "lossCost": self.loss_cost}
        return {"rule": THRESHOLD, "threshold": self.threshold}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Policy:
        rule = data.get("rule")
        if rule == BUDGET:
            share, count = data.get("share"), data.get("count")
            return cls(
                BUDGET,
                share=None if share is None else float(share),
                count=None if count is None else int(count),
            )
        if rule == EXPECTED_COST:
            return cls(EXPECTED_COST, offer_cost=float(data["offerCost"]), loss_cost=float(data["lossCost"]))
        return cls(THRESHOLD, threshold=float(data["threshold"]))

    def describe(self) -> str:
        if self.rule == BUDGET:
            return (
                f"act on the {self.share:.0%} of scored members most at risk"
                if self.share is not None
                else f"act on the {self.count} scored members most at risk"
            )
        if self.rule == EXPECTED_COST:
            return (
                f"act where churn probability x {self.loss_cost:g} (a lost customer) >= {self.offer_cost:g} "
                f"(an offer): probability >= {self.score_threshold:.4f}"
            )
        return f"act where the churn score is at least {self.threshold}"


DEFAULT_POLICY = Policy(BUDGET, share=0.2)


@dataclass(frozen=True)
class Cutoff:
    """A budget's cut in one scoring run: the last member acted on, by (logit, input root) with the
    logit descending and the input root ascending (ties of score broken by a value the chain holds and
    no one chooses), and how many were ranked. A member is acted on iff it ranks at or before it."""

    logit: float
    input_root: bytes
    members: int  # scored in the run
    acted_on: int

    def includes(self, logit: float, input_root: bytes) -> bool:
        return logit > self.logit or (logit == self.logit and input_root <= self.input_root)

    def to_json(self) -> dict[str, Any]:
        return {
            "logit": self.logit,
            "inputRoot": "0x" + self.input_root.hex(),
            "members": self.members,
            "actedOn": self.acted_on,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cutoff:
        return cls(
            float(data["logit"]),
            bytes.fromhex(str(data["inputRoot"]).removeprefix("0x")),
            int(data["members"]),
            int(data["actedOn"]),
        )


def budget_cutoff(policy: Policy, ranked: list[tuple[float, bytes]]) -> Cutoff | None:
    """The cut of a budget over the (logit, input root) of every member scored in a run; None when it
    acts on no one (an empty run)."""
    k = policy.acted_on(len(ranked))
    if k == 0:
        return None
    order = sorted(ranked, key=lambda item: (-item[0], item[1]))
    logit, root = order[k - 1]
    return Cutoff(logit, root, len(ranked), k)
