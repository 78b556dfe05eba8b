"""A second process for a whole run (`verify --all`), on the machine's second core. A run's own process was
busy for all of its ~3.5 CPU s on Online Retail II: its rows' content checks (each row's AES-GCM
decryption, HMAC commitment and document tail: independent of one another) and its checks against the
chain's events and the reconciliation (on a thread that took the interpreter's lock from the rows').

How it is made, and why (benchmarks/README.md, "verify --all over both cores"):
- Forked once, at the start of the run, after the run's process has read the keys of the partners'
  customers (`Vault.bulk_keys`, the vault's rules) and before the run starts any thread: the helper has
  the keys in its own copy of memory, so no key crosses a pipe or touches a file, and the modules are
  already imported (a fresh interpreter would spend ~0.5 CPU s importing the checks' code). A fork
  copies only the thread that forks, so it is made only from a process with one thread
  (`/proc/self/task`); any other (a server) checks in one process.
- It runs the checks against the chain's events on a thread of its own and, meanwhile, takes the run's
  chunks of rows from the last one back, while the run's process takes them from the first one on:
  neither checks a chunk the other has done (see `verification.Beside`). It reads the rows, the store,
  the key store and the node through connections of its own, and writes nothing.
- A shred or the vault's TTL takes effect in the run's process: an answer is used only if the key it was
  checked with is still fresh there when the answer is used (`CustomerKeys.fresh`), and only for the row
  the run's process read (same member, same leaf); any other row is checked there, as in one process.
- A helper that dies, is killed or raises stops the run with `CheckStopped`, in words: no row is ever
  reported from an answer that did not come.
"""

from __future__ import annotations

import contextlib
import gc
import os
import signal
import socket
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any, NoReturn

from api.errors import CheckStopped

# A run with fewer rows than this checks them in one process: the fork and the answers would cost
# more than a second core saves.
MIN_ROWS = 6_000

# Seconds a helper is given to end once asked (or once its socket failed) before it is killed.
END_WAIT = 1.0

# Bytes a socket of the pair may hold: the helper runs ahead of the run's process by up to this much of
# answers, never more (it waits to send), so its memory stays bounded (the kernel caps it at wmem_max).
SOCKET_BUFFER = 4 * 1024 * 1024


def one_thread() -> bool:
    """Whether this process has a single thread (a fork copies only the thread that forks: any other's
    locks would stay held in the child)."""
    try:
        return len(os.listdir("/proc/self/task")) == 1
    except OSError:
        return False


def cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


Send = Callable[[Any], None]
Notes = Callable[[], list[Any]]
Work = Callable[[Send, Notes], None]


class Helper:
    """The helper process: `work(send, notes)` runs in it, `send` taking each answer and `notes` giving
    what this side has `tell`-ed it since (without waiting); `receive` gives the answers here, in order."""

    def __init__(self, work: Work) -> None:
        mine, theirs = _socket_pair()
        pid = os.fork()
        if pid == 0:  # the helper: never returns
            mine.close()
            _serve(theirs, work)
        theirs.close()
        self.pid: int | None = pid
        self._conn = mine
        self._ended: str | None = None

    def ready(self) -> bool:
        """Whether an answer (or the helper's end) is there to be received without waiting."""
        try:
            return self._conn.poll()
        except (EOFError, OSError) as exc:
            self._stopped(exc)

    def tell(self, note: Any) -> None:
        """Send the helper a note (it reads them between its pieces of work). A hint only: a helper that
        has ended (its work done, or not) cannot take it, and says how it ended at the next `receive`."""
        with contextlib.suppress(OSError):
            self._conn.send(note)

    def receive(self) -> Any:
        """The next answer (waiting for it)."""
        try:
            kind, body = self._conn.recv()
        except (EOFError, OSError) as exc:
            self._stopped(exc)
        if kind == "failed":
            self._ended = f"it failed ({body})"
            self._stopped(None)
        return body

    def close(self) -> None:
        """End the helper and reap it (killed if it does not end within `END_WAIT`)."""
        if self.pid is None:
            return
        with contextlib.suppress(OSError):
            self._conn.close()
        self._reap()

    def _reap(self) -> str:
        """Reap the helper (given up to `END_WAIT` seconds to end, then killed): how it ended."""
        pid, self.pid = self.pid, None
        if pid is None:
            return ""
        try:
            deadline = time.monotonic() + END_WAIT
            done, status = os.waitpid(pid, os.WNOHANG)
            while not done and time.monotonic() < deadline:
                time.sleep(0.005)
                done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                os.kill(pid, signal.SIGKILL)
                done, status = os.waitpid(pid, 0)
        except ChildProcessError:
            return ""
        if os.WIFSIGNALED(status):
            number = os.WTERMSIG(status)
            return f"killed by signal {number} ({signal.Signals(number).name})"
        return f"exit status {os.WEXITSTATUS(status)}"

    def _stopped(self, cause: BaseException | None) -> NoReturn:
        how = self._ended
        with contextlib.suppress(OSError):
            self._conn.close()
        ended = self._reap()
        how = how or (f"it ended, {ended}" if ended else "it stopped answering")
        raise CheckStopped(
            "the second process checking the interactions' content stopped before it had answered for"
            f" every row ({how}): the run is incomplete and reports nothing; run `ledgercrm verify` again"
        ) from cause


def _socket_pair() -> tuple[Connection, Connection]:
    """A duplex pair like `multiprocessing.Pipe()`'s, with buffers of `SOCKET_BUFFER`."""
    ends = socket.socketpair()
    for end in ends:
        for option in (socket.SO_SNDBUF, socket.SO_RCVBUF):
            with contextlib.suppress(OSError):
                end.setsockopt(socket.SOL_SOCKET, option, SOCKET_BUFFER)
    return Connection(ends[0].detach()), Connection(ends[1].detach())


def _serve(conn: Connection, work: Work) -> NoReturn:
    """The helper: `work`, its answers sent as they come, then the end. Ends the process (never returns)
    by `os._exit`, so nothing the run's process holds (its store's connections, its node's socket, its
    files) is closed or flushed from here."""
    gc.disable()  # a short life: and no finalizer of the run's objects may run in this copy
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    code = 0
    try:
        try:
            work(lambda answer: conn.send(("answer", answer)), lambda: _notes(conn))
        except Exception as exc:  # said by its kind only: a message could hold data
            conn.send(("failed", type(exc).__name__))
    except BaseException:  # the run's process learns it from the socket's end
        code = 1
    finally:
        os._exit(code)


def _notes(conn: Connection) -> list[Any]:
    notes = []
    while conn.poll():
        notes.append(conn.recv())
    return notes
