"""CIP explicit messages (Vol. 1 chapter 2 and Appendix A): request/response headers and service data.

``parse_request`` / ``parse_response`` turn message bytes into a :class:`Message`
whose ``info`` holds the decoded service data under record field names.  The
service-data decoders live in tables keyed by service code: the common
services here, the Connection Manager's in ``connmgr.py``, the Logix tag
services in ``logix.py``, Execute PCCC in ``pccc.py``; which table applies
depends on the class the request path names.  A service without a decoder
keeps its data as a capped hex string.
"""
from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.epath import Path, parse_path

MAX_MSP_SERVICES = 64      # cap on the services of one Multiple Service Packet
MAX_NESTING = 4            # MSP inside Unconnected Send inside MSP ...: deeper is flagged
DATA_HEX_CAP = 64          # bytes of undecoded service data kept as hex
_U16 = struct.Struct("<H")
_RESP_HEAD = struct.Struct("<BBBB")


@dataclass(slots=True)
class Message:
    """One CIP request or response, with whatever of its service data decoded."""

    service: int
    is_response: bool
    path: Path | None = None
    status: int | None = None
    ext_status: int | None = None
    data: bytes = b""
    info: dict[str, Any] = field(default_factory=dict)
    children: list[Message] = field(default_factory=list)   # MSP services, in order
    embedded: Message | None = None                          # Unconnected Send's request
    route_path: str | None = None
    errors: list[tuple[str, str]] = field(default_factory=list)

    def flag(self, name: str, reason: str) -> None:
        self.errors.append((name, reason))


def parse_request(buf: bytes, depth: int = 0) -> Message:
    """A request: service, padded path (size in words), service data (Vol. 1 2-4.1)."""
    if len(buf) < 2:
        msg = Message(buf[0] if buf else 0, False)
        msg.flag("cip.truncated", f"request of {len(buf)} bytes")
        return msg
    service, words = buf[0] & 0x7F, buf[1]
    msg = Message(service, False)
    end = 2 + 2 * words
    if end > len(buf):
        msg.flag("cip.truncated", f"path of {words} words beyond the {len(buf)}-byte message")
        end = len(buf)
    msg.path = parse_path(buf[2:end])
    if msg.path.error:
        msg.flag(msg.path.error, msg.path.reason)
    msg.data = buf[end:]
    decoder = _decoder(service, msg.path, response=False)
    if decoder is not None:
        _run(decoder, msg, depth)
    return msg


def parse_response(buf: bytes, request: Message | None = None, depth: int = 0) -> Message:
    """A response: service|0x80, reserved, general status, extended status words, data (2-4.2)."""
    if len(buf) < 4:
        msg = Message(buf[0] & 0x7F if buf else 0, True)
        msg.flag("cip.truncated", f"response of {len(buf)} bytes")
        return msg
    service, _reserved, status, ext_words = _RESP_HEAD.unpack_from(buf, 0)
    msg = Message(service & 0x7F, True, status=status)
    end = 4 + 2 * ext_words
    if end > len(buf):
        msg.flag("cip.truncated", f"{ext_words} extended status words beyond the message")
        end = len(buf)
    if ext_words and len(buf) >= 6:
        msg.ext_status = _U16.unpack_from(buf, 4)[0]
    msg.data = buf[end:]
    path = request.path if request is not None else None
    decoder = _decoder(msg.service, path, response=True)
    if decoder is not None and (status in (0x00, 0x06) or msg.service == T.MULTIPLE_SERVICE_PACKET
                                or msg.service in (T.FORWARD_OPEN, T.LARGE_FORWARD_OPEN)):
        _run(lambda m, d: decoder(m, d, request), msg, depth)
    return msg


def _run(decoder: Callable[[Message, int], None], msg: Message, depth: int) -> None:
    """Service data decoders index into bytes; a short buffer means malformed data, not a crash."""
    try:
        decoder(msg, depth)
    except (struct.error, IndexError, ValueError) as exc:
        msg.flag("cip.bad_service_data", f"service 0x{msg.service:02x} data: {exc}"[:200])


def service_class(path: Path | None) -> int | None:
    return path.class_id if path is not None else None


def service_name(service: int, path: Path | None) -> str:
    return T.service_name(service, service_class(path), bool(path and path.symbolic))


def hex_capped(data: bytes, key: str = "data") -> dict[str, Any]:
    out: dict[str, Any] = {key: data[:DATA_HEX_CAP].hex()}
    if len(data) > DATA_HEX_CAP:
        out[key + "_truncated"] = True
    return out


# -- Multiple Service Packet (Vol. 1) ----------------------------------------------------------

def _msp_offsets(msg: Message) -> list[tuple[int, int]]:
    data = msg.data
    count = _U16.unpack_from(data, 0)[0]
    if count > MAX_MSP_SERVICES:
        msg.flag("cip.msp_too_many", f"{count} services, decoding the first {MAX_MSP_SERVICES}")
    shown = min(count, MAX_MSP_SERVICES)
    offsets = [_U16.unpack_from(data, 2 + 2 * i)[0] for i in range(shown)]
    spans = []
    for i, start in enumerate(offsets):
        stop = offsets[i + 1] if i + 1 < len(offsets) else len(data)
        if not 2 + 2 * count <= start <= stop <= len(data):
            msg.flag("cip.bad_msp", f"service {i} offset {start}..{stop} outside the {len(data)}-byte packet")
            break
        spans.append((start, stop))
    msg.info["msp_count"] = count
    return spans


