"""Record real DNP3 sessions from dnp3py 0.6 (pure Python master and outstation).

Usage::

    python pcaps/generator/dnp3.py --out pcaps/

Roles (distinct loopback addresses, TCP 20000, needs root for tcpdump):

* Outstation: ``dnp3.outstation.OutstationTcpRunner`` on 127.10.1.40:20000, DNP3
  link address 10, with binary inputs/outputs, analog inputs/outputs and counters.
* SCADA master: ``dnp3.master.MasterTcpRunner`` from 127.10.1.20, link address 1:
  integrity poll, event-class polls after value changes, a g30 range poll,
  select-before-operate and direct operate on CROBs (g12v1) and analog outputs
  (g41), direct operate no-ack, enable/disable unsolicited, delay measure,
  time write (g50v1) and IIN clear (g80v1).
* IT host master from 127.20.1.50, link address 3: integrity poll, device
  attribute read (g0v254; dnp3py answers it with "object unknown"), direct
  operate, cold and warm restart, stop application (hand-built request,
  dnp3py answers "function not supported"), disable unsolicited.

dnp3py's outstation accepts one master connection at a time, so the masters run
one after the other.  Writes ``dnp3_scada.pcap`` and ``dnp3_engineering.pcap``
into ``--out``.  Each capture is taken with tcpdump on ``lo`` filtered to the
outstation and master addresses and the port, with the shared ``capture.py`` helper.
"""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from capture import capture  # shared helper beside this script

# This script is itself named dnp3.py: drop its folder from the import path (after importing
# the capture helper from it) so ``import dnp3`` finds the dnp3py package, not this file.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

OUTSTATION_ADDR = "127.10.1.40"
SCADA_ADDR = "127.10.1.20"
IT_ADDR = "127.20.1.50"
PORT = 20000
OUTSTATION_LINK = 10
SCADA_LINK = 1
IT_LINK = 3


_SOURCE = {"addr": None}
_real_open_connection = asyncio.open_connection


async def _bound_open_connection(host=None, port=None, **kwargs):
    """asyncio.open_connection from the current master's source address (dnp3py has no option)."""
    if _SOURCE["addr"] and "local_addr" not in kwargs:
        kwargs["local_addr"] = (_SOURCE["addr"], 0)
    return await _real_open_connection(host, port, **kwargs)


asyncio.open_connection = _bound_open_connection  # dnp3py's TcpClientChannel looks it up at call time


@dataclass
class RawRequest:
    """A request fragment built by hand, for functions dnp3py's master has no builder for.

    Quacks like ``RequestFragment`` for ``MasterTcpRunner.request`` (``header`` and ``to_bytes``).
    """

    header: object
    body: bytes = b""

    def to_bytes(self) -> bytes:
        return self.header.to_bytes() + self.body


def raw_request(master, function, body: bytes = b"") -> RawRequest:
    from dnp3.application.header import RequestHeader

    seq = master._state.get_next_request_sequence()
    return RawRequest(RequestHeader.build(function=function, seq=seq), body)


def build_outstation():
    from dnp3.database import Database
    from dnp3.outstation import DefaultCommandHandler, Outstation, OutstationConfig
    from dnp3.outstation.handler import CommandResult

    class RestartingHandler(DefaultCommandHandler):
        """Accept controls and restarts (the default handler refuses all of them).

        Analog output 3 stays refused so a failed control ("Not Supported") is recorded too.
        """

        def select_binary_output(self, index, code, count, on_time, off_time):
            return CommandResult.success()

        def operate_binary_output(self, index, code, count, on_time, off_time, select_sequence):
            return CommandResult.success()

        def direct_operate_binary_output(self, index, code, count, on_time, off_time):
            return CommandResult.success()

        def select_analog_output(self, index, value):
            return CommandResult.success() if index != 3 else CommandResult.not_supported()

        def operate_analog_output(self, index, value, select_sequence):
            return CommandResult.success() if index != 3 else CommandResult.not_supported()

        def direct_operate_analog_output(self, index, value):
            return CommandResult.success() if index != 3 else CommandResult.not_supported()

        def cold_restart(self) -> int | None:
            return 5000

        def warm_restart(self) -> int | None:
            return 1000

    db = Database()
    for i in range(8):
        db.add_binary_input(i, value=bool(i % 2))
    for i in range(4):
        db.add_binary_output(i)
        db.add_analog_output(i)
        db.add_counter(i)
    for i in range(6):
        db.add_analog_input(i, value=10.0 * i)
    config = OutstationConfig(address=OUTSTATION_LINK, master_address=0)
    return Outstation(config=config, database=db, handler=RestartingHandler(), time_handler=lambda _t: None)


