"""ICSNPP-s7comm's reading of one delivered chunk of stream, for the Zeek logs (dissectors/s7comm/zeek.py).

ICSNPP's analyzer is a binpac "datagram" parser: every chunk Zeek's TCP
reassembler delivers is read on its own as one TPKT, one COTP header and, when
the TPKT holds more than the COTP header, one S7comm or S7comm-plus PDU;
bytes after it are ignored, a PDU split over chunks is read from the part the
chunk holds.  Each part raises its event once it is read, in binpac's order
(a record's own event after the records inside it), and reading stops at the
first field the chunk does not hold: the events raised so far stand and the
chunk counts as a protocol violation.  This module reads the same fields the
same way and returns the events; it does not use our decoder (dissector.py),
whose reading is the correct one, kept in our JSONL.
"""
from __future__ import annotations

from typing import Any, Final

S7COMM_ID, S7PLUS_ID = 0x32, 0x72
JOB, ACK, ACK_DATA, USER_DATA = 0x01, 0x02, 0x03, 0x07
PLC_CONTROL = 0x28
REQUEST_DOWNLOAD, DOWNLOAD_BLOCK, DOWNLOAD_ENDED = 0x1A, 0x1B, 0x1C
START_UPLOAD, UPLOAD, END_UPLOAD = 0x1D, 0x1E, 0x1F
USERDATA_RESPONSE = 0x12
CPU_FUNCTIONS, READ_SZL = 0x04, 0x01
SZL_COMPONENT_ID = 0x001C
PLUS_REQUEST, PLUS_RESPONSE = 0x31, 0x32
NONE8, NONE16, NONE32 = 0xFF, 0xFFFF, 0xFFFFFFFF   # ICSNPP's "no value" arguments
# the identification records (SZL 0x001c) whose name ICSNPP reads: index -> the name's length
IDENT_NAMES: Final = {0x0001: 24, 0x0002: 24, 0x0003: 32, 0x0005: 24}
IDENT_RECORD = 34    # index and 32 bytes


class OutOfBound(Exception):
    """A field the chunk does not hold (binpac's out-of-bound or invalid-length exception)."""


class Reader:
    """Big-endian fields from one chunk, failing as binpac does past its end."""

    __slots__ = ("data", "pos")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise OutOfBound
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def u8(self) -> int:
        return self.take(1)[0]

    def u16(self) -> int:
        return int.from_bytes(self.take(2), "big")

    def u32(self) -> int:
        return int.from_bytes(self.take(4), "big")

    def rest(self) -> bytes:
        return self.take(len(self.data) - self.pos)


def swapped(reference: int) -> int:
    """ICSNPP quirk: the PDU reference read big-endian, then byte-swapped ("little endian" in its comment)."""
    return ((reference >> 8) | (reference << 8)) & 0xFFFF


def parse_chunk(data: bytes, is_orig: bool) -> tuple[list[tuple[Any, ...]], bool]:
    """The events ICSNPP raises for one chunk, and whether reading it failed (a violation)."""
    events: list[tuple[Any, ...]] = []
    r = Reader(data)
    try:
        _pdu(r, is_orig, events)
    except OutOfBound:
        return events, True
    return events, False


def _pdu(r: Reader, is_orig: bool, events: list[tuple[Any, ...]]) -> None:
    r.take(2)                      # TPKT version, reserved
    tpkt_length = r.u16()
    cotp_length = r.u8()
    pdu_type = r.u8() >> 4
    r.take(_cotp_body(pdu_type, cotp_length))
    events.append(("cotp", pdu_type))
    if tpkt_length - cotp_length == 5:   # ICSNPP's test for "no S7 data after the COTP header"
        return
    protocol = r.u8()
    if protocol == S7COMM_ID:
        _s7comm(r, is_orig, events)
    elif protocol == S7PLUS_ID:
        version, _length, digest = r.u8(), r.u16(), r.u8()
        r.take(digest)
        opcode, opcode_data = r.u8(), r.u32()
        function = opcode_data & 0xFFFF if opcode in (PLUS_REQUEST, PLUS_RESPONSE) else None
        events.append(("plus", version, opcode, function))


def _cotp_body(pdu_type: int, length: int) -> int:
    """How many bytes ICSNPP reads after the COTP PDU type (its fixed fields and variable part)."""
    fixed = {0x1: 3, 0x2: 3, 0x5: 3, 0x6: 3, 0x7: 3, 0x8: 5, 0xC: 4, 0xD: 5, 0xE: 5, 0xF: 1}.get(pdu_type, 0)
    rest = length - 1 - fixed
    if rest < 0:
        raise OutOfBound
    return fixed + rest


def _s7comm(r: Reader, is_orig: bool, events: list[tuple[Any, ...]]) -> None:
    rosctr = r.u8()
    if rosctr not in (JOB, ACK, ACK_DATA, USER_DATA):
        return
    r.take(2)                                  # redundancy id
    reference = swapped(r.u16())
    parameter_length, _data_length = r.u16(), r.u16()
    if rosctr == JOB:
        _job(r, reference, events)
    elif rosctr == ACK:
        error_class, error_code, function = r.u8(), r.u8(), r.u8()
        events.append(("s7comm", ACK, reference, function, NONE8, "", error_class, error_code))
    elif rosctr == ACK_DATA:
        _ack_data(r, reference, parameter_length, events)
    else:
        _user_data(r, is_orig, reference, events)


