"""A source run in a child process (api/importers/background.py): its items arrive in order, its
progress is forwarded, its errors are raised here, and it stops when the consumer stops."""

from __future__ import annotations

import os
import pickle
import time
from collections.abc import Iterator

import pytest

from api.importers.background import ChildSource, SourceFailed, in_child_process


def numbers(progress, count: int) -> Iterator[tuple[int, int]]:
    for i in range(count):
        if i % 1000 == 0:
            progress("read", i, count)
        yield i, os.getpid()


def failing(progress, after: int) -> Iterator[int]:
    yield from range(after)
    raise ValueError(f"bad row {after}")


def stamped(progress, count: int) -> Iterator[tuple[int, float]]:
    """Each item with the (monotonic, system-wide) time it was made at."""
    for i in range(count):
        yield i, time.monotonic()


def chatty(progress, count: int) -> Iterator[int]:
    """A source that writes to stdout as it goes, as a library's print or a debugger would."""
    for i in range(count):
        print(f"reading item {i}", flush=True)
        os.write(1, b"\x00\x00\x00\x00\x00\x00\x00\x05junk!")  # past Python's stdout, onto the descriptor
        yield i


def dying(progress) -> Iterator[int]:
    yield 1
    os._exit(3)


def test_items_arrive_in_order_from_another_process():
    seen: list[tuple[str, int, int | None]] = []
    items = list(in_child_process(numbers, 2345, progress=lambda *a: seen.append(a), chunk=100))
    assert [i for i, _ in items] == list(range(2345))
    assert {pid for _, pid in items} != {os.getpid()}  # produced elsewhere
    assert ("read", 0, 2345) in seen and all(phase == "read" for phase, _, _ in seen)


def test_an_error_in_the_source_is_raised_here_after_the_items_before_it():
    got: list[int] = []
    with pytest.raises(ValueError, match="bad row 250"):
        for item in in_child_process(failing, 250, chunk=100):
            got.append(item)
    assert got == list(range(250))  # every item yielded before the error, as in-process


def test_what_the_source_writes_to_stdout_goes_to_stderr_not_into_the_messages(capfd):
    assert list(in_child_process(chatty, 300, chunk=7)) == list(range(300))
    err = capfd.readouterr().err
    assert "reading item 0" in err and "reading item 299" in err


def test_a_source_that_dies_is_reported():
    with pytest.raises(SourceFailed, match="code 3"):
        list(in_child_process(dying))


def test_stopping_early_stops_the_child():
    stream = in_child_process(numbers, 10**9, chunk=10)
    first, child_pid = next(stream)
    assert first == 0
    stream.close()  # the consumer is done (or failed): the generator's cleanup ends the child
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child_pid, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail("the child process is still running")


class Unpicklable(Exception):
    def __reduce__(self):
        raise TypeError("no pickling")


def unpicklable_failure(progress) -> Iterator[int]:
    raise Unpicklable("the reader broke")
    yield 0  # pragma: no cover - makes this a generator


def test_an_error_that_cannot_cross_the_pipe_is_still_reported():
    with pytest.raises(RuntimeError, match="Unpicklable: the reader broke"):
        list(in_child_process(unpicklable_failure))


def test_arguments_that_do_not_pickle_fail_here_and_leave_no_child():
    with pytest.raises((TypeError, AttributeError, pickle.PicklingError)):
        list(in_child_process(numbers, lambda: 1))  # a lambda cannot cross the pipe


def test_a_source_started_early_runs_before_its_items_are_asked_for_and_stops_if_never_asked():
    started = time.monotonic()
    source = ChildSource(stamped, 50)
    time.sleep(1.5)  # the caller's own slow start
    items = list(source.items())
    assert [i for i, _ in items] == list(range(50))
    assert items[0][1] < started + 1.5  # produced while the caller was busy, not when it asked

    never_read = ChildSource(numbers, 10**9, chunk=10)
    pid = never_read._child.pid
    never_read.close()  # e.g. the import was refused before it began
    never_read.close()  # and closing twice is harmless
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # reaped: gone
