"""The decision layer's use cases: train and register a churn model, segments, recommendations.

Every one of them reads a partner's interactions through `each_verified_interaction`: only documents that
verify against the chain reach `ml`; what does not verify is counted and reported, never used.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from api.context import Crm
from api.errors import ConsentRequired, InvalidInput, NotFound
from api.evidence.outbox import sending_as
from api.evidence.verification import Outcome, each_verified_interaction
from api.importers.collector import bulk_collection
from api.principal import Principal
from api.usecases.decision_verification import PROFILING
from ledger.merkle import merkle_root
from ml import recommend as recommending
from ml import segments as segmenting
from ml.events import Event, Shared, by_member, from_document
from ml.policy import BUDGET, DEFAULT_POLICY, EXPECTED_COST, Policy
from ml.training import TrainConfig, Trained, train
from offchain.models import InteractionKind, RegisteredModel
from offchain.repositories import models, partners


@dataclass(frozen=True)
class VerifiedInputs:
    """A partner's histories built from verified documents only, and what was left out."""

    histories: dict[str, list[Event]]
    leaves: list[bytes]  # the leaf hashes of the documents used, in interaction order
    excluded: Counter[str] = field(default_factory=Counter)  # outcome -> interactions left out
    members: list[str] = field(default_factory=list)  # the member ("0x...") of each leaf


def verified_inputs(crm: Crm, partner: str, members: list[bytes] | None = None) -> VerifiedInputs:
    """Each verified document becomes its event as it is read, and the document is dropped (streamed:
    the parsed documents of every interaction at once were most of `model train`'s memory).

    A change of a customer's record is a verified leaf of her history (in `leaves`), but no event of
    her behaviour (not in `histories`, as scoring's histories hold none, `api.evidence.inputs`): its
    time is when someone edited her record, so as an event it moved the data's latest date, and with
    it the holdout, the refit's slices and a segment's as-of date, to the day of the edit."""
    used: list[tuple[int, bytes, str, Event | None]] = []
    excluded: Counter[str] = Counter()
    shared = Shared()  # equal lines' values one object: the histories are held for a whole run
    for item in each_verified_interaction(crm, partner, members):
        if item.outcome is Outcome.VERIFIED and item.document is not None:
            change = item.document.get("kind") == InteractionKind.RECORD_UPDATE
            event = None if change else from_document(item.document, shared)
            used.append((item.interaction_id, item.leaf, "0x" + item.member.hex(), event))
        else:
            excluded[item.outcome.value] += 1
    used.sort(key=lambda v: v[0])
    histories = by_member(event for *_, event in used if event is not None)
    return VerifiedInputs(
        histories, [leaf for _, leaf, _, _ in used], excluded, [member for _, _, member, _ in used]
    )


Histories = dict[str, list[Event]]  # "0x..." member -> events, oldest first


def _profiled(crm: Crm, partner: str, histories: Histories) -> tuple[Histories, int]:
    """The histories of the members whose profiling consent towards `partner` is valid on chain now, and
    how many were left out: training on a member's history, a segment or a recommendation is profiling of
    her, as a score is."""
    kept = _consenting(crm, partner, list(histories))
    return {name: histories[name] for name in histories if name in kept}, len(histories) - len(kept)


def _consenting(crm: Crm, partner: str, names: list[str]) -> set[str]:
    """Those of `names` ("0x..." members) whose profiling consent towards `partner` is valid on chain."""
    with crm.unit_of_work() as db:
        address = crm.partner(db, partner).address
    valid = crm.coalition.consent.are_valid([bytes.fromhex(n[2:]) for n in names], address, PROFILING)
    return {name for name, ok in zip(names, valid, strict=True) if ok}


@dataclass(frozen=True)
class TrainedModel:
    model_id: int  # on chain
    trained: Trained
    inputs: int
    excluded: Counter[str]
    without_consent: int = 0  # customers left out: no valid profiling consent towards the partner


