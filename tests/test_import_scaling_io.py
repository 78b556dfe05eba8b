"""benchmarks/import_scaling.py's store columns: what the import's process wrote to files, what its main
thread read, and its store's checkpoint thread's CPU, read from /proc while a store is written."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import text

from benchmarks.import_scaling import store_io
from offchain.db import checkpoints_beside, make_engine

pytestmark = pytest.mark.skipif(not Path("/proc/self/io").exists(), reason="reads /proc")


def test_store_io_counts_the_writes_and_finds_the_checkpoint_thread(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'data.sqlite'}")
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE t (x BLOB)"))
        before = store_io()
        assert before["checkpoints"] is None  # no checkpoint thread outside the block
        with checkpoints_beside(engine, every=0.01):
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO t VALUES (:x)"), [{"x": os.urandom(4096)}] * 256)
            during = store_io()
            assert during["checkpoints"] is not None and during["checkpoints"] >= 0.0
        after = store_io()
    finally:
        engine.dispose()
    assert after["checkpoints"] is None  # the thread ended with the block
    assert before["written"] is not None and after["written"] is not None
    assert after["written"] - before["written"] >= 256 * 4096  # the WAL's pages, at least
    assert before["read"] is not None and after["read"] is not None and after["read"] >= before["read"]
