"""Record real S7comm sessions from python-snap7 3.3.0 (pure Python server and client).

Usage::

    python pcaps/generator/s7.py --out pcaps/

Roles (distinct loopback addresses, TCP 102, needs root for port 102 and tcpdump):

* PLC:     ``snap7.server.Server`` on 127.10.1.30:102 with DB1, DB2, M, I, Q, T and C areas.
* HMI:     a ``snap7.client.Client`` bound to 127.10.1.20 (rack 0, slot 2): setup,
           multi-item reads and writes of DB, M, I, Q, T and C, clock read, CPU info.
* IT host: a ``snap7.client.Client`` bound to 127.20.1.50 (rack 0, slot 2):
           SZL 0x0011 / 0x001C / CPU state reads, clock read/set, block list and
           info, block upload and download, delete, compress, copy RAM to ROM,
           PLC STOP (0x29), hot and cold start (PI P_PROGRAM, 0x28).

Writes ``s7_hmi.pcap`` and ``s7_engineering.pcap`` into ``--out``.  Each capture
is taken with the shared helper ``pcaps/generator/capture.py`` (tcpdump on ``lo``),
filtered to the two client addresses and port 102, so S7 traffic of other
loopback users never ends up in our files.
"""
from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import socket as _socket
import sys
import time
import types
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capture import capture

PLC_ADDR = "127.10.1.30"
HMI_ADDR = "127.10.1.20"
IT_ADDR = "127.20.1.50"
PORT = 102


def bind_snap7_clients_to(source: str) -> None:
    """Make snap7's client connections originate from ``source`` (snap7 has no source-address option).

    ``snap7.connection`` creates its socket with ``socket.socket(...)``; give that
    module a copy of the socket module whose ``socket`` binds before connecting.
    """
    import snap7.connection as conn_mod

    class BoundSocket(_socket.socket):
        def connect(self, address):  # type: ignore[override]
            self.bind((source, 0))
            return super().connect(address)

    proxy = types.ModuleType("socket_bound")
    proxy.__dict__.update(_socket.__dict__)
    proxy.socket = BoundSocket  # type: ignore[attr-defined]
    conn_mod.socket = proxy  # type: ignore[attr-defined]


def address_in_use(host: str, port: int) -> bool:
    """True if something already answers on host:port (snap7's server sets SO_REUSEPORT, so a second
    server on the same address would silently share the connections with ours)."""
    with _socket.socket() as probe:
        probe.settimeout(0.5)
        return probe.connect_ex((host, port)) == 0


def start_plc():
    import snap7
    from snap7.type import SrvArea

    server = snap7.server.Server(log=False)
    areas = {
        (SrvArea.DB, 1): bytearray(range(64)),
        (SrvArea.DB, 2): bytearray(b"\x11" * 64),
        (SrvArea.MK, 0): bytearray(64),
        (SrvArea.PE, 0): bytearray(b"\x5a" * 32),
        (SrvArea.PA, 0): bytearray(32),
        (SrvArea.TM, 0): bytearray(32),
        (SrvArea.CT, 0): bytearray(32),
    }
    for (area, index), data in areas.items():
        server.register_area(area, index, data)
    server.start_to(PLC_ADDR, PORT)
    time.sleep(0.3)
    return server, areas


def client(source: str, rack: int, slot: int):
    import snap7

    bind_snap7_clients_to(source)
    c = snap7.client.Client()
    c.connect(PLC_ADDR, rack, slot, PORT)
    return c


def attempt(label: str, fn, *args):
    """Run one client call; snap7 raises on server errors, which are part of the traffic we want."""
    try:
        return fn(*args)
    except Exception as exc:  # noqa: BLE001 - recorded traffic matters, not the client's verdict
        print(f"  {label}: {type(exc).__name__}: {exc}", file=sys.stderr)
        return None


