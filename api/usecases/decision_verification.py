"""Verifying one decision from the chain down: `decision verify` and the audit route of a decision.

Moved out of `api.usecases.decisions` (which re-exports it) so that a process that only verifies imports
no more than it needs: nothing here imports web3 or eth_account, and a home opened with
`api.usecases.home_open.open_crm_to_verify` reads the chain over plain JSON-RPC (`ledger.reader`).
The checks are the same whichever reader the home holds: the chain is the source, the store is trusted
for nothing it does not prove."""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from api.errors import InvalidInput, NotAllowed, NotFound
from api.evidence.decision_records import EXPLANATION_FIELD, decision_of
from api.evidence.verification import Outcome, VerifiedInteraction, verified_interactions
from api.principal import Principal, Role
from ledger.merkle import merkle_root
from ledger.reader import purpose_id
from ledger.records import RecordedDecision
from ml import decision as deciding
from ml.events import from_document
from ml.glassbox import FORMAT_V1, Counterfactual, GlassBox
from ml.policy import Cutoff
from offchain.crypto import hmac_sha256
from offchain.errors import DecryptionFailed
from offchain.models import DecisionRecord
from offchain.repositories import decisions, models, partners

if TYPE_CHECKING:
    from api.context import Crm

PROFILING = purpose_id("profiling")
DISCLOSURE_FORMAT = "ledgercrm/decision-disclosure/v1"


def load_model(model_id: int, raw: bytes) -> GlassBox:
    try:
        return GlassBox.from_bytes(raw)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"model {model_id} cannot be used by this release: {exc}") from None


def recorded_decision(crm: Crm, decision_id: int) -> tuple[RecordedDecision, DecisionRecord | None]:
    if decision_id < 0:
        raise InvalidInput(f"a decision id is 0 or more, not {decision_id}")
    found = crm.coalition.decisions.decision(decision_id)
    if found is None:
        raise NotFound(f"the chain logged no decision {decision_id}")
    with crm.unit_of_work() as db:
        row = decisions.by_decision_id(db, decision_id)
    return found, row


# --- verifying a decision from the chain down ------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    name: str
    ok: bool
    detail: str


@dataclass
class DecisionVerification:
    decision_id: int
    steps: list[Step] = field(default_factory=list)
    not_run: list[str] = field(default_factory=list)  # checks that need a key this run does not hold
    reproduced_bps: int | None = None  # the score recomputed, where this run could (keys or disclosure)

    @property
    def ok(self) -> bool:
        """Every check that ran passed, and the score and the explanation were among them."""
        ran = {s.name for s in self.steps}
        return all(s.ok for s in self.steps) and {"model", "consent", "inputs", "score", "explanation"} <= ran

    def check(self, name: str, ok: bool, detail: str) -> bool:
        self.steps.append(Step(name, ok, detail))
        return ok


