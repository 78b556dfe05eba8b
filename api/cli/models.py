"""The ML layer: models, segments, scores, logged decisions, recommendations."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from api.cli.common import (
    OPERATOR,
    MemberOption,
    PartnerOption,
    as_partner,
    console,
    errors,
    fail,
    hexid,
    parse_member,
    short_lived,
    show_wide,
    user_errors,
    with_crm,
)
from api.errors import CrmError

if TYPE_CHECKING:
    from api.context import Crm


model_app = typer.Typer(
    help="Churn models: train and register, list, read a model card.", no_args_is_help=True
)
decision_app = typer.Typer(
    help="Automated decisions logged on chain: list, show, verify.", no_args_is_help=True
)


AsOfOption = Annotated[
    str | None,
    typer.Option(
        "--as-of",
        metavar="DATE",
        help="ISO 8601 date or time (UTC unless it names a zone); default: from the data",
    ),
]


def _parse_as_of(value: str | None) -> datetime | None:
    """A date (midnight UTC) or a time; a time without a zone is UTC (the data's own times are)."""
    from datetime import UTC

    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"not an ISO 8601 date or time: {value!r}", param_hint="--as-of") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


@contextmanager
def _steps() -> Iterator[Callable[[str], None]]:
    """A spinner that names the step a long use case is in (on stderr, so stdout stays the result). Where
    stderr is no terminal, Rich shows no spinner, but its refresh thread still woke 12.5 times a second
    (~0.01 CPU s per second of the command: ~0.1 of a `score --all` run by a script): no spinner then."""
    if not errors.is_terminal:
        yield lambda what: None
        return
    with errors.status("starting") as status:
        yield lambda what: status.update(what)


def _interval(metric: dict[str, float]) -> str:
    return f"{metric['value']:.3f} [{metric['low']:.3f}, {metric['high']:.3f}]"


