"""EtherNet/IP + CIP: HMIs polling ControlLogix controllers, controllers scanning I/O adapters.

Explicit messaging (TCP 44818): each HMI connection (10.10.1.15x to a PLC at
10.10.5.x) opens with ListIdentity, RegisterSession, Get Attributes All on the
identity object and a Forward Open of a class 3 connection; then, in rounds,
connected messages (SendUnitData, the CIP sequence count counting up) carry
Multiple Service Packets of 5-20 Logix Read Tag services (symbolic EPATHs,
program-scope tags, array elements, whole-array reads) 60% of the time, MSPs of
Write Tags 10%, single Write Tags 10% and whole-array Read Tags 5%; unconnected
ones (SendRRData, sender context counting up) carry Unconnected Send with an
embedded Read Tag routed to the backplane slot 0 (10%) and Get Attribute Single
on the identity object (5%).  It closes with Forward Close and UnregisterSession.

Implicit I/O: each PLC scans I/O adapters (10.10.6.x): over TCP 44818 a
RegisterSession and a class 1 Forward Open (electronic key, assembly
connection points), then cyclic I/O on UDP 2222 with the connection ids the
Forward Open reply assigned (two datagrams each way per round: sequenced address
item, connected data item with the class 1 sequence count, run/idle header O->T),
and a Forward Close at the end.

PDU keys: ``("enip", direction, command, CIP service codes in the message)`` (a reply's codes with
bit 7 set; MSP and Unconnected Send list their embedded services after their own) and
``("cip_io", direction)`` per I/O datagram.
"""
from __future__ import annotations

import random
import struct

from .pcap import ACK, PSH, TCP, UDP, Conn, conn, ip4, mac
from .schedule import Exchange, Traffic

PORT, IO_PORT = 44818, 2222
OUI_ROCKWELL = b"\x00\x1d\x9c"
OUI_HMI = b"\x00\x1c\x23"
LIST_IDENTITY, REGISTER_SESSION, UNREGISTER_SESSION, SEND_RR_DATA, SEND_UNIT_DATA = 0x63, 0x65, 0x66, 0x6F, 0x70
GET_ATTRIBUTES_ALL, GET_ATTRIBUTE_SINGLE, MSP = 0x01, 0x0E, 0x0A
READ_TAG, WRITE_TAG, FORWARD_CLOSE, UNCONNECTED_SEND, FORWARD_OPEN = 0x4C, 0x4D, 0x4E, 0x52, 0x54
BOOL, INT, DINT, REAL = 0xC1, 0xC3, 0xC4, 0xCA
TYPE_SIZES = {BOOL: 1, INT: 2, DINT: 4, REAL: 4}
EXCHANGE_PACKETS = 2.6
IO_PAIRS = 2                                     # I/O datagram pairs per round and connection

ENCAP = struct.Struct("<HHII8sI")                # command, length, session, status, sender context, options
RR_PREFIX = struct.Struct("<IHH")                # interface handle, timeout, item count
ITEM = struct.Struct("<HH")
SEQ_ADDRESS = struct.Struct("<HHII")             # 0x8002, length 8, connection id, encapsulation sequence number
FO_REQUEST = struct.Struct("<BBIIHHIB3xIHIHBB")  # Forward Open (Vol. 1 3-5.5.2), up to the path size
FO_REPLY = struct.Struct("<IIHHIIIBB")
FC_REQUEST = struct.Struct("<BBHHIBB")
FC_REPLY = struct.Struct("<HHIBB")
IDENTITY = struct.Struct("<HHHBBHI")             # vendor, device type, product code, revision, status, serial
SOCKADDR = struct.Struct(">HH4s8x")
CM_PATH = b"\x20\x06\x24\x01"                    # Connection Manager, instance 1
ROUTER_PATH = b"\x20\x02\x24\x01"                # Message Router, instance 1
IDENTITY_PATH = b"\x20\x01\x24\x01"
BACKPLANE_SLOT0 = b"\x01\x00"                    # port 1 (backplane), link address 0
VENDOR_ROCKWELL, ORIGINATOR_VENDOR = 1, 1


def encap(command: int, session: int, data: bytes = b"", context: bytes = bytes(8)) -> bytes:
    return ENCAP.pack(command, len(data), session, 0, context, 0) + data


