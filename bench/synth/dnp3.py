"""DNP3 over TCP 20000: SCADA masters polling outstations (IEEE 1815-2012), every link CRC right.

Each master (10.10.1.2xx) polls its outstations (10.10.4.x) over one TCP
connection each.  An outstation has a point database (binary inputs g1v2,
32-bit and float analog inputs g30v1/g30v5, counters g20v1; every eighth one so
large that its integrity response takes several application fragments of at most
2048 octets, the largest IEEE 1815 allows).  A connection opens
with the master clearing the restart indication (WRITE g80v1), an integrity poll
(class 0123) and ENABLE_UNSOLICITED.  Then, per round: 45% event polls (class
123) answered with binary and analog events with time (g2v2, g32v3, g32v7;
confirmed by the master) or a null response, 15% integrity polls, 12% CROB
select/operate (g12v1), 8% analog output (g41v1 or g41v2; every fifth outstation is commanded by
direct operate instead of select-before-operate), 20% unsolicited responses with events, confirmed.  Fragments longer
than 249 bytes are sent as several transport segments, one link frame each
(unconfirmed user data), written back to back so frames straddle TCP segments.

PDU keys, one per application fragment:
``("dnp3", direction, function code, FIR|FIN|CON|UNS bits, ((group, variation, qualifier, count), ...))``
(count None for qualifier 0x06, "all objects").
"""
from __future__ import annotations

import random
import struct

from otsensor.dissectors.dnp3.crc import crc16

from .pcap import ACK, TCP, Conn, conn, ip4, mac, segments
from .schedule import Exchange, Traffic

PORT = 20000
OUI_RTU = (b"\x00\x20\x4a", b"\x00\x30\xa7", b"\x00\x0f\x8f")   # various RTU / IED vendors
OUI_SCADA = b"\x00\x1c\x23"
FIR, FIN, CON, UNS = 0x80, 0x40, 0x20, 0x10     # application control bits (4.2.2.4)
TR_FIN, TR_FIR = 0x80, 0x40                     # transport header bits (8.2.1): the other way round
CONFIRM, READ, WRITE, SELECT, OPERATE, DIRECT_OPERATE = 0x00, 0x01, 0x02, 0x03, 0x04, 0x05
ENABLE_UNSOLICITED, RESPONSE, UNSOLICITED = 0x14, 0x81, 0x82
MASTER_CTRL, OUTSTATION_CTRL = 0xC4, 0x44      # DIR|PRM|unconfirmed user data; PRM|unconfirmed user data
MAX_FRAGMENT = 2048
SEGMENT = 249                                   # application bytes per transport segment (250 with its header)
EXCHANGE_PACKETS = 3.2

CLASS_123 = ((60, 2), (60, 3), (60, 4))
CLASS_0123 = CLASS_123 + ((60, 1),)
_U16 = struct.Struct("<H")
_EVENT_TIME = struct.Struct("<IH")              # 48-bit milliseconds since 1970, little-endian
_CROB = struct.Struct("<HBBIIB")                # index prefix, control code, count, on, off, status
_AO16 = struct.Struct("<HhB")                   # index prefix, value, status
_AO32 = struct.Struct("<HiB")

_crc_cache: dict[bytes, bytes] = {}


def crc_of(block: bytes) -> bytes:
    """The two CRC octets of a link header or data block; blocks recur, so they are computed once."""
    crc = _crc_cache.get(block)
    if crc is None:
        if len(_crc_cache) > 500_000:
            _crc_cache.clear()
        crc = _crc_cache[block] = _U16.pack(crc16(block))
    return crc


