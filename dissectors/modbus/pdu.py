"""Modbus PDU bodies: one small decoder per request and per response shape, chosen from a table.

A decoder takes the PDU body (after the function code), the request's
decoded fields when decoding a response (to size coil lists), and a list to
which it appends non-fatal ``(anomaly, reason)`` notes.  It returns the
record fields.  A body too short for its fixed fields raises
:class:`Malformed`; the dissector turns that into an anomaly and keeps the
transaction with what could be decoded.
"""
from __future__ import annotations

import struct
from itertools import chain
from typing import Any, Callable

from otsensor.dissectors.modbus import tables as t

_H = struct.Struct(">H")
_HH = struct.Struct(">HH")
_HHH = struct.Struct(">HHH")
_HHHH = struct.Struct(">HHHH")

Fields = dict[str, Any]
Notes = list[tuple[str, str]]
Decoder = Callable[[bytes, Fields, Notes], Fields]


class Malformed(Exception):
    def __init__(self, anomaly: str, reason: str) -> None:
        super().__init__(reason)
        self.anomaly = anomaly
        self.reason = reason


def need(body: bytes, n: int, what: str) -> None:
    if len(body) < n:
        raise Malformed("modbus.truncated_pdu", f"{what}: {len(body)} bytes, needs {n}")


def exact(body: bytes, n: int, what: str, notes: Notes) -> None:
    need(body, n, what)
    if len(body) != n:
        notes.append(("modbus.length_mismatch", f"{what}: {len(body)} bytes, expected {n}"))


