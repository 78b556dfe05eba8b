"""Issue #31's feature search on Online Retail II in minutes, without the chain, with each cut's AUC.

Online Retail II's invoices are read by the importer (`api.importers.online_retail`), each is made the
document the import commits (`interaction_document` of the record's payload) and read back by
`ml.events.from_document`, as `model train` reads verified documents: the features see exactly what a
verified interaction carries. (`ml_decisions.py --search` runs `ml.training.feature_search` on the
verified documents of a home imported through the chain; this is the same search, faster to repeat.)

At each of the three backtest cuts (2011-09-01 and the cuts 3 and 6 months before it) the EBM is fitted
as `model train` fits it on the 6 monthly slices whose label windows end by the cut, on the model's
features (`MODEL_FEATURES`, less `--drop`, plus `--base`) and on that set with each candidate (a
candidate `a,b` adds both; `-a` removes a); printed: each cut's AUC on the active population, and the
mean gain over the cuts with its paired bootstrap interval (`ml.evaluation.paired_auc_difference`, as
`feature_search` judges). `--seeds` refits with other EBM seeds (the interval is over members only, so
a gain that changes sign with the seed is noise); `--bags` and `--cuts` give a cheaper screen.

`--bgnbd` tries the shared fits issue #31 asks for, at the same cuts (seed 0): BG/NBD and the modified
BG/NBD (MBG/NBD, Batislam et al. 2007, in which a member may also drop out after the first purchase,
so that P(alive) is not 1 for everyone who bought once) fitted once on everyone who bought before each
cut's last training slice, not only on the active; their P(alive) and expected purchases in 90 days as
added features, or in place of the model's `expected_purchases_90d`.

`--ceiling` asks what any model could reach if the members bought as the fitted MBG/NBD says
(Batislam et al. 2007; fitted on everyone who bought before the last training slice of 2011-09-01):
each member gets a purchase rate and a dropout probability drawn from the fit, purchases from their
real first purchase day on, and the AUC at 2011-09-01 on the active population is measured for the
truth (rate and whether still alive) and for the best ranking from the purchase history (the model's
own posterior P(no purchase in 90 days), which is optimal when the data is the model's).

    .venv/bin/python benchmarks/ml_features.py [--data PATH] [--cuts 3] [--bags 4] [--seeds 0,1,2]
        [--base F,..] [--drop F,..] [--bgnbd] [--ceiling DRAWS] [CANDIDATE ...]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks.import_cli import DEFAULT_DATA  # noqa: E402
from ml.events import Event  # noqa: E402

HORIZON = 90


def histories(data: Path) -> dict[str, list[Event]]:
    """Every member's events, read back from the documents the import would commit."""
    from api.evidence.documents import interaction_document
    from api.importers.online_retail import read_invoices
    from ml.events import by_member, from_document

    def member(customer: str) -> bytes:  # any fixed 32 bytes per customer: rows are ordered by content
        return hashlib.sha256(customer.encode()).digest()

    return by_member(
        from_document(
            json.loads(
                interaction_document(
                    "retail", member(r.customer_id), r.kind, r.payload(), r.occurred_at, r.external_key
                )
            )
        )
        for r in read_invoices(data)
    )