def _job(r: Reader, reference: int, events: list[tuple[Any, ...]]) -> None:
    function = r.u8()
    if function == PLC_CONTROL:
        r.take(7)                              # fixed header
        r.take(r.u16())                        # block
        service = r.take(r.u8())
        # ICSNPP quirk: PLC Control has its own event, with the PI service's name as the subfunction
        events.append(("s7comm", JOB, reference, PLC_CONTROL, NONE8, service.decode("latin-1"), NONE8, NONE8))
        return
    if function in (START_UPLOAD, UPLOAD, END_UPLOAD, REQUEST_DOWNLOAD, DOWNLOAD_BLOCK, DOWNLOAD_ENDED):
        status, _reserved, session = r.u8(), r.u16(), r.u32()
        filename = b""
        if function not in (UPLOAD, END_UPLOAD):
            filename = r.take(r.u8())
            if function == REQUEST_DOWNLOAD:
                r.take(r.u8())                 # parameter
        events.append(("transfer", JOB, reference, function, status, session, NONE16, filename))
    # ICSNPP quirk: a Job passes no error (0xff, 0xff), so s7comm.log shows none for it
    events.append(("s7comm", JOB, reference, function, NONE8, "", NONE8, NONE8))


def _ack_data(r: Reader, reference: int, parameter_length: int, events: list[tuple[Any, ...]]) -> None:
    error_class, error_code = r.u8(), r.u8()
    if parameter_length == 0:
        # ICSNPP quirk: its function switch reads the parameter byte it did not parse (binpac's invalid case)
        raise OutOfBound
    function = r.u8()
    transfer = _ack_transfer(r, function)
    if transfer is not None:
        events.append(("transfer", ACK_DATA, reference, function, *transfer))
    events.append(("s7comm", ACK_DATA, reference, function, NONE8, "", error_class, error_code))


def _ack_transfer(r: Reader, function: int) -> tuple[int, int, int, bytes] | None:
    """(status, session, block length, file name) of an upload/download acknowledgement ICSNPP reads."""
    if function == START_UPLOAD:
        status, _reserved, session = r.u8(), r.u16(), r.u32()
        return status, session, atoi(r.take(r.u8())), b""
    if function in (UPLOAD, DOWNLOAD_BLOCK):
        status, length, _reserved = r.u8(), r.u16(), r.u16()
        r.take(length)
        # ICSNPP passes a Download Block acknowledgement's status as "none"
        return (status if function == UPLOAD else NONE8), NONE32, length, b""
    if function in (END_UPLOAD, REQUEST_DOWNLOAD, DOWNLOAD_ENDED):
        return NONE8, NONE32, NONE16, b""
    return None


def atoi(text: bytes) -> int:
    """C's atoi, as ICSNPP reads the ASCII block length of a Start Upload acknowledgement."""
    text = text[:31].lstrip(b" \t\n\v\f\r")
    sign = -1 if text[:1] == b"-" else 1
    if text[:1] in (b"-", b"+"):
        text = text[1:]
    digits = b""
    for byte in text:
        if not 0x30 <= byte <= 0x39:
            break
        digits += bytes([byte])
    return sign * int(digits) if digits else 0


def _user_data(r: Reader, is_orig: bool, reference: int, events: list[tuple[Any, ...]]) -> None:
    r.take(4)                                  # parameter head, parameter length
    method, function, subfunction, _sequence = r.u8(), r.u8(), r.u8(), r.u8()
    if method == USERDATA_RESPONSE:
        data_reference, last_unit, error = r.u8(), r.u8(), r.u16()
    else:
        # ICSNPP quirk: a request passes error class 0xfe, code 0xffff: no error logged
        data_reference, last_unit, error = 0, 0, NONE16
    if function & 0x0F == CPU_FUNCTIONS and subfunction == READ_SZL:
        _read_szl(r, is_orig, reference, method, data_reference, last_unit, events)
    events.append(("s7comm", USER_DATA, reference, function, subfunction, "", 0xFE, error))


def _read_szl(r: Reader, is_orig: bool, reference: int, method: int, data_reference: int, last_unit: int,
              events: list[tuple[Any, ...]]) -> None:
    return_code, _transport, length, szl_id, szl_index = r.u8(), r.u8(), r.u16(), r.u16(), r.u16()
    if is_orig:                                # ICSNPP reads by Zeek's originator, not by request or response
        r.take(length - 4)
    else:
        r.take(2)                              # partial list length
        count = r.u16()
        if szl_id == SZL_COMPONENT_ID:
            for _ in range(count):
                index = r.u16()
                name = r.take(32)[:IDENT_NAMES.get(index, 0)]
                if name:
                    events.append(("ident", index, name))
        else:
            r.take(length - 8)
    # ICSNPP quirk: it logs a part that is not fragmented, or one that says more follow (sic), not the last
    if data_reference == 0 or last_unit == 1:
        events.append(("szl", reference, method, return_code, szl_id, szl_index))
