"""Turn a paired CIP request/response (parsed Messages) into cip / cip_identity records and anomalies.

Unconnected Send is unwrapped (the record describes the embedded service and
keeps the route path); a Multiple Service Packet gives one record for the
packet and one per embedded service, paired by position.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from otsensor.dissectors.base import Anomaly, Direction, Record
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.cip import Message, service_name
from otsensor.dissectors.enip.records import CipIdentity, CipRecord


@dataclass(slots=True)
class Exchange:
    """A request and/or its response, and where they travelled."""

    request: Message | None
    response: Message | None
    req_ts: float | None
    resp_ts: float | None
    is_orig: bool                 # the request (or, for an orphan, the response's requester side) is the originator
    sequence_count: int | None = None
    connection_id: int | None = None
    refused: tuple[tuple[str, str], ...] = ()   # encapsulation error that answered the request


def _is_unconnected_send(msg: Message | None) -> bool:
    return (msg is not None and msg.service == T.UNCONNECTED_SEND and msg.path is not None
            and msg.path.class_id == T.CONNECTION_MANAGER_CLASS and msg.embedded is not None)


def _anomalies(msg: Message | None, ts: float, direction: Direction, out: list[Record]) -> bool:
    """Anomaly records for ``msg`` and everything it embeds; True when any was found."""
    if msg is None:
        return False
    found = False
    for name, reason in msg.errors:
        out.append(Anomaly(ts, name.split(".", 1)[0], name, reason, direction))
        found = True
    for child in msg.children + ([msg.embedded] if msg.embedded is not None else []):
        found = _anomalies(child, ts, direction, out) or found
    return found


def _info(req: Message | None, resp: Message | None) -> tuple[tuple[str, Any], ...]:
    merged: dict[str, Any] = {}
    for msg in (req, resp):
        if msg is not None:
            merged.update((k, v) for k, v in msg.info.items() if not k.startswith("_") and k != "identity")
    if req is not None and req.children:
        merged["msp_services"] = [service_name(c.service, c.path) for c in req.children]
    return tuple(merged.items())


def _record(ex: Exchange, req: Message | None, resp: Message | None, malformed: bool,
            embedded_in: str | None = None, msp_index: int | None = None, route: str | None = None) -> CipRecord:
    path = req.path if req is not None else None
    head = req if req is not None else resp
    assert head is not None
    direction = "request_response" if req is not None and resp is not None else ("request" if req else "response")
    ts = ex.req_ts if req is not None and ex.req_ts is not None else (ex.resp_ts or 0.0)
    return CipRecord(
        ts=ts, is_orig=ex.is_orig, direction=direction, service=head.service,
        service_name=service_name(head.service, path),
        status=resp.status if resp is not None else None, ext_status=resp.ext_status if resp is not None else None,
        class_id=path.class_id if path else None, instance_id=path.instance_id if path else None,
        attribute_id=path.attribute_id if path else None, member_id=path.member_id if path else None,
        symbol=path.tag if path else None, request_path=(path.text() or None) if path else None,
        route_path=route, sequence_count=ex.sequence_count, connection_id=ex.connection_id,
        embedded_in=embedded_in, msp_index=msp_index,
        response_ts=ex.resp_ts if resp is not None and req is not None else None,
        response_service=resp.service if resp is not None and req is not None and resp.service != req.service
        else None,
        info=_info(req, resp) + ex.refused, malformed=malformed)


def _identity(ex: Exchange, resp: Message | None, out: list[Record], route: str | None) -> None:
    ident = resp.info.get("identity") if resp is not None else None
    if ident is not None:
        sender = Direction.RESP if ex.is_orig else Direction.ORIG
        out.append(CipIdentity(ex.resp_ts or 0.0, sender, "get_attributes_all", tuple(ident.items()), route))


def build_records(ex: Exchange) -> list[Record]:
    out: list[Record] = []
    req_dir = Direction.ORIG if ex.is_orig else Direction.RESP
    bad = _anomalies(ex.request, ex.req_ts or 0.0, req_dir, out)
    bad = _anomalies(ex.response, ex.resp_ts or 0.0, Direction(1 - req_dir), out) or bad
    req, resp, route, via = ex.request, ex.response, None, None
    if _is_unconnected_send(req):
        assert req is not None
        route, via, req = req.route_path, "unconnected_send", req.embedded
    out.append(_record(ex, req, resp, bad, embedded_in=via, route=route))
    _identity(ex, resp, out, route)
    asked = req.children if req is not None else []
    answered = resp.children if resp is not None else []
    for i in range(max(len(asked), len(answered))):
        child_req = asked[i] if i < len(asked) else None
        child_resp = answered[i] if i < len(answered) else None
        out.append(_record(ex, child_req, child_resp, bad, embedded_in="multiple_service_packet", msp_index=i,
                           route=route))
        _identity(ex, child_resp, out, route)
    return out