def search(
    found: Mapping[str, Sequence[Event]], base: list[str], sets: list[str], seeds: list[int], cuts: int
) -> None:
    import ml.training as training
    from ml.dataset import add_months, build_slice, default_holdout, fit_bgnbd, timelines, training_dates
    from ml.evaluation import fast_auc, paired_auc_difference
    from ml.policy import DEFAULT_POLICY

    started = time.perf_counter()
    read = timelines(found)
    times = [e.at for events in found.values() for e in events]
    holdout = default_holdout(max(times), HORIZON)
    prepared = []
    for k in range(cuts):
        cut = add_months(holdout, -training.BACKTEST_STEP_MONTHS * k)
        dates = training_dates(min(times), cut, HORIZON, 6)
        bgnbd = fit_bgnbd(found, dates[-1], read)
        slices = [build_slice(found, d, bgnbd, HORIZON, prepared=read) for d in dates]
        test = build_slice(found, cut, bgnbd, HORIZON, prepared=read)
        assert test.y is not None  # a horizon was given
        prepared.append((cut, slices, test, test.y, bgnbd))
    print(f"cuts prepared in {time.perf_counter() - started:.0f} s; base set: {', '.join(base)}")
    print("AUC on the active population at " + ", ".join(f"{c:%Y-%m-%d}" for c, *_ in prepared))

    def scores(names: list[str], seed: int) -> list[Any]:
        fitted = []
        for _, slices, test, _, bgnbd in prepared:
            model, _ = training.fit_ebm(slices, names, seed, bgnbd, DEFAULT_POLICY)
            fitted.append(training.logits(model, test))
        return fitted

    for seed in seeds:
        reference = scores(base, seed)
        aucs = [fast_auc(y, s) for (*_, y, _), s in zip(prepared, reference, strict=True)]
        print(f"seed {seed}  base  " + "  ".join(f"{a:.4f}" for a in aucs))
        for spec in sets:
            names = list(base)
            for part in spec.split(","):
                if part.startswith("-"):
                    names.remove(part[1:])
                elif part not in names:
                    names.append(part)
            other = scores(names, seed)
            labelled = [(y, r, o) for (*_, y, _), r, o in zip(prepared, reference, other, strict=True)]
            gain = paired_auc_difference(labelled, seed)
            aucs = [fast_auc(y, o) for y, _, o in labelled]
            print(
                f"seed {seed}  {spec}  " + "  ".join(f"{a:.4f}" for a in aucs)
                + f"  gain {gain['value']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}]"
                f"  ({time.perf_counter() - started:.0f} s)",
                flush=True,
            )  # fmt: skip


def _fit(kind: Any, summaries: Sequence[tuple[int, float, float]]) -> Any:
    """A lifetimes fitter of `kind` on (repeat days, first-to-last, first-to-as-of) summaries."""
    import contextlib
    import io
    import warnings

    x, t_x, age = (np.array(c, dtype=float) for c in zip(*sorted(summaries), strict=True))
    for penalizer in (0.0, 0.001, 0.01):
        fitter = kind(penalizer_coef=penalizer)
        try:
            with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
                warnings.simplefilter("ignore", RuntimeWarning)
                fitter.fit(x, t_x, age)
            return fitter
        except Exception:  # lifetimes' ConvergenceError (and scipy's on a flat likelihood): penalize more
            continue
    raise SystemExit(f"{kind.__name__} did not converge")


