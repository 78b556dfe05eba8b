"""Running a source (a file reader, the synthetic generator) in a child process.

An import is CPU-bound Python: parsing the source, building each record's canonical JSON, then
encrypting, writing and sending. With the source in a child process the first two run on another core
while this process does the rest; items come back over a pipe in chunks (pickling a chunk costs a
fraction of producing it).

`source(progress, *args)` runs in the child and yields the items; `progress` there forwards
(phase, done, total) to this process's `progress`. The child never outlives its parent: when the
parent dies (kill -9 included) the child's next send notices and it exits.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
from collections.abc import Callable, Generator, Iterable
from queue import Empty, Full
from typing import Any, TypeVar

T = TypeVar("T")
Progress = Callable[[str, int, int | None], None]
Source = Callable[..., Iterable[T]]

CHUNK = 500  # items per message
_QUEUE_DEPTH = 16  # messages in flight: bounds the child's lead (and its memory) over the parent
_POLL_S = 1.0


class SourceFailed(RuntimeError):
    """The child process died without saying why (killed, out of memory)."""


def in_child_process(
    source: Source[T], *args: Any, progress: Progress | None = None, chunk: int = CHUNK
) -> Generator[T, None, None]:
    """The items of `source(progress, *args)`, produced in a child process. An exception raised there
    is raised here (the same type and message); `source` and `args` must be picklable (module-level
    functions, plain values)."""
    context = multiprocessing.get_context("spawn")  # no fork: the parent holds threads, sockets, pools
    queue: Any = context.Queue(maxsize=_QUEUE_DEPTH)
    child = context.Process(target=_produce, args=(source, args, chunk, queue, os.getpid()), daemon=True)
    child.start()
    try:
        while True:
            try:
                message = queue.get(timeout=_POLL_S)
            except Empty:
                if not child.is_alive():
                    raise SourceFailed(f"the source process exited with code {child.exitcode}") from None
                continue
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
        if child.is_alive():  # the consumer stopped early or failed: stop the producer too
            child.terminate()
        child.join(timeout=10)
        queue.close()


def _produce(source: Source[Any], args: tuple[Any, ...], chunk: int, queue: Any, parent: int) -> None:
    def send(message: tuple[Any, ...], *, block: bool = True) -> None:
        while True:
            try:
                queue.put(message, timeout=_POLL_S if block else 0)
                return
            except Full:
                if os.getppid() != parent:  # the parent died: nobody will read this
                    os._exit(1)
                if not block:
                    return  # progress is advisory: drop it rather than wait

    def progress(phase: str, done: int, total: int | None) -> None:
        send(("progress", (phase, done, total)), block=False)

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
    except BaseException as exc:  # report everything, KeyboardInterrupt included, then end
        try:
            pickle.dumps(exc)  # the queue pickles in a background thread, where a failure would be lost
        except Exception:
            exc = RuntimeError(f"{type(exc).__name__}: {exc}")
        send(("error", exc))
