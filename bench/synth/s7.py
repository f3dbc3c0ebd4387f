"""Siemens S7comm process traffic: HMIs and SCADA servers reading and writing S7-300/400/1500 PLCs.

Each connection (client 10.10.1.1xx to PLC 10.10.3.x, TCP 102) opens with COTP
CR/CC (TSAPs 0x0100 -> 0x0102: rack 0, slot 2), Setup Communication (PDU size
480 or 960) and an SZL 0x0011 read (module identification), then polls: 50%
multi-item Read Var from the connection's scan list (DB, M, I and Q areas;
BIT, BYTE, WORD, INT, DWORD and REAL transport sizes; several items per request),
40% Write Var (a flood of setpoint writes, one to four items), 5% SZL 0x0424
(CPU state) and 5% clock reads (user data).  Every Job is answered (Ack_Data,
same PDU reference); 3% of the answers longer than 100 bytes are split across
two TCP segments.  Bytes follow Wireshark's packet-s7comm.c layouts.

PDU keys: ``("cotp", direction, "CR" | "CC")``; for S7comm Job/Ack_Data
``("s7comm", direction, rosctr, function, item count)`` and for user data
``("s7comm", direction, 7, function group, subfunction)``.
"""
from __future__ import annotations

import random
import struct

from .pcap import ACK, PSH, TCP, Conn, conn, ip4, mac
from .schedule import Exchange, Traffic

PORT = 102
OUI_SIEMENS = (b"\x00\x0e\x8c", b"\x00\x1b\x1b", b"\x28\x63\x36")
OUI_HMI = b"\x00\x1c\x23"
JOB, ACK_DATA, USERDATA = 0x01, 0x03, 0x07
READ_VAR, WRITE_VAR, SETUP = 0x04, 0x05, 0xF0
G_CPU, G_TIME = 0x4, 0x7
SZL_MODULE_ID, SZL_CPU_STATE = 0x0011, 0x0424

S7_JOB = struct.Struct(">BBHHHH")         # 0x32, ROSCTR, redundancy id, PDU reference, parameter and data length
S7_ACK = struct.Struct(">BBHHHHBB")       # ... then error class and error code
VAR_SPEC = struct.Struct(">BBBBHHI")      # 0x12, spec length 10, syntax S7ANY, transport size, count, DB, area<<24|address
DATA_ITEM = struct.Struct(">BBH")         # return code (or reserved), data transport size, length
SETUP_PARAM = struct.Struct(">BBHHH")     # function, reserved, max AmQ calling, max AmQ called, PDU size
UD_REQUEST = struct.Struct(">3sBBBBB")    # head 00 01 12, length 4, method 0x11, type|group, subfunction, sequence
UD_RESPONSE = struct.Struct(">3sBBBBBBBH")  # head, length 8, method 0x12, type|group, subfunction, seq, DUR, last, error

AREAS = {"I": 0x81, "Q": 0x82, "M": 0x83, "DB": 0x84}
# request transport size -> (bytes per element, data transport size of the answer)
SIZES = {0x01: (1, 0x03), 0x02: (1, 0x04), 0x04: (2, 0x04), 0x05: (2, 0x05), 0x06: (4, 0x04), 0x08: (4, 0x07)}
# item templates: (area, transport size, most elements); a BIT item reads one bit
ITEM_KINDS = (("DB", 0x04, 40), ("DB", 0x08, 20), ("DB", 0x02, 64), ("DB", 0x06, 16), ("DB", 0x05, 24),
              ("M", 0x01, 1), ("M", 0x02, 16), ("I", 0x02, 8), ("Q", 0x02, 8), ("I", 0x01, 1), ("Q", 0x01, 1))
SPLIT_RATE = 0.03
EXCHANGE_PACKETS = 2.6

ORDER_NUMBERS = ("6ES7 315-2EH14-0AB0 ", "6ES7 416-3XR05-0AB0 ", "6ES7 516-3AN01-0AB0 ", "6ES7 317-2EK14-0AB0 ")


def tpkt_dt(pdu: bytes) -> bytes:
    """An S7 PDU in one COTP DT TPDU (EOT) in one TPKT frame (RFC 1006)."""
    return b"\x03\x00" + (len(pdu) + 7).to_bytes(2, "big") + b"\x02\xf0\x80" + pdu


def job(ref: int, param: bytes, data: bytes = b"") -> bytes:
    return tpkt_dt(S7_JOB.pack(0x32, JOB, 0, ref, len(param), len(data)) + param + data)


def ack_data(ref: int, param: bytes, data: bytes = b"") -> bytes:
    return tpkt_dt(S7_ACK.pack(0x32, ACK_DATA, 0, ref, len(param), len(data), 0, 0) + param + data)


def userdata(ref: int, param: bytes, data: bytes) -> bytes:
    return tpkt_dt(S7_JOB.pack(0x32, USERDATA, 0, ref, len(param), len(data)) + param + data)


def var_param(function: int, items: list[tuple[int, int, int, int, int]]) -> bytes:
    """Read/Write Var parameter: function, item count, an S7ANY specification per item."""
    return bytes((function, len(items))) + b"".join(VAR_SPEC.pack(0x12, 10, 0x10, ts, count, db, area << 24 | address)
                                                    for area, ts, count, db, address in items)