def bgnbd_variants(found: Mapping[str, Sequence[Event]], base: list[str], cuts: int) -> None:
    from lifetimes import BetaGeoFitter, ModifiedBetaGeoFitter

    import ml.training as training
    from ml.dataset import add_months, build_slice, default_holdout, fit_bgnbd, timelines, training_dates
    from ml.evaluation import fast_auc, paired_auc_difference
    from ml.features import days

    read = timelines(found)
    times = [e.at for events in found.values() for e in events]
    holdout = default_holdout(max(times), HORIZON)
    columns = training.columns(base)
    expected = base.index("expected_purchases_90d")
    variants: dict[str, list[Any]] = {}

    def fit(train: Any, y: Any, test: Any) -> Any:
        from interpret.glassbox import ExplainableBoostingClassifier

        ebm = ExplainableBoostingClassifier(random_state=0, n_jobs=1, **training.EBM_SETTINGS)
        ebm.fit(train, y)
        return ebm.decision_function(test)

    for k in range(cuts):
        cut = add_months(holdout, -training.BACKTEST_STEP_MONTHS * k)
        dates = training_dates(min(times), cut, HORIZON, 6)
        last = dates[-1]
        bgnbd = fit_bgnbd(found, last, read)
        slices = [build_slice(found, d, bgnbd, HORIZON, prepared=read) for d in dates]
        test = build_slice(found, cut, bgnbd, HORIZON, prepared=read)
        y_train = np.concatenate([s.y for s in slices if s.y is not None])
        y = test.y
        assert y is not None
        everyone = [
            t.summary(t.purchases_before(last), days(last)) for t in read.values() if t.purchases_before(last)
        ]

        def extra(fitter: Any, slice_: Any) -> Any:
            now = days(slice_.as_of)
            rows = [read[m].summary(read[m].purchases_before(slice_.as_of), now) for m in slice_.members]
            x, t_x, age = np.array(rows, dtype=float).T
            alive = fitter.conditional_probability_alive(x, t_x, age)
            return np.column_stack(
                [alive, fitter.conditional_expected_number_of_purchases_up_to_time(90.0, x, t_x, age)]
            )

        rows = np.vstack([s.X for s in slices])[:, columns]
        held = test.X[:, columns]
        reference = fit(rows, y_train, held)
        print(f"{cut:%Y-%m-%d}  base  AUC {fast_auc(y, reference):.4f}")
        for label, kind in (("BG/NBD", BetaGeoFitter), ("MBG/NBD", ModifiedBetaGeoFitter)):
            fitter = _fit(kind, everyone)
            params = ", ".join(f"{n} {float(v):.4g}" for n, v in fitter.params_.items())
            train_extra = np.vstack([extra(fitter, s) for s in slices])
            test_extra = extra(fitter, test)
            alone = [fast_auc(y, -test_extra[:, i]) for i in (0, 1)]
            print(f"{cut:%Y-%m-%d}  {label} on everyone ({len(everyone)} members; {params}): alone, "
                  f"P(alive) AUC {alone[0]:.4f}, expected purchases AUC {alone[1]:.4f}")  # fmt: skip
            replaced_train, replaced_test = rows.copy(), held.copy()
            replaced_train[:, expected], replaced_test[:, expected] = train_extra[:, 1], test_extra[:, 1]
            for name, (a, b) in {
                f"+ P(alive), {label} on everyone": (
                    np.column_stack([rows, train_extra[:, 0]]),
                    np.column_stack([held, test_extra[:, 0]]),
                ),
                f"+ expected purchases, {label} on everyone": (
                    np.column_stack([rows, train_extra[:, 1]]),
                    np.column_stack([held, test_extra[:, 1]]),
                ),
                f"expected_purchases_90d from {label} on everyone": (replaced_train, replaced_test),
            }.items():
                other = fit(a, y_train, b)
                variants.setdefault(name, []).append((y, reference, other))
                print(f"{cut:%Y-%m-%d}  {name}  AUC {fast_auc(y, other):.4f}", flush=True)
    for name, labelled in variants.items():
        gain = paired_auc_difference(labelled, 0)
        print(f"{name}: gain {gain['value']:+.4f} [{gain['low']:+.4f}, {gain['high']:+.4f}]")


