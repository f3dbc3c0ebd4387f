"""EtherNet/IP and CIP in ICSNPP's enip, cip, cip_io and cip_identity logs, as icsnpp-enip writes them.

ICSNPP logs each encapsulation message (``enip.log``), each CIP message it
finds in one (``cip.log``: a request's class, instance and attribute, a
response's status, and a Multiple Service Packet's embedded services as rows
of their own), each implicit I/O datagram (``cip_io.log``) and each identity
item of a ListIdentity reply (``cip_identity.log``), one row per message.
Its analyzer reads the CIP bytes its own way, and so does this module, from
the bytes of each message: a request path's logical segments until the first
other one, the last class/instance/attribute winning (a 32-bit id assembled
with its third byte shifted 13 bits, an ICSNPP bug), the extended status's
bytes read most significant first (an ICSNPP byte-order bug), a response's
embedded services' status byte.  Its names come from its own tables
(icsnpp-enip scripts/consts.zeek).  Our JSONL keeps the correct values.
"""
from __future__ import annotations

import ipaddress
import struct
from typing import TYPE_CHECKING, Any, Final

from otsensor.dissectors.base import Direction
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.vendors import DEVICE_TYPES, VENDORS
from otsensor.dissectors.zeek import ZeekConn, ZeekEvent, ZeekLog, ZeekRow, ZeekScript, link_id

if TYPE_CHECKING:
    from otsensor.dissectors.enip.records import CipIdentity, CipIO, CipRecord, EnipRecord

ENIP = ZeekLog("enip", "packet_correlation_id:string enip_command_code:string enip_command:string length:count "
                       "session_handle:string enip_status:string sender_context:string options:string",
               per_message=True, service="enip", first_service=True)
CIP = ZeekLog("cip", "packet_correlation_id:string cip_sequence_count:count direction:string "
                     "cip_service_code:string cip_service:string cip_status_code:string cip_status:string "
                     "cip_extended_status_code:string cip_extended_status:string class_id:string class_name:string "
                     "instance_id:string attribute_id:string", per_message=True, service="cip", first_service=True)
CIP_IO = ZeekLog("cip_io", "packet_correlation_id:string connection_id:string sequence_number:count "
                           "data_length:count io_data:string", per_message=True, service="cip", first_service=True)
CIP_IDENTITY = ZeekLog("cip_identity",
                       "packet_correlation_id:string encapsulation_version:count socket_address:addr socket_port:count "
                       "vendor_id:count vendor_name:string device_type_id:count device_type_name:string "
                       "product_code:count revision:string device_status:string serial_number:string "
                       "product_name:string device_state:string", per_message=True, service="cip", first_service=True)
MULTIPLE_SERVICE: Final = 0x0A
_U16: Final = struct.Struct("<H")


def _correlation(conn: ZeekConn, event: ZeekEvent) -> str:
    """ICSNPP's packet_correlation_id ties a message's enip row to its cip rows; drawn at random there, derived
    from the message here."""
    return link_id("enip", conn.uid, event.direction, event.ts)


class EnipScript(ZeekScript):
    """icsnpp-enip's handlers, one instance per run."""

    LOGS = (ENIP, CIP, CIP_IO, CIP_IDENTITY)

    def event(self, conn: ZeekConn, event: ZeekEvent) -> list[ZeekRow]:
        return HANDLERS[event.kind](conn, event)


def _enip(conn: ZeekConn, event: ZeekEvent) -> list[ZeekRow]:
    record: EnipRecord = event.data
    hdr = record.header
    return [ZeekRow(ENIP, event.ts, {
        "packet_correlation_id": _correlation(conn, event), "enip_command_code": f"0x{hdr.command:02x}",
        "enip_command": ICSNPP_ENIP_COMMANDS.get(hdr.command, "unknown"), "length": hdr.length,
        "session_handle": f"0x{hdr.session:08x}",
        "enip_status": T.ENIP_STATUSES.get(hdr.status, f"Unknown ENIP Status-0x{hdr.status:02x}"),
        "sender_context": "0x" + hdr.context.hex(), "options": f"0x{hdr.options:08x}"}, event.direction)]


