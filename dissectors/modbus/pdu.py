"""Modbus PDU bodies: one small decoder per request and per response shape, chosen from a table.

A decoder takes the PDU body (after the function code), the request's
decoded :class:`Pdu` when decoding a response (to size coil lists), and a list
to which it appends non-fatal ``(anomaly, reason)`` notes.  It returns a
:class:`Pdu`: the fields every function may have (address, quantity, values)
and, for the functions that carry more, one typed detail object.  A body too
short for its fixed fields raises :class:`Malformed`; the dissector turns that
into an anomaly and keeps the transaction with its raw bytes.
"""
from __future__ import annotations

import struct
from itertools import chain
from typing import Callable

from otsensor.dissectors.modbus import tables as t
from otsensor.dissectors.modbus.details import (CommEvents, Diagnostic, FileRecords, MaskWrite, Mei, Opaque, Pdu,
                                                ReadWrite, ServerId)

_H = struct.Struct(">H")
_HH = struct.Struct(">HH")
_HHH = struct.Struct(">HHH")
_HHHH = struct.Struct(">HHHH")
_FILE_SUB = struct.Struct(">BHHH")

Notes = list[tuple[str, str]]


class Malformed(Exception):
    def __init__(self, anomaly: str, reason: str) -> None:
        super().__init__(reason)
        self.anomaly = anomaly
        self.reason = reason


Decoder = Callable[[bytes, "Pdu | None", Notes], Pdu]


# -- shared checks -----------------------------------------------------------------------------------------

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


def _printable(data: bytes) -> str:
    return data.decode("latin-1").replace("\x00", "").strip()


# -- requests ----------------------------------------------------------------------------------------------

