"""Read/Write Var items: variable specifications (parameter part) and data items (data part).

Used by Job/Ack_Data Read and Write Var (:mod:`s7`) and by cyclic
subscriptions in User-Data (:mod:`userdata`), which carry the same
specifications.
"""
from __future__ import annotations

from typing import Final

from otsensor.dissectors.s7comm.constants import LENGTH_IN_BITS, ROSCTR_JOB, SYNTAX_S7ANY
from otsensor.dissectors.s7comm.shapes import Item, Problems, S7Pdu
from otsensor.dissectors.s7comm.values import decode_values

# The fields are read byte by byte (big-endian), not with struct: the compiled build then keeps them native
# integers, where a struct's tuple would give untyped objects that each use goes through the object protocol for.
S7ANY_SIZE: Final = 9           # after the syntax id: transport size, count (2), DB number (2), area, bit address (3)
DATA_ITEM_SIZE: Final = 4       # return code, data transport size, length (2)
MAX_ITEMS: Final = 256          # S7 allows far fewer; anything above is hostile


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
    elif end - start < S7ANY_SIZE:
        problems.append(("s7comm.bad_item", f"item {index}: S7ANY address needs 10 bytes, got {end - start + 1}"))
    else:
        item.transport_size = buf[start]
        item.count = buf[start + 1] << 8 | buf[start + 2]
        item.db = buf[start + 3] << 8 | buf[start + 4]
        item.area = buf[start + 5]
        item.address = buf[start + 6] << 16 | buf[start + 7] << 8 | buf[start + 8]
    return item


def parse_data_items(pdu: S7Pdu, targets: list[Item], specs: list[Item]) -> None:
    """Data part items: return code, transport size, length, data, pad to even length (not after the last).

    ``targets`` receive the data (a Write Var job's own specifications, or a
    Read Var answer's fresh items); ``specs`` are the request's, whose
    transport sizes say how to decode the values.
    """
    data: bytes = pdu.data
    pos, n, size = 0, len(targets), len(data)
    is_job = pdu.rosctr == ROSCTR_JOB
    for index in range(n):
        if pos + DATA_ITEM_SIZE > size:
            pdu.problem("s7comm.item_count_mismatch", f"{n} items expected, data for {index}")
            return
        ret, tsize, length = data[pos], data[pos + 1], data[pos + 2] << 8 | data[pos + 3]
        nbytes = (length + 7) // 8 if tsize in LENGTH_IN_BITS else length
        start = pos + DATA_ITEM_SIZE
        value = data[start: start + nbytes]
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
        pos = start + nbytes + (nbytes & 1 if index < n - 1 else 0)


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
