"""A Read/Write Var record's item rows: the one-display shapes (``Item.merged_row``) give the same keys, in
the same order, with the same values, as the request item's row with its answer written over it.

The frames are laid down byte by byte (s7comm_frames); every item shape the dissector can merge is
covered: the two the fast path builds (a Read Var answer's data, a Write Var job's return code, on
byte-addressed S7ANY variables) and the ones it hands to the general path (timers and counters, a
non-S7ANY address, an error answer without data, an answer with fewer or more items than asked).
"""
from __future__ import annotations

import pytest

from otsensor.dissectors.s7comm.records import S7commRecord

from tests.dissectors.s7comm_frames import O, R, any_item, data_item, dt, of, run, s7

READ, WRITE = b"\x04", b"\x05"
SPEC = ["syntax_id", "transport_size", "transport_size_code", "count", "area", "area_code", "db", "byte_address",
        "bit_address"]
READ_KEYS = SPEC + ["return_code", "return_name", "data_transport_size", "data_hex", "values", "values_truncated"]
WRITE_KEYS = SPEC + ["data_transport_size", "data_hex", "values", "values_truncated", "return_code", "return_name"]
NAMED_SPEC = bytes([0x12, 0x06, 0xB2, 0x01, 0x02, 0x03, 0x04, 0x05])   # syntax 0xB2 (DBREAD): no S7ANY address


def _pair(function: bytes, specs: list[bytes], job_data: bytes, ack_param: bytes, ack_data: bytes,
          err: tuple[int, int] | None = None) -> S7commRecord:
    job = dt(s7(1, 9, function + bytes([len(specs)]) + b"".join(specs), job_data))
    ack = dt(s7(3, 9, ack_param, ack_data, err=err))
    (rec,) = of(run([(O, job), (R, ack)]), "s7comm")
    assert isinstance(rec, S7commRecord)
    return rec


def _padded(items: list[bytes]) -> bytes:
    """Data items, each padded to an even length but the last."""
    return b"".join(item + (b"\x00" if len(item) % 2 and i < len(items) - 1 else b"") for i, item in enumerate(items))


CASES = {
    # DB 5 DWORDs, M bits, I bytes, REALs (a NaN among them): every item on the fast path of a read
    "read": _pair(READ, [any_item(0x84, 5, 12, 2, tsize=0x06), any_item(0x83, 0, 3, 1, tsize=0x01, bit=6),
                         any_item(0x81, 0, 7, 3, tsize=0x02), any_item(0x84, 9, 0, 2, tsize=0x08)],
                  b"", b"\x04\x04",
                  _padded([data_item(bytes(range(8))), data_item(b"\x01", tsize=0x03, in_bits=False),
                           data_item(b"\x0a\x0b\x0c"), data_item(b"\x7f\xc0\x00\x00\x41\x20\x00\x00", tsize=0x07,
                                                                in_bits=False)])),
    "write": _pair(WRITE, [any_item(0x82, 0, 4, 2, tsize=0x02), any_item(0x84, 3, 8, 1, tsize=0x04)],
                   _padded([data_item(b"\x12\x34", ret=0x00), data_item(b"\x56\x78", ret=0x00)]),
                   b"\x05\x02", b"\xff\x0a"),
    # counters and timers are numbered (no bit address): the general path
    "read counters and timers": _pair(READ, [any_item(0x1C, 0, 2, 1, tsize=0x1C), any_item(0x1D, 0, 5, 1, tsize=0x1D)],
                                      b"", b"\x04\x02", _padded([data_item(b"\x00\x07"), data_item(b"\x01\x02")])),
    "write a timer": _pair(WRITE, [any_item(0x1D, 0, 1, 1, tsize=0x1D)], data_item(b"\x00\x10", ret=0x00),
                           b"\x05\x01", b"\xff"),
    # an address that is not S7ANY (kept as hex), and an item the PLC refuses (no data in the answer)
    "read a named address": _pair(READ, [NAMED_SPEC, any_item(0x84, 1, 0, 1)], b"", b"\x04\x02",
                                  _padded([data_item(b"\x42"), bytes([0x0A, 0x00, 0x00, 0x00])])),
    "read refused": _pair(READ, [any_item(0x84, 1, 0, 4)], b"", b"\x04\x01", bytes([0x05, 0x00, 0x00, 0x00])),
    # more answers than questions, and fewer
    "answer with an extra item": _pair(READ, [any_item(0x83, 0, 1, 1)], b"", b"\x04\x02",
                                       _padded([data_item(b"\x01"), data_item(b"\x02")])),
    "write answered short": _pair(WRITE, [any_item(0x83, 0, 1, 1), any_item(0x83, 0, 2, 1)],
                                  _padded([data_item(b"\x01", ret=0x00), data_item(b"\x02", ret=0x00)]),
                                  b"\x05\x02", b"\xff"),
}


def _slow(rec: S7commRecord) -> list[dict]:
    """The request items' rows with the answers' fields written over them, one call after the other."""
    req = rec.request.items if rec.request is not None else []
    resp = rec.response.items if rec.response is not None else []
    out = []
    for i in range(max(len(req), len(resp))):
        item = req[i].row() if i < len(req) else {}
        if i < len(resp):
            resp[i].fill(item)
        out.append(item)
    return out


@pytest.mark.parametrize("name", CASES)
def test_item_rows_match_the_general_merge(name: str) -> None:
    rec = CASES[name]
    rows = rec.to_dict()["items"]
    expected = _slow(rec)
    assert rows == expected
    assert [list(row) for row in rows] == [list(row) for row in expected]     # the same key order too


def test_the_usual_shapes_have_their_final_key_order() -> None:
    read, write = CASES["read"].to_dict()["items"], CASES["write"].to_dict()["items"]
    assert [list(row) for row in read] == [READ_KEYS] * 4
    assert [list(row) for row in write] == [WRITE_KEYS] * 2
    assert read[0]["db"] == 5 and read[0]["byte_address"] == 12 and read[0]["values"] == [0x00010203, 0x04050607]
    assert read[1]["bit_address"] == 6 and read[1]["values"] == [True]
    assert read[3]["values"] == [None, 10.0]                 # NaN is no JSON number
    assert write[1]["return_code"] == 0x0A and write[1]["values"] == [0x5678]
