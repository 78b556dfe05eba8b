"""Garbage collection during bulk work (api/importers/collector.py): tuned inside the block, and put
back as it was after it, however the block ends."""

from __future__ import annotations

import gc

import pytest

from api.importers.collector import BULK_THRESHOLDS, bulk_collection


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


def test_cycles_made_inside_the_block_are_still_collected() -> None:
    with bulk_collection():
        node: list[object] = []
        node.append(node)  # a cycle: reference counting alone never frees it
        del node
        assert gc.collect() >= 1