def link_frames(ctrl: int, dst: int, src: int, fragment: bytes, tseq: int) -> tuple[bytes, int]:
    """``fragment`` as transport segments in link frames (9.2); returns the bytes and the next transport sequence.

    The sequence runs on from fragment to fragment, except that a fragment whose segments would wrap
    from 63 to 0 starts at 0 instead (a first segment may carry any sequence number): Wireshark 4.0
    looks for the segment before sequence 0 at 0 - 1 in 32-bit arithmetic, so it would not reassemble
    such a fragment, and the reference decoder must see every PDU.
    """
    out = []
    chunks = [fragment[i:i + SEGMENT] for i in range(0, len(fragment), SEGMENT)]
    if tseq + len(chunks) > 64:
        tseq = 0
    for j, chunk in enumerate(chunks):
        user = bytes(((TR_FIN if j == len(chunks) - 1 else 0) | (TR_FIR if j == 0 else 0) | tseq,)) + chunk
        tseq = (tseq + 1) & 0x3F
        header = b"\x05\x64" + bytes((5 + len(user), ctrl)) + _U16.pack(dst) + _U16.pack(src)
        out.append(header + crc_of(header))
        for k in range(0, len(user), 16):
            block = user[k:k + 16]
            out.append(block + crc_of(block))
    return b"".join(out), tseq


def all_objects(objects: tuple) -> bytes:
    return b"".join(bytes((g, v, 0x06)) for g, v in objects)


def ranged(group: int, variation: int, start: int, data: bytes, count: int) -> tuple[bytes, tuple]:
    """A start/stop header (qualifier 0x00 or 0x01 by width) and its objects; returns bytes and key."""
    stop = start + count - 1
    if stop < 256:
        return bytes((group, variation, 0x00, start, stop)) + data, (group, variation, 0x00, count)
    return bytes((group, variation, 0x01)) + _U16.pack(start) + _U16.pack(stop) + data, (group, variation, 0x01, count)


def prefixed(group: int, variation: int, objects: list[bytes]) -> tuple[bytes, tuple]:
    """A header with 2-octet count and 2-octet index prefixes (qualifier 0x28); objects carry their index."""
    return bytes((group, variation, 0x28)) + _U16.pack(len(objects)) + b"".join(objects), (group, variation, 0x28,
                                                                                            len(objects))