def hmi_session() -> None:
    from snap7.type import Area

    c = client(HMI_ADDR, 0, 2)
    attempt("db_read", c.db_read, 1, 0, 16)
    attempt("mb_read", c.mb_read, 0, 4)
    attempt("eb_read", c.eb_read, 0, 2)
    attempt("ab_read", c.ab_read, 0, 2)
    attempt("tm_read", c.tm_read, 0, 2)
    attempt("ct_read", c.ct_read, 0, 2)
    items = [
        {"area": Area.DB, "db_number": 1, "start": 2, "size": 4},
        {"area": Area.MK, "db_number": 0, "start": 8, "size": 2},
        {"area": Area.PE, "db_number": 0, "start": 0, "size": 1},
        {"area": Area.PA, "db_number": 0, "start": 1, "size": 1},
        {"area": Area.DB, "db_number": 2, "start": 10, "size": 2},
    ]
    attempt("read_multi_vars", c.read_multi_vars, items)  # optimizer packs these into one multi-item Read Var
    attempt("db_write", c.db_write, 1, 4, bytearray(b"\x01\x02\x03\x04"))
    attempt("mb_write", c.mb_write, 10, 2, bytearray(b"\xbe\xef"))
    attempt("ab_write", c.ab_write, 0, bytearray(b"\x81"))
    attempt("tm_write", c.tm_write, 0, 1, bytearray(b"\x00\x10"))
    attempt("ct_write", c.ct_write, 0, 1, bytearray(b"\x00\x05"))
    witems = [
        {"area": Area.DB, "db_number": 1, "start": 20, "data": bytearray(b"\x0a\x0b")},
        {"area": Area.MK, "db_number": 0, "start": 20, "data": bytearray(b"\x0c")},
        {"area": Area.PA, "db_number": 0, "start": 2, "data": bytearray(b"\x0d\x0e")},
    ]
    attempt("write_multi_vars", c.write_multi_vars, witems)  # snap7 sends one Write Var per item
    attempt("db_read out of range", c.db_read, 9, 0, 4)  # unregistered DB: item error
    attempt("get_plc_datetime", c.get_plc_datetime)
    attempt("get_cpu_info", c.get_cpu_info)
    c.disconnect()


def engineering_session() -> None:
    from snap7.type import Block

    c = client(IT_ADDR, 0, 2)
    attempt("read_szl 0x0011", c.read_szl, 0x0011, 0)
    attempt("read_szl 0x001c", c.read_szl, 0x001C, 0)
    attempt("get_order_code", c.get_order_code)
    attempt("get_cpu_info", c.get_cpu_info)
    attempt("get_cpu_state", c.get_cpu_state)
    attempt("read_szl 0x0424", c.read_szl, 0x0424, 0)
    attempt("get_plc_datetime", c.get_plc_datetime)
    attempt("set_plc_datetime", c.set_plc_datetime, dt.datetime(2026, 11, 26, 9, 30, 15))
    attempt("list_blocks", c.list_blocks)
    attempt("list_blocks_of_type", c.list_blocks_of_type, Block.DB, 16)
    attempt("get_block_info", c.get_block_info, Block.DB, 1)
    attempt("upload", c.upload, 1)
    attempt("download", c.download, bytearray(b"\x70\x70" + bytes(30)), 2)  # snap7's server accepts DB downloads into registered DBs
    attempt("delete", c.delete, Block.DB, 3)
    attempt("plc_stop", c.plc_stop)
    attempt("plc_hot_start", c.plc_hot_start)
    attempt("plc_stop", c.plc_stop)
    attempt("plc_cold_start", c.plc_cold_start)
    attempt("compress", c.compress, 100)
    attempt("copy_ram_to_rom", c.copy_ram_to_rom, 100)
    c.disconnect()


def main() -> int:
    from snap7.type import SrvArea

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="pcaps/", type=Path)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.ERROR)
    if os.geteuid() != 0:
        print("needs root (port 102 and tcpdump)", file=sys.stderr)
        return 1
    if address_in_use(PLC_ADDR, PORT):
        print(f"{PLC_ADDR}:{PORT} is already served by another process; not recording", file=sys.stderr)
        return 1
    server, areas = start_plc()
    # filter on the client address only: other engineers may run S7 traffic to 127.10.1.30 meanwhile
    try:
        for name, session, host in (("s7_hmi.pcap", hmi_session, HMI_ADDR),
                                    ("s7_engineering.pcap", engineering_session, IT_ADDR)):
            for _attempt in range(3):      # a loaded machine can drop packets: record again then
                with capture(args.out / name, [host], ports=[PORT]) as cap:
                    session()
                print(cap.summary(), file=sys.stderr)
                if cap.packets_dropped == 0:
                    break
    finally:
        server.stop()
    # the HMI's db_write(1, 4, 01 02 03 04) must have reached our server, not another one
    if bytes(areas[(SrvArea.DB, 1)][4:8]) != b"\x01\x02\x03\x04":
        print("the HMI writes did not reach this generator's PLC: captures are not trustworthy", file=sys.stderr)
        return 1
    for name in ("s7_hmi.pcap", "s7_engineering.pcap"):
        print(name, (args.out / name).stat().st_size, "bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
