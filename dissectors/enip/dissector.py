"""The EtherNet/IP stream dissector (TCP and UDP 44818): framing, pairing, records.

Framing: 24-byte encapsulation headers, each followed by ``length`` bytes
(Vol. 2 2-3.1).  A flow whose first bytes are not a plausible header is
rejected (not ENIP); once confirmed, an implausible header is a framing loss:
an anomaly, then a bounded scan for the next plausible header.  After a gap
the direction is re-synchronised the same way.

Pairing: unconnected requests (SendRRData) queue in order and a reply takes
the oldest with its sender context and service (replies may overtake each
other); connected ones (SendUnitData) are keyed by connection and CIP sequence
count.  Both are capped; the oldest request is then emitted unanswered.
"""
from __future__ import annotations

from collections import OrderedDict, deque
from typing import ClassVar, Final

from mypy_extensions import mypyc_attr

from otsensor.dissectors.base import Anomaly, Direction, Dissector, Record
from otsensor.dissectors.enip import encap
from otsensor.dissectors.enip import tables as T
from otsensor.dissectors.enip.build import build_records
from otsensor.dissectors.enip.cip import CipParser
from otsensor.dissectors.enip.connections import IOConnections
from otsensor.dissectors.enip.connmgr import ForwardOpen, ForwardOpenReply
from otsensor.dissectors.enip.encap import HEADER_LEN, Header
from otsensor.dissectors.enip.message import Message
from otsensor.dissectors.enip.pickup import REJECT, Pickup
from otsensor.dissectors.enip.records import CipIdentity, EnipRecord

MAX_PENDING: Final = 500     # outstanding requests per flow
MAX_LINKS: Final = 512       # connection ids remembered per flow (two per Forward Open)


class Pending:
    """A request waiting for its reply: when and from which side it came, and how it travelled."""

    __slots__ = ("request", "ts", "is_orig", "context", "connection_id")

    def __init__(self, request: Message, ts: float, is_orig: bool, context: bytes, connection_id: int | None) -> None:
        self.request = request
        self.ts = ts
        self.is_orig = is_orig
        self.context = context               # the encapsulation sender context (unconnected requests)
        self.connection_id = connection_id   # the connected address it came with (connected requests)


