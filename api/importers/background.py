"""Running a source (a file reader, the synthetic generator) in a child process.

An import is CPU-bound Python: parsing the source, building each record's canonical JSON, then
encrypting, writing and sending. With the source in a child process the first two run on another core
while this process does the rest; items come back over a pipe in chunks (pickling a chunk costs a
fraction of producing it).

`source(progress, *args)` runs in the child and yields the items; `progress` there forwards
(phase, done, total) to this process's `progress`. The child is `python -m api.importers.background`,
not a multiprocessing one: multiprocessing's spawn re-imports the caller's main module, which breaks any
script that calls an import without an `if __name__ == "__main__"` guard. The child never outlives its
parent: when the parent dies (kill -9 included) the pipe breaks and the child's next write ends it.
"""

from __future__ import annotations

import pickle
import queue
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Generator, Iterable
from typing import IO, Any, TypeVar

T = TypeVar("T")
Progress = Callable[[str, int, int | None], None]
Source = Callable[..., Iterable[T]]

CHUNK = 500  # items per message
_LENGTH = struct.Struct(">Q")  # each message: its length, then the pickle
_DEPTH = 16  # messages read ahead: bounds how far (and how much memory) the child runs ahead of us


class SourceFailed(RuntimeError):
    """The child process died without saying why (killed, out of memory)."""


def in_child_process(
    source: Source[T], *args: Any, progress: Progress | None = None, chunk: int = CHUNK
) -> Generator[T, None, None]:
    """The items of `source(progress, *args)`, produced in a child process. An exception raised there
    is raised here (the same type and message); `source` and `args` must be picklable (module-level
    functions, plain values)."""
    child = subprocess.Popen(
        [sys.executable, "-m", "api.importers.background"], stdin=subprocess.PIPE, stdout=subprocess.PIPE
    )
    assert child.stdin is not None and child.stdout is not None
    # A pipe holds 64 KiB, less than one message: without a reader draining it into memory the child
    # would wait for us whenever we work, and the two would take turns instead of running side by side.
    messages: queue.Queue[bytes | None] = queue.Queue(maxsize=_DEPTH)
    stop = threading.Event()
    pump = threading.Thread(target=_pump, args=(child.stdout, messages, stop), daemon=True)
    try:
        child.stdin.write(pickle.dumps((source, args, chunk)))
        child.stdin.close()
        pump.start()
        while True:
            raw = messages.get()
            if raw is None:
                child.wait()
                raise SourceFailed(f"the source process exited with code {child.returncode}")
            message = pickle.loads(raw)
            kind = message[0]
            if kind == "items":
                yield from message[1]
            elif kind == "progress":
                if progress is not None:
                    progress(*message[1])
            elif kind == "error":
                raise message[1]
            else:  # "done"
                return
    finally:
        stop.set()
        if child.poll() is None:  # the consumer stopped early or failed: stop the producer too
            child.terminate()
        child.wait()
        if pump.ident is not None:  # started (the arguments may not even have pickled)
            pump.join(timeout=10)
        if not child.stdin.closed:
            child.stdin.close()
        child.stdout.close()


def _pump(stream: IO[bytes], messages: queue.Queue[bytes | None], stop: threading.Event) -> None:
    """Move whole messages from the pipe into `messages` (reading releases the GIL; unpickling is left
    to the consumer); None once the stream ends."""
    while True:
        header = stream.read(_LENGTH.size)
        raw = None
        if len(header) == _LENGTH.size:
            (length,) = _LENGTH.unpack(header)
            body = stream.read(length)
            raw = body if len(body) == length else None
        while not stop.is_set():
            try:
                messages.put(raw, timeout=0.5)
                break
            except queue.Full:
                continue
        if raw is None or stop.is_set():
            return


def _produce(out: IO[bytes]) -> None:
    source, args, chunk = pickle.loads(sys.stdin.buffer.read())

    def send(message: tuple[Any, ...]) -> None:
        body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        out.write(_LENGTH.pack(len(body)) + body)  # BrokenPipeError once the parent is gone: we end

    def progress(phase: str, done: int, total: int | None) -> None:
        send(("progress", (phase, done, total)))
        out.flush()  # progress is for now, not for the next chunk

    try:
        buffer: list[Any] = []
        for item in source(progress, *args):
            buffer.append(item)
            if len(buffer) >= chunk:
                send(("items", buffer))
                buffer = []
        if buffer:
            send(("items", buffer))
        send(("done",))
    except BrokenPipeError:
        raise
    except BaseException as exc:  # report everything, KeyboardInterrupt included, then end
        try:
            send(("error", exc))
        except (pickle.PicklingError, TypeError, AttributeError):  # an exception that does not pickle
            send(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    out.flush()


if __name__ == "__main__":
    try:
        _produce(sys.stdout.buffer)
    except BrokenPipeError:  # the importer is gone (killed or done with us): nothing left to do
        sys.exit(1)
