"""DNP3 in Zeek's ``dnp3.log`` and in ICSNPP's DNP3 logs, handled as their scripts handle it.

Zeek's analyzer (DNP3_TCP / DNP3_UDP) gives each application fragment as a
request when Zeek's originator sent it and as a response otherwise (it does
not look at the function code for that), then one event per object header,
per object prefix and per control block.  Handled here as:

* Zeek's base script (base/protocols/dnp3): a request starts or refreshes the
  connection's pending row (``fc_request``, its time); a response completes it
  (``fc_reply``, ``iin``, the response's time) and writes it; a row still
  pending when the connection goes is written then.  One ``dnp3.log`` row per
  response, and per request left unanswered before the next one.
* icsnpp-dnp3 ``scripts/main.zeek``: ``dnp3_control.log`` gets one row per
  control relay output block or pattern control block, ``dnp3_objects.log``
  one per object header of a READ request or of a RESPONSE (not of other
  functions, not of unsolicited responses), with ICSNPP's names.  The package
  writes no other log.

Zeek's and ICSNPP's quirks are kept and marked "quirk"; our JSONL keeps the
correct values.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

from otsensor.dissectors.dnp3.points import Crob
from otsensor.dissectors.dnp3.tables import FUNCTIONS, RANGE_ALL, RANGE_COUNT, RANGE_START_STOP
from otsensor.dissectors.dnp3.zeek_names import ICSNPP_OBJECT_NAMES
from otsensor.dissectors.zeek import ZeekConn, ZeekEvent, ZeekLog, ZeekRow, ZeekScript

if TYPE_CHECKING:
    from otsensor.dissectors.dnp3.app import Fragment, ObjectHeader

SERVICE: Final = "dnp3_{transport}"     # conn.log's service: dnp3_tcp or dnp3_udp, as Zeek's analyzers are named
DNP3 = ZeekLog("dnp3", "fc_request:string fc_reply:string iin:count", service=SERVICE)
CONTROL = ZeekLog("dnp3_control",
                  "block_type:string function_code:string index_number:count trip_control_code:string "
                  "operation_type:string clear_bit:bool execute_count:count on_time:count off_time:count "
                  "status_code:string", per_message=True, service=SERVICE)
OBJECTS = ZeekLog("dnp3_objects", "function_code:string object_type:string object_count:count range_low:count "
                  "range_high:count", per_message=True, service=SERVICE)
FRAGMENT: Final = "fragment"             # the ZeekEvent kind: one application fragment

# Zeek's function names are ours but for 0x21 (AUTH_REQ_NO_ACK in IEEE 1815-2012)
ZEEK_FUNCTIONS: Final = {**FUNCTIONS, 0x21: "AUTHENTICATE_REQ_NR"}
# The request functions whose objects Zeek's parser walks (the others carry none, or it skips them)
REQUEST_OBJECT_FUNCTIONS: Final = frozenset({*range(0x01, 0x0D), 0x10, 0x11, 0x12, 0x14, 0x15, 0x16,
                                             0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F, 0x20, 0x21})
RESPONSE_OBJECT_FUNCTIONS: Final = frozenset({0x81, 0x82, 0x83})
BLOCK_TYPES: Final = {(12, 1): "Control Relay Output Block", (12, 2): "Pattern Control Block"}
# icsnpp-dnp3 consts.zeek's control tables (its status names are not IEEE 1815's from 5 on: kept, quirk)
TRIP_CODES: Final = {0: "Nul", 1: "Close", 2: "Trip"}
OPERATION_TYPES: Final = {0: "Nul", 1: "Pulse On", 2: "Pulse Off", 3: "Latch On", 4: "Latch Off"}
STATUS_CODES: Final = {0: "Success", 1: "Timeout", 2: "No Select", 3: "Format Error", 4: "Not Supported",
                       5: "Latch Off", 6: "Already Active", 7: "Hardware Error", 8: "Too Many Objs",
                       9: "Not Authorized", 10: "Automation Inhibit", 11: "Processing Limited", 12: "Out of Range",
                       0x7E: "Non Participating", 0x7F: "Undefined"}


def fragment_event(ts: float, direction: Any, fragment: Fragment) -> ZeekEvent:
    return ZeekEvent(ts, direction, FRAGMENT, fragment)


def zeek_function(code: int) -> str:
    """Zeek's base script's name of a function code (unknown ones in decimal)."""
    name = ZEEK_FUNCTIONS.get(code)
    return name if name is not None else f"unknown-{code}"


def icsnpp_function(code: int) -> str:
    """ICSNPP's name of a function code (unknown ones in hex, without 0x)."""
    name = ZEEK_FUNCTIONS.get(code)
    return name if name is not None else f"unknown-{code:x}"


def _swap(value: int, width: int) -> int:
    return int.from_bytes(value.to_bytes(width, "little"), "big")