def action_policy(
    budget: str | None = None, offer_cost: float | None = None, loss_cost: float | None = None
) -> Policy:
    """The action rule a partner states: a budget ("20%" of the scored members, or "500" of them) or
    the costs of an offer and of a lost customer (act where p x loss >= offer); neither: a 20% budget."""
    costs = offer_cost is not None or loss_cost is not None
    if budget is not None and costs:
        raise InvalidInput("state a budget or the costs of an offer and of a lost customer, not both")
    try:
        if costs:
            if offer_cost is None or loss_cost is None:
                raise InvalidInput("an expected-cost rule needs both --offer-cost and --loss-cost")
            return Policy(EXPECTED_COST, offer_cost=offer_cost, loss_cost=loss_cost)
        if budget is None:
            return DEFAULT_POLICY
        text = budget.strip()
        if text.endswith("%"):
            return Policy(BUDGET, share=float(text[:-1]) / 100)
        if text.isdigit():
            return Policy(BUDGET, count=int(text))
    except ValueError as exc:
        raise InvalidInput(f"--budget: {exc}" if budget is not None else str(exc)) from None
    raise InvalidInput(f"--budget is a share (e.g. 20%) or a number of members (e.g. 500), not {budget!r}")


def train_model(
    crm: Crm,
    who: Principal,
    horizon_days: int = 90,
    as_of: datetime | None = None,
    step: Callable[[str], None] | None = None,
    policy: Policy = DEFAULT_POLICY,
    backtest: bool = True,
) -> TrainedModel:
    """Train on the acting partner's verified interactions, register the model on chain (its hash, its
    card's hash and the root of the leaves trained on), then keep its bytes and card in the store. The
    model registered is refitted on every slice labelled by now; the card holds the figures of the one
    evaluated on the holdout, the backtest (unless `backtest` is off: most of the time), the calibration
    and the action rule (`policy`)."""
    partner = who.acting_partner()
    if horizon_days < 1 or horizon_days > 730:
        raise InvalidInput(f"a horizon is 1 to 730 days, not {horizon_days}")
    if as_of is not None and as_of.tzinfo is None:
        raise InvalidInput("--as-of needs a time zone")
    # a run holds every member's events (1.9 million objects on Online Retail II) from the verification
    # to the end, and makes millions of short-lived ones around them (lines, rows, frames) with next to
    # no reference cycles: with the collector as it is, its full collections walked the events again and
    # again (5.5-7.5 of 36 CPU s of `model train` on Online Retail II, ~0.7-1.0 with this)
    with bulk_collection():
        return _train_model(crm, partner, horizon_days, as_of, step, policy, backtest)