class Dnp3Traffic(Traffic):
    kind = "dnp3"

    def __init__(self, rng: random.Random, masters: int = 6, outstations: int = 40) -> None:
        self.flows: list[Conn] = []
        for o in range(outstations):
            m = o % masters
            c = conn("dnp3", TCP, (mac(OUI_SCADA, 0x400 + m), ip4(10, 10, 1, 200 + m), 49152 + rng.randrange(16000)),
                     (mac(OUI_RTU[o % 3], 0x4000 + o), ip4(10, 10, 4, 1 + o), PORT), rng)
            big = o % 8 == 7
            sizes = {"bi": rng.randint(1000, 1500) if big else rng.randint(16, 256),
                     "ai": rng.randint(300, 400) if big else rng.randint(8, 64),
                     "af": rng.randint(4, 32), "cnt": rng.randint(4, 32)}
            c.state.update(master=1 + m, outstation=10 + o, seq=rng.randrange(16), useq=rng.randrange(16),
                           tseq=[rng.randrange(64), rng.randrange(64)], sizes=sizes, ms=1_780_000_000_000 + o,
                           static=[self._static(sizes, rng) for _ in range(4)],
                           operate=(DIRECT_OPERATE,) if o % 5 == 0 else (SELECT, OPERATE))   # per site practice
            self.flows.append(c)
        self.round_packets = EXCHANGE_PACKETS * len(self.flows)

    # -- the schedule's hooks ---------------------------------------------------------------------------

    def opening(self, c: Conn, rng: random.Random) -> Exchange:
        ex = Exchange([])
        self._transaction(ex, c, rng, WRITE, b"\x50\x01\x00\x07\x07\x00", [(80, 1, 0x00, 1)], [], [])
        self._integrity(ex, c, rng)
        self._transaction(ex, c, rng, ENABLE_UNSOLICITED, all_objects(CLASS_123),
                          [(g, v, 0x06, None) for g, v in CLASS_123], [], [])
        return ex

    def exchange(self, c: Conn, rng: random.Random) -> Exchange:
        ex = Exchange([])
        r = rng.random()
        if r < 0.45:
            events = self._events(c, rng) if rng.random() < 0.7 else []
            self._transaction(ex, c, rng, READ, all_objects(CLASS_123), [(g, v, 0x06, None) for g, v in CLASS_123],
                              [h for h, _k in events], [k for _h, k in events])
        elif r < 0.60:
            self._integrity(ex, c, rng)
        elif r < 0.72:
            self._command(ex, c, rng, self._crob(rng), c.state["operate"])
        elif r < 0.80:
            self._command(ex, c, rng, self._analog_output(rng, rng.choice((1, 2))), c.state["operate"])
        else:
            self._unsolicited(ex, c, rng)
        if ex.packets[-1][1] == 1 and rng.random() < 0.5:      # the master's delayed ACK of the last answer
            ex.packets.append((c, 0, ACK, b""))
        return ex

    # -- application fragments ------------------------------------------------------------------------

    def _send(self, ex: Exchange, c: Conn, d: int, control: int, function: int, body: bytes, keys: list,
              iin: bytes = b"") -> None:
        """One application fragment from the master (d=0) or the outstation, in link frames and TCP segments."""
        st = c.state
        src, dst = (st["master"], st["outstation"]) if d == 0 else (st["outstation"], st["master"])
        wire, st["tseq"][d] = link_frames(MASTER_CTRL if d == 0 else OUTSTATION_CTRL, dst, src,
                                          bytes((control, function)) + iin + body, st["tseq"][d])
        ex.packets += segments(c, d, wire)
        ex.pdus.append(("dnp3", d, function, control & 0xF0, tuple(keys)))

    def _next_seq(self, c: Conn) -> int:
        seq = c.state["seq"] = (c.state["seq"] + 1) & 0x0F
        return seq

    def _transaction(self, ex: Exchange, c: Conn, rng: random.Random, function: int, body: bytes, keys: list,
                     answer: list[bytes], answer_keys: list) -> None:
        """A single-fragment request and its single-fragment response; events in it are confirmed."""
        seq = self._next_seq(c)
        self._send(ex, c, 0, FIR | FIN | seq, function, body, keys)
        events = any(k[0] in (2, 32) for k in answer_keys)
        control = FIR | FIN | (CON if events else 0) | seq
        self._send(ex, c, 1, control, RESPONSE, b"".join(answer), answer_keys, self._iin(events))
        if events:
            self._send(ex, c, 0, FIR | FIN | seq, CONFIRM, b"", [])

    def _integrity(self, ex: Exchange, c: Conn, rng: random.Random) -> None:
        """Class 0123 poll; a response over the fragment size goes as several fragments, each but the last
        asking for confirmation (4.2.2.4)."""
        seq = self._next_seq(c)
        self._send(ex, c, 0, FIR | FIN | seq, READ, all_objects(CLASS_0123), [(g, v, 0x06, None) for g, v in CLASS_0123])
        fragments: list[list[tuple[bytes, tuple]]] = [[]]
        size = 4
        for header, key in rng.choice(c.state["static"]):
            if size + len(header) > MAX_FRAGMENT and fragments[-1]:
                fragments.append([])
                size = 4
            fragments[-1].append((header, key))
            size += len(header)
        for i, parts in enumerate(fragments):
            last = i == len(fragments) - 1
            control = (FIR if i == 0 else 0) | (FIN if last else CON) | seq
            self._send(ex, c, 1, control, RESPONSE, b"".join(h for h, _k in parts), [k for _h, k in parts],
                       self._iin(False))
            if not last:
                self._send(ex, c, 0, FIR | FIN | seq, CONFIRM, b"", [])
                seq = (seq + 1) & 0x0F      # the response's next fragment takes the next sequence number

    def _command(self, ex: Exchange, c: Conn, rng: random.Random, command: tuple[bytes, tuple],
                 functions: tuple[int, ...]) -> None:
        """SELECT then OPERATE with the same objects (or DIRECT_OPERATE); the outstation echoes them with status."""
        request, key = command
        for function in functions:
            seq = self._next_seq(c)
            self._send(ex, c, 0, FIR | FIN | seq, function, request, [key])
            self._send(ex, c, 1, FIR | FIN | seq, RESPONSE, request, [key], self._iin(False))

    def _unsolicited(self, ex: Exchange, c: Conn, rng: random.Random) -> None:
        useq = c.state["useq"] = (c.state["useq"] + 1) & 0x0F
        events = self._events(c, rng)
        self._send(ex, c, 1, FIR | FIN | CON | UNS | useq, UNSOLICITED, b"".join(h for h, _k in events),
                   [k for _h, k in events], self._iin(True))
        self._send(ex, c, 0, FIR | FIN | UNS | useq, CONFIRM, b"", [])

    # -- objects --------------------------------------------------------------------------------------

    @staticmethod
    def _iin(events: bool) -> bytes:
        return bytes((0x02 if events else 0x00, 0x00))      # IIN1.1: class 1 events available

    @staticmethod
    def _static(sizes: dict, rng: random.Random) -> list[tuple[bytes, tuple]]:
        """One snapshot of the outstation's static data: a header per point type."""
        bi = bytes(0x01 | (rng.getrandbits(1) << 7) for _ in range(sizes["bi"]))        # ONLINE, state bit 7
        ai = b"".join(struct.pack("<Bi", 0x01, rng.randint(-32768, 32767)) for _ in range(sizes["ai"]))
        af = b"".join(struct.pack("<Bf", 0x01, rng.uniform(0.0, 500.0)) for _ in range(sizes["af"]))
        cnt = b"".join(struct.pack("<BI", 0x01, rng.randrange(1 << 24)) for _ in range(sizes["cnt"]))
        return [ranged(1, 2, 0, bi, sizes["bi"]), ranged(30, 1, 0, ai, sizes["ai"]),
                ranged(30, 5, 0, af, sizes["af"]), ranged(20, 1, 0, cnt, sizes["cnt"])]

    @staticmethod
    def _events(c: Conn, rng: random.Random) -> list[tuple[bytes, tuple]]:
        """Binary input events and 32-bit or float analog events, each with its absolute time."""
        st, sizes = c.state, c.state["sizes"]
        st["ms"] += rng.randrange(50, 2000)
        stamp = _EVENT_TIME.pack(st["ms"] & 0xFFFFFFFF, st["ms"] >> 32)
        out = []
        binaries = [_U16.pack(rng.randrange(sizes["bi"])) + bytes((0x01 | rng.getrandbits(1) << 7,)) + stamp
                    for _ in range(rng.randint(1, 4))]
        out.append(prefixed(2, 2, binaries))
        if rng.random() < 0.5:
            analogs = [_U16.pack(rng.randrange(sizes["ai"])) + struct.pack("<Bi", 0x01, rng.randint(-32768, 32767))
                       + stamp for _ in range(rng.randint(1, 6))]
            out.append(prefixed(32, 3, analogs))
        else:
            analogs = [_U16.pack(rng.randrange(sizes["af"])) + struct.pack("<Bf", 0x01, rng.uniform(0.0, 500.0))
                       + stamp for _ in range(rng.randint(1, 6))]
            out.append(prefixed(32, 7, analogs))
        return out

    @staticmethod
    def _crob(rng: random.Random) -> tuple[bytes, tuple]:
        """A CROB (g12v1): latch on/off or a close/trip pulse, status 0 in the request."""
        code = rng.choice((0x03, 0x04, 0x41, 0x81))
        pulse = 100 if code & 0xC0 else 0
        return prefixed(12, 1, [_CROB.pack(rng.randrange(16), code, 1, pulse, pulse, 0)])

    @staticmethod
    def _analog_output(rng: random.Random, variation: int) -> tuple[bytes, tuple]:
        if variation == 2:
            block = _AO16.pack(rng.randrange(8), rng.randint(0, 1000), 0)
        else:
            block = _AO32.pack(rng.randrange(8), rng.randint(0, 100000), 0)
        return prefixed(41, variation, [block])
