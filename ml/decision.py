"""One automated decision about one member: its score, the action the policy takes, the exact
explanation, and what of it goes on chain.

Everything here is a pure function of (model, the member's verified events, the as-of date), so that
an auditor who holds the same three reproduces the decision bit for bit: `explanation_bytes` is RFC 8785
JSON, and the score in basis points, the action word and the reason codes are derived from it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from statistics import fmean
from typing import TYPE_CHECKING, Any

import orjson
import rfc8785

from ml.events import PURCHASE, Event
from ml.features import BY_NAME, features, history_before
from ml.glassbox import FORMAT_V1, Change, Counterfactual, GlassBox
from ml.policy import Cutoff

if TYPE_CHECKING:
    from ml.table import EventTable

EXPLANATION_FORMAT = "ledgercrm/explanation/v2"
EXPLANATION_FORMAT_V1 = "ledgercrm/explanation/v1"  # decisions of v1 models (a score threshold)
NO_ACTION = "none"
MAX_REASONS = 3
REACH_MAX = 12  # the most purchases a counterfactual asks of a customer
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
    cutoff: Cutoff | None = None  # a budget's cut in the run this decision was made in
    policy: dict[str, Any] | None = None  # the action rule as the explanation states it (v2 models)

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


def member_features(model: GlassBox, events: Sequence[Event], as_of: datetime) -> dict[str, float]:
    """The features a decision as of `as_of` reads. ValueError if the member has no purchase before
    `as_of`; OutsidePopulation if none in the year before it (not the population the model knows)."""
    # here, not at the top: ml.dataset imports numpy (0.1 CPU s), which reading a decision's reason codes
    # or checking a disclosure (`decision verify --auditor`) does not need
    from ml.dataset import ELIGIBLE_DAYS, eligible, ever_bought

    # who is outside the population is known from the purchase dates alone: a quarter of Online Retail
    # II's customers, whose features cost as much as anyone's (the same errors as computing them first)
    if not eligible(events, as_of):
        if not ever_bought(events, as_of):
            raise ValueError("no purchase before the as-of date")
        raise OutsidePopulation(f"no purchase in the {ELIGIBLE_DAYS} days before {as_of:%Y-%m-%d}")
    return features(events, as_of, model.bgnbd, model.features)  # only the model's: the others cost time


@dataclass(frozen=True)
class Population:
    """`population`'s answer, per member of a table."""

    features: dict[str, dict[str, float]]  # the model's population: the features a decision reads
    outside: frozenset[str]  # bought before the as-of date, but not within the year before it
    inputs: dict[str, int]  # how many of each one's events a decision reads (`inputs_before`)


def population(
    model: GlassBox, table: EventTable, as_of: datetime, among: Collection[str] | None = None
) -> Population:
    """`member_features` and `inputs_before` of every member of `table` (of those in `among`) at once:
    the same features, bit for bit (`ml.table`), and the same members outside the population."""
    # here, not at the top: numpy, which reading a decision's reason codes or checking a disclosure does
    # not need (as `member_features`)
    import numpy as np

    from ml.dataset import ELIGIBLE_DAYS
    from ml.table import events_before, latest_purchases, micros, table_features

    bought, latest = latest_purchases(table, as_of)
    asked = np.ones(len(table.members), dtype=bool)
    if among is not None:
        wanted = set(among)
        asked = np.array([member in wanted for member in table.members], dtype=bool)
    recent = latest >= micros(as_of - timedelta(days=ELIGIBLE_DAYS))
    inside = asked & bought & recent
    found = table_features(table, as_of, model.bgnbd, model.features, among=inside)
    members = table.members
    return Population(
        {members[m]: found.row(m) for m in np.flatnonzero(inside).tolist()},
        frozenset(members[m] for m in np.flatnonzero(asked & bought & ~recent).tolist()),
        dict(zip(members, events_before(table, as_of).tolist(), strict=True)),
    )


def decide(
    model: GlassBox,
    events: Sequence[Event],
    as_of: datetime,
    *,
    cutoff: Cutoff | None = None,
    input_root: bytes | None = None,
) -> Scored:
    """Score one member (`member_features` says whom not). A budget's decision needs its run's `cutoff`
    and the member's `input_root` (how ties at the cut are broken)."""
    row = member_features(model, events, as_of)
    return decide_on(model, row, cutoff=cutoff, input_root=input_root, events=events, as_of=as_of)