def read_request(limit: int) -> Decoder:
    def decode(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
        exact(body, 4, "read request", notes)
        address, quantity = _HH.unpack_from(body)
        quantity_check(quantity, 1, limit, notes)
        return Pdu(address, quantity)
    return decode


def write_single_coil(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    exact(body, 4, "write single coil", notes)
    address, value = _HH.unpack_from(body)
    if value not in (0x0000, 0xFF00):
        notes.append(("modbus.invalid_value", f"coil value 0x{value:04x} is neither 0x0000 nor 0xFF00"))
    return Pdu(address, 1, [1 if value == 0xFF00 else 0 if value == 0 else value])


def write_single_register(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    exact(body, 4, "write single register", notes)
    address, value = _HH.unpack_from(body)
    return Pdu(address, 1, [value])


def write_multiple_coils(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    need(body, 5, "write multiple coils")
    address, quantity = _HH.unpack_from(body)
    quantity_check(quantity, 1, 1968, notes)
    data = byte_counted(body, 4, notes, "write multiple coils")
    if len(data) != (quantity + 7) // 8:
        notes.append(("modbus.byte_count_mismatch", f"{quantity} coils need {(quantity + 7) // 8} bytes, got {len(data)}"))
    return Pdu(address, quantity, bits(data, quantity))


def write_multiple_registers(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    need(body, 5, "write multiple registers")
    address, quantity = _HH.unpack_from(body)
    quantity_check(quantity, 1, 123, notes)
    data = byte_counted(body, 4, notes, "write multiple registers")
    if len(data) != quantity * 2:
        notes.append(("modbus.byte_count_mismatch", f"{quantity} registers need {quantity * 2} bytes, got {len(data)}"))
    return Pdu(address, quantity, registers(data))


def diagnostics(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    need(body, 2, "diagnostics")
    sub = _H.unpack_from(body)[0]
    data = body[2:]
    if len(data) % 2:
        notes.append(("modbus.length_mismatch", f"diagnostics data of odd length {len(data)}"))
    return Pdu(values=registers(data), detail=Diagnostic(sub))


def mask_write(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    exact(body, 6, "mask write register", notes)
    address, and_mask, or_mask = _HHH.unpack_from(body)
    return Pdu(address, 1, detail=MaskWrite(and_mask, or_mask))


def read_write_request(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    need(body, 9, "read/write multiple registers")
    read_addr, read_qty, write_addr, write_qty = _HHHH.unpack_from(body)
    quantity_check(read_qty, 1, 125, notes)
    quantity_check(write_qty, 1, 121, notes)
    data = byte_counted(body, 8, notes, "read/write multiple registers")
    if len(data) != write_qty * 2:
        notes.append(("modbus.byte_count_mismatch", f"{write_qty} registers need {write_qty * 2} bytes, got {len(data)}"))
    return Pdu(write_addr, write_qty, registers(data), ReadWrite(read_addr, read_qty, write_addr, write_qty))


def fifo_request(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    exact(body, 2, "read FIFO queue", notes)
    return Pdu(_H.unpack_from(body)[0])


def no_body(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    if body:
        notes.append(("modbus.length_mismatch", f"{len(body)} unexpected bytes after the function code"))
    return Pdu()


def file_record_request(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    data = byte_counted(body, 0, notes, "read file record")
    records = []
    for off in range(0, len(data) - 6, 7):
        ref, file_no, rec_no, rec_len = _FILE_SUB.unpack_from(data, off)
        records.append({"reference_type": ref, "file_number": file_no, "record_number": rec_no,
                        "record_length": rec_len})
    if len(data) % 7:
        notes.append(("modbus.byte_count_mismatch", f"file sub-requests of {len(data)} bytes are not 7-byte units"))
    return Pdu(detail=FileRecords(records))


def write_file_record(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    data = byte_counted(body, 0, notes, "write file record")
    records, off = [], 0
    while off + 7 <= len(data):
        ref, file_no, rec_no, rec_len = _FILE_SUB.unpack_from(data, off)
        values = registers(data[off + 7:off + 7 + rec_len * 2])
        records.append({"reference_type": ref, "file_number": file_no, "record_number": rec_no,
                        "record_length": rec_len, "values": values})
        off += 7 + rec_len * 2
    if off != len(data):
        notes.append(("modbus.byte_count_mismatch", "write file record sub-requests overrun the byte count"))
    return Pdu(detail=FileRecords(records))


def mei_request(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    need(body, 1, "encapsulated interface transport")
    mei = Mei(body[0])
    if mei.mei_type == 14:
        exact(body, 3, "read device identification", notes)
        mei.read_device_id_code = t.READ_DEVICE_ID_CODES.get(body[1], f"unknown-{body[1]}")
        mei.object_id = body[2]
    else:
        mei.mei_data = body[1:].hex()
    return Pdu(detail=mei)


# -- responses ---------------------------------------------------------------------------------------------

def read_bits_response(body: bytes, req: Pdu | None, notes: Notes) -> Pdu:
    data = byte_counted(body, 0, notes, "read bits response")
    count = (req.quantity if req is not None else None) or len(data) * 8
    return Pdu(values=bits(data, count))


def read_registers_response(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    data = byte_counted(body, 0, notes, "read registers response")
    if len(data) % 2:
        notes.append(("modbus.byte_count_mismatch", f"odd register byte count {len(data)}"))
    return Pdu(values=registers(data))


def address_quantity_echo(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    exact(body, 4, "write multiple response", notes)
    address, quantity = _HH.unpack_from(body)
    return Pdu(address, quantity)


def exception_status_response(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    exact(body, 1, "read exception status response", notes)
    return Pdu(values=[body[0]])


def comm_event_counter_response(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    exact(body, 4, "comm event counter response", notes)
    status, count = _HH.unpack_from(body)
    return Pdu(detail=CommEvents(status, count))


def comm_event_log_response(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    data = byte_counted(body, 0, notes, "comm event log response")
    need(data, 6, "comm event log response")
    status, event_count, message_count = _HHH.unpack_from(data)
    return Pdu(detail=CommEvents(status, event_count, message_count, list(data[6:])))


def report_server_id_response(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    data = byte_counted(body, 0, notes, "report server id response")
    need(data, 1, "report server id response")
    run = data[-1]
    indicator = "ON" if run == 0xFF else "OFF" if run == 0 else f"unknown-{run}"
    return Pdu(detail=ServerId(data[:-1].hex(), _printable(data[:-1]), indicator))


def file_record_response(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    data = byte_counted(body, 0, notes, "read file record response")
    records, off = [], 0
    while off + 2 <= len(data):
        length, ref = data[off], data[off + 1]
        # a zero length ends the record before its values start: an empty slice, never one whose end is
        # before its start (the compiled build's bytes slice does not allow that)
        values = data[off + 2:off + 1 + length] if length else b""
        records.append({"reference_type": ref, "values": registers(values)})
        off += 1 + max(length, 1)
    return Pdu(detail=FileRecords(records))


def fifo_response(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    need(body, 4, "read FIFO queue response")
    byte_count, fifo_count = _HH.unpack_from(body)
    data = body[4:]
    if byte_count != len(data) + 2 or fifo_count * 2 != len(data):
        notes.append(("modbus.byte_count_mismatch", f"FIFO byte count {byte_count}, count {fifo_count}, {len(data)} bytes"))
    if fifo_count > 31:
        notes.append(("modbus.quantity_out_of_range", f"FIFO count {fifo_count} above 31"))
    return Pdu(quantity=fifo_count, values=registers(data))


def mei_response(body: bytes, _req: Pdu | None, notes: Notes) -> Pdu:
    need(body, 1, "encapsulated interface transport response")
    mei = Mei(body[0])
    if mei.mei_type != 14:
        mei.mei_data = body[1:].hex()
        return Pdu(detail=mei)
    need(body, 6, "read device identification response")
    code, conformity, more, next_id, count = body[1:6]
    mei.read_device_id_code = t.READ_DEVICE_ID_CODES.get(code, f"unknown-{code}")
    mei.conformity_level = t.CONFORMITY_LEVELS.get(conformity, f"unknown-{conformity}")
    mei.more_follows = more == 0xFF
    mei.next_object_id = next_id
    mei.objects = device_objects(body, count, notes)
    return Pdu(detail=mei)


def device_objects(body: bytes, count: int, notes: Notes) -> dict[str, str]:
    """The objects of a Read Device Identification response (spec 6.21), by name."""
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
    return objects


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
    23: (read_write_request, read_registers_response),
    24: (fifo_request, fifo_response),
    43: (mei_request, mei_response),
}


def opaque(body: bytes, _req: Pdu | None, _notes: Notes) -> Pdu:
    """User-defined and reserved codes: kept as raw data, not dropped."""
    return Pdu(detail=Opaque(body[:256].hex())) if body else Pdu()


def decode_body(code: int, is_request: bool, body: bytes, req: Pdu | None, notes: Notes) -> Pdu:
    pair = DECODERS.get(code)
    decoder = opaque if pair is None else pair[0 if is_request else 1]
    decoded = decoder(body, req, notes)
    decoded.body = body
    return decoded