def send_rr(session: int, context: bytes, cip: bytes) -> bytes:
    """SendRRData: a null address item and an unconnected data item."""
    return encap(SEND_RR_DATA, session, RR_PREFIX.pack(0, 10, 2) + ITEM.pack(0, 0) + ITEM.pack(0xB2, len(cip)) + cip,
                 context)


def send_unit(session: int, conn_id: int, seq: int, cip: bytes) -> bytes:
    """SendUnitData: a connected address item and a connected data item led by the CIP sequence count."""
    return encap(SEND_UNIT_DATA, session, RR_PREFIX.pack(0, 0, 2) + ITEM.pack(0xA1, 4) + conn_id.to_bytes(4, "little")
                 + ITEM.pack(0xB1, 2 + len(cip)) + seq.to_bytes(2, "little") + cip)


def request(service: int, path: bytes, data: bytes = b"") -> bytes:
    return bytes((service, len(path) // 2)) + path + data


def reply(service: int, data: bytes = b"", status: int = 0) -> bytes:
    return bytes((service | 0x80, 0, status, 0)) + data


def symbol_path(tag: str) -> bytes:
    """ANSI extended symbol segments (0x91) for ``a.b``; ``[n]`` becomes a member segment (Logix element)."""
    out = []
    for part in tag.split("."):
        name, _, index = part.partition("[")
        raw = name.encode()
        out.append(bytes((0x91, len(raw))) + raw + (b"\x00" if len(raw) & 1 else b""))
        if index:
            element = int(index.rstrip("]"))
            out.append(bytes((0x28, element)) if element < 256 else b"\x29\x00" + element.to_bytes(2, "little"))
    return b"".join(out)


TREND_BUFFER = symbol_path("Trend_Buffer[0]")


def msp(services: list[bytes], is_reply: bool) -> bytes:
    """Multiple Service Packet data: count, offsets from the count, the services."""
    offsets, pos = [], 2 + 2 * len(services)
    for s in services:
        offsets.append(pos)
        pos += len(s)
    body = struct.pack(f"<H{len(services)}H", len(services), *offsets) + b"".join(services)
    return reply(MSP, body) if is_reply else request(MSP, ROUTER_PATH, body)


def tag_database(rng: random.Random) -> list[tuple[bytes, int, int, bytes]]:
    """A controller's tags: (symbolic path, data type, elements read at once, the Read Tag request)."""
    tags = [(f"Line{k}_Speed", REAL, 1) for k in range(1, 5)] + [(f"Tank{k}_Level", REAL, 1) for k in range(1, 7)]
    tags += [(f"Pump{k}_Run", BOOL, 1) for k in range(1, 9)] + [("Batch_Count", DINT, 1), ("Alarm_Word", INT, 1)]
    tags += [(f"Program:MainProgram.Valve{k}_Cmd", BOOL, 1) for k in range(1, 7)]
    tags += [(f"Program:MainProgram.PID{k}.SP", REAL, 1) for k in range(1, 4)]
    tags += [(f"Recipe[{rng.randrange(300)}]", DINT, 1) for _ in range(4)]
    tags += [(f"Zone_Temp[{k * 8}]", REAL, 8) for k in range(3)]
    return [(symbol_path(name), dtype, n, request(READ_TAG, symbol_path(name), n.to_bytes(2, "little")))
            for name, dtype, n in tags]


class ValuePool:
    """Tag values drawn from a few precomputed snapshots per (type, elements): one random draw per value set."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.pool: dict[tuple[int, int], list[bytes]] = {}

    def values(self, dtype: int, n: int) -> bytes:
        variants = self.pool.get((dtype, n))
        if variants is None:
            variants = self.pool[(dtype, n)] = [self._snapshot(dtype, n) for _ in range(32)]
        return variants[self.rng.randrange(32)]

    def _snapshot(self, dtype: int, n: int) -> bytes:
        if dtype == BOOL:
            return bytes(self.rng.choice((0, 1)) for _ in range(n))
        if dtype == REAL:
            return struct.pack(f"<{n}f", *(self.rng.uniform(0.0, 250.0) for _ in range(n)))
        return self.rng.randbytes(TYPE_SIZES[dtype] * n)


class EnipTraffic(Traffic):
    kind = "enip"
    closing_packets = 3

    def __init__(self, rng: random.Random, hmis: int = 8, plcs: int = 24, adapters_per_plc: int = 2) -> None:
        self.flows: list[Conn] = []
        self.pool = ValuePool(rng)
        for p in range(plcs):
            plc = (mac(OUI_ROCKWELL, 0x5000 + p), ip4(10, 10, 5, 1 + p))
            tags = tag_database(rng)
            # vendor, device type (PLC), product code, revision, status, serial number, product name
            ident = (VENDOR_ROCKWELL, 0x0E, 0x6C + p % 3, 32, 11 + p % 3, 0x3060, 0x60000000 + p * 7919, b"1756-L83E/B")
            for h in sorted({p % hmis} | ({(p * 3 + 1) % hmis} if p % 2 else set())):
                c = conn("enip", TCP, (mac(OUI_HMI, 0x500 + h), ip4(10, 10, 1, 150 + h), 49152 + rng.randrange(16000)),
                         (*plc, PORT), rng)
                c.state.update(role="hmi", session=rng.getrandbits(32) | 1, context=rng.getrandbits(32), seq=0,
                               ident=ident, scan=rng.sample(tags, 20), tags=tags, **self._ids(rng, p))
                self.flows.append(c)
            for a in range(adapters_per_plc):
                adapter = (mac(OUI_ROCKWELL, 0x6000 + p * adapters_per_plc + a), ip4(10, 10, 6, 1 + p * adapters_per_plc + a))
                ids = self._ids(rng, p)
                io = conn("enip_io", UDP, (*plc, IO_PORT), (*adapter, IO_PORT), rng)
                io.state.update(ids, seq=[rng.getrandbits(32), rng.getrandbits(32)], sizes=(rng.choice((8, 16, 32)),
                                rng.choice((16, 32, 64))))
                scanner = conn("enip", TCP, (*plc, 49152 + rng.randrange(16000)), (*adapter, PORT), rng)
                scanner.state.update(role="scanner", session=rng.getrandbits(32) | 1, context=0, io=io, **ids)
                self.flows += [scanner, io]
        explicit = sum(1 for c in self.flows if c.state.get("role") == "hmi")
        io_flows = sum(1 for c in self.flows if c.proto == UDP)
        self.round_packets = EXCHANGE_PACKETS * explicit + 2 * IO_PAIRS * io_flows

    @staticmethod
    def _ids(rng: random.Random, plc: int) -> dict:
        """One connection's identifiers: O->T id (the target's choice), T->O id, the connection triad."""
        return {"o_t": rng.getrandbits(32), "t_o": rng.getrandbits(32), "serial": rng.getrandbits(16),
                "originator_serial": 0x00400000 + plc}

    # -- the schedule's hooks ---------------------------------------------------------------------------

    def opening(self, c: Conn, rng: random.Random) -> Exchange | None:
        if c.proto == UDP:
            return None
        ex = Exchange([])
        if c.state["role"] == "hmi":
            self._list_identity(ex, c)
        self._register(ex, c)
        if c.state["role"] == "hmi":
            self._unconnected(ex, c, request(GET_ATTRIBUTES_ALL, IDENTITY_PATH), reply(GET_ATTRIBUTES_ALL,
                              self._identity_attributes(c)), (GET_ATTRIBUTES_ALL,))
            self._forward_open(ex, c, 0xA3, b"\x01\x00\x20\x02\x24\x01", 2_000_000, 0x43F4, 0x43F4)
        else:
            io_sizes = c.state["io"].state["sizes"]
            key = struct.pack("<BBHHHBB", 0x34, 0x04, VENDOR_ROCKWELL, 0x07, 0x2A, 0x81, 0x01)
            self._forward_open(ex, c, 0x01, key + b"\x20\x04\x24\x66\x2c\x96\x2c\x64", 20_000,
                               0x4800 | (6 + io_sizes[0]), 0x4800 | (2 + io_sizes[1]))
        return ex

    def closing(self, c: Conn, rng: random.Random) -> Exchange | None:
        if c.proto == UDP:
            return None
        st = c.state
        ex = Exchange([])
        path = b"\x01\x00\x20\x02\x24\x01" if st["role"] == "hmi" else b"\x20\x04\x24\x66\x2c\x96\x2c\x64"
        triad = (st["serial"], ORIGINATOR_VENDOR, st["originator_serial"])
        self._unconnected(ex, c, request(FORWARD_CLOSE, CM_PATH, FC_REQUEST.pack(0x0A, 0x0E, *triad, len(path) // 2, 0)
                                         + path), reply(FORWARD_CLOSE, FC_REPLY.pack(*triad, 0, 0)), (FORWARD_CLOSE,))
        ex.packets.append((c, 0, PSH | ACK, encap(UNREGISTER_SESSION, st["session"])))
        ex.pdus.append(("enip", 0, UNREGISTER_SESSION, ()))
        return ex

    def exchange(self, c: Conn, rng: random.Random) -> Exchange:
        if c.proto == UDP:
            return self._io(c, rng)
        ex = Exchange([])
        if c.state["role"] == "scanner":
            return ex                   # the scanner's TCP connection idles while its I/O runs on UDP
        r = rng.random()
        if r < 0.60:
            self._read_msp(ex, c, rng)
        elif r < 0.70:
            self._write_msp(ex, c, rng)
        elif r < 0.80:
            path, dtype, n, _read = rng.choice(c.state["tags"])
            self._connected(ex, c, request(WRITE_TAG, path, self._typed(dtype, n, True)), reply(WRITE_TAG),
                            (WRITE_TAG,))
        elif r < 0.85:
            n = rng.choice((16, 32, 64))
            self._connected(ex, c, request(READ_TAG, TREND_BUFFER, n.to_bytes(2, "little")),
                            reply(READ_TAG, self._typed(REAL, n, False)), (READ_TAG,))
        elif r < 0.95:
            _path, dtype, n, embedded = rng.choice(c.state["tags"])
            ucs = (struct.pack("<BBH", 0x0A, 0x0E, len(embedded)) + embedded + (b"\x00" if len(embedded) & 1 else b"")
                   + b"\x01\x00" + BACKPLANE_SLOT0)
            self._unconnected(ex, c, request(UNCONNECTED_SEND, CM_PATH, ucs),
                              reply(READ_TAG, self._typed(dtype, n, False)), (UNCONNECTED_SEND, READ_TAG))
        else:
            name = c.state["ident"][-1]
            self._unconnected(ex, c, request(GET_ATTRIBUTE_SINGLE, IDENTITY_PATH + b"\x30\x07"),
                              reply(GET_ATTRIBUTE_SINGLE, bytes((len(name),)) + name), (GET_ATTRIBUTE_SINGLE,))
        if rng.random() < 0.5:
            ex.packets.append((c, 0, ACK, b""))
        return ex

    # -- encapsulation exchanges ----------------------------------------------------------------------

    def _pair(self, ex: Exchange, c: Conn, req: bytes, rep: bytes, command: int, services: tuple, answers: tuple) -> None:
        ex.packets += [(c, 0, PSH | ACK, req), (c, 1, PSH | ACK, rep)]
        ex.pdus += [("enip", 0, command, services), ("enip", 1, command, answers)]

    def _list_identity(self, ex: Exchange, c: Conn) -> None:
        """ListIdentity reply item: encapsulation version, the device's socket address, identity, state 3."""
        server_ip = c.ends[0][3]
        item = struct.pack("<H", 1) + SOCKADDR.pack(2, PORT, server_ip) + self._identity_attributes(c) + b"\x03"
        body = struct.pack("<H", 1) + ITEM.pack(0x0C, len(item)) + item
        self._pair(ex, c, encap(LIST_IDENTITY, 0), encap(LIST_IDENTITY, 0, body), LIST_IDENTITY, (), ())

    def _register(self, ex: Exchange, c: Conn) -> None:
        self._pair(ex, c, encap(REGISTER_SESSION, 0, b"\x01\x00\x00\x00"),
                   encap(REGISTER_SESSION, c.state["session"], b"\x01\x00\x00\x00"), REGISTER_SESSION, (), ())

    def _unconnected(self, ex: Exchange, c: Conn, cip: bytes, answer: bytes, services: tuple) -> None:
        st = c.state
        st["context"] = (st["context"] + 1) & 0xFFFFFFFFFFFFFFFF
        context = st["context"].to_bytes(8, "little")
        self._pair(ex, c, send_rr(st["session"], context, cip), send_rr(st["session"], context, answer), SEND_RR_DATA,
                   services, (answer[0],))

    def _connected(self, ex: Exchange, c: Conn, cip: bytes, answer: bytes, services: tuple,
                   answers: tuple | None = None) -> None:
        st = c.state
        seq = st["seq"] = (st["seq"] + 1) & 0xFFFF
        self._pair(ex, c, send_unit(st["session"], st["o_t"], seq, cip), send_unit(st["session"], st["t_o"], seq, answer),
                   SEND_UNIT_DATA, services, answers if answers is not None else (answer[0],))

    def _forward_open(self, ex: Exchange, c: Conn, transport: int, path: bytes, rpi: int, o_t_params: int,
                      t_o_params: int) -> None:
        st = c.state
        triad = (st["serial"], ORIGINATOR_VENDOR, st["originator_serial"])
        data = FO_REQUEST.pack(0x0A, 0x0E, 0, st["t_o"], *triad, 1, rpi, o_t_params, rpi, t_o_params, transport,
                               len(path) // 2) + path
        answer = FO_REPLY.pack(st["o_t"], st["t_o"], *triad, rpi, rpi, 0, 0)
        self._unconnected(ex, c, request(FORWARD_OPEN, CM_PATH, data), reply(FORWARD_OPEN, answer), (FORWARD_OPEN,))

    # -- Logix tag services ---------------------------------------------------------------------------

    def _read_msp(self, ex: Exchange, c: Conn, rng: random.Random) -> None:
        tags = rng.sample(c.state["scan"], rng.randint(5, 20))
        reqs = [read for _path, _dtype, _n, read in tags]
        reps = [reply(READ_TAG, self._typed(dtype, n, False)) for _path, dtype, n, _read in tags]
        self._connected(ex, c, msp(reqs, False), msp(reps, True), (MSP,) + (READ_TAG,) * len(tags),
                        (MSP | 0x80,) + (READ_TAG | 0x80,) * len(tags))

    def _write_msp(self, ex: Exchange, c: Conn, rng: random.Random) -> None:
        tags = rng.sample(c.state["tags"], rng.randint(2, 6))
        reqs = [request(WRITE_TAG, path, self._typed(dtype, n, True)) for path, dtype, n, _read in tags]
        self._connected(ex, c, msp(reqs, False), msp([reply(WRITE_TAG)] * len(tags), True),
                        (MSP,) + (WRITE_TAG,) * len(tags), (MSP | 0x80,) + (WRITE_TAG | 0x80,) * len(tags))

    def _typed(self, dtype: int, n: int, write: bool) -> bytes:
        """Type code, (for a write, the element count,) then the values."""
        values = self.pool.values(dtype, n)
        return struct.pack("<HH", dtype, n) + values if write else struct.pack("<H", dtype) + values

    # -- identity and I/O -----------------------------------------------------------------------------

    @staticmethod
    def _identity_attributes(c: Conn) -> bytes:
        *numbers, name = c.state["ident"]
        return IDENTITY.pack(*numbers) + bytes((len(name),)) + name

    @staticmethod
    def _io(c: Conn, rng: random.Random) -> Exchange:
        st = c.state
        out_size, in_size = st["sizes"]
        packets, pdus = [], []
        for _ in range(IO_PAIRS):
            for d, conn_id, run_idle, size in ((0, st["o_t"], b"\x01\x00\x00\x00", out_size),
                                               (1, st["t_o"], b"", in_size)):
                seq = st["seq"][d] = (st["seq"][d] + 1) & 0xFFFFFFFF
                data = (seq & 0xFFFF).to_bytes(2, "little") + run_idle + rng.randbytes(size)
                packets.append((c, d, 0, struct.pack("<H", 2) + SEQ_ADDRESS.pack(0x8002, 8, conn_id, seq)
                                + ITEM.pack(0xB1, len(data)) + data))
                pdus.append(("cip_io", d))
        return Exchange(packets, pdus)