def logit_of(model: GlassBox, row: Mapping[str, float]) -> float:
    """The logit `decide_on` computes, summed in the same order (a budget ranks by it)."""
    contributions = model.contributions({name: float(row[name]) for name in model.features})
    return model.intercept + sum(contributions.values())


def decide_on(
    model: GlassBox,
    row: Mapping[str, float],
    *,
    cutoff: Cutoff | None = None,
    input_root: bytes | None = None,
    events: Sequence[Event] | None = None,
    as_of: datetime | None = None,
    counterfactual: Counterfactual | None = None,
    history: Callable[[], Sequence[Event]] | None = None,
) -> Scored:
    """The decision the model makes on these features: what an auditor given the explanation's
    features recomputes, without the inputs they came from. A v2 model's counterfactual is purchases
    added to the inputs (`reach`): with `events` (or `history`, which gives them when a counterfactual
    is searched, and only then) it is searched, without them the one given is kept."""
    row = {name: float(row[name]) for name in model.features}
    contributions = model.contributions(row)
    logit = model.intercept + sum(contributions.values())
    # `model.score(row)` from the terms just read (it would read them again): GlassBox.logit's sum, term
    # after term onto the intercept, and its sigmoid (tests/ml/test_decision.py holds the two equal)
    total = model.intercept
    for value in contributions.values():
        total += value
    score = _sigmoid(total)
    acted = _rule(model, cutoff, input_root)
    acts = acted(logit)
    ranked = sorted(contributions.items(), key=lambda kv: (-abs(kv[1]), kv[0]))
    reasons = tuple(Reason(name, value > 0, value) for name, value in ranked[:MAX_REASONS] if value != 0)
    if not acts:
        counterfactual = None
    elif model.format == FORMAT_V1:
        counterfactual = model.counterfactual(row)
    elif events is not None and as_of is not None:
        counterfactual = reach(model, events, as_of, acted, before=row)
    elif history is not None and as_of is not None:
        counterfactual = reach(model, history(), as_of, acted, before=row)
    return Scored(
        row=row,
        contributions=contributions,
        logit=logit,
        score=score,
        action=model.action if acts else NO_ACTION,
        reasons=reasons,
        counterfactual=counterfactual,
        cutoff=cutoff if model.policy.batch else None,
        policy=None if model.format == FORMAT_V1 else model.policy.to_json(),
    )


def _rule(model: GlassBox, cutoff: Cutoff | None, input_root: bytes | None) -> Callable[[float], bool]:
    """Whether the policy acts on a member with this logit."""
    if model.policy.batch:
        if input_root is None:
            raise ValueError("a budget's decision needs the member's input root")
        if cutoff is None:  # a run in which the budget acts on no one
            return lambda _: False
        return lambda logit: cutoff.includes(logit, input_root)
    threshold = model.threshold
    return lambda logit: _sigmoid(logit) >= threshold


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-x))


def purchases_added(events: Sequence[Event], as_of: datetime, k: int) -> tuple[list[Event], float]:
    """The member's history before `as_of` with `k` more purchases, one a day over the last `k` days,
    each the member's latest basket at the member's mean purchase amount: what a customer can do."""
    past = list(history_before(events, as_of))
    bought = [e for e in past if e.kind == PURCHASE]
    latest = bought[-1]
    spend = round(fmean(e.total for e in bought), 2)
    extra = [
        Event(latest.member, PURCHASE, as_of - timedelta(days=j), total=spend, items=latest.items,
              country=latest.country, prices=latest.prices, descriptions=latest.descriptions)
        for j in range(k, 0, -1)
    ]  # fmt: skip
    return sorted(past + extra, key=lambda e: e.at), spend