def verify_decision(
    crm: Crm,
    who: Principal,
    decision_id: int,
    *,
    auditor: bool = False,
    disclosure: dict[str, Any] | None = None,
) -> DecisionVerification:
    """Reproduce decision `decision_id` from the chain down: the model's bytes hash to the registered
    hash; the inputs' leaves prove against the deciding partner's log and their root is the logged input
    root; consent was valid at the decision's block; and, with the deciding partner's keys (a partner or
    the operator of a home that holds them), the features recomputed from the decrypted inputs give the
    logged score, action and reason codes, and the explanation recomputed bit for bit matches both the
    stored one and the keyed commitment on chain. An auditor runs every check that needs no key; the
    report names the ones it could not (so does `auditor`: a run that opens no key)."""
    found, row = recorded_decision(crm, decision_id)
    result = DecisionVerification(decision_id)
    with crm.unit_of_work() as db:
        owners = {p.address: p for p in partners.every(db)}
        model_row = models.by_onchain_id(db, found.model_id)
    owner = owners.get(found.partner)
    if who.role is Role.PARTNER and (owner is None or owner.name != who.acting_partner()):
        raise NotAllowed(f"decision {decision_id} was made by another partner: ask them, or an auditor")
    full = not auditor and who.role is not Role.AUDITOR
    info = crm.coalition.decisions.model(found.model_id)
    if model_row is None:
        model_ok, model_detail = False, f"the store holds no model {found.model_id}"
    elif hashlib.sha256(model_row.model_json.encode()).digest() != info.model_hash:
        model_ok, model_detail = (
            False,
            f"the stored model {found.model_id} does not hash to the registered one",
        )
    elif hashlib.sha256(model_row.card_json.encode()).digest() != info.card_hash:
        model_ok, model_detail = (
            False,
            f"the stored card of model {found.model_id} does not hash to the registered one",
        )
    else:
        model_ok, model_detail = (
            True,
            (
                f"model {found.model_id}: the stored bytes hash to the registered"
                f" 0x{info.model_hash.hex()[:16]}…,"
                f" its card to 0x{info.card_hash.hex()[:16]}…"
            ),
        )
    if not result.check("model", model_ok, model_detail):
        return result
    assert model_row is not None
    model = load_model(found.model_id, model_row.model_json.encode())
    member = found.decision.member
    valid = crm.coalition.consent.is_valid_at_block(member, found.partner, PROFILING, found.block_number)
    result.check(
        "consent",
        valid,
        f"profiling consent at block {found.block_number}: {'valid' if valid else 'NOT valid'}",
    )
    try:
        codes = deciding.read_reason_codes(model, found.decision.reasons)
        result.check("reason codes", True, "name the model's features: " + ", ".join(f for f, _ in codes))
    except ValueError as exc:
        result.check("reason codes", False, str(exc))
    if owner is None or row is None or row.partner_id != owner.id:
        result.check("record", False, f"the store holds no record of decision {decision_id}")
        return result
    result.check("record", decision_of(row) == found.decision, "the stored record matches the chain's event")

    wanted = [int(i) for i in json.loads(row.input_ids)]
    checked = verified_interactions(crm, owner.name, [member], content=full)
    by_id = {item.interaction_id: item for item in checked}
    items = [by_id.get(i) for i in wanted]
    good = Outcome.VERIFIED if full else Outcome.PROVEN
    bad = [i for i, item in zip(wanted, items, strict=True) if item is None or item.outcome is not good]
    root = merkle_root([item.leaf for item in items if item is not None]) if not bad else None
    result.check(
        "inputs",
        not bad and root == found.decision.input_root,
        f"{len(wanted)} inputs proven against {owner.name}'s log, their root is the logged input root"
        if not bad and root == found.decision.input_root
        else f"inputs {bad[:5]} do not verify ({_outcomes(bad, by_id)})"
        if bad
        else "the inputs' root is not the logged input root",
    )
    if not full:
        if disclosure is None:
            result.not_run += ["score", "explanation"]  # both read decrypted inputs: the partner's keys
        else:
            check_disclosure(result, model, found, disclosure)
            result.not_run.append("features from the inputs")  # that reads the inputs themselves
        return result
    if row.explanation_ciphertext is None or crm.vault.is_erased(owner.name, member):
        result.check("explanation", False, "the member was erased: the explanation is unlinkable by design")
        return result
    if bad:
        return result
    events = [
        from_document(item.document) for item in items if item is not None and item.document is not None
    ]
    try:
        stored: bytes | None = crm.vault.decrypt(
            owner.name, member, EXPLANATION_FIELD, row.explanation_ciphertext
        )
    except DecryptionFailed:  # altered, or another member's (the AAD binds it to this member)
        stored = None
    as_of = row.as_of.replace(tzinfo=row.as_of.tzinfo or UTC)
    # a budget's cut is a fact of the run (every member's score): the explanation states it, and the
    # chain's commitment to the explanation binds it
    cutoff = _stated_cutoff(stored) if model.policy.batch else None
    # without the stated cut (the stored explanation does not open) a budget's action cannot be
    # recomputed: the score and reasons still are, and the explanation check fails on its own
    unknown_cut = model.policy.batch and cutoff is None and stored is None
    scored = deciding.decide(model, events, as_of, cutoff=cutoff, input_root=found.decision.input_root)
    result.reproduced_bps = scored.score_bps
    same_score = (
        scored.score_bps == found.decision.score_bps
        and (unknown_cut or deciding.action_word(scored.action) == found.decision.action)
        and deciding.reason_codes(model, scored.reasons) == found.decision.reasons
    )
    result.check(
        "score",
        same_score,
        (
            f"recomputed {scored.score_bps} bps and the reasons as logged; the action needs the run's "
            "cut, which the stored explanation states (it does not open)"
        )
        if unknown_cut and same_score
        else f"recomputed {scored.score_bps} bps, {scored.action}; the chain logged "
        f"{found.decision.score_bps} bps, {deciding.read_action_word(found.decision.action)}",
    )
    document = deciding.explanation(
        scored,
        model_hash=model.model_hash,
        member="0x" + member.hex(),
        partner=owner.name,
        as_of=as_of,
        input_root=found.decision.input_root,
    )
    raw = deciding.explanation_bytes(document)
    label = deciding.commitment_label(model.model_hash, found.decision.input_root)
    commitment = hmac_sha256(crm.vault.disclosure_key(owner.name, member, label), raw)
    result.check(
        "explanation",
        raw == stored and commitment == found.decision.explanation_hash,
        "recomputed bit for bit; it matches the stored explanation and the keyed commitment on chain"
        if raw == stored and commitment == found.decision.explanation_hash
        else "the stored explanation does not decrypt for this member"
        if stored is None
        else "the recomputed explanation differs from the "
        + ("stored one" if raw != stored else "commitment on chain"),
    )
    return result