def object_header_args(hdr: ObjectHeader) -> tuple[int, int, int]:
    """``number``, ``rf_low`` and ``rf_high`` of Zeek's dnp3_object_header event for a header.

    Zeek quirks: no count for virtual-address ranges or "all objects";
    ``rf_low`` is the count itself for count qualifiers, read most
    significant byte first for the 16- and 32-bit ones (the count is
    right); 0xffff for "all objects"; virtual 16- and 32-bit addresses also
    read most significant byte first.
    """
    rng = hdr.range_code
    if rng in RANGE_START_STOP:
        start, stop = hdr.start or 0, hdr.stop or 0
        width = RANGE_START_STOP[rng]
        if rng >= 3:   # virtual addresses
            return 0, _swap(start, width), _swap(stop, width)
        return stop - start + 1, start, stop
    if rng == RANGE_ALL:
        return 0, 0xFFFF, 0xFFFF
    count_width = RANGE_COUNT.get(rng)
    if count_width is None:
        return 0, 0, 0
    return hdr.count, _swap(hdr.count, count_width), 0


def _iin(frag: Fragment) -> int | None:
    """The IIN Zeek reads from a fragment it takes for a response (None: too short to parse)."""
    if frag.iin is not None:
        return frag.iin
    if frag.headers:   # a request sent by Zeek's responder: its first object header's bytes (quirk)
        first = frag.headers[0]
        return first.group << 8 | first.variation
    return None


class Dnp3Script(ZeekScript):
    """base/protocols/dnp3 and icsnpp-dnp3, one instance per run."""

    LOGS = (DNP3, CONTROL, OBJECTS)

    def __init__(self) -> None:
        self.pending: dict[str, dict[str, Any]] = {}   # Zeek's c$dnp3, by connection

    def event(self, conn: ZeekConn, event: ZeekEvent) -> list[ZeekRow]:
        frag: Fragment = event.data
        is_orig = conn.is_orig(event.direction)
        rows: list[ZeekRow] = []
        if is_orig:
            pending = self.pending.setdefault(conn.uid, {})
            pending["ts"] = event.ts
            pending["fc_request"] = zeek_function(frag.function)
            walks = frag.function in REQUEST_OBJECT_FUNCTIONS and not frag.is_response
        else:
            iin = _iin(frag)
            if iin is None:
                return rows
            pending = self.pending.pop(conn.uid, {})
            rows.append(ZeekRow(DNP3, event.ts, {"fc_request": pending.get("fc_request"),
                                                 "fc_reply": zeek_function(frag.function), "iin": iin}))
            walks = frag.function in RESPONSE_OBJECT_FUNCTIONS and frag.is_response
        if walks:
            rows += _icsnpp_rows(event, frag, is_orig)
        return rows

    def removed(self, conn: ZeekConn, ts: float) -> list[ZeekRow]:
        pending = self.pending.pop(conn.uid, None)
        if pending is None:
            return []
        return [ZeekRow(DNP3, pending["ts"], {"fc_request": pending.get("fc_request")})]


def _icsnpp_rows(event: ZeekEvent, frag: Fragment, is_orig: bool) -> list[ZeekRow]:
    """ICSNPP's rows for one fragment's object headers and control blocks."""
    function = icsnpp_function(frag.function)
    logs_objects = function == ("READ" if is_orig else "RESPONSE")
    rows = []
    for hdr in frag.headers:
        name = ICSNPP_OBJECT_NAMES.get(hdr.group << 8 | hdr.variation)
        if name is not None and logs_objects:
            values: dict[str, Any] = {"function_code": function, "object_type": name}
            if not is_orig:
                values["object_count"], values["range_low"], values["range_high"] = object_header_args(hdr)
            rows.append(ZeekRow(OBJECTS, event.ts, values, event.direction))
        block = BLOCK_TYPES.get((hdr.group, hdr.variation))
        if block is not None:
            rows += [ZeekRow(CONTROL, event.ts, _control(block, function, hdr, p), event.direction)
                     for p in hdr.points if isinstance(p, Crob)]
    return rows


def _control(block: str, function: str, hdr: ObjectHeader, crob: Crob) -> dict[str, Any]:
    code = crob.control_code
    return {
        "block_type": block, "function_code": function,
        # Zeek's prefix event gives 0 for an object without an index prefix, and ICSNPP takes it (quirk)
        "index_number": crob.index if hdr.prefix_code in (1, 2, 3) else 0,
        "trip_control_code": TRIP_CODES.get(code >> 6, f"unknown-{code >> 6:x}"),
        "operation_type": OPERATION_TYPES.get(code & 0x0F, f"unknown-{code & 0x0F:x}"),
        "clear_bit": bool(code & 0x20), "execute_count": crob.execute_count, "on_time": crob.on_time,
        "off_time": crob.off_time,
        "status_code": STATUS_CODES.get(crob.status, f"unknown-{crob.status:x}") if function == "RESPONSE" else None}
