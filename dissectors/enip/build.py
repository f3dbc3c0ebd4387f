"""Turn a paired CIP request/response (parsed Messages) into cip / cip_identity records and anomalies.

Unconnected Send is unwrapped (the record describes the embedded service and
keeps the route path); a Multiple Service Packet gives one record for the
packet and one per embedded service, paired by position.
"""
from __future__ import annotations

from typing import Final

from otsensor.dissectors.base import Anomaly, Direction, DissectorFault, Record, round6
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.identity import IdentityAll
from otsensor.dissectors.enip.message import Message
from otsensor.dissectors.enip.records import CipIdentity, CipRecord

MSP: Final[str] = "multiple_service_packet"


def _is_unconnected_send(msg: Message | None) -> bool:
    return (msg is not None and msg.service == T.UNCONNECTED_SEND and msg.path is not None
            and msg.path.class_id == T.CONNECTION_MANAGER_CLASS and msg.embedded is not None)


def _anomalies(msg: Message | None, ts: float, direction: Direction, out: list[Record]) -> bool:
    """Anomaly records for ``msg`` and everything it embeds; True when any was found."""
    if msg is None:
        return False
    found = False
    if msg.errors is not None:
        for name, reason in msg.errors:
            out.append(Anomaly(ts, name.split(".", 1)[0], name, reason, direction))
        found = True
    if msg.faults is not None:
        for exc in msg.faults:
            out.append(DissectorFault(ts, T.PROTOCOL, f"service 0x{msg.service:02x} decoder", exc, direction))
        found = True
    for child in msg.children:
        found = _anomalies(child, ts, direction, out) or found
    if msg.embedded is not None:
        found = _anomalies(msg.embedded, ts, direction, out) or found
    return found


def _identity(resp: Message | None, ts: float, is_orig: bool, route: str | None, out: list[Record]) -> None:
    detail = resp.detail if resp is not None else None
    if isinstance(detail, IdentityAll):
        sender = Direction.RESP if is_orig else Direction.ORIG
        out.append(CipIdentity(ts, sender, "get_attributes_all", detail.ident, route))


def build_records(request: Message | None, response: Message | None, req_ts: float | None, resp_ts: float | None,
                  is_orig: bool, sequence_count: int | None = None, connection_id: int | None = None,
                  refused: int | None = None) -> list[Record]:
    """The records of one exchange: a request and/or its response.

    ``is_orig``: the request (or, for an orphan, the response's requester side) is the originator;
    ``refused``: the encapsulation status of an error reply that answered the request.
    """
    out: list[Record] = []
    # the two sides named directly: calling the enum class (Direction(1 - d)) costs more than the rest here
    req_dir, resp_dir = (Direction.ORIG, Direction.RESP) if is_orig else (Direction.RESP, Direction.ORIG)
    bad = _anomalies(request, req_ts or 0.0, req_dir, out)
    bad = _anomalies(response, resp_ts or 0.0, resp_dir, out) or bad
    req, resp, route, via = request, response, None, None
    if _is_unconnected_send(req):
        assert req is not None
        route, via, req = req.route_path, "unconnected_send", req.embedded
    ts = req_ts if req is not None and req_ts is not None else (resp_ts or 0.0)
    reply_ts = round6(resp_ts) if resp is not None and resp_ts is not None else None   # once for all its rows
    record = CipRecord(ts, is_orig, req, resp, reply_ts, sequence_count, connection_id, via, None, route, refused, bad)
    record.wire_request = request
    out.append(record)
    _identity(resp, resp_ts or 0.0, is_orig, route, out)
    asked = req.children if req is not None else []
    answered = resp.children if resp is not None else []
    for i in range(max(len(asked), len(answered))):
        child_req = asked[i] if i < len(asked) else None
        child_resp = answered[i] if i < len(answered) else None
        out.append(CipRecord(ts if child_req is not None else (resp_ts or 0.0), is_orig, child_req, child_resp,
                             reply_ts, sequence_count, connection_id, MSP, i, route, refused, bad))
        _identity(child_resp, resp_ts or 0.0, is_orig, route, out)
    return out