@model_app.command("train")
def model_train(
    partner: PartnerOption,
    horizon_days: Annotated[
        int,
        typer.Option(
            "--horizon-days", metavar="DAYS", help="churn: no purchase within DAYS after the as-of date"
        ),
    ] = 90,
    as_of: Annotated[
        str | None,
        typer.Option(
            "--as-of", metavar="DATE", help="the holdout's as-of date (default: the latest the data allows)"
        ),
    ] = None,
    budget: Annotated[
        str | None,
        typer.Option(
            "--budget", metavar="SHARE|N", help="act on this share (20%) or number of members most at risk"
        ),
    ] = None,
    offer_cost: Annotated[
        float | None, typer.Option("--offer-cost", metavar="AMOUNT", help="what one retention offer costs")
    ] = None,
    loss_cost: Annotated[
        float | None, typer.Option("--loss-cost", metavar="AMOUNT", help="what a lost customer costs")
    ] = None,
    backtest: Annotated[
        bool, typer.Option("--backtest/--no-backtest", help="the three-cut backtest in the card (minutes)")
    ] = True,
) -> None:
    """Train a churn model on the partner's verified interactions and register it on chain, with its
    action rule: a budget (default 20%), or act where churn probability x loss cost >= offer cost."""
    from api.usecases.models import action_policy, train_model

    moment = _parse_as_of(as_of)
    try:
        policy = action_policy(budget, offer_cost, loss_cost)
    except CrmError as exc:  # a malformed option: exit 2, before anything is opened
        fail(str(exc), code=2)

    def action(crm: Crm) -> Any:
        with _steps() as step:
            return train_model(
                crm,
                as_partner(partner),
                horizon_days=horizon_days,
                as_of=moment,
                step=step,
                policy=policy,
                backtest=backtest,
            )

    done = with_crm(action)
    card = done.trained.card
    table = Table(title=f"holdout as of {card['split']['holdout']['asOf'][:10]}: {card['metricsNote']}")
    for column in ("model", "AUC", "accuracy", "PR-AUC", "Brier", "lift top 20%"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for name, values in done.trained.table:
        table.add_row(
            name, *(_interval(values[m]) for m in ("auc", "accuracy", "pr_auc", "brier", "lift_top20"))
        )
    show_wide(table)
    left_out = ", ".join(f"{n} {what}" for what, n in sorted(done.excluded.items())) or "none"
    console.print(f"trained on {done.inputs:,} verified interactions (left out: {left_out})")
    if done.without_consent:
        n = done.without_consent
        console.print(f"left out: {n} customer{'s' if n != 1 else ''} without valid profiling consent")
    console.print(f"action rule: {card['policy']['rule']}")
    for cut in card["backtest"]:
        active = next(iter(cut["populations"].values()), None)
        if active is not None and "expectedCalibrationError" in active:
            console.print(
                f"as of {cut['asOf'][:10]}: calibration error {active['expectedCalibrationError']:.3f}, "
                f"churn {active['churnRate']:.1%}, mean score {active['meanScore']:.1%}, "
                f"acted on {active['shareActedOn']:.1%}"
            )
    console.print(
        f"registered: refitted on the {len(card['registered']['training'])} slices labelled by now "
        "(the holdout's figures are its estimate; `model card` has the backtest)"
    )
    console.print(f"model hash 0x{done.trained.model.model_hash.hex()}, model id {done.model_id}")


@model_app.command("list")
def model_list() -> None:
    """Every registered model, checked against the chain's record."""
    from api.usecases.models import list_models

    lines = with_crm(lambda crm: list_models(crm, OPERATOR))
    for line in lines:  # one model a line, its id first (hashes are never wrapped)
        auc = "-" if line.holdout_auc is None else f"{line.holdout_auc:.3f}"
        console.print(
            Text.assemble(
                f"{line.model_id} {line.partner} {hexid(line.model_hash)} block {line.block_number}"
                f" holdout AUC {auc} on chain: ",
                ("yes", "green") if line.on_chain else ("NO: the chain's record differs", "red"),
            )
        )
    if not lines:
        console.print("no models registered: run `ledgercrm model train`")
    if any(not line.on_chain for line in lines):
        raise typer.Exit(1)


@model_app.command("card")
def model_card_cmd(
    model_id: Annotated[int, typer.Argument(metavar="MODEL_ID", min=0, help="the model's on-chain id")],
) -> None:
    """The model card as JSON (RFC 8785, the bytes its on-chain hash is of)."""
    from api.usecases.models import model_card

    console.print(json.dumps(with_crm(lambda crm: model_card(crm, OPERATOR, model_id)), indent=2))


def segments(
    partner: PartnerOption,
    as_of: AsOfOption = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", metavar="FILE.png", help="write the silhouette and elbow plots here"),
    ] = None,
) -> None:
    """RFM segments of the partner's customers and a KMeans scan of k, from verified interactions."""
    from collections import Counter

    from api.usecases.models import segments as segment

    if plot is not None and plot.suffix.lower() != ".png":
        raise typer.BadParameter("the plot is a .png file", param_hint="--plot")
    if plot is not None and plot.exists():
        fail(f"--plot: {plot} exists; name a new file", code=2)
    moment = _parse_as_of(as_of)
    report = with_crm(lambda crm: segment(crm, as_partner(partner), as_of=moment, plot=plot))
    counts = Counter(row.segment for row in report.rows)
    table = Table(
        "segment",
        "members",
        "mean recency (days)",
        "mean purchases",
        "mean spend",
        title=f"RFM segments as of {report.as_of:%Y-%m-%d}",
    )
    for name, n in counts.most_common():
        rows = [r for r in report.rows if r.segment == name]
        table.add_row(
            name,
            str(n),
            f"{sum(r.recency_days for r in rows) / n:.0f}",
            f"{sum(r.frequency for r in rows) / n:.1f}",
            f"{sum(r.monetary for r in rows) / n:,.2f}",
        )
    show_wide(table)
    scan = report.scan
    kmeans = Table("k", "silhouette", "inertia", title="KMeans on standardised log R, F, M")
    for k, sil, inertia in zip(scan.ks, scan.silhouette, scan.inertia, strict=True):
        kmeans.add_row(str(k), f"{sil:.3f}", f"{inertia:,.0f}")
    console.print(kmeans)
    console.print(f"k by silhouette: {scan.by_silhouette}; k by elbow: {scan.elbow}")
    if report.excluded:
        console.print("left out: " + ", ".join(f"{n} {what}" for what, n in sorted(report.excluded.items())))
    if report.without_consent:
        n = report.without_consent
        console.print(f"left out: {n} customer{'s' if n != 1 else ''} without valid profiling consent")
    if plot is not None:
        console.print(f"plot written to {plot}")


