"""dissectors.base.array_unpacker: the one cached unpacking of a run of values that S7 items (big-endian) and
Logix tags (little-endian) both read their values with."""
from __future__ import annotations

import struct

import pytest

from otsensor.dissectors.base import MAX_ARRAY, array_unpacker


@pytest.mark.parametrize("fmt", ["B", "H", "h", "I", "i", "f", "d", "q"])
@pytest.mark.parametrize("big_endian", [True, False])
def test_unpacks_as_struct_in_either_byte_order(fmt: str, big_endian: bool) -> None:
    size = struct.calcsize(fmt)
    data = bytes(range(1, 1 + 5 * size))
    order = ">" if big_endian else "<"
    assert array_unpacker(big_endian, fmt, 5)(data) == struct.unpack(f"{order}5{fmt}", data)
    assert array_unpacker(big_endian, fmt, 2)(data, size) == struct.unpack_from(f"{order}2{fmt}", data, size)


def test_each_shape_is_made_once_and_kept_up_to_the_cap() -> None:
    assert array_unpacker(True, "H", 7) is array_unpacker(True, "H", 7)
    assert array_unpacker(True, "H", 7) is not array_unpacker(False, "H", 7)
    assert array_unpacker(False, "f", MAX_ARRAY) is array_unpacker(False, "f", MAX_ARRAY)
    past = array_unpacker(True, "B", MAX_ARRAY + 1)          # past the cap: still right, not kept
    assert past(bytes(MAX_ARRAY + 1)) == (0,) * (MAX_ARRAY + 1)
    assert past is not array_unpacker(True, "B", MAX_ARRAY + 1)


def test_a_short_buffer_raises_like_struct() -> None:
    with pytest.raises(struct.error):
        array_unpacker(True, "I", 3)(b"\x00" * 11)