def registers(data: bytes) -> list[int]:
    return list(struct.unpack(f">{len(data) // 2}H", data[: len(data) // 2 * 2]))


# Each byte value's eight bits, least significant first (spec 6.1: coil 0 is bit 0 of the first byte).
BYTE_BITS = tuple(tuple((value >> i) & 1 for i in range(8)) for value in range(256))


def bits(data: bytes, count: int) -> list[int]:
    """The first ``count`` bits of ``data`` (as many as there are, if fewer), by table rather than per bit."""
    out = list(chain.from_iterable(map(BYTE_BITS.__getitem__, data)))
    if count < len(out):
        del out[max(count, 0):]
    return out


def quantity_check(qty: int, low: int, high: int, notes: Notes) -> None:
    if not low <= qty <= high:
        notes.append(("modbus.quantity_out_of_range", f"quantity {qty} outside {low}..{high}"))


def byte_counted(body: bytes, offset: int, notes: Notes, what: str) -> bytes:
    """The data after a one-byte count at ``offset``; notes a count that disagrees with the data."""
    need(body, offset + 1, what)
    count = body[offset]
    data = body[offset + 1:]
    if count != len(data):
        notes.append(("modbus.byte_count_mismatch", f"{what}: byte count {count}, {len(data)} bytes follow"))
        data = data[:count]
    return data


# -- requests ----------------------------------------------------------------------------------------------

def read_request(limit: int) -> Decoder:
    def decode(body: bytes, _req: Fields, notes: Notes) -> Fields:
        exact(body, 4, "read request", notes)
        address, quantity = _HH.unpack_from(body)
        quantity_check(quantity, 1, limit, notes)
        return {"address": address, "quantity": quantity}
    return decode


def write_single_coil(body: bytes, _req: Fields, notes: Notes) -> Fields:
    exact(body, 4, "write single coil", notes)
    address, value = _HH.unpack_from(body)
    if value not in (0x0000, 0xFF00):
        notes.append(("modbus.invalid_value", f"coil value 0x{value:04x} is neither 0x0000 nor 0xFF00"))
    return {"address": address, "quantity": 1, "values": [1 if value == 0xFF00 else 0 if value == 0 else value]}


def write_single_register(body: bytes, _req: Fields, notes: Notes) -> Fields:
    exact(body, 4, "write single register", notes)
    address, value = _HH.unpack_from(body)
    return {"address": address, "quantity": 1, "values": [value]}


def write_multiple_coils(body: bytes, _req: Fields, notes: Notes) -> Fields:
    need(body, 5, "write multiple coils")
    address, quantity = _HH.unpack_from(body)
    quantity_check(quantity, 1, 1968, notes)
    data = byte_counted(body, 4, notes, "write multiple coils")
    if len(data) != (quantity + 7) // 8:
        notes.append(("modbus.byte_count_mismatch", f"{quantity} coils need {(quantity + 7) // 8} bytes, got {len(data)}"))
    return {"address": address, "quantity": quantity, "values": bits(data, quantity)}


def write_multiple_registers(body: bytes, _req: Fields, notes: Notes) -> Fields:
    need(body, 5, "write multiple registers")
    address, quantity = _HH.unpack_from(body)
    quantity_check(quantity, 1, 123, notes)
    data = byte_counted(body, 4, notes, "write multiple registers")
    if len(data) != quantity * 2:
        notes.append(("modbus.byte_count_mismatch", f"{quantity} registers need {quantity * 2} bytes, got {len(data)}"))
    return {"address": address, "quantity": quantity, "values": registers(data)}


def diagnostics(body: bytes, _req: Fields, notes: Notes) -> Fields:
    need(body, 2, "diagnostics")
    sub = _H.unpack_from(body)[0]
    data = body[2:]
    fields: Fields = {"sub_function": sub, "sub_function_name": t.diagnostic_name(sub), "values": registers(data)}
    if len(data) % 2:
        notes.append(("modbus.length_mismatch", f"diagnostics data of odd length {len(data)}"))
    return fields


def mask_write(body: bytes, _req: Fields, notes: Notes) -> Fields:
    exact(body, 6, "mask write register", notes)
    address, and_mask, or_mask = _HHH.unpack_from(body)
    return {"address": address, "quantity": 1, "and_mask": and_mask, "or_mask": or_mask}


def read_write_request(body: bytes, _req: Fields, notes: Notes) -> Fields:
    need(body, 9, "read/write multiple registers")
    read_addr, read_qty, write_addr, write_qty = _HHHH.unpack_from(body)
    quantity_check(read_qty, 1, 125, notes)
    quantity_check(write_qty, 1, 121, notes)
    data = byte_counted(body, 8, notes, "read/write multiple registers")
    if len(data) != write_qty * 2:
        notes.append(("modbus.byte_count_mismatch", f"{write_qty} registers need {write_qty * 2} bytes, got {len(data)}"))
    return {"address": write_addr, "quantity": write_qty, "values": registers(data),
            "read_address": read_addr, "read_quantity": read_qty,
            "write_address": write_addr, "write_quantity": write_qty}


def fifo_request(body: bytes, _req: Fields, notes: Notes) -> Fields:
    exact(body, 2, "read FIFO queue", notes)
    return {"address": _H.unpack_from(body)[0]}


def no_body(body: bytes, _req: Fields, notes: Notes) -> Fields:
    if body:
        notes.append(("modbus.length_mismatch", f"{len(body)} unexpected bytes after the function code"))
    return {}


def file_record_request(body: bytes, _req: Fields, notes: Notes) -> Fields:
    data = byte_counted(body, 0, notes, "read file record")
    records = []
    for off in range(0, len(data) - 6, 7):
        ref, file_no, rec_no, rec_len = struct.unpack_from(">BHHH", data, off)
        records.append({"reference_type": ref, "file_number": file_no, "record_number": rec_no, "record_length": rec_len})
    if len(data) % 7:
        notes.append(("modbus.byte_count_mismatch", f"file sub-requests of {len(data)} bytes are not 7-byte units"))
    return {"file_records": records}


def write_file_record(body: bytes, _req: Fields, notes: Notes) -> Fields:
    data = byte_counted(body, 0, notes, "write file record")
    records, off = [], 0
    while off + 7 <= len(data):
        ref, file_no, rec_no, rec_len = struct.unpack_from(">BHHH", data, off)
        values = registers(data[off + 7:off + 7 + rec_len * 2])
        records.append({"reference_type": ref, "file_number": file_no, "record_number": rec_no,
                        "record_length": rec_len, "values": values})
        off += 7 + rec_len * 2
    if off != len(data):
        notes.append(("modbus.byte_count_mismatch", "write file record sub-requests overrun the byte count"))
    return {"file_records": records}


def mei_request(body: bytes, _req: Fields, notes: Notes) -> Fields:
    need(body, 1, "encapsulated interface transport")
    mei = body[0]
    fields: Fields = {"mei_type": mei, "mei_name": t.MEI_NAMES.get(mei, f"unknown-{mei}")}
    if mei == 14:
        exact(body, 3, "read device identification", notes)
        fields["read_device_id_code"] = t.READ_DEVICE_ID_CODES.get(body[1], f"unknown-{body[1]}")
        fields["object_id"] = body[2]
    else:
        fields["mei_data"] = body[1:].hex()
    return fields


# -- responses ---------------------------------------------------------------------------------------------

def read_bits_response(body: bytes, req: Fields, notes: Notes) -> Fields:
    data = byte_counted(body, 0, notes, "read bits response")
    count = req.get("quantity") or len(data) * 8
    return {"values": bits(data, count)}


def read_registers_response(body: bytes, _req: Fields, notes: Notes) -> Fields:
    data = byte_counted(body, 0, notes, "read registers response")
    if len(data) % 2:
        notes.append(("modbus.byte_count_mismatch", f"odd register byte count {len(data)}"))
    return {"values": registers(data)}


def address_quantity_echo(body: bytes, _req: Fields, notes: Notes) -> Fields:
    exact(body, 4, "write multiple response", notes)
    address, quantity = _HH.unpack_from(body)
    return {"address": address, "quantity": quantity}


def exception_status_response(body: bytes, _req: Fields, notes: Notes) -> Fields:
    exact(body, 1, "read exception status response", notes)
    return {"values": [body[0]]}


def comm_event_counter_response(body: bytes, _req: Fields, notes: Notes) -> Fields:
    exact(body, 4, "comm event counter response", notes)
    status, count = _HH.unpack_from(body)
    return {"status": status, "event_count": count}


def comm_event_log_response(body: bytes, _req: Fields, notes: Notes) -> Fields:
    data = byte_counted(body, 0, notes, "comm event log response")
    need(data, 6, "comm event log response")
    status, event_count, message_count = _HHH.unpack_from(data)
    return {"status": status, "event_count": event_count, "message_count": message_count,
            "events": list(data[6:])}


def report_server_id_response(body: bytes, _req: Fields, notes: Notes) -> Fields:
    data = byte_counted(body, 0, notes, "report server id response")
    need(data, 1, "report server id response")
    run = data[-1]
    return {"server_id": data[:-1].hex(), "server_id_text": _printable(data[:-1]),
            "run_indicator": "ON" if run == 0xFF else "OFF" if run == 0 else f"unknown-{run}"}


def file_record_response(body: bytes, _req: Fields, notes: Notes) -> Fields:
    data = byte_counted(body, 0, notes, "read file record response")
    records, off = [], 0
    while off + 2 <= len(data):
        length, ref = data[off], data[off + 1]
        records.append({"reference_type": ref, "values": registers(data[off + 2:off + 1 + length])})
        off += 1 + max(length, 1)
    return {"file_records": records}


def fifo_response(body: bytes, _req: Fields, notes: Notes) -> Fields:
    need(body, 4, "read FIFO queue response")
    byte_count, fifo_count = _HH.unpack_from(body)
    data = body[4:]
    if byte_count != len(data) + 2 or fifo_count * 2 != len(data):
        notes.append(("modbus.byte_count_mismatch", f"FIFO byte count {byte_count}, count {fifo_count}, {len(data)} bytes"))
    if fifo_count > 31:
        notes.append(("modbus.quantity_out_of_range", f"FIFO count {fifo_count} above 31"))
    return {"quantity": fifo_count, "values": registers(data)}


def read_write_response(body: bytes, _req: Fields, notes: Notes) -> Fields:
    return read_registers_response(body, _req, notes)


def mei_response(body: bytes, _req: Fields, notes: Notes) -> Fields:
    need(body, 1, "encapsulated interface transport response")
    mei = body[0]
    fields: Fields = {"mei_type": mei, "mei_name": t.MEI_NAMES.get(mei, f"unknown-{mei}")}
    if mei != 14:
        fields["mei_data"] = body[1:].hex()
        return fields
    need(body, 6, "read device identification response")
    code, conformity, more, next_id, count = body[1:6]
    fields.update({"read_device_id_code": t.READ_DEVICE_ID_CODES.get(code, f"unknown-{code}"),
                   "conformity_level": t.CONFORMITY_LEVELS.get(conformity, f"unknown-{conformity}"),
                   "more_follows": more == 0xFF, "next_object_id": next_id})
    objects: dict[str, str] = {}
    off = 6
    for _ in range(count):
        if off + 2 > len(body):
            notes.append(("modbus.truncated_pdu", f"device identification lists {count} objects, data ends after {len(objects)}"))
            break
        obj_id, length = body[off], body[off + 1]
        value = body[off + 2:off + 2 + length]
        if len(value) < length:
            notes.append(("modbus.truncated_pdu", f"device identification object {obj_id} cut short"))
        objects[t.device_object_name(obj_id)] = _printable(value)
        off += 2 + length
    fields["device_identification"] = objects
    return fields


def _printable(data: bytes) -> str:
    return data.decode("latin-1").replace("\x00", "").strip()


# code -> (request decoder, response decoder)
DECODERS: dict[int, tuple[Decoder, Decoder]] = {
    1: (read_request(2000), read_bits_response),
    2: (read_request(2000), read_bits_response),
    3: (read_request(125), read_registers_response),
    4: (read_request(125), read_registers_response),
    5: (write_single_coil, write_single_coil),
    6: (write_single_register, write_single_register),
    7: (no_body, exception_status_response),
    8: (diagnostics, diagnostics),
    11: (no_body, comm_event_counter_response),
    12: (no_body, comm_event_log_response),
    15: (write_multiple_coils, address_quantity_echo),
    16: (write_multiple_registers, address_quantity_echo),
    17: (no_body, report_server_id_response),
    20: (file_record_request, file_record_response),
    21: (write_file_record, write_file_record),
    22: (mask_write, mask_write),
    23: (read_write_request, read_write_response),
    24: (fifo_request, fifo_response),
    43: (mei_request, mei_response),
}


def opaque(body: bytes, _req: Fields, _notes: Notes) -> Fields:
    """User-defined and reserved codes: kept as raw data, not dropped."""
    return {"data": body[:256].hex()} if body else {}


def decode_body(code: int, is_request: bool, body: bytes, req: Fields, notes: Notes) -> Fields:
    pair = DECODERS.get(code)
    decoder = opaque if pair is None else pair[0 if is_request else 1]
    return decoder(body, req, notes)
