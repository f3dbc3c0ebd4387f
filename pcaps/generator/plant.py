"""The scenario plant: its addresses, its controllers (real stacks on loopback addresses) and its clients.

Loaded by ``scenarios.py`` under the name ``scenario_plant`` (this folder is kept off the import path:
``dnp3.py`` would shadow the dnp3py package), after ``capture`` and ``dnp3_generator``; see
``scenarios.py`` for the plant's description.
"""
from __future__ import annotations

import asyncio
import contextlib
import socket as _socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator

import dnp3_generator  # type: ignore[import-not-found]  # pcaps/generator/dnp3.py, loaded by scenarios.py

MODBUS_PLC, S7_PLC, OUTSTATION, CIP_PLC = "127.10.1.10", "127.10.1.30", "127.10.1.40", "127.10.1.50"
SWEEP_PLCS = tuple(f"127.10.1.{i}" for i in range(10, 15))
HMI, EWS, ROGUE = "127.10.2.20", "127.10.2.30", "127.10.2.99"
HISTORIAN, ATTACKER = "127.20.1.60", "127.20.1.50"
MODBUS_PORT, S7_PORT, DNP3_PORT, ENIP_PORT = 502, 102, 20000, 44818
OUTSTATION_LINK, HMI_LINK, ATTACKER_LINK = 10, 1, 3
PERIOD, HISTORIAN_PERIOD = 1.0, 2.0
SETPOINT_REGISTER, RECIPE_REGISTER = 5, 20
S7_BIT, S7_BYTE, S7_WORD = 0x01, 0x02, 0x04   # S7ANY transport sizes
ATTACK_SECONDS, ATTACK_AT = 20.0, 8.0
CIP_TAGS = ["Speed=INT[10]", "Level=DINT[20]", "Temp=REAL[4]"]
CIP_POLL = ["Speed[0-9]", "Temp[0-3]"]


# --- source addresses for stacks that have no option --------------------------------------------

_ROLE = threading.local()
_RealSocket = _socket.socket


class _RoleSocket(_RealSocket):
    """On connect, bind to the calling thread's role address unless the socket is already bound."""

    def _bind_role(self) -> None:
        addr = getattr(_ROLE, "addr", None)
        if addr and self.family == _socket.AF_INET and self.getsockname()[1] == 0:
            self.bind((addr, 0))

    def connect(self, address):  # type: ignore[override]
        self._bind_role()
        return super().connect(address)

    def connect_ex(self, address):  # type: ignore[override]
        self._bind_role()
        return super().connect_ex(address)


_socket.socket = _RoleSocket  # type: ignore[misc]  # snap7 and asyncio look socket.socket up at call time


def in_role(addr: str, fn: Callable, *args) -> threading.Thread:
    """Run ``fn(*args)`` in a daemon thread whose outgoing connections come from ``addr``."""

    def body() -> None:
        _ROLE.addr = addr
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - a failed role is reported; the recording goes on
            print(f"  {addr} {fn.__name__}: {type(exc).__name__}: {exc}", file=sys.stderr)

    thread = threading.Thread(target=body, name=f"{fn.__name__}@{addr}", daemon=True)
    thread.start()
    return thread


def attempt(label: str, fn: Callable, *args, **kwds):
    """One client call; a refused request is part of the traffic, so report it and go on."""
    try:
        return fn(*args, **kwds)
    except Exception as exc:  # noqa: BLE001
        print(f"  {label}: {type(exc).__name__}: {exc}"[:200], file=sys.stderr)
        return None


def every(period: float, stop: threading.Event) -> Iterator[int]:
    """Yield cycle numbers on a fixed, drift-free schedule until ``stop`` is set."""
    start, cycle = time.monotonic(), 0
    while not stop.is_set():
        delay = start + cycle * period - time.monotonic()
        if delay > 0 and stop.wait(delay):
            return
        yield cycle
        cycle += 1


