"""CIP explicit messages (Vol. 1 chapter 2 and Appendix A): request/response headers and service data.

:class:`CipParser` turns a flow's message bytes into :class:`Message` objects
whose ``detail`` holds the decoded service data.  The service-data decoders
live in tables keyed by service code: the common services and the two
services that carry other messages (Multiple Service Packet, Unconnected
Send) here, the Connection Manager's in ``connmgr.py``, the Logix tag
services in ``logix.py``, Execute PCCC in ``pccc.py``; which table applies
depends on the class the request path names.  A service without a decoder
keeps its data as a capped hex string.
"""
from __future__ import annotations

import struct
from typing import Any, ClassVar, Final, cast

from mypy_extensions import mypyc_attr

from otsensor.dissectors.enip import connmgr, logix, pccc
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.connmgr import UCS_HEAD, UnconnectedSend
from otsensor.dissectors.enip.epath import Path, parse_path
from otsensor.dissectors.enip.identity import IdentityAll, decode_identity_attribute, parse_identity_attributes
from otsensor.dissectors.enip.message import Data, Decoder, Detail, Message, ResponseData, ShortData, need

MAX_MSP_SERVICES: Final = 64      # cap on the services of one Multiple Service Packet
MAX_ATTRIBUTES: Final = 64        # attribute ids kept of a Get Attribute List request
MAX_NESTING: Final = 4            # MSP inside Unconnected Send inside MSP ...: deeper is flagged
MAX_PATHS: Final = 256            # decoded request paths a flow's parser keeps for reuse
_U16: Final = struct.Struct("<H")
_DECODED_STATUSES: Final = frozenset({0x00, 0x06})   # success, partial transfer: the reply carries service data
_ALWAYS_DECODED: Final = frozenset({T.MULTIPLE_SERVICE_PACKET, T.FORWARD_OPEN, T.LARGE_FORWARD_OPEN})


class MspCount(Detail):
    """A Multiple Service Packet's service count (its services are the Message's children)."""

    __slots__ = ("count",)
    COLUMNS: ClassVar[str] = "msp_count:count"

    def __init__(self, count: int) -> None:
        self.count = count

    def fill_row(self, row: dict[str, Any]) -> None:
        row["msp_count"] = self.count


class AttributeList(Detail):
    __slots__ = ("ids",)
    COLUMNS: ClassVar[str] = "attribute_list:vector[count]"

    def __init__(self, ids: list[int]) -> None:
        self.ids = ids

    def fill_row(self, row: dict[str, Any]) -> None:
        row["attribute_list"] = self.ids


class ResetType(Detail):
    __slots__ = ("reset_type",)
    COLUMNS: ClassVar[str] = "reset_type:count"

    def __init__(self, reset_type: int) -> None:
        self.reset_type = reset_type

    def fill_row(self, row: dict[str, Any]) -> None:
        row["reset_type"] = self.reset_type


DETAILS: Final[tuple[type[Detail], ...]] = (MspCount, AttributeList, ResetType)


