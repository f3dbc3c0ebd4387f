"""Modbus/TCP as on a SCADA testbed: HMI/SCADA masters polling PLCs over long-lived connections.

Every PLC (10.10.2.x, port 502) is polled by one master (10.10.1.x), every
other PLC by a second one too; some gateways answer for units 1-4, some PLCs
use unit 255.  A connection repeats its scan list of 2-5 reads (FC 3/4/1/2,
realistic quantities) one request at a time; 5% of the exchanges are writes
(FC 5, 6, 15, 16 and the read/write FC 23) and 0.4% are answered with an
exception.  PDU keys: ``("modbus", "req" | "resp", function code, exception code or 0)``.
"""
from __future__ import annotations

import random
import struct

from .pcap import ACK, PSH, TCP, Conn, conn, ip4, mac
from .schedule import Exchange, Traffic

MBAP = struct.Struct("!HHHBB")                          # tid, protocol id, length, unit, function code
_HH = struct.Struct("!HH")
PORT = 502
OUI_PLC = (b"\x00\x80\xf4", b"\x00\x0e\x8c", b"\x00\x1d\x9c", b"\x28\x63\x36")  # Telemecanique, Siemens, Rockwell
OUI_HMI = b"\x00\x1c\x23"      # Dell

# Poll list shapes: (function code, weight, quantities) - register reads dominate real HMI polling.
READS = ((3, 50, (2, 4, 8, 10, 16, 20, 32, 50, 64, 100, 125)),
         (4, 20, (2, 4, 8, 10, 16, 24, 32)),
         (1, 15, (8, 16, 32, 64, 128, 256)),
         (2, 15, (8, 16, 24, 32, 64)))
WRITES = ((6, 40), (16, 25), (5, 15), (15, 10), (23, 10))   # (function code, weight) of setpoint/command writes
WRITE_RATE = 0.05       # share of exchanges replaced by a write
EXCEPTION_RATE = 0.004  # share of requests answered with an exception
EXCEPTIONS = (2, 2, 2, 3, 4, 6)
EXCHANGE_PACKETS = 2.5  # request, response, the master's delayed ACK every other time


class ModbusTraffic(Traffic):
    kind = "modbus"

    def __init__(self, rng: random.Random, masters: int = 40, plcs: int = 200) -> None:
        self.flows: list[Conn] = []
        for p in range(plcs):
            plc = (mac(OUI_PLC[p % len(OUI_PLC)], 0x1000 + p), ip4(10, 10, 2 + p // 250, 1 + p % 250), PORT)
            pollers = {p % masters} | ({(p * 7 + 3) % masters} if p % 2 else set())
            units = (1, 2, 3, 4) if p % 10 == 9 else (1,) if p % 3 else (255,)  # some gateways, some unit 255
            for m in sorted(pollers):
                c = conn("modbus", TCP, (mac(OUI_HMI, 0x200 + m), ip4(10, 10, 1, 10 + m), 49152 + rng.randrange(16000)),
                         plc, rng)
                c.state.update(tid=rng.randrange(65536), scan=scan_list(units, rng), next=0, units=units)
                self.flows.append(c)
        self.round_packets = EXCHANGE_PACKETS * len(self.flows)

    def exchange(self, c: Conn, rng: random.Random) -> Exchange:
        st = c.state
        tid = st["tid"] = (st["tid"] + 1) & 0xFFFF
        r = rng.random()
        if r < WRITE_RATE:
            fc = rng.choices(WRITES, weights=[w for _fc, w in WRITES])[0][0]
            unit = rng.choice(st["units"])
            body, answer = WRITE_BODIES[fc](rng.randrange(0, 4000, 10), rng)
        else:
            fc, unit, address, qty = st["scan"][st["next"]]
            st["next"] = (st["next"] + 1) % len(st["scan"])
            body, answer = _HH.pack(address, qty), read_answer(fc, qty, rng)
        exception = rng.choice(EXCEPTIONS) if r > 1 - EXCEPTION_RATE else 0
        rfc, answer = (fc | 0x80, bytes((exception,))) if exception else (fc, answer)
        request = MBAP.pack(tid, 0, 2 + len(body), unit, fc) + body
        response = MBAP.pack(tid, 0, 2 + len(answer), unit, rfc) + answer
        packets = [(c, 0, PSH | ACK, request), (c, 1, PSH | ACK, response)]
        if tid & 1:  # the master's delayed ACK, on every other exchange
            packets.append((c, 0, ACK, b""))
        return Exchange(packets, [("modbus", "req", fc, 0), ("modbus", "resp", fc, exception)])


def scan_list(units: tuple, rng: random.Random) -> list[tuple[int, int, int, int]]:
    """A master's repeating poll cycle for one PLC: (function code, unit, address, quantity)."""
    items = []
    for _ in range(rng.randint(2, 5)):
        fc, _w, quantities = rng.choices(READS, weights=[r[1] for r in READS])[0]
        items.append((fc, rng.choice(units), rng.randrange(0, 4000, 10), rng.choice(quantities)))
    return items


def read_answer(fc: int, qty: int, rng: random.Random) -> bytes:
    """Byte count and data of a read response: registers (FC 3/4) or packed bits (FC 1/2)."""
    nbytes = 2 * qty if fc in (3, 4) else (qty + 7) // 8
    return bytes((nbytes,)) + rng.randbytes(nbytes)


def _write_coil(address: int, rng: random.Random) -> tuple[bytes, bytes]:
    body = _HH.pack(address, rng.choice((0xFF00, 0x0000)))
    return body, body


def _write_register(address: int, rng: random.Random) -> tuple[bytes, bytes]:
    body = _HH.pack(address, rng.randrange(65536))
    return body, body


def _write_coils(address: int, rng: random.Random) -> tuple[bytes, bytes]:
    qty = rng.randint(2, 32)
    nbytes = (qty + 7) // 8
    return _HH.pack(address, qty) + bytes((nbytes,)) + rng.randbytes(nbytes), _HH.pack(address, qty)


def _write_registers(address: int, rng: random.Random) -> tuple[bytes, bytes]:
    qty = rng.randint(2, 10)
    return _HH.pack(address, qty) + bytes((2 * qty,)) + rng.randbytes(2 * qty), _HH.pack(address, qty)


def _read_write_registers(address: int, rng: random.Random) -> tuple[bytes, bytes]:
    read_qty, write_qty = rng.randint(2, 16), rng.randint(1, 8)
    body = (_HH.pack(address, read_qty) + _HH.pack(address + 100, write_qty) + bytes((2 * write_qty,))
            + rng.randbytes(2 * write_qty))
    return body, read_answer(3, read_qty, rng)


WRITE_BODIES = {5: _write_coil, 6: _write_register, 15: _write_coils, 16: _write_registers, 23: _read_write_registers}
