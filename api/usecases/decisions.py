"""Automated decisions: score a partner's customers with a registered model, log each decision on
chain, show it, and verify it from the chain down.

A decision is made only from interactions that verify against the chain, only about a member whose
"profiling" consent towards the deciding partner is valid on chain (DecisionLog checks it again), and
only with a model the deciding partner registered. The full explanation (features, the model's own
terms, reasons, counterfactual) is personal data: it is stored encrypted under the member's key and the
chain holds a keyed commitment to it, so erasure unlinks it with everything else.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

from sqlmodel import Session

from api.context import Crm
from api.errors import InvalidInput, NotAllowed, NotFound
from api.evidence.decision_records import EXPLANATION_FIELD, decision_of
from api.evidence.inputs import verified_inputs
from api.evidence.outbox import Outbox
from api.importers.collector import bulk_collection
from api.principal import Principal
from api.usecases.decision_verification import DISCLOSURE_FORMAT as DISCLOSURE_FORMAT
from api.usecases.decision_verification import PROFILING as PROFILING
from api.usecases.decision_verification import DecisionVerification as DecisionVerification
from api.usecases.decision_verification import Step as Step
from api.usecases.decision_verification import check_disclosure as check_disclosure
from api.usecases.decision_verification import load_model, recorded_decision
from api.usecases.decision_verification import verify_decision as verify_decision
from ledger.merkle import merkle_root
from ledger.sender import DECISION_BATCH_MAX
from ledger.txs import SignedTx
from ml import decision as deciding
from ml.glassbox import GlassBox
from ml.policy import budget_cutoff
from offchain.crypto import hmac_sha256
from offchain.errors import CustomerErased
from offchain.models import CustomerStatus, RegisteredModel
from offchain.repositories import customers, decisions, models
from offchain.repositories import verified_inputs as verified_memo
from offchain.repositories.partners import PartnerRecord


@dataclass
class ScoreReport:
    model_id: int
    as_of: datetime
    decided: list[int] = field(default_factory=list)  # the decision ids the chain gave
    actions: Counter[str] = field(default_factory=Counter)
    skipped_for_consent: int = 0  # members without valid profiling consent towards the partner
    inputs_excluded: Counter[str] = field(default_factory=Counter)  # outcome -> interactions left out
    no_inputs: int = 0  # members with no verified purchase before the as-of date
    outside_population: int = 0  # members with none in the year before it (the model's population)
    erased: int = 0  # erased members asked for (never scored)
    inputs_from_memo: int = 0  # inputs whose content check the memo of an earlier run stood in for
    timings: dict[str, float] = field(default_factory=dict)  # phase -> seconds
    rule: str = ""  # the model's action rule, in words
    as_of_rule: str = ""  # how the as-of date was chosen
    ranked: int = 0  # a budget: the members ranked in the run (the partner's scored population)


def score(
    crm: Crm,
    who: Principal,
    members: Sequence[bytes] | None = None,
    model_id: int | None = None,
    as_of: datetime | None = None,
    step: Callable[[str], None] | None = None,
) -> ScoreReport:
    """Score the acting partner's customers (`members`, or all of them) and log every decision on
    chain, in batches through the outbox. Everything is checked before anything is written."""
    # a run makes a million short-lived objects (the events' lines, features, explanations) and next to
    # no reference cycles: with the garbage collector as it is, its collections walked everything alive
    # again and again (1.1-1.7 CPU s of a 4.2 s read of Online Retail II's inputs)
    with bulk_collection():
        return _score(crm, who, members, model_id, as_of, step)


def _score(
    crm: Crm,
    who: Principal,
    members: Sequence[bytes] | None,
    model_id: int | None,
    as_of: datetime | None,
    step: Callable[[str], None] | None,
) -> ScoreReport:
    partner = who.acting_partner()
    phases: dict[str, float] = {}
    current, since = ["check"], [time.perf_counter()]

    def say(what: str, phase: str) -> None:  # the caller's progress line, and where the time went
        now = time.perf_counter()
        phases[current[0]] = now - since[0]
        current[0], since[0] = phase, now
        if step is not None:
            step(what)

    plan = _score_plan(crm, partner, members, model_id, as_of)
    record, asked, statuses, row, model = plan.record, plan.asked, plan.statuses, plan.row, plan.model
    everyone, as_of = plan.everyone, plan.as_of
    live = [m for m in asked if statuses.get(m) is not CustomerStatus.ERASED]
    report = ScoreReport(
        row.onchain_id,
        as_of or datetime.now(UTC),
        erased=len(asked) - len(live),
        timings=phases,
        rule=model.policy.describe(),
    )
    if not live:
        return report
    # the run a budget ranks: every live customer of the partner, whoever was asked for
    pool = (
        [m for m in everyone if statuses.get(m) is not CustomerStatus.ERASED] if model.policy.batch else live
    )

    # every verified interaction of the partner, for one member as for all: the default as-of date
    # is the day after the latest of them, the same for `--member` and `--all`
    say("verifying the inputs against the chain", "verify")
    inputs = verified_inputs(crm, partner, keep=pool)
    leaves, ids = inputs.leaves, inputs.ids
    report.inputs_excluded.update(inputs.excluded)
    report.inputs_from_memo = inputs.from_memo
    if as_of is None:  # the day after the partner's latest verified event: "now", in the data's own time
        latest = inputs.latest()
        if latest is None:
            raise InvalidInput(f"{partner} has no verified interactions to score")
        report.as_of = datetime.combine(latest.date() + timedelta(days=1), datetime.min.time(), UTC)
        report.as_of_rule = "the day after the partner's latest verified interaction"
    else:
        report.as_of_rule = "as given"

    say("reading profiling consent on chain", "consent")
    consented = dict(zip(pool, crm.coalition.consent.are_valid(pool, record.address, PROFILING), strict=True))

    say("scoring", "score")
    wanted = set(live)
    # every consenting member's features at once, from the inputs' columns (`ml.table`); the few members
    # whose events the columns do not hold, one by one from their events (the same features, bit for bit)
    profiled = ["0x" + m.hex() for m in pool if consented[m]]
    population = deciding.population(model, inputs.table, report.as_of, among=profiled)
    assessed: dict[bytes, tuple[dict[str, float], int, bytes]] = {}  # member -> features, inputs, root
    for member in pool:
        if not consented[member]:
            report.skipped_for_consent += member in wanted
            continue
        name = "0x" + member.hex()
        irregular = inputs.irregular.get(name)
        if irregular is not None:
            try:
                features = deciding.member_features(model, irregular, report.as_of)
            except deciding.OutsidePopulation:
                report.outside_population += member in wanted
                continue
            except ValueError:  # no verified purchase before the as-of date
                report.no_inputs += member in wanted
                continue
            used = deciding.inputs_before(irregular, report.as_of)
        else:
            found = population.features.get(name)
            if found is None:
                if name in population.outside:
                    report.outside_population += member in wanted
                else:  # no verified purchase before the as-of date
                    report.no_inputs += member in wanted
                continue
            features, used = found, population.inputs[name]
        assessed[member] = (features, used, merkle_root(leaves[name][:used]))
    cutoff = (
        budget_cutoff(model.policy, [(deciding.logit_of(model, f), r) for f, _, r in assessed.values()])
        if model.policy.batch
        else None
    )
    report.ranked = len(assessed) if model.policy.batch else 0
    staged: list[dict[str, Any]] = []  # rows, inserted at once (ORM objects cost more than the insert)
    now = datetime.now(UTC)
    deciding_on = [m for m in live if m in assessed]
    # the keys the inputs' check read, while still fresh (`CustomerKeys`: no shred since, the vault's
    # TTL not past; a stale one goes back to the vault itself); any other read now
    keys = {m: k for m in deciding_on if (k := inputs.keys.get(m)) is not None and k.fresh}
    keys.update(crm.vault.bulk_keys(partner, [m for m in deciding_on if m not in keys]))
    for member in live:
        if member not in assessed:
            continue
        name = "0x" + member.hex()
        features, used, input_root = assessed[member]
        scored = deciding.decide_on(
            model,
            features,
            cutoff=cutoff,
            input_root=input_root,
            as_of=report.as_of,
            history=partial(inputs.events, name),  # events only for a counterfactual
        )
        document = deciding.explanation(
            scored,
            model_hash=model.model_hash,
            member=name,
            partner=partner,
            as_of=report.as_of,
            input_root=input_root,
        )
        raw = deciding.explanation_bytes(document)
        member_keys = keys[member]
        label = deciding.commitment_label(model.model_hash, input_root)
        try:
            explanation_hash = hmac_sha256(member_keys.disclosure_key(label), raw)
            explanation_ciphertext = member_keys.encrypt(EXPLANATION_FIELD, raw)
        except CustomerErased:  # by another process since her keys were read: as if asked after it
            report.erased += 1
            continue
        staged.append(
            {
                "partner_id": record.id,
                "member_id": member,
                "model_id": row.onchain_id,
                "as_of": report.as_of,
                "input_ids": json.dumps(ids[name][:used]),
                "input_root": input_root,
                "score_bps": scored.score_bps,
                "action": scored.action,
                "reasons": deciding.reason_codes(model, scored.reasons),
                "explanation_hash": explanation_hash,
                "explanation_ciphertext": explanation_ciphertext,
                "created_at": now,
            }
        )
    with crm.unit_of_work() as db:
        # a member erased since her keys were read above (another process): no decision about her, whose
        # explanation would sit under a destroyed key and whose batch the chain would refuse
        gone = customers.erased_for_write(db, record.id)
        report.erased += sum(decision["member_id"] in gone for decision in staged)
        staged = [decision for decision in staged if decision["member_id"] not in gone]
        report.actions.update(decision["action"] for decision in staged)
        decisions.insert(db, staged)
        # the memo with the decisions: a run that fails writes neither
        verified_memo.replace(db, record.id, inputs.pending)
    say(f"logging {len(staged):,} decisions on chain", "log")
    report.decided = [decision_id for _, decision_id in send_staged_decisions(crm, who)]
    say("done", "done")
    return report


@dataclass(frozen=True)
class _ScorePlan:
    record: PartnerRecord
    asked: list[bytes]
    statuses: dict[bytes, CustomerStatus]
    row: RegisteredModel
    model: GlassBox
    as_of: datetime | None
    everyone: list[bytes]  # every customer of the partner (a budget ranks a member among them)


def _score_plan(
    crm: Crm, partner: str, members: Sequence[bytes] | None, model_id: int | None, as_of: datetime | None
) -> _ScorePlan:
    """What `score` checks before it reads or writes anything: the members are the partner's, the
    model is one it registered and the chain agrees with, the as-of time has a zone."""
    if as_of is not None and as_of.tzinfo is None:
        raise InvalidInput("--as-of needs a time zone")
    if as_of is not None:
        as_of = as_of.astimezone(UTC)  # stored and explained in UTC, so that it reads back the same
    with crm.unit_of_work() as db:
        record = crm.partner(db, partner)
        everyone = customers.ids_of_partner(db, record.id)
        asked = everyone if members is None else list(dict.fromkeys(members))
        statuses = customers.statuses(db, asked, record.id)
        unknown = next((m for m in asked if m not in statuses), None)
        if unknown is not None:  # another partner's customer, or no one's: the same answer
            raise NotFound(f"partner {partner!r} has no member 0x{unknown.hex()}")
        row = _model_row(db, record.id, partner, model_id)
        model = _registered(crm, row, partner_address=record.address)
        if model.policy.batch and members is not None:  # a budget ranks the member among all of them
            statuses |= customers.statuses(db, everyone, record.id)
    return _ScorePlan(record, asked, statuses, row, model, as_of, everyone)


def check_score(
    crm: Crm,
    who: Principal,
    members: Sequence[bytes] | None = None,
    model_id: int | None = None,
    as_of: datetime | None = None,
) -> None:
    """Refuse now what `score` would refuse before it starts (for a caller that runs it later, as a
    job): another partner's or an unknown member, a model that is not the partner's, a naive time."""
    _score_plan(crm, who.acting_partner(), members, model_id, as_of)


def send_staged_decisions(crm: Crm, who: Principal, *, batch_size: int = DECISION_BATCH_MAX) -> list[Any]:
    """Put the partner's staged and interrupted decisions on chain, `batch_size` per recordDecisions;
    (row id, decision id) of each decision confirmed by this call."""
    partner = who.acting_partner()
    client = crm.coalition.decisions
    signer = crm.signer(partner)
    with crm.unit_of_work() as db:
        partner_id = crm.partner(db, partner).id
    outbox = Outbox(crm, decisions.OUTBOX, client, partner_id)

    def next_batch(db: Session) -> tuple[list[int], SignedTx] | None:
        rows = decisions.staged(db, partner_id, batch_size)
        if not rows:
            return None
        # one transaction per model: recordDecisions names one
        same = [r for r in rows if r.model_id == rows[0].model_id]
        signed = client.prepare_record_decisions(signer, rows[0].model_id, [decision_of(r) for r in same])
        return [r.id for r in same if r.id is not None], signed

    return outbox.settle() + outbox.send(next_batch, wait=True)


def _model_row(db: Session, partner_id: int, partner: str, model_id: int | None) -> RegisteredModel:
    if model_id is None:
        row = models.latest_of(db, partner_id)
        if row is None:
            raise InvalidInput(f"{partner} has registered no model: run `ledgercrm model train` first")
        return row
    row = models.by_onchain_id(db, model_id)
    if row is None:
        raise NotFound(f"no model {model_id} in this store")
    if row.partner_id != partner_id:
        raise NotAllowed(
            f"model {model_id} was registered by another partner: only its registrant decides with it"
        )
    return row


def _registered(crm: Crm, row: RegisteredModel, *, partner_address: str) -> GlassBox:
    """The stored model, once its bytes hash to what the chain registered (by this partner)."""
    info = crm.coalition.decisions.model(row.onchain_id)
    if info.registrant != partner_address:
        raise NotAllowed(f"model {row.onchain_id} was registered on chain by {info.registrant}, not by you")
    raw = row.model_json.encode()
    if hashlib.sha256(raw).digest() != info.model_hash:
        raise InvalidInput(f"the stored model {row.onchain_id} does not hash to the one registered on chain")
    return load_model(row.onchain_id, raw)


# --- reading decisions back ------------------------------------------------------------------------------


@dataclass(frozen=True)
class DecisionLine:
    decision_id: int
    member: bytes
    model_id: int
    score_bps: int
    action: str
    block_number: int
    in_store: bool  # the store holds this decision's record (and it matches the chain's)


def list_decisions(crm: Crm, who: Principal, member: bytes | None = None) -> list[DecisionLine]:
    """The acting partner's decisions as the chain logged them (of one member, or all), each marked
    with whether the store holds a matching record."""
    partner = who.acting_partner()
    with crm.unit_of_work() as db:
        record = crm.partner(db, partner)
        if member is not None and customers.owned(db, record.id, member) is None:
            raise NotFound(f"partner {partner!r} has no member 0x{member.hex()}")
        stored = {r.decision_id: r for r in decisions.of_partner(db, record.id, member)}
    lines = []
    for found in crm.coalition.decisions.decisions(member=member, partner=record.address):
        row = stored.get(found.decision_id)
        lines.append(
            DecisionLine(
                found.decision_id,
                found.decision.member,
                found.model_id,
                found.decision.score_bps,
                deciding.read_action_word(found.decision.action),
                found.block_number,
                row is not None and decision_of(row) == found.decision,
            )
        )
    return lines


@dataclass(frozen=True)
class ShownDecision:
    decision_id: int
    member: bytes
    partner: str
    model_id: int
    block_number: int
    explanation: dict[str, Any]  # decrypted


def show_decision(crm: Crm, who: Principal, decision_id: int) -> ShownDecision:
    """A decision with its full explanation, for the partner that made it (the explanation is personal
    data: no one else's key opens it)."""
    partner = who.acting_partner()
    found, row = recorded_decision(crm, decision_id)
    with crm.unit_of_work() as db:
        record = crm.partner(db, partner)
    if found.partner != record.address or row is None or row.partner_id != record.id:
        raise NotFound(f"partner {partner!r} made no decision {decision_id}")
    if row.explanation_ciphertext is None:
        raise NotFound(f"decision {decision_id} was about an erased member: its explanation is gone")
    raw = crm.vault.decrypt(partner, row.member_id, EXPLANATION_FIELD, row.explanation_ciphertext)
    return ShownDecision(
        decision_id, row.member_id, partner, found.model_id, found.block_number, json.loads(raw)
    )


def disclose_decision(crm: Crm, who: Principal, decision_id: int) -> dict[str, Any]:
    """What the deciding partner hands an auditor so that the auditor reproduces the score and the
    explanation bit for bit without any other key: the explanation's bytes (features, terms, reasons,
    counterfactual: personal data, disclosed to the auditor only) and the one key its on-chain
    commitment is under, which opens no other commitment."""
    shown = show_decision(crm, who, decision_id)  # the deciding partner only; refused after erasure
    found, _ = recorded_decision(crm, decision_id)
    model_hash = crm.coalition.decisions.model(found.model_id).model_hash
    label = deciding.commitment_label(model_hash, found.decision.input_root)
    key = crm.vault.disclosure_key(shown.partner, shown.member, label)
    return {
        "format": DISCLOSURE_FORMAT,
        "decisionId": decision_id,
        "explanation": deciding.explanation_bytes(shown.explanation).decode(),
        "key": "0x" + key.hex(),
    }