def check_disclosure(
    result: DecisionVerification, model: GlassBox, found: RecordedDecision, disclosure: dict[str, Any]
) -> None:
    """The auditor's reproduction from a disclosure: the explanation is the one committed to on chain,
    and the model, applied to the features it names, gives exactly it again (score, terms, reasons,
    action and counterfactual) and the logged score, action and reason codes."""
    try:
        if disclosure.get("format") != DISCLOSURE_FORMAT or disclosure.get("decisionId") != found.decision_id:
            raise ValueError(f"not a disclosure of decision {found.decision_id}")
        raw = str(disclosure["explanation"]).encode()
        key = bytes.fromhex(str(disclosure["key"]).removeprefix("0x"))
        document = json.loads(raw)
        features = {name: float(document["features"][name]) for name in model.features}
        as_of = datetime.fromisoformat(document["asOf"])
        policy = document.get("policy") or {}
        cutoff = Cutoff.from_json(policy["cutoff"]) if policy.get("cutoff") else None
        stated = document.get("counterfactual")
        counterfactual = None if stated is None else Counterfactual.from_json(stated)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        result.check("explanation", False, f"the disclosure cannot be read: {exc}")
        return
    committed = hmac_sha256(key, raw) == found.decision.explanation_hash
    if model.format != FORMAT_V1 and counterfactual is not None:
        # purchases added to the inputs: recomputed only from the inputs (a full run, with the keys)
        result.not_run.append("the counterfactual (it reads the inputs)")
    scored = deciding.decide_on(
        model, features, cutoff=cutoff, input_root=found.decision.input_root, counterfactual=counterfactual
    )
    result.reproduced_bps = scored.score_bps
    again = deciding.explanation_bytes(
        deciding.explanation(
            scored,
            model_hash=model.model_hash,
            member=document.get("member", ""),
            partner=document.get("partner", ""),
            as_of=as_of,
            input_root=found.decision.input_root,
        )
    )
    result.check(
        "score",
        scored.score_bps == found.decision.score_bps
        and deciding.action_word(scored.action) == found.decision.action
        and deciding.reason_codes(model, scored.reasons) == found.decision.reasons,
        f"the model on the disclosed features gives {scored.score_bps} bps, {scored.action}; the chain "
        f"logged {found.decision.score_bps} bps, {deciding.read_action_word(found.decision.action)}",
    )
    result.check(
        "explanation",
        committed and again == raw,
        "the disclosed explanation is the one committed to on chain, and recomputed bit for bit"
        if committed and again == raw
        else "the disclosed explanation is not the one committed to on chain"
        if not committed
        else "the model on the disclosed features does not give the disclosed explanation",
    )


def _stated_cutoff(explanation: bytes | None) -> Cutoff | None:
    """The budget's cut a stored explanation states (None where it states none or cannot be read: the
    recomputed decision then differs, and verification says so)."""
    if explanation is None:
        return None
    try:
        stated = json.loads(explanation).get("policy", {}).get("cutoff")
        return None if stated is None else Cutoff.from_json(stated)
    except (AttributeError, KeyError, TypeError, ValueError):
        return None


def _outcomes(ids: Sequence[int], found: dict[int, VerifiedInteraction]) -> str:
    counts = Counter(found[i].outcome.value if i in found else "missing" for i in ids)
    return ", ".join(f"{n} {what}" for what, n in counts.items())