@mypyc_attr(allow_interpreted_subclasses=True)   # tests subclass it to inject a decoder bug
class CipParser:
    """Parses the CIP messages of one flow.

    A flow polls the same objects and tags over and over, so the request paths it decoded are kept
    by their bytes (at most MAX_PATHS; a decoded Path is never changed afterwards) and reused.
    """

    __slots__ = ("_paths",)

    def __init__(self) -> None:
        self._paths: dict[bytes, Path] = {}

    def path(self, data: bytes) -> Path:
        path = self._paths.get(data)
        if path is None:
            if len(self._paths) >= MAX_PATHS:
                self._paths.clear()
            path = self._paths[data] = parse_path(data)
        return path

    def request(self, buf: bytes, depth: int = 0) -> Message:
        """A request: service, padded path (size in words), service data (Vol. 1 2-4.1)."""
        if len(buf) < 2:
            msg = Message(buf[0] if buf else 0, False)
            msg.raw = buf
            msg.flag("cip.truncated", f"request of {len(buf)} bytes")
            return msg
        service, words = buf[0] & 0x7F, buf[1]
        msg = Message(service, False)
        msg.raw = buf
        end = 2 + 2 * words
        if end > len(buf):
            msg.flag("cip.truncated", f"path of {words} words beyond the {len(buf)}-byte message")
            end = len(buf)
        path = msg.path = self.path(buf[2:end])
        if path.error is not None:
            msg.flag(path.error, path.reason)
        msg.data = buf[end:]
        if service == T.MULTIPLE_SERVICE_PACKET:
            _run(self._msp_request, msg, depth, None)
        elif service == T.UNCONNECTED_SEND and path.class_id == T.CONNECTION_MANAGER_CLASS:
            _run(self._unconnected_send, msg, depth, None)
        else:
            decoder = _path_decoder(service, path, False)
            if decoder is not None:
                _run(decoder, msg, depth, None)
        return msg

    def response(self, buf: bytes, request: Message | None = None, depth: int = 0) -> Message:
        """A response: service|0x80, reserved, general status, extended status words, data (2-4.2)."""
        if len(buf) < 4:
            msg = Message(buf[0] & 0x7F if buf else 0, True)
            msg.raw = buf
            msg.flag("cip.truncated", f"response of {len(buf)} bytes")
            return msg
        service, status, ext_words = buf[0], buf[2], buf[3]   # (byte 1 is reserved)
        msg = Message(service & 0x7F, True, status)
        msg.raw = buf
        end = 4 + 2 * ext_words
        if end > len(buf):
            msg.flag("cip.truncated", f"{ext_words} extended status words beyond the message")
            end = len(buf)
        if ext_words and len(buf) >= 6:
            msg.ext_status = _U16.unpack_from(buf, 4)[0]
        msg.data = buf[end:]
        if msg.service == T.MULTIPLE_SERVICE_PACKET:
            _run(self._msp_response, msg, depth, request)
            return msg
        req_path = request.path if request is not None else None
        decoder = _decoder(msg.service, None, True) if req_path is None else _path_decoder(msg.service, req_path, True)
        if decoder is not None and (status in _DECODED_STATUSES or msg.service in _ALWAYS_DECODED):
            _run(decoder, msg, depth, request)
        return msg

    def reply_to(self, buf: bytes, request: Message | None) -> Message:
        """Parse a response against its request; a successful Unconnected Send is answered by the
        embedded service's own response (Vol. 1 3-5.5.2), so decode it against the embedded request."""
        if (request is not None and request.embedded is not None and buf
                and (buf[0] & 0x7F) == request.embedded.service and request.service == T.UNCONNECTED_SEND):
            return self.response(buf, request.embedded)
        return self.response(buf, request)

    # -- the services that carry other messages: Multiple Service Packet (Vol. 1 ), Unconnected Send --

    def _msp_request(self, msg: Message, depth: int, _request: Message | None) -> None:
        if depth >= MAX_NESTING:
            msg.flag("cip.bad_msp", "nesting too deep")
            return
        data = msg.data
        msg.children = [self.request(data[start:stop], depth + 1) for start, stop in _msp_offsets(msg)]

    def _msp_response(self, msg: Message, depth: int, request: Message | None) -> None:
        if depth >= MAX_NESTING or len(msg.data) < 2:
            return
        asked = request.children if request is not None else []
        data = msg.data
        msg.children = [self.response(data[start:stop], asked[i] if i < len(asked) else None, depth + 1)
                        for i, (start, stop) in enumerate(_msp_offsets(msg))]

    def _unconnected_send(self, msg: Message, depth: int, _request: Message | None) -> None:
        """Vol. 1 3-5.5.2: the embedded request, a pad byte if its size is odd, then the route path."""
        data = msg.data
        need(data, UCS_HEAD.size, "unconnected send")
        tick, ticks, size = UCS_HEAD.unpack_from(data, 0)
        body = data[UCS_HEAD.size:UCS_HEAD.size + size]
        if len(body) < size:
            msg.flag("cip.truncated", f"embedded request of {size} bytes beyond the message")
        msg.detail = UnconnectedSend(tick, ticks)
        if depth < MAX_NESTING and body:
            msg.embedded = self.request(body, depth + 1)
        pos = UCS_HEAD.size + size + (size & 1)
        if pos + 2 <= len(data):
            words = data[pos]
            route = parse_path(data[pos + 2:pos + 2 + 2 * words])
            msg.route_path = route.text() if route.ports else (route.text() or None)


def _run(decoder: Decoder, msg: Message, depth: int, request: Message | None) -> None:
    """Data the decoder's checks find short is the named anomaly; anything else it raises is a bug,
    kept as a fault (reported, and counted by the pipeline) so the rest of the stream still decodes."""
    try:
        decoder(msg, depth, request)
    except ShortData as exc:
        msg.flag("cip.bad_service_data", f"service 0x{msg.service:02x} data: {exc.reason}"[:200])
    except Exception as bug:  # noqa: BLE001 - the safety net: one message's bug must not end the flow
        msg.fault(bug)   # (its own name: mypyc would type a reused `exc` as the ShortData above)