def _msp_request(msg: Message, depth: int) -> None:
    if depth >= MAX_NESTING:
        msg.flag("cip.bad_msp", "nesting too deep")
        return
    for start, stop in _msp_offsets(msg):
        msg.children.append(parse_request(msg.data[start:stop], depth + 1))


def _msp_response(msg: Message, depth: int, request: Message | None) -> None:
    if depth >= MAX_NESTING or len(msg.data) < 2:
        return
    asked = request.children if request is not None else []
    for i, (start, stop) in enumerate(_msp_offsets(msg)):
        req = asked[i] if i < len(asked) else None
        msg.children.append(parse_response(msg.data[start:stop], req, depth + 1))


# -- decoder tables ------------------------------------------------------------------------------------

def _get_attribute_list(msg: Message, _depth: int) -> None:
    count = _U16.unpack_from(msg.data, 0)[0]
    shown = min(count, 64)
    msg.info["attribute_list"] = [_U16.unpack_from(msg.data, 2 + 2 * i)[0] for i in range(shown)]


def _reset(msg: Message, _depth: int) -> None:
    if msg.data:
        msg.info["reset_type"] = msg.data[0]


def _raw(msg: Message, _depth: int) -> None:
    """Undecoded service data as capped hex: ``data`` of a request, ``response_data`` of a reply."""
    if msg.data:
        msg.info.update(hex_capped(msg.data, "response_data" if msg.is_response else "data"))


def _raw_response(msg: Message, _depth: int, _request: Message | None) -> None:
    _raw(msg, _depth)


def _identity_all(msg: Message, depth: int, request: Message | None) -> None:
    """Get Attributes All on the identity object (Vol. 1 5A-2.2): the device's identity."""
    path = request.path if request is not None else None
    if path is None or path.class_id != T.IDENTITY_CLASS or path.instance_id in (None, 0):
        _raw(msg, depth)
        return
    from otsensor.dissectors.enip.identity import parse_identity_attributes
    ident = parse_identity_attributes(msg.data)
    if ident is None:
        msg.flag("cip.bad_service_data", "identity attributes shorter than 15 bytes")
        return
    msg.info["identity"] = ident


def _attribute_single(msg: Message, depth: int, request: Message | None) -> None:
    """Get Attribute Single reply: named and decoded for the identity object, else capped hex."""
    path = request.path if request is not None else None
    if path is not None and path.class_id == T.IDENTITY_CLASS and path.attribute_id is not None:
        from otsensor.dissectors.enip.identity import decode_identity_attribute
        decoded = decode_identity_attribute(path.attribute_id, msg.data)
        if decoded is not None:
            msg.info.update(decoded)
            return
    _raw(msg, depth)


REQUEST_DECODERS: dict[int, Callable[[Message, int], None]] = {
    T.MULTIPLE_SERVICE_PACKET: _msp_request, T.GET_ATTRIBUTE_LIST: _get_attribute_list,
    T.RESET: _reset, T.SET_ATTRIBUTE_SINGLE: _raw, T.SET_ATTRIBUTES_ALL: _raw, T.SET_ATTRIBUTE_LIST: _raw,
    T.SET_MEMBER: _raw,
}
RESPONSE_DECODERS: dict[int, Callable[[Message, int, Message | None], None]] = {
    T.MULTIPLE_SERVICE_PACKET: _msp_response, T.GET_ATTRIBUTES_ALL: _identity_all,
    T.GET_ATTRIBUTE_SINGLE: _attribute_single, T.GET_ATTRIBUTE_LIST: _raw_response,
}


def _decoder(service: int, path: Path | None, response: bool) -> Callable[..., None] | None:
    """The service-data decoder: class-specific codes (>= 0x4B) belong to the path's class, and the
    Logix tag services only to symbolic paths and the Logix symbol/template classes."""
    cls = service_class(path)
    if cls == T.PCCC_CLASS and service == T.EXECUTE_PCCC:
        return pccc.execute_pccc_reply if response else pccc.execute_pccc_request
    if service < 0x4B:
        return (RESPONSE_DECODERS if response else REQUEST_DECODERS).get(service)
    if cls == T.CONNECTION_MANAGER_CLASS:
        return (connmgr.RESPONSE_DECODERS if response else connmgr.REQUEST_DECODERS).get(service)
    logix_target = cls is None or (path is not None and path.symbolic) or cls in T.LOGIX_CLASSES
    if logix_target and cls not in T.CLASS_SERVICES:
        return (logix.RESPONSE_DECODERS if response else logix.REQUEST_DECODERS).get(service)
    return _raw_response if response else _raw


# The service-data decoders of the Connection Manager, Logix and PCCC build on this module's Message
# and parsers, so they are imported last (a cycle Python resolves: their names are used at call time).
from otsensor.dissectors.enip import connmgr, logix, pccc