def score(
    partner: PartnerOption,
    member: Annotated[
        bytes | None,
        typer.Option(
            "--member", parser=parse_member, metavar="MEMBER", help="one member (0x + 64 hex digits)"
        ),
    ] = None,
    all_: Annotated[bool, typer.Option("--all", help="every customer of the partner")] = False,
    model: Annotated[
        int | None, typer.Option("--model", metavar="MODEL_ID", min=0, help="default: the partner's latest")
    ] = None,
    as_of: AsOfOption = None,
) -> None:
    """Score customers with a registered model and log each decision on chain."""
    from api.importers.collector import no_collection_at_exit
    from api.usecases.decisions import score as score_members

    no_collection_at_exit()  # the run leaves every member's events alive: no last walk over them at exit

    if (member is None) == (not all_):
        raise typer.BadParameter("give --member MEMBER or --all (not both)")
    moment = _parse_as_of(as_of)
    chosen = None if member is None else [member]

    def action(crm: Crm) -> Any:
        with _steps() as step:
            return score_members(crm, as_partner(partner), chosen, model_id=model, as_of=moment, step=step)

    started = time.perf_counter()
    report = with_crm(action, deciding=True)
    seconds = time.perf_counter() - started
    excluded = sum(report.inputs_excluded.values())
    detail = ", ".join(f"{n} {what}" for what, n in sorted(report.inputs_excluded.items()))
    console.print(
        f"model {report.model_id}, as of {report.as_of:%Y-%m-%d %H:%M} UTC"
        + (f" ({report.as_of_rule})" if report.as_of_rule else "")
    )
    if report.rule:
        ranked = f", among the {report.ranked:,} members scored as of then" if report.ranked else ""
        console.print(f"action rule: {report.rule}{ranked}")
    console.print(
        f"{len(report.decided)} decided, {report.skipped_for_consent} skipped for consent, "
        f"{excluded} inputs excluded{f' ({detail})' if detail else ''}, {report.no_inputs} no inputs"
        + (
            f", {report.outside_population} outside the population (no purchase in the year before)"
            if report.outside_population
            else ""
        )
        + (f", {report.erased} erased" if report.erased else "")
    )
    if report.inputs_from_memo:
        console.print(
            f"{report.inputs_from_memo:,} inputs' content checks read from the memo of an earlier run"
            " (their leaves proven on chain in this one)"
        )
    if report.actions:
        console.print("actions: " + ", ".join(f"{n} {what}" for what, n in report.actions.most_common()))
    console.print(
        "time: " + ", ".join(f"{phase} {seconds:.1f} s" for phase, seconds in report.timings.items())
    )
    if report.decided:
        first, last = report.decided[0], report.decided[-1]
        console.print(
            f"decision ids {first}..{last} logged on chain in {seconds:.1f} s"
            if first != last
            else f"decision id {first} logged on chain"
        )


DecisionIdArgument = Annotated[
    int, typer.Argument(metavar="DECISION_ID", min=0, help="the decision's on-chain id")
]


@decision_app.command("list")
def decision_list(
    partner: PartnerOption,
    member: Annotated[
        bytes | None,
        typer.Option(
            "--member", parser=parse_member, metavar="MEMBER", help="one member (0x + 64 hex digits)"
        ),
    ] = None,
) -> None:
    """The partner's decisions as the chain logged them, one a line, its id first."""
    from api.usecases.decisions import list_decisions

    lines = with_crm(lambda crm: list_decisions(crm, as_partner(partner), member))
    for line in lines:
        console.print(
            f"{line.decision_id} {hexid(line.member)} model {line.model_id}"
            f" score {line.score_bps / 100:.2f}% {line.action} block {line.block_number}"
            + ("" if line.in_store else " (no matching record in the store)")
        )
    if not lines:
        console.print("no decisions")


@decision_app.command("show")
def decision_show(decision_id: DecisionIdArgument, partner: PartnerOption) -> None:
    """A decision's score, action, reasons and counterfactual (decrypted: the partner's own only)."""
    from api.usecases.decisions import show_decision

    shown = with_crm(lambda crm: show_decision(crm, as_partner(partner), decision_id))
    e = shown.explanation
    console.print(
        f"decision {shown.decision_id}: member {hexid(shown.member)}, model {shown.model_id}, "
        f"block {shown.block_number}, as of {e['asOf']}"
    )
    console.print(f"churn score {e['score']:.4f} ({e['scoreBps']} bps): action {e['action']}")
    for reason in e["reasons"]:
        console.print(
            f"  reason: {reason['feature']} = {e['features'][reason['feature']]:g} ({reason['meaning']}), "
            f"{reason['direction']} ({reason['contribution']:+.3f} logit)"
        )
    cf = e["counterfactual"]
    if cf is not None and cf.get("purchases"):
        changes = ", ".join(f"{c['feature']} {c['from']:g} -> {c['to']:g}" for c in cf["changes"])
        console.print(
            f"  counterfactual: {cf['purchases']} more purchase(s) of {cf['spendEach']:,.2f} each, on the "
            f"days before, would give a score of {cf['score']:.4f}: no {e['action']} ({changes})"
        )
    elif cf is not None:
        changes = " and ".join(f"{c['feature']} from {c['from']:g} to {c['to']:g}" for c in cf["changes"])
        console.print(
            f"  counterfactual: with {changes}, the score would be {cf['score']:.4f}: no {e['action']}"
        )
    elif e["action"] != "none":
        console.print("  counterfactual: no change a customer can reach flips it")
    if e.get("policy"):
        from ml.policy import Policy

        cut = e["policy"].get("cutoff")
        console.print(
            f"  action rule: {Policy.from_json(e['policy']).describe()}"
            + (f"; ranked among {cut['members']:,}, {cut['actedOn']:,} acted on" if cut else "")
        )
    console.print(
        f"  exact: logit {e['logit']:.6f} = intercept + the {len(e['contributions'])} feature terms"
    )


