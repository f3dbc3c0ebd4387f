"""The address space names of S7 items: a data block's name is made once and shared, for every block number."""
from __future__ import annotations

from otsensor.dissectors.s7comm.constants import AREA_DB, AREA_DI
from otsensor.dissectors.s7comm.shapes import BLOCK_SPACES_CACHED, block_space


def test_every_block_number_has_its_name_past_the_cache() -> None:
    # more block numbers than the cache keeps: the names past it are made per call, and still right
    assert BLOCK_SPACES_CACHED < 65536
    assert [block_space(AREA_DB, db) for db in range(65536)] == [f"DB{db}" for db in range(65536)]
    assert [block_space(AREA_DI, db) for db in (0, 7, 65535)] == ["DI0", "DI7", "DI65535"]


def test_a_block_name_is_shared() -> None:
    # (one string per block: the graph's and learner's dicts keyed by it reuse its hash)
    first = block_space(AREA_DB, 1)
    assert first == "DB1" and block_space(AREA_DB, 1) is first
