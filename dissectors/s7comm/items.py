"""Read/Write Var items: variable specifications (parameter part) and data items (data part).

Used by Job/Ack_Data Read and Write Var (:mod:`s7`) and by cyclic
subscriptions in User-Data (:mod:`userdata`), which carry the same
specifications.
"""
from __future__ import annotations

import struct
from typing import Final

from otsensor.dissectors.s7comm.constants import LENGTH_IN_BITS, ROSCTR_JOB, SYNTAX_S7ANY
from otsensor.dissectors.s7comm.shapes import Item, Problems, S7Pdu
from otsensor.dissectors.s7comm.values import decode_values

S7ANY: Final = struct.Struct(">BHHI")           # transport size, count, DB number, area << 24 | 3-byte address
DATA_ITEM: Final = struct.Struct(">BBH")        # return code, data transport size, length
MAX_ITEMS: Final = 256                          # S7 allows far fewer; anything above is hostile


def parse_var_specs(buf: bytes, pos: int, count: int, problems: Problems) -> list[Item]:
    """Request items from ``pos``: 0x12, spec length, syntax id, then the address (S7ANY: 10 bytes)."""
    items: list[Item] = []
    for index in range(min(count, MAX_ITEMS)):
        if pos + 3 > len(buf):
            problems.append(("s7comm.item_count_mismatch", f"{count} items declared, {index} present"))
            break
        spec_len, syntax = buf[pos + 1], buf[pos + 2]
        if pos + 2 + spec_len > len(buf) or spec_len < 1:
            problems.append(("s7comm.bad_item",
                             f"item {index}: specification length {spec_len} overruns the parameter part"))
            break
        items.append(_var_spec(syntax, buf, pos + 3, pos + 2 + spec_len, problems, index))
        pos += 2 + spec_len
    return items


def _var_spec(syntax: int, buf: bytes, start: int, end: int, problems: Problems, index: int) -> Item:
    """The item whose address is ``buf[start:end]`` (read in place: no slice per item)."""
    item = Item()
    item.syntax = syntax
    if syntax != SYNTAX_S7ANY:
        item.address_hex = buf[start:end].hex()
    elif end - start < S7ANY.size:
        problems.append(("s7comm.bad_item", f"item {index}: S7ANY address needs 10 bytes, got {end - start + 1}"))
    else:
        item.transport_size, item.count, item.db, area_address = S7ANY.unpack_from(buf, start)
        item.area, item.address = area_address >> 24, area_address & 0xFFFFFF
    return item


def parse_data_items(pdu: S7Pdu, targets: list[Item], specs: list[Item]) -> None:
    """Data part items: return code, transport size, length, data, pad to even length (not after the last).

    ``targets`` receive the data (a Write Var job's own specifications, or a
    Read Var answer's fresh items); ``specs`` are the request's, whose
    transport sizes say how to decode the values.
    """
    pos, data, n = 0, pdu.data, len(targets)
    is_job = pdu.rosctr == ROSCTR_JOB
    for index in range(n):
        if pos + DATA_ITEM.size > len(data):
            pdu.problem("s7comm.item_count_mismatch", f"{n} items expected, data for {index}")
            return
        ret, tsize, length = DATA_ITEM.unpack_from(data, pos)
        nbytes = (length + 7) // 8 if tsize in LENGTH_IN_BITS else length
        value = data[pos + DATA_ITEM.size: pos + DATA_ITEM.size + nbytes]
        if len(value) < nbytes:
            pdu.problem("s7comm.bad_item", f"item {index}: {nbytes} data bytes declared, {len(value)} present")
        item = targets[index]
        if not is_job:
            item.return_code = ret
        item.data_transport_size = tsize
        if value:
            item.data = value
            request_tsize = specs[index].transport_size if index < len(specs) else None
            item.values, item.values_truncated = decode_values(value, request_tsize, tsize)
        pos += DATA_ITEM.size + nbytes + (nbytes & 1 if index < n - 1 else 0)


def parse_write_results(pdu: S7Pdu) -> list[Item]:
    """A Write Var answer: one return code per item."""
    declared = pdu.item_count or 0
    codes = pdu.data[:declared]
    if len(codes) != declared:
        pdu.problem("s7comm.item_count_mismatch", f"{pdu.item_count} return codes declared, {len(codes)} present")
    results = []
    for code in codes:
        item = Item()
        item.return_code = code
        results.append(item)
    return results
