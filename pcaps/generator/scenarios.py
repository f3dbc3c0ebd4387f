"""Record the baseline-and-detection scenario captures: one small plant, benign days and attacks.

Usage::

    python pcaps/generator/scenarios.py --out pcaps/scenarios/             # every scenario
    python pcaps/generator/scenarios.py --out pcaps/scenarios/ --only benign_learn --only attack_s7_stop_download
    python pcaps/generator/scenarios.py --list

Needs root (ports 102 and 502, tcpdump).  Every device is a real stack on its
own loopback address; ``pcaps/scenarios/zones.toml`` describes the zones:

* cell (127.10.1.0/24, Purdue level 1, OT): Modbus/TCP PLC 127.10.1.10:502
  (pymodbus 3.16; 127.10.1.11-14 too, in the sweep scenario only), S7 PLC
  127.10.1.30:102 (python-snap7 3.3 server), DNP3 outstation 127.10.1.40:20000
  (dnp3py 0.6, link address 10; the outstation of ``dnp3.py``, which accepts
  controls and restarts), ENIP/CIP controller 127.10.1.50:44818 (cpppo
  5.2.5 Logix simulator, tags Speed=INT[10] Level=DINT[20] Temp=REAL[4]).
* supervisory (127.10.2.0/24, level 2, OT): HMI 127.10.2.20, engineering
  workstation 127.10.2.30; 127.10.2.99 is the rogue station of one attack.
* corporate (127.20.0.0/16, level 4, IT): historian 127.20.1.60 (a conduit lets
  it read Modbus from the cell), attacker 127.20.1.50.

What the plant does in every capture (the "background"):

* The HMI polls each controller on one persistent connection every
  ``PERIOD`` (1.0 s), on a drift-free schedule: Modbus FC 3 holding registers
  1-10 then FC 1 coils 1-16, and every 7th cycle an FC 6 write of setpoint
  register 5 (100..200); S7 read of DB1 bytes 0-15; DNP3 class 1 poll, an
  integrity (class 0123) poll every 10th cycle instead, and every 12th cycle a
  select-before-operate CROB (latch on/off) on index 0; CIP read of Speed[0-9]
  and Temp[0-3] (unconnected, one registered session).
* The historian reads holding registers 1-10 of 127.10.1.10 every 2.0 s.

Scenarios (``SCENARIOS`` below; values are seeded per scenario, timing is real):

* ``benign_learn`` (60 s): the background, plus the engineering workstation's
  usual work twice (S7 SZL 0x0011/0x001C reads, block list, DB1 block info and
  block upload; Modbus FC 43/14 basic device identification).  The setpoint
  writes include 100 and 200, so the learned range is 100..200.
* ``benign_second`` (45 s): the same plant at another time: same functions,
  addresses and period, other setpoint values (105..195), other timing;
  the engineering work once.  Must raise no alert against a baseline learned
  from ``benign_learn`` (the false-positive test).
* ``attack_it_modbus_write``: 127.20.1.50 writes holding registers 1-4 (FC 16)
  and coil 1 (FC 5) of 127.10.1.10.
* ``attack_s7_stop_download``: a new station 127.10.2.99 sends PLC STOP (0x29)
  and downloads block DB1 to 127.10.1.30.
* ``attack_dnp3_restart_operate``: the HMI's DNP3 master closes (the dnp3py
  outstation serves one master at a time); 127.20.1.50 then sends DIRECT_OPERATE
  of a CROB on index 0 and COLD_RESTART to 127.10.1.40.
* ``attack_cip_reset_forward_open``: 127.20.1.50 opens a connection by Forward
  Open (then Forward Close), then sends CIP Reset (0x05) to the identity object
  @1/1 of 127.10.1.50 (cpppo drops the session on Reset, so it comes last).
* ``attack_value_out_of_range``: the HMI writes 9999 to holding register 5.
* ``attack_identity_sweep``: 127.20.1.50 reads FC 43/14 device identification
  from 127.10.1.10 to 127.10.1.14 (five pymodbus servers of the same model:
  pymodbus keeps the identification in a process-wide singleton, so each
  answers the same product code ``OTS-PLC-1``).

Each attack capture is ``ATTACK_SECONDS`` of background with the attack at
``ATTACK_AT``.  Captures use the shared ``capture.py`` helper (tcpdump on
``lo`` filtered to the scenario's hosts).  The plant refuses to start when
another process already serves one of its controller addresses (the other
generators use the same ones), and a capture is recorded again, up to three
times, when tcpdump reports kernel drops or tshark finds a stranger's address.  Stacks without a source-address option (snap7, dnp3py)
get one by a socket subclass that binds to the calling thread's role address.
The sibling generators ``capture.py`` and ``dnp3.py`` are imported by path
(``dnp3.py`` would shadow the dnp3py package on the import path).
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import logging
import os
import random
import shutil
import socket as _socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
# pcaps/generator/dnp3.py would shadow the dnp3py package (imported as ``dnp3``): keep this folder off the path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]


def _sibling(name: str, module_name: str):
    """Import a module of this folder by path, as ``module_name`` (which must not shadow a stack's package)."""
    spec = importlib.util.spec_from_file_location(module_name, HERE / f"{name}.py")
    module = sys.modules[module_name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


capture_helper = _sibling("capture", "capture")  # the shared tcpdump helper (dnp3.py imports it as ``capture``)
dnp3_generator = _sibling("dnp3", "dnp3_generator")  # its outstation (accepts controls, restarts), raw requests

MODBUS_PLC, S7_PLC, OUTSTATION, CIP_PLC = "127.10.1.10", "127.10.1.30", "127.10.1.40", "127.10.1.50"
SWEEP_PLCS = tuple(f"127.10.1.{i}" for i in range(10, 15))
HMI, EWS, ROGUE = "127.10.2.20", "127.10.2.30", "127.10.2.99"
HISTORIAN, ATTACKER = "127.20.1.60", "127.20.1.50"
MODBUS_PORT, S7_PORT, DNP3_PORT, ENIP_PORT = 502, 102, 20000, 44818
OUTSTATION_LINK, HMI_LINK, ATTACKER_LINK = 10, 1, 3
PERIOD, HISTORIAN_PERIOD = 1.0, 2.0
SETPOINT_REGISTER = 5
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


# --- the plant's routine ------------------------------------------------------------------------------

def hmi_modbus(stop: threading.Event, setpoint: Callable[[int], int | None]) -> None:
    client = modbus_client(HMI)
    for cycle in every(PERIOD, stop):
        attempt("hmi fc3", client.read_holding_registers, 1, count=10)
        attempt("hmi fc1", client.read_coils, 1, count=16)
        value = setpoint(cycle)
        if value is not None:
            attempt("hmi fc6", client.write_register, SETPOINT_REGISTER, value)
    client.close()


def hmi_s7(stop: threading.Event) -> None:
    client = s7_client()
    for _cycle in every(PERIOD, stop):
        attempt("hmi db_read", client.db_read, 1, 0, 16)
    client.disconnect()


def hmi_dnp3(stop: threading.Event) -> None:
    asyncio.run(_hmi_dnp3(stop))


async def _hmi_dnp3(stop: threading.Event) -> None:
    from dnp3.core.enums import ControlCode
    from dnp3.master import CommandBuilder

    runner = dnp3_master(HMI_LINK)
    await runner.open()
    start, cycle = time.monotonic(), 0
    try:
        while not stop.is_set():
            await asyncio.sleep(max(0.0, start + cycle * PERIOD - time.monotonic()))
            if stop.is_set():
                break
            poll = runner.integrity_poll() if cycle % 10 == 0 else runner.class_poll(class_2=False, class_3=False)
            await _dnp3_attempt("hmi poll", poll)
            if cycle % 12 == 6:  # select-before-operate, as this site always does
                code = ControlCode.LATCH_ON if cycle % 24 == 6 else ControlCode.LATCH_OFF
                crob = CommandBuilder().add_crob(0, code)
                await _dnp3_attempt("hmi select", runner.request(runner.master.build_select(crob.build_select())))
                await _dnp3_attempt("hmi operate", runner.request(runner.master.build_operate(crob.build_operate())))
            cycle += 1
    finally:
        await runner.close()


async def _dnp3_attempt(label: str, coro) -> None:
    try:
        await coro
    except Exception as exc:  # noqa: BLE001
        print(f"  {label}: {type(exc).__name__}: {exc}"[:200], file=sys.stderr)


def hmi_cip(stop: threading.Event) -> None:
    from cpppo.server.enip import client

    with client.connector(host=CIP_PLC, port=ENIP_PORT, timeout=3, source_address=HMI) as conn:
        for _cycle in every(PERIOD, stop):
            attempt("hmi cip read", lambda: list(conn.synchronous(operations=client.parse_operations(CIP_POLL))))


def historian(stop: threading.Event) -> None:
    client = modbus_client(HISTORIAN)
    for _cycle in every(HISTORIAN_PERIOD, stop):
        attempt("historian fc3", client.read_holding_registers, 1, count=10)
    client.close()


def engineering_work() -> None:
    """The engineering workstation's usual visit: S7 diagnostics and a block upload, Modbus identification."""
    from snap7.type import Block

    s7 = s7_client(0, 1)
    attempt("ews szl 0x0011", s7.read_szl, 0x0011, 0)
    attempt("ews szl 0x001c", s7.read_szl, 0x001C, 0)
    attempt("ews list_blocks", s7.list_blocks)
    attempt("ews block info", s7.get_block_info, Block.DB, 1)
    attempt("ews upload DB1", s7.upload, 1)
    s7.disconnect()
    mb = modbus_client(EWS)
    attempt("ews fc43/14", mb.read_device_information, read_code=1, object_id=0)
    mb.close()


# --- attacks ------------------------------------------------------------------------------------------

def attack_modbus_write() -> None:
    client = modbus_client(ATTACKER)
    attempt("attacker fc16", client.write_registers, 1, [4000, 4001, 4002, 4003])
    attempt("attacker fc5", client.write_coil, 1, True)
    client.close()


def attack_s7_stop_download() -> None:
    client = s7_client(0, 2)
    attempt("rogue plc_stop", client.plc_stop)
    attempt("rogue download DB1", client.download, bytearray(b"\x70\x70" + bytes(30)), 1)
    client.disconnect()


def attack_dnp3() -> None:
    asyncio.run(_attack_dnp3())


async def _attack_dnp3() -> None:
    from dnp3.core.enums import ControlCode, FunctionCode
    from dnp3.master import CommandBuilder

    runner = dnp3_master(ATTACKER_LINK)
    await runner.open()
    try:
        crob = CommandBuilder().add_crob(0, ControlCode.LATCH_ON)
        await _dnp3_attempt("attacker direct operate",
                            runner.request(runner.master.build_direct_operate(crob.build_direct_operate())))
        cold_restart = dnp3_generator.raw_request(runner.master, FunctionCode.COLD_RESTART)
        await _dnp3_attempt("attacker cold restart", runner.request(cold_restart))
    finally:
        await runner.close()


def attack_cip() -> None:
    from cpppo.server.enip import client

    # Forward Open (and Forward Close on leaving the block) first: cpppo drops the session on Reset.
    with client.implicit(host=CIP_PLC, port=ENIP_PORT, timeout=3, source_address=ATTACKER):
        time.sleep(0.5)
    with client.connector(host=CIP_PLC, port=ENIP_PORT, timeout=3, source_address=ATTACKER) as conn:
        conn.service_code(code=0x05, path="@1/1", data=[0])  # Reset, identity object class 1 instance 1
        for _ in range(2):
            attempt("attacker reset reply", next, conn, None)


def attack_identity_sweep() -> None:
    for plc in SWEEP_PLCS:
        client = attempt(f"sweep connect {plc}", modbus_client, ATTACKER, plc)
        if client is not None:
            attempt(f"sweep fc43/14 {plc}", client.read_device_information, read_code=1, object_id=0)
            client.close()
        time.sleep(0.2)


# --- scenarios ------------------------------------------------------------------------------------------

def learn_setpoints(rng: random.Random) -> Callable[[int], int | None]:
    """Every 7th cycle a setpoint in 100..200; the first two are the range's ends."""
    ends = {3: 100, 10: 200}
    return lambda cycle: ends.get(cycle, rng.randint(100, 200)) if cycle % 7 == 3 else None


def second_setpoints(rng: random.Random) -> Callable[[int], int | None]:
    return lambda cycle: rng.randint(105, 195) if cycle % 7 == 3 else None


def out_of_range_setpoints(rng: random.Random) -> Callable[[int], int | None]:
    normal = second_setpoints(rng)
    return lambda cycle: 9999 if cycle == int(ATTACK_AT) else normal(cycle)


@dataclass(frozen=True)
class Scenario:
    name: str
    seconds: float
    setpoints: Callable[[random.Random], Callable[[int], int | None]] = second_setpoints
    engineering_at: tuple[float, ...] = ()
    attack: tuple[str, Callable[[], None]] | None = None  # (source address, action) at ATTACK_AT
    stops_hmi_dnp3: bool = False  # the outstation serves one master: the HMI's leaves first
    modbus_plcs: tuple[str, ...] = (MODBUS_PLC,)
    extra_hosts: tuple[str, ...] = ()


SCENARIOS = {s.name: s for s in (
    Scenario("benign_learn", 60.0, learn_setpoints, engineering_at=(12.0, 41.0)),
    Scenario("benign_second", 45.0, second_setpoints, engineering_at=(23.0,)),
    Scenario("attack_it_modbus_write", ATTACK_SECONDS, attack=(ATTACKER, attack_modbus_write)),
    Scenario("attack_s7_stop_download", ATTACK_SECONDS, attack=(ROGUE, attack_s7_stop_download)),
    Scenario("attack_dnp3_restart_operate", ATTACK_SECONDS, attack=(ATTACKER, attack_dnp3), stops_hmi_dnp3=True),
    Scenario("attack_cip_reset_forward_open", ATTACK_SECONDS, attack=(ATTACKER, attack_cip)),
    Scenario("attack_value_out_of_range", ATTACK_SECONDS, out_of_range_setpoints),
    Scenario("attack_identity_sweep", ATTACK_SECONDS, attack=(ATTACKER, attack_identity_sweep),
             modbus_plcs=SWEEP_PLCS),
)}


def scenario_hosts(s: Scenario) -> list[str]:
    hosts = [*s.modbus_plcs, S7_PLC, OUTSTATION, CIP_PLC, HMI, HISTORIAN]
    if s.engineering_at:
        hosts.append(EWS)
    if s.attack:
        hosts.append(s.attack[0])
    return sorted(set(hosts))


def run_timeline(s: Scenario) -> None:
    """Start the background, fire the engineering visits and the attack on time, stop everything."""
    rng = random.Random(s.name)
    stop, dnp3_stop = threading.Event(), threading.Event()
    t0 = time.monotonic()
    threads = [in_role(HMI, hmi_modbus, stop, s.setpoints(rng)), in_role(HMI, hmi_s7, stop),
               in_role(HMI, hmi_cip, stop), in_role(HISTORIAN, historian, stop)]
    hmi_dnp3_thread = in_role(HMI, hmi_dnp3, dnp3_stop)
    events = [(at, EWS, engineering_work) for at in s.engineering_at]
    if s.attack:
        events.append((ATTACK_AT + 0.4, *s.attack))  # off the poll instants, so the attack stands alone
    for at, addr, action in sorted(events, key=lambda e: e[0]):
        time.sleep(max(0.0, t0 + at - time.monotonic()))
        if s.stops_hmi_dnp3 and addr == ATTACKER:
            dnp3_stop.set()
            hmi_dnp3_thread.join(timeout=10)
        print(f"  t={time.monotonic() - t0:5.1f}s {addr} {action.__name__}", file=sys.stderr)
        in_role(addr, action).join(timeout=30)
    time.sleep(max(0.0, t0 + s.seconds - time.monotonic()))
    stop.set()
    dnp3_stop.set()
    for thread in [*threads, hmi_dnp3_thread]:
        thread.join(timeout=15)


def hosts_in(pcap: Path) -> set[str]:
    """Every IPv4 address in the capture, by tshark (empty set when tshark is missing)."""
    if not shutil.which("tshark"):
        return set()
    out = subprocess.run(["tshark", "-r", str(pcap), "-T", "fields", "-e", "ip.src", "-e", "ip.dst"],
                         capture_output=True, text=True, check=True).stdout
    return {addr for line in out.splitlines() for addr in line.split()}


def record(s: Scenario, out: Path, tries: int = 3) -> None:
    """Record one scenario; again (up to ``tries`` times) if the kernel dropped packets or strangers appear."""
    pcap = out / f"{s.name}.pcap"
    hosts = scenario_hosts(s)
    for attempt_no in range(1, tries + 1):
        print(f"{s.name}: {s.seconds:.0f} s (try {attempt_no})", file=sys.stderr)
        with plant(s.modbus_plcs), capture_helper.capture(pcap, hosts) as cap:
            run_timeline(s)
        print(" ", cap.summary(), file=sys.stderr)
        strangers = hosts_in(pcap) - set(hosts)
        if not cap.packets_dropped and not strangers:
            return
        print(f"  unusable: {cap.packets_dropped} dropped, unexpected hosts {sorted(strangers)} "
              "(a loaded machine, or another generator on these addresses)", file=sys.stderr)
    raise RuntimeError(f"{pcap}: no clean recording in {tries} tries")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("pcaps/scenarios"), help="output folder")
    parser.add_argument("--only", action="append", choices=list(SCENARIOS), metavar="NAME",
                        help="record only this scenario (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the scenario names and exit")
    args = parser.parse_args()
    if args.list:
        print("\n".join(SCENARIOS))
        return 0
    if os.geteuid() != 0:
        print("needs root (tcpdump, ports 102 and 502)", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.CRITICAL)  # pymodbus/cpppo/snap7 chatter
    args.out.mkdir(parents=True, exist_ok=True)
    failed = []
    for name in args.only or SCENARIOS:
        try:
            record(SCENARIOS[name], args.out)
        except (RuntimeError, capture_helper.CaptureFailed) as exc:
            print(f"{name}: FAILED: {exc}", file=sys.stderr)
            failed.append(name)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
