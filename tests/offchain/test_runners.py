"""A job runner's lease is alive exactly while its process holds it (kill -9 included)."""

from __future__ import annotations

import subprocess
import sys

from offchain.db import make_engine
from offchain.repositories import runners

HOLD = """
import sys
from offchain.db import make_engine
from offchain.repositories import runners
runners.hold(make_engine(sys.argv[1]), sys.argv[2])
print("held", flush=True)
sys.stdin.read()
"""


def test_a_runner_is_alive_while_another_process_holds_its_lease_and_not_after_it_is_killed(
    db_url: str,
) -> None:
    engine = make_engine(db_url)
    try:
        server = subprocess.Popen(
            [sys.executable, "-c", HOLD, db_url, "server-b"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        try:
            assert server.stdout is not None and server.stdout.readline() == b"held\n"
            assert runners.alive(engine, "server-b")
            assert runners.alive(engine, "server-b")  # asking does not take the lease away
            assert not runners.alive(engine, "a-server-that-never-started")
        finally:
            server.kill()
            server.wait()
        assert not runners.alive(engine, "server-b")
        mine = runners.hold(engine, "server-a")
        assert runners.alive(engine, "server-a")
        mine.release()
        assert not runners.alive(engine, "server-a")
    finally:
        engine.dispose()
