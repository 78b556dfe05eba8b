"""Garbage collection during bulk work (api/importers/collector.py): tuned inside the block, and put
back as it was after it, however the block ends."""

from __future__ import annotations

import gc

import pytest

from api.importers.collector import BULK_THRESHOLDS, IMPORT_THRESHOLDS, bulk_collection


class Boom(Exception):
    pass


@pytest.mark.parametrize("fails", [False, True])
def test_bulk_collection_freezes_what_is_alive_and_restores_the_collector(fails: bool) -> None:
    before = gc.get_threshold()
    assert gc.get_freeze_count() == 0
    try:
        with bulk_collection():
            assert gc.get_threshold() == BULK_THRESHOLDS
            assert gc.get_freeze_count() > 0  # this test's own objects, at least
            if fails:
                raise Boom
    except Boom:
        assert fails
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_an_import_sets_its_own_thresholds_and_the_collector_is_put_back() -> None:
    before = gc.get_threshold()
    with bulk_collection(IMPORT_THRESHOLDS):
        assert gc.get_threshold() == IMPORT_THRESHOLDS != BULK_THRESHOLDS
        with bulk_collection():  # a block begun inside it keeps the first's
            assert gc.get_threshold() == IMPORT_THRESHOLDS
    assert gc.get_threshold() == before


def test_cycles_made_inside_the_block_are_still_collected() -> None:
    with bulk_collection():
        node: list[object] = []
        node.append(node)  # a cycle: reference counting alone never frees it
        del node
        assert gc.collect() >= 1


def test_blocks_that_overlap_put_the_collector_back_when_the_last_ends() -> None:
    """A server runs an import job and a scoring job in threads of one process: their blocks overlap,
    and either may end first. The collector stays tuned until the last one ends, then is as before."""
    before = gc.get_threshold()
    first, second = bulk_collection(), bulk_collection()
    first.__enter__()
    second.__enter__()  # begun inside the first: it must not take the bulk thresholds for "before"
    first.__exit__(None, None, None)  # the first ends while the second runs
    assert gc.get_threshold() == BULK_THRESHOLDS and gc.get_freeze_count() > 0
    second.__exit__(None, None, None)
    assert gc.get_threshold() == before
    assert gc.get_freeze_count() == 0


def test_what_was_frozen_before_the_block_stays_frozen_after_it() -> None:
    """The `ledgercrm` script freezes what its imports made before a command runs: a scoring run's block
    must not hand all of it back to the collector when it ends."""
    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        assert frozen > 0
        with bulk_collection():
            pass
        assert gc.get_freeze_count() >= frozen
    finally:
        gc.unfreeze()