def ceiling(found: Mapping[str, Sequence[Event]], draws: int) -> None:
    from lifetimes import ModifiedBetaGeoFitter

    from ml.dataset import timelines
    from ml.evaluation import fast_auc
    from ml.events import PURCHASE
    from ml.features import days

    cut = days(datetime(2011, 9, 1, tzinfo=UTC))
    fitted_at = datetime(2011, 6, 1, tzinfo=UTC)  # the last training slice of the 2011-09-01 cut
    read = timelines(found)
    summaries = [
        t.summary(t.purchases_before(fitted_at), days(fitted_at))
        for t in read.values()
        if t.purchases_before(fitted_at)
    ]
    fitter = _fit(ModifiedBetaGeoFitter, summaries)
    r, alpha, a, b = (float(fitter.params_[k]) for k in ("r", "alpha", "a", "b"))
    print(f"MBG/NBD fitted on {len(summaries)} members before 2011-06-01: r {r:.4f}, alpha {alpha:.2f}, "
          f"a {a:.4f}, b {b:.4f}")  # fmt: skip
    firsts = sorted(days(next(e.at for e in ev if e.kind == PURCHASE)) for ev in found.values()
                    if any(e.kind == PURCHASE for e in ev))  # fmt: skip
    born = np.array([f for f in firsts if f < cut])
    rng = np.random.default_rng(0)
    for draw in range(draws):
        rates = rng.gamma(r, 1 / alpha, len(born))
        dropout = rng.beta(a, b, len(born))
        labels, truth, history = [], [], []
        for first, rate, p in zip(born, rates, dropout, strict=True):
            bought, t, alive = [first], first, rng.random() >= p  # MBG/NBD: may drop out at any purchase
            while alive:
                t += rng.exponential(1 / rate)
                if t >= cut + HORIZON:
                    break
                bought.append(t)
                alive = rng.random() >= p
            before = [s for s in bought if s < cut]
            if before[-1] < cut - 365:  # not in the active population
                continue
            labels.append(int(not any(cut <= s < cut + HORIZON for s in bought)))
            gone = not alive and bought[-1] < cut  # dropped out after a purchase before the cut
            truth.append(1.0 if gone else float(np.exp(-HORIZON * rate)))
            n, recency, span = len(before) - 1, before[-1] - before[0], cut - before[0]
            p_alive = 1 / (1 + (a / (b + n)) * ((alpha + span) / (alpha + recency)) ** (r + n))
            history.append(1 - p_alive * (1 - ((alpha + span) / (alpha + span + HORIZON)) ** (r + n)))
        y = np.array(labels)
        print(
            f"draw {draw}: {len(y)} active members, churn {y.mean():.1%}; AUC knowing each member's rate and "
            f"whether alive {fast_auc(y, np.array(truth)):.4f}; best from the purchase history "
            f"{fast_auc(y, np.array(history)):.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--cuts", type=int, default=3, help="backtest cuts, the holdout first (3)")
    parser.add_argument("--bags", type=int, default=None, help="EBM outer bags (the model's setting)")
    parser.add_argument("--seeds", default="0", help="EBM seeds, comma-separated")
    parser.add_argument("--base", default="", help="features added to MODEL_FEATURES for the base set")
    parser.add_argument("--drop", default="", help="features of MODEL_FEATURES left out of the base set")
    parser.add_argument("--bgnbd", action="store_true", help="the shared BG/NBD and MBG/NBD fits")
    parser.add_argument("--ceiling", type=int, default=0, metavar="DRAWS", help="simulated populations")
    parser.add_argument("candidates", nargs="*", help="a feature, or features joined by commas")
    args = parser.parse_args()
    if not args.data.exists():
        raise SystemExit(f"no data at {args.data} (see ../shared/data/README.md)")
    import ml.training as training
    from ml.features import NAMES

    unknown = [p.lstrip("-") for s in [args.base, args.drop, *args.candidates] for p in s.split(",") if p]
    unknown = [name for name in unknown if name not in NAMES]
    if unknown:
        raise SystemExit(f"not features: {', '.join(unknown)}")
    if args.bags:  # a cheaper screen: the model's other settings stay
        training.EBM_SETTINGS = {**training.EBM_SETTINGS, "outer_bags": args.bags}
    started = time.perf_counter()
    found = histories(args.data)
    print(f"{len(found)} members read in {time.perf_counter() - started:.0f} s; EBM {training.EBM_SETTINGS}")
    if args.ceiling:
        ceiling(found, args.ceiling)
    from threadpoolctl import threadpool_limits

    drop = set(args.drop.split(","))
    base = [n for n in training.MODEL_FEATURES if n not in drop] + [n for n in args.base.split(",") if n]
    with threadpool_limits(limits=1):  # as `model train`: one native thread
        if args.bgnbd:
            bgnbd_variants(found, base, args.cuts)
        if args.candidates:
            search(found, base, args.candidates, [int(s) for s in args.seeds.split(",")], args.cuts)


if __name__ == "__main__":
    main()