def _train_model(
    crm: Crm,
    partner: str,
    horizon_days: int,
    as_of: datetime | None,
    step: Callable[[str], None] | None,
    policy: Policy,
    backtest: bool,
) -> TrainedModel:
    say = step or (lambda _: None)
    say("verifying the interactions against the chain")
    inputs = verified_inputs(crm, partner)
    if not inputs.leaves:
        raise InvalidInput(f"{partner} has no verified interactions to train on")
    # training on a customer's history is profiling her, as scoring her is: only the histories of
    # customers whose profiling consent towards the partner is valid now, and the root covers only them
    say("reading profiling consent on chain")
    consenting = _consenting(crm, partner, sorted(set(inputs.members)))
    histories = {name: events for name, events in inputs.histories.items() if name in consenting}
    unconsented = len(set(inputs.members)) - len(consenting)
    # the root covers every verified leaf of the consenting customers, the changes of their records
    # among them: what an auditor recomputes from the partner's log as the chain proves it, with no
    # need to tell one kind of leaf from another
    leaves = [
        leaf for leaf, member in zip(inputs.leaves, inputs.members, strict=True) if member in consenting
    ]
    # the store's pooled connections hold the pages the verification read (SQLite keeps up to 64 MiB a
    # connection): closed before training, that memory serves the fits (peak RSS 640 -> 574 MB on Online
    # Retail II); the registration below opens a fresh connection
    crm.engine.dispose()
    if not leaves:
        raise InvalidInput(
            f"{partner} has no verified interactions of customers with profiling consent to train on"
        )
    training_root = merkle_root(leaves)
    provenance = {
        "partner": partner,
        "trainingRoot": "0x" + training_root.hex(),
        "leavesTrainedOn": len(leaves),
        "leftOut": dict(sorted(inputs.excluded.items())),
        "membersWithoutProfilingConsent": unconsented,
    }
    try:
        trained = train(
            histories,
            TrainConfig(horizon_days=horizon_days, holdout=as_of, policy=policy, backtest=backtest),
            provenance,
            step=say,
        )
    except ValueError as exc:
        raise InvalidInput(f"cannot train: {exc}") from None
    say("registering the model on chain")
    signer = crm.signer(partner)
    with sending_as(crm, partner):  # sent from the partner's account: after any running sender
        model_id = crm.coalition.decisions.register_model(
            signer, trained.model.model_hash, trained.card_hash, training_root
        )
    info = crm.coalition.decisions.model(model_id)
    with crm.unit_of_work() as db:
        models.add(
            db,
            RegisteredModel(
                partner_id=crm.partner(db, partner).id,
                onchain_id=model_id,
                model_hash=trained.model.model_hash,
                model_json=trained.model.to_bytes().decode(),
                card_hash=trained.card_hash,
                card_json=trained.card_bytes.decode(),
                training_root=training_root,
                block_number=info.block_number,
            ),
        )
    return TrainedModel(model_id, trained, len(leaves), inputs.excluded, unconsented)


@dataclass(frozen=True)
class ModelLine:
    model_id: int
    partner: str
    model_hash: bytes
    card_hash: bytes
    block_number: int
    holdout_auc: float | None
    on_chain: bool  # the chain's record of this id has the stored hashes


def list_models(crm: Crm, who: Principal) -> list[ModelLine]:
    """Every registered model (model cards hold no personal data: anyone in the consortium may read
    them), each checked against the chain's record."""
    del who  # every principal may list models
    with crm.unit_of_work() as db:
        names = {p.id: p.name for p in partners.every(db)}
        rows = list(models.every(db))
    lines = []
    for row in rows:
        chain = crm.coalition.decisions.model(row.onchain_id)
        card = json.loads(row.card_json)
        auc = card.get("metrics", {}).get("EBM (registered)", {}).get("auc", {}).get("value")
        lines.append(
            ModelLine(
                row.onchain_id,
                names.get(row.partner_id, "?"),
                row.model_hash,
                row.card_hash,
                row.block_number,
                auc,
                (chain.model_hash, chain.card_hash) == (row.model_hash, row.card_hash),
            )
        )
    return lines


def model_card(crm: Crm, who: Principal, model_id: int) -> dict[str, Any]:
    del who
    with crm.unit_of_work() as db:
        row = models.by_onchain_id(db, model_id)
    if row is None:
        raise NotFound(f"no model {model_id} in this store")
    card: dict[str, Any] = json.loads(row.card_json)
    return card


@dataclass(frozen=True)
class FeatureShape:
    name: str
    meaning: str
    cuts: tuple[float, ...]
    scores: tuple[float, ...]  # one per bin between the cuts: the term the feature adds to the logit


