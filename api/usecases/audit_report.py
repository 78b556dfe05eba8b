"""The auditor's report of one verified bundle: one self-contained HTML file (no script, no external
asset: the plots are inline SVG drawn by matplotlib's SVG backend, text as paths), which opens in any
browser with no network.

It shows what was checked, every finding with its record, and plots of what the bundle holds once
checked: the log's heads over blocks, consent given and withdrawn per purpose, points issued and
redeemed with the partner's settlement position, decisions per model and action, and erasures."""

from __future__ import annotations

import html
import io
from collections import Counter, defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from matplotlib.figure import Figure

from api.errors import InvalidInput
from api.usecases.audit import AuditReport

WIDTH, HEIGHT = 6.4, 3.0  # inches, at 96 dpi in the page


def _svg(fig: Figure) -> str:
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", bbox_inches="tight", metadata={"Date": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]  # the XML declaration and doctype do not belong inside HTML


def _figure(title: str) -> tuple[Figure, object]:
    fig = Figure(figsize=(WIDTH, HEIGHT))
    ax = fig.add_subplot()
    ax.set_title(title, fontsize=10)
    ax.tick_params(labelsize=8)
    return fig, ax


def _empty(ax: object, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in the bundle", ha="center", va="center", transform=ax.transAxes)  # type: ignore[attr-defined]
    ax.set_xticks([])  # type: ignore[attr-defined]
    ax.set_yticks([])  # type: ignore[attr-defined]


def heads_plot(report: AuditReport) -> str:
    fig, ax = _figure(f"Log heads of {report.partner}: leaves anchored, by block")
    if report.heads:
        blocks = [h["block"] for h in report.heads]
        sizes = [h["size"] for h in report.heads]
        ax.step(blocks, sizes, where="post", color="#1d70b8")  # type: ignore[attr-defined]
        ax.plot(blocks, sizes, "o", markersize=3, color="#1d70b8")  # type: ignore[attr-defined]
        ax.set_xlabel("block", fontsize=8)  # type: ignore[attr-defined]
        ax.set_ylabel("log size (leaves)", fontsize=8)  # type: ignore[attr-defined]
    else:
        _empty(ax, "heads")
    return _svg(fig)


def consent_plot(report: AuditReport) -> str:
    fig, ax = _figure("Consent given and withdrawn per purpose (cumulative, by block)")
    series: dict[tuple[str, str], list[int]] = defaultdict(list)
    for c in sorted(report.consents, key=lambda c: c["block"]):
        series[(str(c["purpose"]), str(c["status"]))].append(int(c["block"]))
    if series:
        for (purpose, status), blocks in sorted(series.items()):
            ax.step(  # type: ignore[attr-defined]
                blocks,
                range(1, len(blocks) + 1),
                where="post",
                linestyle="-" if status == "given" else "--",
                label=f"{purpose} {status}",
            )
        ax.legend(fontsize=7)  # type: ignore[attr-defined]
        ax.set_xlabel("block", fontsize=8)  # type: ignore[attr-defined]
    else:
        _empty(ax, "consent receipts")
    return _svg(fig)


def points_plot(report: AuditReport) -> str:
    fig, ax = _figure(f"Points of {report.partner}: in the bundle, and the chain's settlement")
    earned = sum(p["amount"] for p in report.point_events if p["kind"] == "earn")
    redeemed = sum(p["amount"] for p in report.point_events if p["kind"] == "redeem")
    labels = ["issued (bundle)", "redeemed (bundle)", "issued (chain)", "redeemed at (chain)", "net position"]
    values = [
        earned,
        redeemed,
        report.settlement.get("issued", 0),
        report.settlement.get("redeemed", 0),
        report.settlement.get("position", 0),
    ]
    colors = ["#00703c", "#d4351c", "#00703c", "#d4351c", "#505a5f"]
    bars = ax.bar(range(len(values)), values, color=colors)  # type: ignore[attr-defined]
    ax.bar_label(bars, labels=[f"{v:,}" for v in values], fontsize=7)  # type: ignore[attr-defined]
    ax.margins(y=0.15)  # type: ignore[attr-defined]
    ax.set_xticks(range(len(values)), labels, fontsize=7, rotation=15)  # type: ignore[attr-defined]
    ax.axhline(0, color="black", linewidth=0.5)  # type: ignore[attr-defined]
    return _svg(fig)


def decisions_plot(report: AuditReport) -> str:
    fig, ax = _figure("Decisions per model and action")
    counts = Counter((d["model"], d["action"]) for d in report.decisions)
    if counts:
        keys = sorted(counts)
        bars = ax.bar(range(len(keys)), [counts[k] for k in keys], color="#4c2c92")  # type: ignore[attr-defined]
        ax.bar_label(bars, fontsize=7)  # type: ignore[attr-defined]
        ax.set_xticks(range(len(keys)), [f"model {m}\n{a}" for m, a in keys], fontsize=7)  # type: ignore[attr-defined]
    else:
        _empty(ax, "decisions")
    return _svg(fig)


def erasures_plot(report: AuditReport) -> str:
    fig, ax = _figure("Erasures (cumulative, by date)")
    times = sorted(_time(e["at"]) for e in report.erasures if e.get("at"))
    if times:
        counts = range(1, len(times) + 1)
        ax.step(times, counts, where="post", color="#d4351c")  # type: ignore[attr-defined]
        ax.plot(times, counts, "o", markersize=4, color="#d4351c")  # type: ignore[attr-defined]
        ax.set_ylim(0, len(times) + 1)  # type: ignore[attr-defined]
        ax.yaxis.get_major_locator().set_params(integer=True)  # type: ignore[attr-defined]
        ax.set_ylabel("members erased", fontsize=8)  # type: ignore[attr-defined]
        fig.autofmt_xdate()
    else:
        _empty(ax, "erasures")
    return _svg(fig)


def _time(value: str) -> datetime:
    when = datetime.fromisoformat(value)
    return when if when.tzinfo else when.replace(tzinfo=UTC)


STYLE = """
body { font-family: sans-serif; max-width: 60rem; margin: 2rem auto; color: #0b0c0c; line-height: 1.4; }
h1 { font-size: 1.6rem; } h2 { font-size: 1.2rem; margin-top: 2rem; }
.ok { color: #00703c; font-weight: bold; } .bad { color: #d4351c; font-weight: bold; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
td, th { border-bottom: 1px solid #b1b4b6; padding: 0.3rem; text-align: left; vertical-align: top; }
.plots { display: grid; grid-template-columns: 1fr; gap: 1rem; } svg { max-width: 100%; height: auto; }
"""


def render(report: AuditReport, *, title: str = "Audit report") -> str:
    esc = html.escape
    verdict = (
        '<p class="ok">Everything in the bundle holds against the chain.</p>'
        if report.ok
        else f'<p class="bad">{len(report.findings)} finding(s): the bundle does not hold.</p>'
    )
    findings = (
        "<table><tr><th>record</th><th>finding</th></tr>"
        + "".join(f"<tr><td>{esc(f.record)}</td><td>{esc(f.detail)}</td></tr>" for f in report.findings)
        + "</table>"
        if report.findings
        else "<p>None.</p>"
    )
    checked = "<ul>" + "".join(f"<li>{esc(line)}</li>" for line in report.checked) + "</ul>"
    plots: Sequence[tuple[str, str]] = [
        ("Heads over time", heads_plot(report)),
        ("Consent", consent_plot(report)),
        ("Points and settlement", points_plot(report)),
        ("Decisions", decisions_plot(report)),
        ("Erasures", erasures_plot(report)),
    ]
    figures = "".join(f"<section><h2>{esc(name)}</h2>{svg}</section>" for name, svg in plots)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>{esc(title)}: {esc(report.partner)}</title><style>{STYLE}</style></head><body>"
        f"<h1>{esc(title)}: {esc(report.partner)}, chain id {report.chain_id}</h1>{verdict}"
        f"<h2>Findings</h2>{findings}<h2>What was checked</h2>{checked}"
        f'<div class="plots">{figures}</div></body></html>\n'
    )


def write_report(report: AuditReport, path: Path) -> None:
    try:
        path.write_text(render(report))
    except OSError as exc:
        raise InvalidInput(f"--report: cannot write {path}: {exc.strerror}") from None
