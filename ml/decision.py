"""One automated decision about one member: its score, the action the policy takes, the exact
explanation, and what of it goes on chain.

Everything here is a pure function of (model, the member's verified events, the as-of date), so that
an auditor who holds the same three reproduces the decision bit for bit: `explanation_bytes` is RFC 8785
JSON, and the score in basis points, the action word and the reason codes are derived from it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import rfc8785

from ml.dataset import ELIGIBLE_DAYS, eligible
from ml.events import Event
from ml.features import BY_NAME, features, history_before
from ml.glassbox import Counterfactual, GlassBox

EXPLANATION_FORMAT = "ledgercrm/explanation/v1"
NO_ACTION = "none"
MAX_REASONS = 3
# a reason code is one byte: the feature's position in the model plus one (7 bits), and the high bit
# set where the feature pushed the churn score up
_UP = 0x80


@dataclass(frozen=True)
class Reason:
    feature: str
    towards_churn: bool  # the feature's term pushed the score up
    contribution: float


@dataclass(frozen=True)
class Scored:
    """A decision before it has a member's key or an id: everything the model says."""

    row: dict[str, float]  # the features
    contributions: dict[str, float]
    logit: float
    score: float
    action: str
    reasons: tuple[Reason, ...]
    counterfactual: Counterfactual | None

    @property
    def score_bps(self) -> int:
        return round(self.score * 10_000)


def inputs_before(events: Sequence[Event], as_of: datetime) -> int:
    """How many of the member's events (oldest first) a decision as of `as_of` reads: those strictly
    before it, the same cut `ml.features` makes. The input root commits to exactly these."""
    return len(history_before(events, as_of))


class OutsidePopulation(ValueError):
    """The member bought before the as-of date, but not within the year before it: the model was
    trained on, and speaks for, members who did (`ml.dataset.eligible`)."""


def decide(model: GlassBox, events: Sequence[Event], as_of: datetime) -> Scored:
    """Score one member. ValueError if the member has no purchase before `as_of`; OutsidePopulation if
    none in the year before it (not in the population the model was trained on)."""
    row = features(events, as_of, model.bgnbd)
    if not eligible(events, as_of):
        raise OutsidePopulation(f"no purchase in the {ELIGIBLE_DAYS} days before {as_of:%Y-%m-%d}")
    contributions = model.contributions(row)
    logit = model.intercept + sum(contributions.values())
    score = model.score(row)
    acts = score >= model.threshold
    ranked = sorted(contributions.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    reasons = tuple(Reason(name, value > 0, value) for name, value in ranked[:MAX_REASONS] if value != 0)
    return Scored(
        row=row,
        contributions=contributions,
        logit=logit,
        score=score,
        action=model.action if acts else NO_ACTION,
        reasons=reasons,
        counterfactual=model.counterfactual(row) if acts else None,
    )


def reason_codes(model: GlassBox, reasons: Sequence[Reason]) -> bytes:
    """The reasons as the chain holds them: 32 bytes, one code per reason, most important first."""
    codes = bytes((model.features.index(r.feature) + 1) | (_UP if r.towards_churn else 0) for r in reasons)
    if len(codes) > 32:
        raise ValueError("at most 32 reasons fit in a word")
    return codes.ljust(32, b"\x00")


def read_reason_codes(model: GlassBox, codes: bytes) -> list[tuple[str, bool]]:
    """(feature, towards churn) for each code in the word, until the first zero byte."""
    found = []
    for code in codes:
        if code == 0:
            break
        index = (code & ~_UP) - 1
        if not 0 <= index < len(model.features):
            raise ValueError(f"reason code {code:#04x} names no feature of this model")
        found.append((model.features[index], bool(code & _UP)))
    return found


def action_word(action: str) -> bytes:
    """The action as a bytes32: its ASCII name, zero-padded (readable in any block explorer)."""
    raw = action.encode("ascii")
    if len(raw) > 32:
        raise ValueError(f"an action name is at most 32 characters: {action!r}")
    return raw.ljust(32, b"\x00")


def read_action_word(word: bytes) -> str:
    return word.rstrip(b"\x00").decode("ascii", errors="replace")


def explanation(
    scored: Scored, *, model_hash: bytes, member: str, partner: str, as_of: datetime, input_root: bytes
) -> dict[str, Any]:
    """The full explanation: what the decision read (features), how each feature moved the logit
    (the model's own terms, exact), and what would change the outcome. Personal data: it is stored
    encrypted under the member's key, and only a keyed commitment to it goes on chain."""
    return {
        "format": EXPLANATION_FORMAT,
        "modelHash": "0x" + model_hash.hex(),
        "member": member,
        "partner": partner,
        "asOf": as_of.isoformat(),
        "inputRoot": "0x" + input_root.hex(),
        "features": {name: scored.row[name] for name in sorted(scored.row)},
        "contributions": {name: scored.contributions[name] for name in sorted(scored.contributions)},
        "logit": scored.logit,
        "score": scored.score,
        "scoreBps": scored.score_bps,
        "action": scored.action,
        "reasons": [
            {
                "feature": r.feature,
                "meaning": BY_NAME[r.feature].meaning,
                "direction": "towards churn" if r.towards_churn else "away from churn",
                "contribution": r.contribution,
            }
            for r in scored.reasons
        ],
        "counterfactual": None if scored.counterfactual is None else scored.counterfactual.as_json(),
    }


def explanation_bytes(document: Mapping[str, Any]) -> bytes:
    return rfc8785.dumps(dict(document))
