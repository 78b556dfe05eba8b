"""Bulk imports, with their progress."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TextIO

import typer
from rich.table import Table

from api.cli.common import INTERRUPTED, PartnerOption, as_partner, errors, fail, show_wide, with_crm
from api.progress import Progress

if TYPE_CHECKING:
    from api.context import Crm


import_app = typer.Typer(help="Bulk imports.", no_args_is_help=True)


PLAIN_PROGRESS_EVERY = 5.0
"""Seconds between two plain progress lines (terminals get a live bar instead)."""


class PlainProgress:
    """Import progress as plain lines on a stream that is not a terminal (CI logs, pipes, files), where a
    Rich bar draws nothing until the end: a line when a phase first reports, then at most one every
    `every` seconds, and the last state at `close()`. Each line gives the phase, done/total, the rate
    since the previous line of that phase (so a slowdown shows) and the time since the start."""

    def __init__(
        self,
        stream: TextIO,
        *,
        every: float = PLAIN_PROGRESS_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream, self.every, self.clock = stream, every, clock
        self.started = self.last_line = clock()
        self.marks: dict[str, tuple[float, int]] = {}  # phase -> (time, done) at its previous line
        self.pending: tuple[str, int, int | None] | None = None  # the latest update not yet printed

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        now = self.clock()
        if phase in self.marks and now - self.last_line < self.every:
            self.pending = (phase, done, total)
            return
        self._line(now, phase, done, total)

    def close(self) -> None:
        if self.pending is not None:
            self._line(self.clock(), *self.pending)

    def _line(self, now: float, phase: str, done: int, total: int | None) -> None:
        of = f"/{total:,} ({100 * done / total:.0f}%)" if total else ""
        rate = ""
        if phase in self.marks:  # a phase's first line has no rate: when its work began is unknown
            since, done_then = self.marks[phase]
            if now > since and done > done_then:
                rate = f", {(done - done_then) / (now - since):,.0f}/s"
        self.stream.write(f"import: {phase} {done:,}{of}{rate}, {now - self.started:,.0f}s elapsed\n")
        self.stream.flush()  # a pipe is block-buffered: the line must show now, not at exit
        self.marks[phase] = (now, done)
        self.last_line = now
        self.pending = None


@contextmanager
def _progress() -> Iterator[Progress]:
    """The use case's progress(phase, done, total), shown as a Rich bar per import phase on a terminal and
    as plain lines (`PlainProgress`) anywhere else."""
    if not errors.is_terminal:
        plain = PlainProgress(sys.stderr, every=PLAIN_PROGRESS_EVERY)
        try:
            yield plain
        finally:
            plain.close()
        return

    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<13}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=errors,
        transient=False,
    ) as bars:
        tasks: dict[str, Any] = {}

        def update(phase: str, done: int, total: int | None) -> None:
            if phase not in tasks:
                tasks[phase] = bars.add_task(phase, total=total)
            bars.update(tasks[phase], completed=done, total=total)

        yield update


def _print_import(report: Any) -> None:
    table = Table("", "", title=f"import {report.source} into {report.partner}", show_header=False)
    for key, value in report.as_dict().items():
        if key == "timings":
            value = ", ".join(f"{phase} {seconds:.1f}s" for phase, seconds in value.items() if seconds)
        elif isinstance(value, float):
            value = f"{value:,.1f}"
        table.add_row(key.replace("_", " "), str(value))
    show_wide(table)


ImportPurposesOption = Annotated[
    str,
    typer.Option(
        "--purposes",
        metavar="P1,P2",
        help="the purposes the source system holds consent for, attested with collection method"
        " 'import' (comma-separated: loyalty, profiling, marketing, ...)",
    ),
]


def _purposes(value: str) -> list[str]:
    """The comma-separated list as given (empty items dropped); the use case checks each name."""
    return [name.strip() for name in value.split(",") if name.strip()]


INTERRUPTED_IMPORT = (
    "interrupted: what the import wrote so far is kept (customers, interactions, and the enrolments,"
    " consent, points and anchors still waiting in the outbox); run the same import again to finish it:"
    " it first sends what waits, then adds only what is missing, and records nothing twice"
)


@contextmanager
def import_interruptible() -> Iterator[None]:
    """Ctrl-C during an import: one line saying so and what re-running does, exit 130 (SIGINT's)."""
    try:
        yield
    except KeyboardInterrupt:
        fail(INTERRUPTED_IMPORT, code=INTERRUPTED)


@import_app.command("online-retail")
def import_online_retail_cmd(
    path: Annotated[
        Path, typer.Argument(exists=True, dir_okay=False, metavar="PATH", help="online_retail_II.csv(.gz)")
    ],
    partner: PartnerOption,
    purposes: ImportPurposesOption = "loyalty",
) -> None:
    """Import the UCI Online Retail II data set (idempotent: re-running adds only what is missing)."""
    from api.importers.collector import no_collection_at_exit
    from api.importers.entries import start_reading_retail

    no_collection_at_exit()
    # The file is read (in a child process) while the chain and store modules load and open: reading it
    # is the longest step before the first invoice can be imported. It writes nothing.
    reader = start_reading_retail(str(path))
    try:
        from api.usecases.imports import import_online_retail

        def action(crm: Crm) -> Any:
            with _progress() as progress:
                return import_online_retail(
                    crm,
                    as_partner(partner),
                    path,
                    progress=progress,
                    purposes=_purposes(purposes),
                    reader=reader,
                )

        with import_interruptible():
            report = with_crm(action)
    finally:
        reader.close()  # already closed by the import, unless it never got that far
    _print_import(report)


@import_app.command("synthetic")
def import_synthetic_cmd(
    partner: PartnerOption,
    seed: Annotated[int, typer.Option(metavar="N", help="the same seed gives the same data")] = 7,
    customers: Annotated[int, typer.Option(min=1, metavar="N")] = 1000,
    interactions: Annotated[int, typer.Option(min=1, metavar="N")] = 10_000,
    purposes: ImportPurposesOption = "loyalty",
) -> None:
    """Import seeded synthetic customers (Faker PII), purchases, returns and support tickets."""
    from api.importers.collector import no_collection_at_exit
    from api.usecases.imports import import_synthetic

    no_collection_at_exit()

    def action(crm: Crm) -> Any:
        with _progress() as progress:
            return import_synthetic(
                crm,
                as_partner(partner),
                seed=seed,
                customers=customers,
                interactions=interactions,
                progress=progress,
                purposes=_purposes(purposes),
            )

    with import_interruptible():
        report = with_crm(action)
    _print_import(report)
