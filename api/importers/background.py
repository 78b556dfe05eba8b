"""Running a source (a file reader, the synthetic generator) in a child process.

An import is CPU-bound Python: parsing the source, building each record's canonical JSON, then
encrypting, writing and sending. With the source in a child process the first two run on another core
while this process does the rest; items come back over a pipe in chunks (pickling a chunk costs a
fraction of producing it).

`source(progress, *args)` runs in the child and yields the items; `progress` there forwards
(phase, done, total) to this process's `progress`. Items go out `chunk` at a time, or sooner when they
come slowly (`FLUSH_AFTER`, and before each progress report): a source that yields a few items during a
long step (customers while a file is read) must not hold them back until the step ends. A
`WiredSource` chooses how its items cross the pipe (`Wire`): they are unpickled here, in the busy
process, and plain tuples unpickle a few times faster than dataclasses or pydantic models.

The child is `python -m api.importers.background`, not a multiprocessing one: multiprocessing's spawn
re-imports the caller's main module, which breaks any script that calls an import without an
`if __name__ == "__main__"` guard. The child never outlives its parent: when the parent dies (kill -9
included) the pipe breaks and the child's next write ends it.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import queue
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Generator, Iterable
from dataclasses import dataclass
from typing import IO, Any, Generic, Protocol, TypeVar

from api.importers.collector import bulk_collection
from api.progress import Progress

T = TypeVar("T")
Source = Callable[..., Iterable[T]]

ITEMS_PER_MESSAGE = 500  # items per message
FLUSH_AFTER = 0.2  # seconds: this long after the last message, the next item goes out at once
_LENGTH = struct.Struct(">Q")  # each message: its length, then the pickle
_DEPTH = 16  # messages read ahead: bounds how far (and how much memory) the child runs ahead of us
# Far above any chunk of items (a few MB): a larger length means bytes that are not ours reached the pipe.
_MAX_MESSAGE = 1 << 30


class SourceFailed(RuntimeError):
    """The child process died without saying why (killed, out of memory)."""


class Wire(Protocol):
    """How a source's items cross the pipe. `encode` runs in the child on each chunk of items, `decode`
    here on what `encode` made of it, giving the items back; one instance per side and per run sees every
    chunk in order, so it may keep state (send something once, refer to it after)."""

    def encode(self, items: list[Any]) -> Any: ...

    def decode(self, message: Any) -> Iterable[Any]: ...


@dataclass(frozen=True)
class WiredSource(Generic[T]):
    """A source with a `Wire` of its own (`wire()` makes a fresh one); called directly, it is `source`.
    Both are pickled by reference, so they must be module-level."""

    source: Source[T]
    wire: Callable[[], Wire]

    def __call__(self, progress: Progress, *args: Any) -> Iterable[T]:
        return self.source(progress, *args)


def in_child_process(
    source: Source[T], *args: Any, progress: Progress | None = None, chunk: int = ITEMS_PER_MESSAGE
) -> Generator[T, None, None]:
    """The items of `source(progress, *args)`, produced in a child process started on the first item
    asked for. An exception raised there is raised here (the same type and message); `source` and
    `args` must be picklable (module-level functions, plain values)."""
    yield from ChildSource(source, *args, chunk=chunk).items(progress)


class ChildSource(Generic[T]):
    """`source(progress, *args)` started in a child process at once, its items read later (`items`,
    once): a caller with slow work of its own to do first (loading modules, opening a store, attaching
    to a chain) lets the source run meanwhile, instead of waiting for it afterwards. Until `items` is
    called, at most `_DEPTH` messages are held here and the child then waits. `close` stops the child;
    `items` closes it when it ends, however it ends. `source` and `args` must be picklable."""

    def __init__(self, source: Source[T], *args: Any, chunk: int = ITEMS_PER_MESSAGE) -> None:
        request = pickle.dumps((source, args, chunk))  # what cannot cross the pipe fails before a child
        self._wire = source.wire() if isinstance(source, WiredSource) else None
        self._child = subprocess.Popen(
            [sys.executable, "-m", "api.importers.background"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        assert self._child.stdin is not None and self._child.stdout is not None
        # A pipe holds 64 KiB, less than one message: without a reader draining it into memory the child
        # would wait for us whenever we work, and the two would take turns instead of running side by side.
        self._messages: queue.Queue[bytes | SourceFailed | None] = queue.Queue(maxsize=_DEPTH)
        self._stop = threading.Event()
        self._pump = threading.Thread(
            target=_pump, args=(self._child.stdout, self._messages, self._stop), daemon=True
        )
        try:
            self._child.stdin.write(request)
            self._child.stdin.close()
            self._pump.start()
        except BaseException:
            self.close()
            raise

    def items(self, progress: Progress | None = None) -> Generator[T, None, None]:
        """The source's items; `progress` gets the (phase, done, total) the source reports."""
        child, wire = self._child, self._wire
        try:
            while True:
                raw = self._messages.get()
                if raw is None:
                    child.wait()
                    raise SourceFailed(f"the source process exited with code {child.returncode}")
                if isinstance(raw, SourceFailed):
                    raise raw
                message = pickle.loads(raw)
                kind = message[0]
                if kind == "items":
                    yield from message[1] if wire is None else wire.decode(message[1])
                elif kind == "progress":
                    if progress is not None:
                        progress(*message[1])
                elif kind == "error":
                    raise message[1]
                else:  # "done"
                    return
        finally:
            self.close()

    def close(self) -> None:
        """Stop the child if it still runs (the consumer stopped early or failed) and release the pipes."""
        child = self._child
        self._stop.set()
        if child.poll() is None:
            child.terminate()
        child.wait()
        if self._pump.ident is not None:  # started (the pipe may have broken before)
            self._pump.join(timeout=10)
        assert child.stdin is not None and child.stdout is not None
        if not child.stdin.closed:
            child.stdin.close()
        child.stdout.close()