def _cip(conn: ZeekConn, event: ZeekEvent) -> list[ZeekRow]:
    """One CIP message: its row, and a Multiple Service Packet's embedded services' rows."""
    raw, sequence = event.data
    if not raw:
        return []
    service = raw[0]
    path, rest = _path(raw)
    head = {"packet_correlation_id": _correlation(conn, event),
            "cip_sequence_count": sequence or None}
    if service >> 7:
        status, extended, data = _status(rest)
        rows = [_response_row(head, service & 0x7F, status, extended)]
        if service & 0x7F == MULTIPLE_SERVICE:
            rows += [_response_row(head, code, child_status, None) for code, child_status in _msp_responses(data)]
    else:
        rows = [_request_row(head, service & 0x7F, _request_path(path))]
        if service & 0x7F == MULTIPLE_SERVICE:
            rows += [_request_row(head, code, ids) for code, ids in _msp_requests(rest)]
    return [ZeekRow(CIP, event.ts, values, event.direction) for values in rows]


def _request_row(head: dict[str, Any], code: int, ids: tuple[int | None, int | None, int | None]) -> dict[str, Any]:
    class_id, instance_id, attribute_id = ids
    return {**head, "direction": "request", "cip_service_code": f"0x{code:02x}",
            "cip_service": ICSNPP_CIP_SERVICES.get(code, "unknown"),
            "class_id": None if class_id is None else f"0x{class_id:02x}",
            "class_name": None if class_id is None else ICSNPP_CIP_CLASSES.get(class_id, "unknown"),
            "instance_id": None if instance_id is None else f"0x{instance_id:02x}",
            "attribute_id": None if attribute_id is None else f"0x{attribute_id:02x}"}


def _response_row(head: dict[str, Any], code: int, status: int | None, extended: int | None) -> dict[str, Any]:
    values = {**head, "direction": "response", "cip_service_code": f"0x{code:02x}",
              "cip_service": ICSNPP_CIP_SERVICES.get(code, "unknown")}
    if status is not None:
        values["cip_status_code"] = f"0x{status:02x}"
        values["cip_status"] = T.CIP_STATUSES.get(status, f"Unknown CIP Status-0x{status:02x}")
    if extended is not None:
        values["cip_extended_status_code"] = f"0x{extended:04x}"
        values["cip_extended_status"] = T.CM_EXTENDED_STATUSES.get(
            extended, f"Unknown Extended Status-0x{extended:04x}")
    return values


def _path(raw: bytes) -> tuple[bytes, bytes]:
    """The request path (a response's reserved byte reads as an empty one) and what follows it."""
    size = raw[1] if len(raw) > 1 else 0
    return raw[2:2 + 2 * size], raw[2 + 2 * size:]


def _status(rest: bytes) -> tuple[int | None, int | None, bytes]:
    """General status and extended status; the extended status's bytes most significant first (ICSNPP)."""
    if not rest:
        return None, None, b""
    status = rest[0]
    extra = rest[1] if len(rest) > 1 else 0
    ext = rest[2:2 + extra]
    extended = int.from_bytes(ext[:4], "big") if ext else None
    return status, extended, rest[2 + extra:]


def _segment_value(size: int, data: bytes, x: int) -> int | None:
    """get_number: a logical segment's value, with ICSNPP's shift of 13 for a 32-bit id's third byte."""
    try:
        if size == 0:
            return data[x]
        if size == 1:
            return (data[x + 1] << 8) | data[x]
        if size == 2:
            return (data[x + 3] << 24) | (data[x + 2] << 13) | (data[x + 1] << 8) | data[x]
    except IndexError:
        return None
    return None


def _request_path(data: bytes, x: int = 0) -> tuple[int | None, int | None, int | None]:
    """ICSNPP's parse_request_path: class, instance and attribute of the logical segments before any other."""
    ids: list[int | None] = [None, None, None]
    while x + 1 < len(data):
        if data[x] >> 5 != 1:
            break
        choice, size = (data[x] & 0x1C) >> 2, data[x] & 3
        x += 2 if size > 0 else 1
        slot = {0: 0, 1: 1, 4: 2}.get(choice)
        if slot is not None:
            ids[slot] = _segment_value(size, data, x)
        x += 1 if size == 0 else 2 if size == 1 else 4
    return ids[0], ids[1], ids[2]


def _msp_services(data: bytes) -> list[tuple[bytes, int]]:
    """The services bytes of a Multiple Service Packet and where each embedded service starts in them."""
    if len(data) < 2:
        return []
    count = _U16.unpack_from(data, 0)[0]
    if len(data) < 2 + 2 * count:
        return []
    services = data[2 + 2 * count:]
    starts = [_U16.unpack_from(data, 2 + 2 * i)[0] - 2 * count - 2 for i in range(count)]
    return [(services, start) for start in starts if 0 <= start < len(services)]