@mypyc_attr(allow_interpreted_subclasses=True)   # as Dissector; tests subclass it to inject a decoder bug
class EnipDissector(Dissector):
    name: ClassVar[str] = "enip"

    def __init__(self, connections: IOConnections | None = None, datagram: bool = False) -> None:
        super().__init__()
        # Dissector.__init__ sets these too; restated so that mypy run on this package alone (the
        # otsensor.* imports unresolved) still knows their type
        self.confirmed = False
        self.rejected = False
        self.connections = connections if connections is not None else IOConnections()
        self.datagram = datagram
        self.buffers = (bytearray(), bytearray())
        self.lost = [False, False]            # framing lost in that direction: resync before parsing
        self.skipped = [0, 0]                 # bytes dropped while resynchronising
        self.session: int | None = None       # the session handle RegisterSession gave, for resync
        self.pickups = [Pickup(True), Pickup(False)]   # first-message search while unconfirmed
        self.unconnected: deque[Pending] = deque()
        # keyed by (connection, sequence count); a request's O->T id and its reply's T->O id map to
        # one connection through the Forward Open seen on this flow (self.links)
        self.connected: OrderedDict[tuple[int | None, int], Pending] = OrderedDict()
        self.links: OrderedDict[int, int] = OrderedDict()
        self.parser = CipParser()

    # -- contract ------------------------------------------------------------------------------------

    def feed(self, data: bytes, direction: Direction, ts: float) -> list[Record]:
        if self.rejected:
            return []
        d = int(direction)
        buf = self.buffers[d]
        if self.datagram:
            buf.clear()       # a datagram is a whole message; never mix one with the next
        if not buf and not self.lost[d] and len(data) >= HEADER_LEN:
            # The usual segment: exactly one whole, plausible message and nothing buffered. Parsed in
            # place; the loop below would do the same after copying it through the buffer.
            hdr = encap.parse_header(data)
            if len(data) == HEADER_LEN + hdr.length and \
                    encap.plausible(hdr, None if self.confirmed else direction == Direction.ORIG):
                self.confirmed = True
                return self._message(hdr, bytes(data[HEADER_LEN:]), direction, ts)
        out: list[Record] = []
        buf += data
        while len(buf) >= HEADER_LEN and not self.rejected:
            hdr = encap.parse_header(buf)
            if self.lost[d] or not encap.plausible(hdr, None if self.confirmed else direction == Direction.ORIG):
                if not self._resync(buf, d, direction, ts, out):
                    break
                continue
            if len(buf) < HEADER_LEN + hdr.length:
                break
            body = bytes(buf[HEADER_LEN:HEADER_LEN + hdr.length])
            del buf[:HEADER_LEN + hdr.length]
            self.confirmed = True
            out.extend(self._message(hdr, body, direction, ts))
        if self.datagram and buf and self.confirmed:
            out.append(Anomaly(ts, "enip", "enip.truncated", f"datagram ends {len(buf)} bytes into a message",
                               direction))
            buf.clear()
        return out

    def gap(self, direction: Direction, nbytes: int, ts: float) -> list[Record]:
        d = int(direction)
        self.buffers[d].clear()
        if not self.confirmed:   # start afresh: the next bytes may begin a message or need a pickup
            self.pickups[d] = Pickup(d == Direction.ORIG)
            return []
        self.lost[d], self.skipped[d] = True, 0
        return [Anomaly(ts, "enip", "enip.gap", f"{nbytes} bytes lost; resynchronising", direction)]

    def close(self, ts: float) -> list[Record]:
        out: list[Record] = []
        for d, skipped in enumerate(self.skipped):
            if skipped:
                out.append(Anomaly(ts, "enip", "enip.resync", f"skipped {skipped} bytes; no header followed",
                                   Direction(d)))
        while self.unconnected:
            old = self.unconnected.popleft()
            out.extend(build_records(old.request, None, old.ts, None, old.is_orig))
        for (_link, seq), old in self.connected.items():
            out.extend(build_records(old.request, None, old.ts, None, old.is_orig, seq, old.connection_id))
        self.connected.clear()
        return out

    # -- framing -------------------------------------------------------------------------------------

    def _resync(self, buf: bytearray, d: int, direction: Direction, ts: float, out: list[Record]) -> bool:
        """Skip to the next plausible header; reject the flow if it never looked like ENIP.

        Bytes that cannot start a header are dropped as they are scanned (the buffer stays small);
        one anomaly reports the bytes skipped once a header is found, so a stream fed whole or in
        pieces reports the same.
        """
        if not self.confirmed:
            return self._pickup(buf, d, direction, ts, out)
        if self.datagram:   # a datagram starts with its header or is not an ENIP message at all
            out.append(Anomaly(ts, "enip", "enip.bad_header", f"datagram of {len(buf)} bytes without a valid header",
                               direction))
            buf.clear()
            return False
        start = 0 if self.lost[d] else 1
        for pos in range(start, len(buf) - HEADER_LEN + 1):
            if self._resync_candidate(encap.parse_header(buf, pos)):
                skipped = self.skipped[d] + pos
                if skipped:
                    out.append(Anomaly(ts, "enip", "enip.resync", f"skipped {skipped} bytes to the next header",
                                       direction))
                del buf[:pos]
                self.lost[d], self.skipped[d] = False, 0
                return True
        drop = max(len(buf) - HEADER_LEN + 1, start)
        del buf[:drop]
        self.skipped[d] += drop
        self.lost[d] = True
        return False

    def _pickup(self, buf: bytearray, d: int, direction: Direction, ts: float, out: list[Record]) -> bool:
        """Unconfirmed and not at a header: a datagram is not ENIP; a stream may have been joined
        mid-message, so look for an unmistakable first message (pickup.py) or reject the flow."""
        start = REJECT if self.datagram else self.pickups[d].offer(buf)
        if start is None:
            return False
        if start == REJECT:
            self.rejected = True
            buf.clear()
            return False
        out.append(Anomaly(ts, "enip", "enip.resync", f"joined mid-stream: skipped {start} bytes", direction))
        del buf[:start]
        return True

    def _resync_candidate(self, hdr: Header) -> bool:
        """Stricter than plausible(): zero runs look like NOP / legacy headers, and a session
        command must carry the flow's session handle once one is known."""
        if not encap.plausible(hdr) or hdr.command in (T.NOP, 0x0001):
            return False
        if hdr.command in (T.SEND_RR_DATA, T.SEND_UNIT_DATA, T.UNREGISTER_SESSION):
            return self.session is None or hdr.session == self.session
        return True

    # -- messages ------------------------------------------------------------------------------------

    def _message(self, hdr: Header, body: bytes, direction: Direction, ts: float) -> list[Record]:
        out: list[Record] = []
        is_orig = direction == Direction.ORIG
        if hdr.command == T.REGISTER_SESSION and hdr.status == 0 and hdr.session:
            self.session = hdr.session
        items: list[encap.Item] = []
        err: str | None = None
        conn_id = None
        listed: list[str] = []
        if hdr.command in (T.SEND_RR_DATA, T.SEND_UNIT_DATA) and body:
            _handle, _timeout, items, err = encap.parse_send_data(body)
        elif hdr.command in (T.LIST_IDENTITY, T.LIST_SERVICES, T.LIST_INTERFACES) and body:
            items, err = encap.parse_cpf(body)
            listed = self._list_items(items, direction, ts, out)
        if err:
            out.append(Anomaly(ts, "enip", "enip.bad_cpf", f"{T.ENIP_COMMANDS[hdr.command]}: {err}", direction))
        for item in items:
            if item.type_id == T.CPF_CONNECTED_ADDRESS and len(item.data) >= 4:
                conn_id = encap.le32(item.data, 0)
        out.insert(0, EnipRecord(ts, is_orig, hdr, encap.cpf_names(items), conn_id, listed, bool(err)))
        if hdr.status != 0 and hdr.command == T.SEND_RR_DATA and not body and self.unconnected:
            out.extend(self._refused(hdr, ts))
        if hdr.status == 0:
            self._carried_cip(hdr, items, conn_id, direction, ts, out)
        return out

    def _carried_cip(self, hdr: Header, items: list[encap.Item], conn_id: int | None, direction: Direction,
                     ts: float, out: list[Record]) -> None:
        """CIP in unconnected data items, and in connected data items after their sequence count."""
        for item in items:
            if item.type_id == T.CPF_UNCONNECTED_DATA and item.data:
                out.extend(self._cip(item.data, None, None, direction, ts, hdr.context))
            elif item.type_id == T.CPF_CONNECTED_DATA and len(item.data) > 2:
                seq = encap.le16(item.data, 0)
                out.extend(self._cip(item.data[2:], seq, conn_id, direction, ts, hdr.context))

    def _list_items(self, items: list[encap.Item], direction: Direction, ts: float, out: list[Record]) -> list[str]:
        names = []
        for item in items:
            if item.type_id == T.CPF_IDENTITY:
                listed = encap.parse_identity_item(item.data)
                if listed is None or listed.truncated:
                    out.append(Anomaly(ts, "enip", "enip.bad_identity", "identity item truncated", direction))
                    continue
                out.append(CipIdentity(ts, direction, "list_identity", listed.ident, listed=listed))
                names.append(listed.ident.product_name)
            elif item.type_id == T.CPF_LIST_SERVICES:
                svc = encap.parse_service_item(item.data)
                if svc is None or svc.short:
                    out.append(Anomaly(ts, "enip", "enip.bad_identity", "service item shorter than 20 bytes",
                                       direction))
                if svc is None:
                    continue
                names.append(f"{svc.name} v{svc.version} capability 0x{svc.capability:04x}")
        return names

    def _refused(self, hdr: Header, ts: float) -> list[Record]:
        """An encapsulation error reply carries no CIP: it answers (and fails) the oldest request."""
        old = self.unconnected.popleft()
        return build_records(old.request, None, old.ts, ts, old.is_orig, refused=hdr.status)

    # -- CIP pairing ---------------------------------------------------------------------------------

    def _cip(self, data: bytes, seq: int | None, conn_id: int | None, direction: Direction,
             ts: float, context: bytes) -> list[Record]:
        if data[0] & 0x80:
            return self._response(data, seq, conn_id, direction, ts, context)
        pending = Pending(self.parser.request(data), ts, direction == Direction.ORIG, context, conn_id)
        out: list[Record] = []
        if seq is None:
            self.unconnected.append(pending)
            if len(self.unconnected) > MAX_PENDING:
                old = self.unconnected.popleft()
                out.append(Anomaly(ts, "cip", "cip.too_many_pending", f"over {MAX_PENDING} unanswered", direction))
                out.extend(build_records(old.request, None, old.ts, None, old.is_orig))
        else:
            key = (self._link(conn_id), seq)
            old_seq = self.connected.pop(key, None)
            if old_seq is not None:   # a retransmitted or reused sequence count: the old one went unanswered
                out.extend(build_records(old_seq.request, None, old_seq.ts, None, old_seq.is_orig, seq,
                                         old_seq.connection_id))
            self.connected[key] = pending
            if len(self.connected) > MAX_PENDING:
                (_link, oseq), old = self.connected.popitem(last=False)
                out.append(Anomaly(ts, "cip", "cip.too_many_pending", f"over {MAX_PENDING} unanswered", direction))
                out.extend(build_records(old.request, None, old.ts, None, old.is_orig, oseq, old.connection_id))
        return out

    def _link(self, conn_id: int | None) -> int | None:
        """The connection a connected message belongs to (its O->T id), when a Forward Open told us."""
        return self.links.get(conn_id) if conn_id is not None else None

    def _learn_link(self, resp: Message) -> None:
        """A successful Forward Open reply names both ids of the connection it opened."""
        reply = resp.detail
        if resp.status != 0 or not isinstance(reply, ForwardOpenReply):
            return
        for conn in (reply.o_t_id, reply.t_o_id):
            self.links[conn] = reply.o_t_id
            self.links.move_to_end(conn)
        while len(self.links) > MAX_LINKS:
            self.links.popitem(last=False)

    def _remember_connection(self, req: Message, resp: Message, ts: float) -> None:
        """Tell the I/O flows about the connection a successful Forward Open established."""
        reply = resp.detail
        fo = req.embedded if req.embedded is not None else req
        if resp.status != 0 or not isinstance(reply, ForwardOpenReply) or fo.path is None \
                or fo.service not in (T.FORWARD_OPEN, T.LARGE_FORWARD_OPEN) \
                or fo.path.class_id != T.CONNECTION_MANAGER_CLASS:
            return
        request = fo.detail if isinstance(fo.detail, ForwardOpen) else None
        self.connections.record_forward_open(request, reply.o_t_id, reply.t_o_id, ts)

    def _take_unconnected(self, data: bytes, context: bytes) -> Pending:
        """The request a SendRRData reply answers: replies may come out of order (a Forward Close
        answered before an earlier Forward Open), so prefer the oldest pending request with the same
        sender context and service, then the same service, then simply the oldest."""
        service = data[0] & 0x7F
        best = None
        for i, pending in enumerate(self.unconnected):
            req = pending.request
            inner = req.embedded if req.embedded is not None else req
            if service == req.service or service == inner.service:
                if pending.context == context:
                    best = i
                    break
                best = i if best is None else best
        index = best if best is not None else 0
        pending = self.unconnected[index]
        del self.unconnected[index]
        return pending

    def _response(self, data: bytes, seq: int | None, conn_id: int | None, direction: Direction,
                  ts: float, context: bytes) -> list[Record]:
        pending: Pending | None = None
        if seq is None and self.unconnected:
            pending = self._take_unconnected(data, context)
        elif seq is not None:
            pending = self.connected.pop((self._link(conn_id), seq), None)
        if pending is None:
            resp = self.parser.reply_to(data, None)
            out: list[Record] = [Anomaly(ts, "cip", "cip.unmatched_response",
                                         f"response 0x{data[0]:02x} with no outstanding request", direction)]
            out.extend(build_records(None, resp, None, ts, direction != Direction.ORIG, seq, conn_id))
            return out
        req = pending.request
        req_conn = pending.connection_id if seq is not None else None
        resp = self.parser.reply_to(data, req)
        self._remember_connection(req, resp, ts)
        self._learn_link(resp)
        return build_records(req, resp, pending.ts, ts, pending.is_orig, seq,
                             req_conn if req_conn is not None else conn_id)