def reach(
    model: GlassBox,
    events: Sequence[Event],
    as_of: datetime,
    acted: Callable[[float], bool],
    *,
    before: Mapping[str, float] | None = None,
) -> Counterfactual | None:
    """The fewest purchases (up to REACH_MAX) after which the policy would not act, with every feature
    recomputed from the history they make: features that one purchase moves together (frequency, the
    window counts, spend, recency, the BG/NBD expectation) move together, each in the direction a
    purchase moves it, and the state is one a customer can reach. None if none of them does."""
    # the features of `events` as they are: given by a caller that has them (the same values), else made
    if before is None:
        before = features(events, as_of, model.bgnbd, model.features)
    for k in range(1, REACH_MAX + 1):
        history, spend = purchases_added(events, as_of, k)
        row = features(history, as_of, model.bgnbd, model.features)
        logit = logit_of(model, row)
        if not acted(logit):
            changes = tuple(
                Change(name, before[name], row[name]) for name in model.features if row[name] != before[name]
            )
            return Counterfactual(changes, model.score(row), purchases=k, spend_each=spend)
    return None


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
    encrypted under the member's key, and only a keyed commitment to it goes on chain. A v2 model's
    explanation also states the action rule (and a budget's cut in the run)."""
    found: dict[str, Any] = {
        "format": EXPLANATION_FORMAT if scored.policy is not None else EXPLANATION_FORMAT_V1,
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
    if scored.policy is not None:
        cutoff = None if scored.cutoff is None else scored.cutoff.to_json()
        found["policy"] = {**scored.policy, "cutoff": cutoff}
    return found


def explanation_bytes(document: Mapping[str, Any]) -> bytes:
    """RFC 8785 (JCS) bytes of an explanation. rfc8785 is the reference, and slow (~1.4 ms for one
    explanation's ~60 floats, most of a decision's cost); the standard library's encoder writes the
    same bytes whenever every float is finite and prints without an exponent (Python's repr and ES6
    then both give the shortest round-trip digits) once integral floats are written as integers, and
    every key is ASCII (sorted alike). Anything else goes to rfc8785. Property-tested against it.
    orjson writes those bytes as the standard library's encoder does (the shortest round-trip digits
    without an exponent for such floats, UTF-8 unescaped, control characters as lowercase \\u00xx) at a
    tenth of its cost (4,265 explanations: ~0.2 CPU s of `score --all`); an int it cannot hold (past 64
    bits, which `_plain` does not let through anyway) goes to the standard library's."""
    plain = _plain(document)
    if plain is None:
        return rfc8785.dumps(dict(document))
    try:
        return orjson.dumps(plain, option=orjson.OPT_SORT_KEYS)
    except TypeError:
        return json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _plain(value: Any) -> Any:
    """`value` with integral floats as ints, or None where the fast path would differ from JCS. The
    exact built-in types first, by type (an explanation is ~80 of them: the checks in turn were most of
    its bytes' cost); anything else, subclasses included, as `_plain_any` says."""
    kind = type(value)
    if kind is float:
        return _plain_float(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is dict:
        return _plain_mapping(value)
    if kind is list:
        return _plain_items(value)
    return _plain_any(value)


def _plain_any(value: Any) -> Any:
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, float):
        return _plain_float(value)
    if isinstance(value, int):
        return value if abs(value) < 2**53 else None
    if isinstance(value, Mapping):
        return _plain_mapping(value)
    if isinstance(value, list | tuple):
        return _plain_items(value)
    return None


# A finite double that is not a whole number prints without an exponent exactly when it is at least
# 1e-4 in size: repr gives its shortest digits, with an exponent where the decimal point would be four
# or more places to the left of them (below 1e-4) or more than 16 to the right (only whole numbers are
# that large). So the size says what repr's text would, without making the text.
_NO_EXPONENT = 1e-4
_EXACT = 2.0**53


def _plain_float(value: float) -> Any:
    if value.is_integer():
        # below 2**53 ES6 prints an integral double as its exact integer; above, as its shortest
        # digits padded with zeros, which int() would not
        return int(value) if abs(value) < _EXACT else None
    return value if _NO_EXPONENT <= abs(value) < _EXACT else None  # not nan, inf or an exponent


def _plain_mapping(value: Mapping[Any, Any]) -> dict[str, Any] | None:
    out = {}
    for key, item in value.items():
        if (type(key) is not str and not isinstance(key, str)) or not key.isascii():
            return None
        kind = type(item)
        if kind is float:  # most of an explanation: its features and terms, here without a call
            if item.is_integer():
                if not abs(item) < _EXACT:
                    return None
                out[key] = int(item)
            elif _NO_EXPONENT <= abs(item) < _EXACT:
                out[key] = item
            else:
                return None
        elif kind is str or item is None or kind is bool:
            out[key] = item
        else:
            converted = _plain(item)
            if converted is None:
                return None
            out[key] = converted
    return out


def _plain_items(value: list[Any] | tuple[Any, ...]) -> list[Any] | None:
    items = [_plain(item) for item in value]
    return None if any(i is None and v is not None for i, v in zip(items, value, strict=True)) else items


def commitment_label(model_hash: bytes, input_root: bytes) -> bytes:
    """What a decision's explanation commitment key is derived for: fields the chain holds, so that a
    disclosed key opens this commitment only (the same model on the same inputs gives the same
    decision, and the same key)."""
    return b"decision/" + model_hash + input_root