def item_values(rng: random.Random, items: list[tuple[int, int, int, int, int]], code: int) -> list:
    """Random values for each item, as (return code or reserved byte, data transport size, bytes)."""
    out = []
    for _area, ts, count, _db, _address in items:
        size, data_ts = SIZES[ts]
        out.append((code, data_ts, rng.randbytes(size * count) if ts != 0x01 else bytes((rng.getrandbits(1),))))
    return out


def data_items(items: list[tuple[int, int, bytes]]) -> bytes:
    """Data part items (return code, data transport size, value); the length counts bits for BIT/BYTE/INT
    sizes, bytes otherwise; every value but the last is padded to an even length."""
    out = []
    for i, (code, tsize, value) in enumerate(items):
        bits = tsize in (0x03, 0x04, 0x05)
        length = (1 if tsize == 0x03 else 8 * len(value)) if bits else len(value)
        out.append(DATA_ITEM.pack(code, tsize, length) + value)
        if len(value) & 1 and i < len(items) - 1:
            out.append(b"\x00")
    return b"".join(out)


def bcd(n: int) -> int:
    return (n // 10) << 4 | n % 10


class S7Traffic(Traffic):
    kind = "s7comm"

    def __init__(self, rng: random.Random, clients: int = 12, plcs: int = 60) -> None:
        self.flows: list[Conn] = []
        for p in range(plcs):
            plc = (mac(OUI_SIEMENS[p % 3], 0x3000 + p), ip4(10, 10, 3, 1 + p), PORT)
            for h in sorted({p % clients} | ({(p * 5 + 1) % clients} if p % 3 == 0 else set())):
                c = conn("s7comm", TCP, (mac(OUI_HMI, 0x300 + h), ip4(10, 10, 1, 100 + h), 49152 + rng.randrange(16000)),
                         plc, rng)
                pdu_size = 960 if p % 4 == 3 else 480
                c.state.update(ref=rng.randrange(1, 65000), src_ref=rng.randrange(1, 0xFFFF), plc=p, seq=0,
                               pdu_size=pdu_size, scan=[item_set(rng, pdu_size, False) for _ in range(rng.randint(2, 6))],
                               next=0, clock=rng.randrange(86400))
                self.flows.append(c)
        self.round_packets = EXCHANGE_PACKETS * len(self.flows)

    # -- the schedule's hooks ---------------------------------------------------------------------------

    def opening(self, c: Conn, rng: random.Random) -> Exchange:
        st = c.state
        src_ref, plc_ref = st["src_ref"], 0x4000 + st["plc"]
        tsaps = b"\xc1\x02\x01\x00\xc2\x02\x01\x02"
        cr = b"\x03\x00\x00\x16\x11\xe0\x00\x00" + src_ref.to_bytes(2, "big") + b"\x00" + tsaps + b"\xc0\x01\x0a"
        cc = (b"\x03\x00\x00\x16\x11\xd0" + src_ref.to_bytes(2, "big") + plc_ref.to_bytes(2, "big") + b"\x00\xc0\x01\x0a"
              + tsaps)
        ref = self._ref(c)
        setup_req = SETUP_PARAM.pack(SETUP, 0, 1, 1, st["pdu_size"])
        szl = self._szl(c, rng, SZL_MODULE_ID)
        packets = [(c, 0, PSH | ACK, cr), (c, 1, PSH | ACK, cc), (c, 0, PSH | ACK, job(ref, setup_req)),
                   (c, 1, PSH | ACK, ack_data(ref, setup_req)), *szl.packets]
        pdus = [("cotp", 0, "CR"), ("cotp", 1, "CC"), ("s7comm", 0, JOB, SETUP, None),
                ("s7comm", 1, ACK_DATA, SETUP, None), *szl.pdus]
        return Exchange(packets, pdus)

    def exchange(self, c: Conn, rng: random.Random) -> Exchange:
        r = rng.random()
        if r < 0.50:
            st = c.state
            items = st["scan"][st["next"]]
            st["next"] = (st["next"] + 1) % len(st["scan"])
            return self._read(c, rng, items)
        if r < 0.90:
            return self._write(c, rng, item_set(rng, c.state["pdu_size"], True))
        if r < 0.95:
            return self._szl(c, rng, SZL_CPU_STATE)
        return self._clock(c, rng)

    # -- exchanges ------------------------------------------------------------------------------------

    def _ref(self, c: Conn) -> int:
        ref = c.state["ref"] = c.state["ref"] % 0xFFFF + 1
        return ref

    def _pair(self, c: Conn, rng: random.Random, request: bytes, response: bytes, pdus: list) -> Exchange:
        packets = [(c, 0, PSH | ACK, request)]
        if len(response) > 100 and rng.random() < SPLIT_RATE:   # the PLC's answer in two TCP segments
            cut = rng.randrange(10, len(response) - 10)
            packets += [(c, 1, ACK, response[:cut]), (c, 1, PSH | ACK, response[cut:])]
        else:
            packets.append((c, 1, PSH | ACK, response))
        if rng.random() < 0.6:            # the client's delayed ACK
            packets.append((c, 0, ACK, b""))
        return Exchange(packets, pdus)

    def _read(self, c: Conn, rng: random.Random, items: list[tuple[int, int, int, int, int]]) -> Exchange:
        ref, n = self._ref(c), len(items)
        return self._pair(c, rng, job(ref, var_param(READ_VAR, items)),
                          ack_data(ref, bytes((READ_VAR, n)), data_items(item_values(rng, items, 0xFF))),
                          [("s7comm", 0, JOB, READ_VAR, n), ("s7comm", 1, ACK_DATA, READ_VAR, n)])

    def _write(self, c: Conn, rng: random.Random, items: list[tuple[int, int, int, int, int]]) -> Exchange:
        ref, n = self._ref(c), len(items)
        return self._pair(c, rng, job(ref, var_param(WRITE_VAR, items), data_items(item_values(rng, items, 0x00))),
                          ack_data(ref, bytes((WRITE_VAR, n)), b"\xff" * n),
                          [("s7comm", 0, JOB, WRITE_VAR, n), ("s7comm", 1, ACK_DATA, WRITE_VAR, n)])

    def _ud_pair(self, c: Conn, rng: random.Random, group: int, subfunction: int, request_data: bytes,
                 answer: bytes) -> Exchange:
        ref = self._ref(c)
        seq = c.state["seq"] = c.state["seq"] % 255 + 1
        request = userdata(ref, UD_REQUEST.pack(b"\x00\x01\x12", 4, 0x11, 0x40 | group, subfunction, 0), request_data)
        response = userdata(ref, UD_RESPONSE.pack(b"\x00\x01\x12", 8, 0x12, 0x80 | group, subfunction, seq, 0, 0, 0),
                            b"\xff\x09" + len(answer).to_bytes(2, "big") + answer)
        return self._pair(c, rng, request, response,
                          [("s7comm", 0, USERDATA, group, subfunction), ("s7comm", 1, USERDATA, group, subfunction)])

    def _szl(self, c: Conn, rng: random.Random, szl_id: int) -> Exchange:
        if szl_id == SZL_MODULE_ID:
            order = ORDER_NUMBERS[c.state["plc"] % len(ORDER_NUMBERS)].encode()
            records = [b"\x00\x01" + order + b"\x00\xc0\x00\x03\x00\x01",
                       b"\x00\x06" + order + b"\x00\xc0\x00\x03\x00\x01",
                       b"\x00\x07" + b" " * 20 + b"\x00\xc0V" + bytes((3, 2, 6 + c.state["plc"] % 4))]
        else:   # 0x0424: event id, ae, bzu-id (current mode 8 = RUN), reserved, start info, time of the last change
            records = [b"\x51\x42\xff\x08" + bytes(8) + bytes((0x26, 0x11, 0x20, 0x12, 0x00, 0x49, 0x54, 0x84))]
        answer = (szl_id.to_bytes(2, "big") + b"\x00\x00" + len(records[0]).to_bytes(2, "big")
                  + len(records).to_bytes(2, "big") + b"".join(records))
        request = b"\xff\x09\x00\x04" + szl_id.to_bytes(2, "big") + b"\x00\x00"
        return self._ud_pair(c, rng, G_CPU, 0x01, request, answer)

    def _clock(self, c: Conn, rng: random.Random) -> Exchange:
        t = c.state["clock"] = (c.state["clock"] + rng.randrange(1, 30)) % 86400
        ms = rng.randrange(1000)
        clock = bytes((0x00, 0x20, 0x26, 0x11, 0x26, bcd(t // 3600), bcd(t // 60 % 60), bcd(t % 60),
                       bcd(ms // 10), (ms % 10) << 4 | 5))   # BCD: century, year, month, day, h, m, s, ms, weekday
        return self._ud_pair(c, rng, G_TIME, 0x01, b"\x0a\x00\x00\x00", clock)


def item_set(rng: random.Random, pdu_size: int, write: bool) -> list[tuple[int, int, int, int, int]]:
    """Items of one Read or Write Var request, (area, transport size, count, DB, byte.bit address), that fit
    the negotiated PDU size both ways."""
    items: list[tuple[int, int, int, int, int]] = []
    budget = pdu_size - 14 - (12 * 8 if not write else 0)     # headers; a read's request grows by 12 per item
    for _ in range(rng.randint(1, 4) if write else rng.randint(1, 8)):
        name, ts, most = rng.choice(ITEM_KINDS)
        count = 1 if ts == 0x01 else rng.randint(1, most if not write else min(most, 8))
        size = SIZES[ts][0] * count + 5 + (12 if write else 0)
        if size > budget:
            break
        budget -= size
        byte = rng.randrange(0, 512, 2)
        bit = rng.randrange(8) if ts == 0x01 else 0
        db = rng.randrange(1, 200) if name == "DB" else 0
        items.append((AREAS[name], ts, count, db, byte << 3 | bit))
    return items or [(AREAS["M"], 0x01, 1, 0, 0)]