def master_runner(source: str, link: int):
    from dnp3.master import Master, MasterConfig, MasterTcpRunner

    _SOURCE["addr"] = source
    master = Master(config=MasterConfig(address=link, outstation_address=OUTSTATION_LINK))
    return MasterTcpRunner(master=master, host=OUTSTATION_ADDR, port=PORT, response_timeout=3.0)


async def attempt(label: str, coro) -> None:
    """Run one exchange; a refused or unanswered request is part of the recording, not a failure."""
    try:
        infos = await coro
        print(f"  {label}: ok ({len(infos or [])} fragment(s))", file=sys.stderr)
    except Exception as exc:  # noqa: BLE001 - keep recording the rest of the session
        print(f"  {label}: {type(exc).__name__}: {exc}", file=sys.stderr)


def change_values(outstation, step: int) -> None:
    """Move some points so that class polls return events."""
    db = outstation.database
    db.update_binary_input(step % 8, value=bool(step % 2 == 0))
    db.update_analog_input(1, value=12.5 + step)
    db.update_analog_input(3, value=-4.0 * step)
    db.increment_counter(0) if hasattr(db, "increment_counter") else None


async def scada_session(outstation) -> None:
    from dnp3.core.enums import ControlCode
    from dnp3.master import CommandBuilder

    runner = master_runner(SCADA_ADDR, SCADA_LINK)
    await runner.open()
    m = runner.master
    try:
        await attempt("integrity poll", runner.integrity_poll())
        for step in range(3):
            change_values(outstation, step)
            await attempt("class 1/2/3 poll", runner.class_poll())
        await attempt("range poll g30v0 0-3", runner.request(m.build_range_poll(30, 0, 0, 3)))
        await attempt("disable unsolicited", runner.disable_unsolicited())
        # select-before-operate: CROB latch on index 1, then analog output index 2
        crob = CommandBuilder().add_crob(1, ControlCode.LATCH_ON)
        await attempt("select crob", runner.request(m.build_select(crob.build_select())))
        await attempt("operate crob", runner.request(m.build_operate(crob.build_operate())))
        ao = CommandBuilder().add_analog(2, 42.5)
        await attempt("select ao", runner.request(m.build_select(ao.build_select())))
        await attempt("operate ao", runner.request(m.build_operate(ao.build_operate())))
        pulse = CommandBuilder().pulse_on(0, on_time=500, off_time=250, count=2)
        await attempt("direct operate crob pulse", runner.request(m.build_direct_operate(pulse.build_direct_operate())))
        trip = CommandBuilder().add_crob(3, ControlCode.TRIP_PULSE_ON, on_time=100)
        await attempt("direct operate crob trip", runner.request(m.build_direct_operate(trip.build_direct_operate())))
        ao2 = CommandBuilder().add_analog(0, 1500)
        await attempt("direct operate ao", runner.request(m.build_direct_operate(ao2.build_direct_operate())))
        await attempt("direct operate no ack", direct_operate_no_ack(runner, 1, ControlCode.LATCH_OFF))
        await attempt("delay measure", runner.request(m.build_delay_measure()))
        await attempt("write time g50v1", runner.request(write_time(m)))
        await attempt("clear restart iin g80v1", runner.request(clear_restart_iin(m)))
        await attempt("enable unsolicited", runner.enable_unsolicited())
        change_values(outstation, 7)
        await attempt("class poll after enable", runner.class_poll())
        await attempt("integrity poll", runner.integrity_poll())
    finally:
        await runner.close()