def _pump(
    stream: IO[bytes], messages: queue.Queue[bytes | SourceFailed | None], stop: threading.Event
) -> None:
    """Move whole messages from the pipe into `messages` (reading releases the GIL; unpickling is left
    to the consumer); None once the stream ends, SourceFailed (and the end) if it holds no message."""
    while True:
        header = stream.read(_LENGTH.size)
        raw: bytes | SourceFailed | None = None
        if len(header) == _LENGTH.size:
            (length,) = _LENGTH.unpack(header)
            if length > _MAX_MESSAGE:
                raw = SourceFailed("the source process wrote something other than its messages to the pipe")
            else:
                body = stream.read(length)
                raw = body if len(body) == length else None
        while not stop.is_set():
            try:
                messages.put(raw, timeout=0.5)
                break
            except queue.Full:
                continue
        if not isinstance(raw, bytes) or stop.is_set():
            return


def _produce(out: IO[bytes]) -> None:
    source, args, chunk = pickle.loads(sys.stdin.buffer.read())
    wire = source.wire() if isinstance(source, WiredSource) else None
    buffer: list[Any] = []
    sent = time.monotonic()

    def send(message: tuple[Any, ...]) -> None:
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_LENGTH.pack(len(body)) + body)  # BrokenPipeError once the parent is gone: we end

    def flush() -> None:
        nonlocal buffer, sent
        items, buffer = buffer, []  # taken first: items that fail to pickle are not tried again
        if items:
            send(("items", items if wire is None else wire.encode(items)))
        out.flush()  # a small message would otherwise wait in the stream's buffer for the next one
        sent = time.monotonic()

    def progress(phase: str, done: int, total: int | None) -> None:
        flush()  # the source is in a long step: what it yielded so far can be used now
        send(("progress", (phase, done, total)))
        out.flush()  # progress is for now, not for the next chunk

    try:
        with bulk_collection():
            for item in source(progress, *args):
                buffer.append(item)
                if len(buffer) >= chunk or time.monotonic() - sent >= FLUSH_AFTER:
                    flush()
        flush()
        send(("done",))
    except BrokenPipeError:
        raise
    except BaseException as exc:  # report everything, KeyboardInterrupt included, then end
        # the items yielded before the error, as the source run in-process gives them (if they can be sent:
        # the error is what matters)
        with contextlib.suppress(Exception):
            flush()
        try:
            send(("error", exc))
        except (pickle.PicklingError, TypeError, AttributeError):  # an exception that does not pickle
            send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    out.flush()


if __name__ == "__main__":
    # Run this module's own copy, not __main__'s: the pickled source names api.importers.background's
    # classes (WiredSource), and isinstance would not match __main__'s.
    from api.importers.background import _produce as produce

    # The messages own the pipe that is our stdout. Whatever else writes to stdout (a library's print, a
    # profiler or debugger attached to us) goes to stderr: in the pipe it would land inside a message, and
    # a length read from the wrong bytes leaves the importer waiting forever for a message that never ends.
    messages = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    sys.stdout.flush()
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    try:
        produce(messages)
    except BrokenPipeError:  # the importer is gone (killed or done with us): nothing left to do
        sys.exit(1)