def wait_for_port(addr: str, port: int, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _RealSocket() as probe:
            if probe.connect_ex((addr, port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {addr}:{port}")


# --- the controllers --------------------------------------------------------------------------------

def modbus_context():
    from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
    from pymodbus.pdu.device import ModbusDeviceIdentification

    device = ModbusDeviceContext(co=ModbusSequentialDataBlock(1, [False] * 64),
                                 di=ModbusSequentialDataBlock(1, [True, False] * 32),
                                 hr=ModbusSequentialDataBlock(1, [150] + [1000 + i for i in range(63)]),
                                 ir=ModbusSequentialDataBlock(1, [2000 + i for i in range(64)]))
    # One identity for every PLC (the same model): pymodbus 3.16 keeps the device identification in a
    # process-wide singleton (ModbusControlBlock), so the last server started would answer for all anyway.
    identity = ModbusDeviceIdentification(info_name={
        "VendorName": "OTSensor Test Automation", "ProductCode": "OTS-PLC-1",
        "MajorMinorRevision": "3.16.1", "ProductName": "pymodbus PLC simulator", "ModelName": "PM-3000"})
    return ModbusServerContext(devices=device), identity


@contextlib.contextmanager
def modbus_plcs(addresses: tuple[str, ...]) -> Iterator[None]:
    """pymodbus servers on ``addresses`` port 502, all in one asyncio loop in a daemon thread."""
    from pymodbus.server import ModbusTcpServer

    loop = asyncio.new_event_loop()
    done = asyncio.Event()

    async def serve() -> None:
        servers = []
        for addr in addresses:
            context, identity = modbus_context()
            servers.append(ModbusTcpServer(context, identity=identity, address=(addr, MODBUS_PORT)))
        tasks = [asyncio.create_task(s.serve_forever()) for s in servers]
        await done.wait()
        for server in servers:
            await server.shutdown()
        await asyncio.gather(*tasks, return_exceptions=True)

    thread = threading.Thread(target=loop.run_until_complete, args=(serve(),), name="modbus-plcs", daemon=True)
    thread.start()
    try:
        for addr in addresses:
            wait_for_port(addr, MODBUS_PORT)
        yield
    finally:
        loop.call_soon_threadsafe(done.set)
        thread.join(timeout=10)


@contextlib.contextmanager
def s7_plc() -> Iterator[None]:
    import snap7
    from snap7.type import SrvArea

    server = snap7.server.Server(log=False)
    server.register_area(SrvArea.DB, 1, bytearray(range(64)))
    server.register_area(SrvArea.DB, 2, bytearray(b"\x11" * 64))
    server.register_area(SrvArea.MK, 0, bytearray(64))
    server.start_to(S7_PLC, S7_PORT)
    try:
        wait_for_port(S7_PLC, S7_PORT)
        yield
    finally:
        server.stop()


@contextlib.contextmanager
def dnp3_outstation() -> Iterator[None]:
    from dnp3.outstation import OutstationTcpRunner

    runner = OutstationTcpRunner(outstation=dnp3_generator.build_outstation(), host=OUTSTATION, port=DNP3_PORT)
    loop = asyncio.new_event_loop()
    task = loop.create_task(runner.run())
    thread = threading.Thread(target=loop.run_until_complete, args=(task,), name="outstation", daemon=True)
    thread.start()
    try:
        wait_for_port(OUTSTATION, DNP3_PORT)
        yield
    finally:
        asyncio.run_coroutine_threadsafe(runner.stop(), loop).result(timeout=10)
        thread.join(timeout=10)


@contextlib.contextmanager
def cip_controller() -> Iterator[None]:
    cmd = [sys.executable, "-m", "cpppo.server.enip", "--no-config", "-a", f"{CIP_PLC}:{ENIP_PORT}", *CIP_TAGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(CIP_PLC, ENIP_PORT, timeout=30)
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def refuse_if_taken(endpoints: list[tuple[str, int]]) -> None:
    """Another generator serving one of our addresses would answer our clients: stop instead."""
    for addr, port in endpoints:
        with _RealSocket() as probe:
            probe.settimeout(1.0)
            if probe.connect_ex((addr, port)) == 0:
                raise RuntimeError(f"{addr}:{port} is already served by another process (another generator?)")


@contextlib.contextmanager
def plant(modbus_addresses: tuple[str, ...]) -> Iterator[None]:
    refuse_if_taken([*((a, MODBUS_PORT) for a in modbus_addresses), (S7_PLC, S7_PORT), (OUTSTATION, DNP3_PORT),
                     (CIP_PLC, ENIP_PORT)])
    with modbus_plcs(modbus_addresses), s7_plc(), dnp3_outstation(), cip_controller():
        time.sleep(0.5)  # the probes' connections close before the capture starts
        yield


# --- clients ----------------------------------------------------------------------------------------

def modbus_client(source: str, plc: str = MODBUS_PLC):
    from pymodbus.client import ModbusTcpClient

    client = ModbusTcpClient(plc, port=MODBUS_PORT, source_address=(source, 0), timeout=2, retries=0)
    if not client.connect():
        raise RuntimeError(f"{source}: cannot connect to {plc}:{MODBUS_PORT}")
    return client


def s7_client(rack: int = 0, slot: int = 2):
    import snap7

    client = snap7.client.Client()
    client.connect(S7_PLC, rack, slot, S7_PORT)  # bound by _RoleSocket to the thread's role address
    return client


def dnp3_master(link: int):
    from dnp3.master import Master, MasterConfig, MasterTcpRunner

    master = Master(config=MasterConfig(address=link, outstation_address=OUTSTATION_LINK))
    return MasterTcpRunner(master=master, host=OUTSTATION, port=DNP3_PORT, response_timeout=3.0)




def s7_write_items(client, items: list[tuple[int, int, int, bytes]]) -> None:
    """One Write Var job of several items ``(transport size, DB, start, data)`` on a snap7 client's connection.

    snap7's client sends one item per job; a multi-item job (as HMIs send) is built here: the S7 header,
    the function 0x05 with its item count and one S7ANY specification per item, then per item the data
    header (reserved, data transport size, length: bits for BIT/BYTE/WORD data) and the data, padded to
    an even length between items.
    """
    from snap7.datatypes import S7Area, S7DataTypes, S7WordLen

    specs, data = b"", b""
    for i, (word_len, db, start, payload) in enumerate(items):
        specs += S7DataTypes.encode_address(S7Area.DB, db, start, S7WordLen(word_len), 1 if word_len == 1 else
                                            len(payload) // S7DataTypes.get_size_bytes(S7WordLen(word_len)))
        bits = word_len == 1
        data += struct.pack(">BBH", 0, 0x03 if bits else 0x04, len(payload) if bits else 8 * len(payload)) + payload
        if len(payload) % 2 and i < len(items) - 1:
            data += b"\x00"
    params = bytes([0x05, len(items)]) + specs

    def build() -> bytes:
        header = struct.pack(">BBHHHH", 0x32, 0x01, 0, client.protocol._next_sequence(), len(params), len(data))
        return header + params + data

    client._send_receive_with_reconnect(build)