@decision_app.command("disclose")
def decision_disclose(
    decision_id: DecisionIdArgument,
    partner: PartnerOption,
    out: Annotated[Path, typer.Option("--out", metavar="FILE", help="a new file (never overwritten)")],
) -> None:
    """Write what an auditor needs to reproduce one decision bit for bit: its explanation and the one
    key its on-chain commitment is under (personal data: hand it to the auditor only)."""
    from api.usecases.customer_keys import write_new_file
    from api.usecases.decisions import disclose_decision

    if out.exists():
        fail(f"--out: {out} exists; name a new file", code=2)
    disclosure = with_crm(lambda crm: disclose_decision(crm, as_partner(partner), decision_id))
    with user_errors():
        write_new_file(out, json.dumps(disclosure, indent=2).encode())
    console.print(f"disclosure of decision {decision_id} written to {out} (readable by its owner only)")


@decision_app.command("verify")
def decision_verify(
    decision_id: DecisionIdArgument,
    auditor: Annotated[
        bool, typer.Option("--auditor", help="open no key: the checks that need no personal data")
    ] = False,
    disclosure: Annotated[
        Path | None,
        typer.Option(
            "--disclosure",
            metavar="FILE",
            exists=True,
            dir_okay=False,
            help="with --auditor: the partner's disclosure (`decision disclose`), to reproduce the score",
        ),
    ] = None,
) -> None:
    """Reproduce a decision from the chain down; exit 0 only if model hash, input root, score and
    explanation all reproduce and consent was valid."""
    with short_lived():
        _decision_verify(decision_id, auditor, disclosure)


def _decision_verify(decision_id: int, auditor: bool, disclosure: Path | None) -> None:
    from api.usecases.decision_verification import verify_decision

    if disclosure is not None and not auditor:
        fail("--disclosure: a disclosure is for an auditor's run: add --auditor", code=2)
    disclosed = None
    if disclosure is not None:
        try:
            disclosed = json.loads(disclosure.read_text())
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            fail(f"--disclosure: {disclosure} is not a disclosure file ({type(exc).__name__})", code=2)
        if not isinstance(disclosed, dict):
            fail(f"--disclosure: {disclosure} is not a disclosure file", code=2)
    result = with_crm(
        lambda crm: verify_decision(crm, OPERATOR, decision_id, auditor=auditor, disclosure=disclosed),
        verifying=True,
    )
    for step in result.steps:
        console.print(
            Text.assemble(
                ("ok" if step.ok else "FAILED", "green" if step.ok else "red"), f" {step.name}: {step.detail}"
            )
        )
    if result.not_run:
        console.print("not run: " + ", ".join(result.not_run) + " (they read the inputs: the partner's keys)")
    console.print(
        f"decision {decision_id}: "
        + (
            "reproduced"
            if result.ok
            else "checks without keys pass"
            if not [s for s in result.steps if not s.ok]
            else "NOT reproduced"
        )
    )
    if not result.ok:
        raise typer.Exit(1)


def recommend(
    partner: PartnerOption,
    member: MemberOption,
    top: Annotated[int, typer.Option("--top", metavar="N", min=1, max=100)] = 10,
) -> None:
    """Item-to-item recommendations for one customer, from the partner's verified purchases."""
    from api.usecases.models import recommendations

    picks = with_crm(lambda crm: recommendations(crm, as_partner(partner), member, top=top))
    for rank, item in enumerate(picks, 1):
        console.print(f"{rank}. {item}")
    if not picks:
        console.print("nothing to recommend: no co-purchases with what this customer bought")