async def direct_operate_no_ack(runner, index: int, code) -> list:
    """DIRECT_OPERATE_NR (0x06): the outstation sends no response, so only send."""
    from dnp3.core.enums import FunctionCode
    from dnp3.master import CommandBuilder

    task = CommandBuilder().add_crob(index, code).build_direct_operate()
    body = task.build_request(seq=0).to_bytes()[2:]  # reuse dnp3py's g12v1 encoding
    await runner.send(raw_request(runner.master, FunctionCode.DIRECT_OPERATE_NO_ACK, body))
    await asyncio.sleep(0.3)
    return []


def write_time(master) -> RawRequest:
    """WRITE g50v1 qualifier 0x07 count 1: absolute time, ms since 1970 (48 bits, LE)."""
    from dnp3.core.enums import FunctionCode

    ms = int(time.time() * 1000)
    return raw_request(master, FunctionCode.WRITE, bytes([50, 1, 0x07, 1]) + ms.to_bytes(6, "little"))


def clear_restart_iin(master) -> RawRequest:
    """WRITE g80v1 qualifier 0x00 start 7 stop 7 value 0: clear IIN1.7 DEVICE_RESTART."""
    from dnp3.core.enums import FunctionCode

    return raw_request(master, FunctionCode.WRITE, bytes([80, 1, 0x00, 7, 7, 0x00]))


async def engineering_session(outstation) -> None:
    from dnp3.core.enums import ControlCode, FunctionCode
    from dnp3.master import CommandBuilder

    runner = master_runner(IT_ADDR, IT_LINK)
    await runner.open()
    m = runner.master
    try:
        await attempt("integrity poll", runner.integrity_poll())
        # g0v254 "all attributes" read, qualifier 0x06 (all objects)
        await attempt("device attributes g0v254", runner.request(raw_request(m, FunctionCode.READ, bytes([0, 254, 0x06]))))
        await attempt("disable unsolicited", runner.disable_unsolicited())
        trip = CommandBuilder().add_crob(2, ControlCode.LATCH_ON)
        await attempt("direct operate crob", runner.request(m.build_direct_operate(trip.build_direct_operate())))
        ao = CommandBuilder().add_analog(3, -7)
        await attempt("direct operate ao", runner.request(m.build_direct_operate(ao.build_direct_operate())))
        await attempt("stop application", runner.request(raw_request(m, FunctionCode.STOP_APPLICATION)))
        await attempt("warm restart", runner.request(raw_request(m, FunctionCode.WARM_RESTART)))
        await attempt("cold restart", runner.request(raw_request(m, FunctionCode.COLD_RESTART)))
    finally:
        await runner.close()


async def run_with_outstation(session) -> None:
    from dnp3.outstation import OutstationTcpRunner

    outstation = build_outstation()
    server = OutstationTcpRunner(outstation=outstation, host=OUTSTATION_ADDR, port=PORT)
    task = asyncio.create_task(server.run())
    await asyncio.sleep(0.5)
    if not server.is_running:       # e.g. another generator holds 127.10.1.40:20000
        task.cancel()
        raise RuntimeError(f"outstation could not listen on {OUTSTATION_ADDR}:{PORT}")
    try:
        await session(outstation)
        await asyncio.sleep(0.5)
    finally:
        await server.stop()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


def wait_for_free_port(attempts: int = 60) -> None:
    """Wait (up to ``attempts`` seconds) while another process (e.g. the scenario generator,
    which runs a dnp3py outstation on the same address) holds the outstation's port: a master
    here would otherwise talk to that outstation and both recordings would mix."""
    import socket

    for _ in range(attempts):
        with socket.socket() as probe:
            try:
                probe.bind((OUTSTATION_ADDR, PORT))
                return
            except OSError:
                time.sleep(1.0)
    raise SystemExit(f"{OUTSTATION_ADDR}:{PORT} is in use by another process; not recording")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=Path("pcaps"))
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (tcpdump)", file=sys.stderr)
        return 1
    logging.basicConfig(level=logging.ERROR)
    args.out.mkdir(parents=True, exist_ok=True)
    sessions = (("dnp3_scada.pcap", SCADA_ADDR, scada_session), ("dnp3_engineering.pcap", IT_ADDR, engineering_session))
    for name, master, session in sessions:
        wait_for_free_port()
        print(name, file=sys.stderr)
        with capture(args.out / name, [OUTSTATION_ADDR, master], ports=[PORT]) as cap:
            asyncio.run(run_with_outstation(session))
        print(cap.summary(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