def model_shapes(crm: Crm, who: Principal, model_id: int) -> list[FeatureShape]:
    """Each feature's shape in a registered glass box, read from the model's own bytes once they hash to
    what the chain registered (a model holds no personal data: anyone in the consortium may read it)."""
    del who
    from ml.features import BY_NAME
    from ml.glassbox import GlassBox

    with crm.unit_of_work() as db:
        row = models.by_onchain_id(db, model_id)
    if row is None:
        raise NotFound(f"no model {model_id} in this store")
    raw = row.model_json.encode()
    if hashlib.sha256(raw).digest() != crm.coalition.decisions.model(model_id).model_hash:
        raise InvalidInput(f"the stored model {model_id} does not hash to the one registered on chain")
    model = GlassBox.from_bytes(raw)
    # scores[i] holds the missing slot first and the unknown slot last: the bins lie between them
    return [
        FeatureShape(name, BY_NAME[name].meaning if name in BY_NAME else "", cuts, scores[1 : len(cuts) + 2])
        for name, cuts, scores in zip(model.features, model.cuts, model.scores, strict=True)
    ]


@dataclass(frozen=True)
class SegmentSummary:
    """One named RFM segment: how many customers, and their averages."""

    name: str
    members: int
    recency_days: float
    frequency: float
    monetary: float


@dataclass(frozen=True)
class SegmentReport:
    as_of: datetime
    rows: list[segmenting.Rfm]
    scan: segmenting.Scan
    excluded: Counter[str]
    without_consent: int = 0  # customers left out: no valid profiling consent towards the partner

    def summary(self) -> list[SegmentSummary]:
        """Each segment with its customers' averages, the largest first."""
        groups: dict[str, list[segmenting.Rfm]] = {}
        for row in self.rows:
            groups.setdefault(row.segment, []).append(row)
        return [
            SegmentSummary(
                name,
                len(rows),
                sum(r.recency_days for r in rows) / len(rows),
                sum(r.frequency for r in rows) / len(rows),
                sum(r.monetary for r in rows) / len(rows),
            )
            for name, rows in sorted(groups.items(), key=lambda item: (-len(item[1]), item[0]))
        ]


def segments(
    crm: Crm, who: Principal, as_of: datetime | None = None, plot: Path | None = None
) -> SegmentReport:
    """RFM segments of the acting partner's customers and a KMeans scan of k, from verified inputs."""
    partner = who.acting_partner()
    inputs = verified_inputs(crm, partner)
    histories, unconsented = _profiled(crm, partner, inputs.histories)
    if not histories:
        raise InvalidInput(
            f"{partner} has no verified interactions to segment of customers who consented to profiling"
        )
    moment = as_of or max(e.at for events in histories.values() for e in events)
    rows = segmenting.rfm(histories, moment)
    if len(rows) < 12:
        raise InvalidInput(
            f"{len(rows)} customers bought in the year before {moment:%Y-%m-%d}: too few to segment"
        )
    scan = segmenting.scan(segmenting.rfm_matrix(rows), ks=range(2, min(11, len(rows) // 4)))
    if plot is not None:
        segmenting.plot(scan, rows, plot)
    return SegmentReport(moment, rows, scan, inputs.excluded, unconsented)


def recommendations(crm: Crm, who: Principal, member: bytes, top: int = 10) -> list[str]:
    """Item-to-item recommendations for one of the acting partner's customers, from the verified
    purchases of all its customers."""
    from api.usecases.customers import owned_customer

    partner = who.acting_partner()
    if not 1 <= top <= 100:
        raise InvalidInput(f"--top is 1 to 100, not {top}")
    with crm.unit_of_work() as db:
        owned_customer(crm, db, partner, member)  # NotFound for anyone else's
        address = crm.partner(db, partner).address
    if not crm.coalition.consent.is_valid(member, address, PROFILING):
        raise ConsentRequired(
            f"0x{member.hex()} has no valid profiling consent towards {partner}: no recommendations"
        )
    inputs = verified_inputs(crm, partner)
    histories, _ = _profiled(crm, partner, inputs.histories)
    bought = recommending.baskets(histories, None, None)
    if not bought:
        raise InvalidInput(f"{partner} has no verified purchases to learn from")
    model = recommending.fit(bought)
    return model.recommend(bought.get("0x" + member.hex(), set()), top)
