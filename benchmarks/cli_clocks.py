"""A `ledgercrm` command run in this process with clocks around chosen functions: the main thread's CPU
seconds (`time.thread_time`) and wall seconds spent in each, the calls, and at the end each thread's CPU.

    .venv/bin/python benchmarks/cli_clocks.py --clock MODULE:NAME [--clock ...] [--by-caller NAME ...]
        -- --home HOME import online-retail DATA --partner retail

Each `--clock` replaces `NAME` (a function or `Class.method`) in `MODULE` by a timed wrapper before the
command starts: clock a function in the module that calls it (`api.usecases.imports:record_interactions`)
when that module imported it by name. Calls from other threads and calls nested in a clocked call of
the same function are not clocked again. `--by-caller NAME` splits NAME's figures by the two nearest
callers in api/ or offchain/repositories/ (which SQLAlchemy `do_commit` comes from where). The wrappers
cost ~1 µs a call, and the modules named are imported before the command: read the figures as where
the time goes, and compare runs of one kind with each other only.
"""

from __future__ import annotations

import argparse
import atexit
import importlib
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

_CPU: defaultdict[str, float] = defaultdict(float)
_WALL: defaultdict[str, float] = defaultdict(float)
_CALLS: Counter[str] = Counter()
_THREADS: defaultdict[str, float] = defaultdict(float)
_MAIN = threading.main_thread()


def _callers() -> str:
    frame: FrameType | None = sys._getframe(2)
    names: list[str] = []
    while frame is not None and len(names) < 2:
        path = frame.f_code.co_filename
        if ("/api/" in path or "/offchain/repositories/" in path) and not path.endswith("context.py"):
            names.append(frame.f_code.co_name)
        frame = frame.f_back
    return " <- " + " < ".join(names)


def clock(module_name: str, name: str, by_caller: bool) -> None:
    owner: Any = importlib.import_module(module_name)
    *path, last = name.split(".")
    for part in path:
        owner = getattr(owner, part)
    function: Callable[..., Any] = getattr(owner, last)
    label = f"{module_name}:{name}"
    inside = set[int]()  # not empty while the main thread is in a clocked call of this function

    def timed(*args: Any, **kwargs: Any) -> Any:
        if threading.current_thread() is not _MAIN or inside:
            return function(*args, **kwargs)
        inside.add(1)
        cpu, wall = time.thread_time(), time.perf_counter()
        try:
            return function(*args, **kwargs)
        finally:
            key = label + (_callers() if by_caller else "")
            _CPU[key] += time.thread_time() - cpu
            _WALL[key] += time.perf_counter() - wall
            _CALLS[key] += 1
            inside.clear()

    timed.__wrapped__ = function  # type: ignore[attr-defined]
    setattr(owner, last, timed)


def _count_threads() -> None:
    run = threading.Thread.run

    def counted(self: threading.Thread) -> None:
        try:
            run(self)
        finally:
            _THREADS[self.name] += time.thread_time()

    threading.Thread.run = counted  # type: ignore[method-assign]


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--clock", action="append", default=[], metavar="MODULE:NAME")
    parser.add_argument("--by-caller", action="append", default=[], metavar="NAME")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="the ledgercrm arguments, after --")
    args = parser.parse_args()
    sys.path.insert(0, str(ROOT))
    for spec in args.clock:
        module_name, _, name = spec.partition(":")
        clock(module_name, name, name in args.by_caller)
    _count_threads()
    started = time.thread_time()

    @atexit.register
    def report() -> None:
        out = sys.stderr
        print(
            f"main thread {time.thread_time() - started:.3f} CPU s, process {time.process_time():.3f}",
            file=out,
        )
        print("other threads' CPU s: " + ", ".join(f"{k} {v:.3f}" for k, v in _THREADS.items()), file=out)
        print("  CPU s   wall s    calls  function", file=out)
        for key, cpu in sorted(_CPU.items(), key=lambda item: -item[1]):
            print(f"{cpu:7.3f} {_WALL[key]:8.3f} {_CALLS[key]:8d}  {key}", file=out)

    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    sys.argv = ["ledgercrm", *command]
    from api.cli import main as cli

    cli()


if __name__ == "__main__":
    main()