def _msp_offsets(msg: Message) -> list[tuple[int, int]]:
    """Where each service of a Multiple Service Packet lies in its data (the offset table, checked).

    The offsets are read as typed ints byte by byte, each service's end being the next one's start (or the
    data's end): no format string, boxed comparison or reason text per packet; text only for a bad table."""
    data = msg.data
    size = len(data)
    need(data, 2, "multiple service packet")
    count = data[0] | data[1] << 8
    if count > MAX_MSP_SERVICES:
        msg.flag("cip.msp_too_many", f"{count} services, decoding the first {MAX_MSP_SERVICES}")
    shown = min(count, MAX_MSP_SERVICES)
    if size < 2 + 2 * shown:
        raise ShortData(f"multiple service packet of {count} services: {size} bytes, needs {2 + 2 * shown}")
    first = 2 + 2 * count
    spans: list[tuple[int, int]] = []
    start = data[2] | data[3] << 8 if shown else 0
    for i in range(shown):
        pos = 4 + 2 * i
        stop = data[pos] | data[pos + 1] << 8 if i + 1 < shown else size
        if not first <= start <= stop <= size:
            msg.flag("cip.bad_msp", f"service {i} offset {start}..{stop} outside the {size}-byte packet")
            break
        spans.append((start, stop))
        start = stop
    msg.detail = MspCount(count)
    return spans


# -- common services --------------------------------------------------------------------------------------

def _get_attribute_list(msg: Message, _depth: int, _request: Message | None) -> None:
    need(msg.data, 2, "get attribute list")
    count = _U16.unpack_from(msg.data, 0)[0]
    shown = min(count, MAX_ATTRIBUTES)
    need(msg.data, 2 + 2 * shown, f"get attribute list of {count} attributes")
    msg.detail = AttributeList(list(struct.unpack_from(f"<{shown}H", msg.data, 2)))


def _reset(msg: Message, _depth: int, _request: Message | None) -> None:
    if msg.data:
        msg.detail = ResetType(msg.data[0])


def _raw(msg: Message, _depth: int, _request: Message | None) -> None:
    """Undecoded service data as capped hex: ``data`` of a request, ``response_data`` of a reply."""
    if msg.data:
        msg.detail = ResponseData(msg.data) if msg.is_response else Data(msg.data)


def _identity_all(msg: Message, depth: int, request: Message | None) -> None:
    """Get Attributes All on the identity object (Vol. 1 5A-2.2): the device's identity."""
    path = request.path if request is not None else None
    if path is None or path.class_id != T.IDENTITY_CLASS or path.instance_id in (None, 0):
        _raw(msg, depth, request)
        return
    ident = parse_identity_attributes(msg.data)
    if ident is None:
        msg.flag("cip.bad_service_data", "identity attributes shorter than 15 bytes")
        return
    msg.detail = IdentityAll(ident)


def _attribute_single(msg: Message, depth: int, request: Message | None) -> None:
    """Get Attribute Single reply: named and decoded for the identity object, else capped hex."""
    path = request.path if request is not None else None
    if path is not None and path.class_id == T.IDENTITY_CLASS and path.attribute_id is not None:
        decoded = decode_identity_attribute(path.attribute_id, msg.data)
        if decoded is not None:
            msg.detail = decoded
            return
    _raw(msg, depth, request)


# Multiple Service Packet and Unconnected Send are CipParser's own: they parse the messages they carry.
REQUEST_DECODERS: Final[dict[int, Decoder]] = {
    T.GET_ATTRIBUTE_LIST: _get_attribute_list,
    T.RESET: _reset, T.SET_ATTRIBUTE_SINGLE: _raw, T.SET_ATTRIBUTES_ALL: _raw, T.SET_ATTRIBUTE_LIST: _raw,
    T.SET_MEMBER: _raw,
}
RESPONSE_DECODERS: Final[dict[int, Decoder]] = {
    T.GET_ATTRIBUTES_ALL: _identity_all,
    T.GET_ATTRIBUTE_SINGLE: _attribute_single, T.GET_ATTRIBUTE_LIST: _raw,
}


def _path_decoder(service: int, path: Path, response: bool) -> Decoder | None:
    """_decoder's answer kept with the request path (it depends on the service and the path's class and
    symbols only): a flow polls the same few services on the same paths."""
    key = service << 1 | response
    memo = path.decoders
    if memo is None:
        memo = path.decoders = {}
    elif key in memo:
        return cast("Decoder | None", memo[key])
    decoder = memo[key] = _decoder(service, path, response)
    return decoder


def _decoder(service: int, path: Path | None, response: bool) -> Decoder | None:
    """The service-data decoder: class-specific codes (>= 0x4B) belong to the path's class, and the
    Logix tag services only to symbolic paths and the Logix symbol/template classes."""
    cls = path.class_id if path is not None else None
    if cls == T.PCCC_CLASS and service == T.EXECUTE_PCCC:
        return pccc.execute_pccc_reply if response else pccc.execute_pccc_request
    if service < 0x4B:
        return (RESPONSE_DECODERS if response else REQUEST_DECODERS).get(service)
    if cls == T.CONNECTION_MANAGER_CLASS:
        return (connmgr.RESPONSE_DECODERS if response else connmgr.REQUEST_DECODERS).get(service)
    logix_target = cls is None or (path is not None and bool(path.symbols)) or cls in T.LOGIX_CLASSES
    if logix_target and cls not in T.CLASS_SERVICES:
        return (logix.RESPONSE_DECODERS if response else logix.REQUEST_DECODERS).get(service)
    return _raw