def _msp_requests(data: bytes) -> list[tuple[int, tuple[int | None, int | None, int | None]]]:
    out = []
    for services, start in _msp_services(data):
        size_at = start + 1
        end = size_at + (services[size_at] * 2 if size_at < len(services) else 0) + 1
        path = services[:end]
        out.append((services[start] & 0x7F, _request_path(path, size_at + 1) if size_at < len(services)
                    else (None, None, None)))
    return out


def _msp_responses(data: bytes) -> list[tuple[int, int | None]]:
    return [(services[start] & 0x7F, services[start + 2] if start + 2 < len(services) else None)
            for services, start in _msp_services(data)]


def _cip_io(conn: ZeekConn, event: ZeekEvent) -> list[ZeekRow]:
    record: CipIO = event.data
    return [ZeekRow(CIP_IO, event.ts, {
        "packet_correlation_id": _correlation(conn, event), "connection_id": f"0x{record.connection_id:08x}",
        "sequence_number": record.sequence_number, "data_length": len(record.data), "io_data": record.data.hex()},
        event.direction)]


def _cip_identity(conn: ZeekConn, event: ZeekEvent) -> list[ZeekRow]:
    record: CipIdentity = event.data
    listed, ident = record.listed, record.ident
    assert listed is not None
    major, _, minor = ident.revision.partition(".")
    return [ZeekRow(CIP_IDENTITY, event.ts, {
        "packet_correlation_id": _correlation(conn, event), "encapsulation_version": listed.version,
        "socket_address": ipaddress.ip_address(listed.socket_address), "socket_port": listed.socket_port,
        "vendor_id": ident.vendor_id,
        "vendor_name": VENDORS.get(ident.vendor_id, f"Unknown Vendor-0x{ident.vendor_id:02x}"),
        "device_type_id": ident.device_type_id,
        "device_type_name": DEVICE_TYPES.get(ident.device_type_id, f"Unknown Device-0x{ident.device_type_id:02x}"),
        "product_code": ident.product_code, "revision": f"{int(major or 0)}.{int(minor or 0)}",
        "device_status": f"0x{ident.device_status:04x}", "serial_number": f"0x{ident.serial_number:08x}",
        "product_name": ident.product_name,
        "device_state": None if ident.device_state is None else f"0x{ident.device_state:04x}"}, event.direction)]


HANDLERS = {"enip": _enip, "cip": _cip, "cip_io": _cip_io, "cip_identity": _cip_identity}


# -- the events each record holds ------------------------------------------------------------------------------

def enip_events(record: EnipRecord) -> tuple[ZeekEvent, ...]:
    return (ZeekEvent(record.ts, Direction.ORIG if record.is_orig else Direction.RESP, "enip", record),)


def cip_events(record: CipRecord) -> tuple[ZeekEvent, ...]:
    """The messages of a top-level CIP exchange as they were on the wire (embedded services are rows of their
    carrier's message)."""
    if record.msp_index is not None:
        return ()
    asked = Direction.ORIG if record.is_orig else Direction.RESP
    events = []
    if record.wire_request is not None:
        events.append(ZeekEvent(record.ts, asked, "cip", (record.wire_request.raw, record.sequence_count)))
    if record.response is not None:
        ts = record.response_ts if record.response_ts is not None else record.ts
        events.append(ZeekEvent(ts, Direction(1 - asked), "cip", (record.response.raw, record.sequence_count)))
    return tuple(events)


def io_events(record: CipIO) -> tuple[ZeekEvent, ...]:
    return (ZeekEvent(record.ts, Direction.ORIG if record.is_orig else Direction.RESP, "cip_io", record),)


def identity_events(record: CipIdentity) -> tuple[ZeekEvent, ...]:
    if record.listed is None:   # an identity read with Get Attributes All: ICSNPP logs ListIdentity items only
        return ()
    return (ZeekEvent(record.ts, record.sender, "cip_identity", record),)


# ICSNPP's names where they differ from ours (scripts/consts.zeek)
ICSNPP_ENIP_COMMANDS: Final = {code: name for code, name in T.ENIP_COMMANDS.items() if code != 0x0001}
ICSNPP_CIP_SERVICES: Final = {**{code: name for code, name in T.CIP_SERVICES.items() if code not in (0x14,)},
                              0x17: "No Forward Open"}   # ICSNPP's name for No Operation (its mislabel)
ICSNPP_CIP_CLASSES: Final = {**{code: name for code, name in T.CIP_CLASSES.items() if "(Rockwell)" not in name},
                             0x00: ""}
