"""Record real Modbus/TCP sessions between pymodbus 3.16 server and clients.

Usage::

    python pcaps/generator/modbus.py --out pcaps/

Roles (distinct loopback addresses, TCP 502; needs root for port 502 and tcpdump):

* PLC:     a pymodbus ``StartAsyncTcpServer`` on 127.10.1.10:502 with all four
           tables (data blocks start at address 1: a block at 0 raises in
           pymodbus 3.16) and device identification set (vendor, product code,
           revision, vendor URL, product name, model name, user application name).
* HMI:     a ``ModbusTcpClient`` bound to 127.10.1.20 that identifies the PLC
           (FC 43/14 basic), then polls all four tables and now and then writes a
           setpoint register -> ``modbus_hmi.pcap``.
* IT host: a ``ModbusTcpClient`` bound to 127.20.1.50 that reads all four tables,
           writes single and multiple coils and registers, runs FC 7, FC 8
           (sub-functions 0, 2, 10-15, 3, 18, 20, then 4 and 1), FC 11, 12, 17,
           21, 22, 23, 24, FC 43/14 (basic, regular, extended, specific object)
           and provokes exceptions (illegal data address by FC 3, 6, 1 and an
           unknown device-id object; server failure by FC 8 sub-function 99;
           illegal function by user-defined code 65 and by FC 20)
           -> ``modbus_it.pcap``.

Besides each pcap, the script writes ``<name>.expected.json``: the script of
operations it issued (function code, unit, address, quantity, sub-function,
MEI fields), each with the transaction id the client sent and the function code
and exception code of the reply the client received, plus the PLC's device
identification and the role addresses.  Tests compare the sensor's output with
these files.

pymodbus quirks recorded in the captures: a request the 3.16 server cannot
decode (user-defined code 65, FC 20) is answered ``80 01`` (function code 0x80,
ILLEGAL_FUNCTION) instead of ``<code | 0x80> 01``.

The script refuses to run while another program listens on 127.10.1.10:502
(another generator using the same PLC address): its clients would talk to that
server and the capture would not be this script's session.

The capture uses the shared helper ``capture.py`` in this folder.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import struct
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from capture import capture

PLC_ADDR = "127.10.1.10"
HMI_ADDR = "127.10.1.20"
IT_ADDR = "127.20.1.50"
PORT = 502
UNIT = 1
HMI_POLL_CYCLES = 25

DEVICE_IDENTIFICATION = {
    "VendorName": "OTSensor Test Automation",
    "ProductCode": "OTS-PLC-1",
    "MajorMinorRevision": "3.16.1",
    "VendorUrl": "https://example.invalid/otsensor",
    "ProductName": "pymodbus PLC simulator",
    "ModelName": "PM-3000",
    "UserApplicationName": "tank farm pumps",
}

MBAP_AND_FC = struct.Struct(">HHHBB")


def start_plc() -> None:
    """Run the pymodbus server in a daemon thread and return once it accepts connections."""
    from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
    from pymodbus.pdu.device import ModbusDeviceIdentification
    from pymodbus.server import StartAsyncTcpServer

    device = ModbusDeviceContext(
        co=ModbusSequentialDataBlock(1, [False] * 100),
        di=ModbusSequentialDataBlock(1, [True, False, False] * 33),
        hr=ModbusSequentialDataBlock(1, [100 + i for i in range(100)]),
        ir=ModbusSequentialDataBlock(1, [2000 + 3 * i for i in range(100)]),
    )
    context = ModbusServerContext(devices=device)
    identity = ModbusDeviceIdentification(info_name=DEVICE_IDENTIFICATION)

    def serve() -> None:
        asyncio.run(StartAsyncTcpServer(context=context, identity=identity, address=(PLC_ADDR, PORT)))

    if port_open():  # another program's server would answer our clients and the capture would be wrong
        raise SystemExit(f"{PLC_ADDR}:{PORT} is already in use by another program; stop it and run again")
    plc = threading.Thread(target=serve, name="plc", daemon=True)
    plc.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and plc.is_alive():
        if port_open():
            return
        time.sleep(0.05)
    raise RuntimeError("pymodbus server did not start")


def port_open() -> bool:
    import socket
    with socket.socket() as probe:
        return probe.connect_ex((PLC_ADDR, PORT)) == 0


@dataclass
class Session:
    """A pymodbus client that notes every operation it issues and the reply it gets."""

    source: str
    ops: list[dict[str, Any]] = field(default_factory=list)
    sent: list[bytes] = field(default_factory=list)
    received: bytearray = field(default_factory=bytearray)

    def __post_init__(self) -> None:
        from pymodbus.client import ModbusTcpClient
        self.client = ModbusTcpClient(PLC_ADDR, port=PORT, source_address=(self.source, 0), timeout=2, retries=0,
                                      trace_packet=self._trace)
        if not self.client.connect():
            raise RuntimeError(f"{self.source}: cannot connect to the PLC")

    def _trace(self, sending: bool, data: bytes) -> bytes:
        if sending:
            self.sent.append(bytes(data))
        else:
            self.received.extend(data)
        return data

    def do(self, func_code: int, call: Callable[[Any], Any], **fields: Any) -> None:
        """Issue one request and note what was asked, under the transaction id the client sent."""
        self.sent.clear()
        try:
            call(self.client)
        except Exception as exc:  # noqa: BLE001  pymodbus cannot decode some replies (see the module docstring)
            print(f"  {self.source} FC {func_code}: client error {exc}", file=sys.stderr)
            self._reconnect_if_needed()
        tid = MBAP_AND_FC.unpack_from(self.sent[0])[0] if self.sent else None
        self.ops.append({"tid": tid, "unit": UNIT, "func_code": func_code, **fields})

    def replies(self) -> dict[int, tuple[int, int | None]]:
        """Transaction id -> (function code, exception code) of every reply the client received.

        Read from the raw received stream, so that replies the client did not
        wait for (FC 8 force listen only) or could not decode still count.
        """
        out: dict[int, tuple[int, int | None]] = {}
        data, off = bytes(self.received), 0
        while off + MBAP_AND_FC.size <= len(data):
            tid, _proto, length, _unit, fc = MBAP_AND_FC.unpack_from(data, off)
            exception = data[off + MBAP_AND_FC.size] if fc & 0x80 and length >= 3 else None
            out.setdefault(tid, (fc, exception))
            off += 6 + length
        return out

    def finish(self) -> list[dict[str, Any]]:
        replies = self.replies()
        for op in self.ops:
            op["reply_func_code"], op["exception_code"] = replies.get(op["tid"], (None, None))
        self.client.close()
        return self.ops

    def _reconnect_if_needed(self) -> None:
        if not self.client.connected:
            self.client.connect()


def hmi_session(s: Session) -> None:
    """An HMI: identify the PLC once, then poll every table, writing a setpoint every fifth cycle."""
    s.do(43, lambda c: c.read_device_information(read_code=1, object_id=0),
         mei_type=14, read_device_id_code=1, object_id=0)
    for cycle in range(HMI_POLL_CYCLES):
        s.do(3, lambda c: c.read_holding_registers(0, count=10), address=0, quantity=10)
        s.do(4, lambda c: c.read_input_registers(0, count=8), address=0, quantity=8)
        s.do(1, lambda c: c.read_coils(0, count=16), address=0, quantity=16)
        s.do(2, lambda c: c.read_discrete_inputs(0, count=12), address=0, quantity=12)
        if cycle % 5 == 4:
            value = 500 + cycle
            s.do(6, lambda c, value=value: c.write_register(20, value), address=20, quantity=1, values=[value])
        time.sleep(0.05)


def it_session(s: Session) -> None:
    """An IT host poking the PLC: reads, writes, diagnostics, identification, and bad requests."""
    import pymodbus.pdu.file_message as fm
    from pymodbus.pdu import ModbusPDU
    from pymodbus.pdu.diag_message import DiagnosticBase

    class UserDefined65(ModbusPDU):
        """A user-defined function code (spec 5: 65-72) the server does not implement."""
        function_code = 65
        rtu_frame_size = 0

        def encode(self) -> bytes:
            return b"\x01\x02"

        def decode(self, data: bytes) -> None:
            pass

    class UnknownDiagnostic(DiagnosticBase):
        """FC 8 sub-function 99 (not defined by spec 6.8): pymodbus answers 88 04 (server device failure)."""
        sub_function_code = 99

    s.client.register(UserDefined65)
    s.do(1, lambda c: c.read_coils(0, count=20), address=0, quantity=20)
    s.do(2, lambda c: c.read_discrete_inputs(5, count=30), address=5, quantity=30)
    s.do(3, lambda c: c.read_holding_registers(10, count=40), address=10, quantity=40)
    s.do(4, lambda c: c.read_input_registers(50, count=25), address=50, quantity=25)
    s.do(5, lambda c: c.write_coil(3, True), address=3, quantity=1, values=[True])
    s.do(5, lambda c: c.write_coil(3, False), address=3, quantity=1, values=[False])
    s.do(6, lambda c: c.write_register(30, 4242), address=30, quantity=1, values=[4242])
    coils = [True, False, True, True, False, False, True, False, True, True]
    s.do(15, lambda c: c.write_coils(40, coils), address=40, quantity=len(coils), values=coils)
    registers = [11, 22, 33, 44, 55, 66]
    s.do(16, lambda c: c.write_registers(60, registers), address=60, quantity=len(registers), values=registers)
    s.do(7, lambda c: c.read_exception_status())
    diagnostics = [
        (0, lambda c: c.diag_query_data(b"\xa5\x37")),
        (2, lambda c: c.diag_read_diagnostic_register()),
        (10, lambda c: c.diag_clear_counters()),
        (11, lambda c: c.diag_read_bus_message_count()),
        (12, lambda c: c.diag_read_bus_comm_error_count()),
        (13, lambda c: c.diag_read_bus_exception_error_count()),
        (14, lambda c: c.diag_read_device_message_count()),
        (15, lambda c: c.diag_read_device_no_response_count()),
    ]
    for sub, call in diagnostics:
        s.do(8, call, sub_function=sub)
    s.do(11, lambda c: c.diag_get_comm_event_counter())
    s.do(12, lambda c: c.diag_get_comm_event_log())
    s.do(17, lambda c: c.report_device_id())
    record = fm.FileRecord(file_number=4, record_number=7, record_data=b"\x00\x2a\x00\x2b")
    s.do(21, lambda c: c.write_file_record([record]))
    s.do(22, lambda c: c.mask_write_register(address=2, and_mask=0xF0F2, or_mask=0x0025),
         address=2, quantity=1, and_mask=0xF0F2, or_mask=0x0025)
    s.do(23, lambda c: c.readwrite_registers(read_address=0, read_count=6, write_address=70, values=[7, 8, 9]),
         read_address=0, read_quantity=6, write_address=70, write_quantity=3, address=70, quantity=3)
    s.do(24, lambda c: c.read_fifo_queue(address=5), address=5)
    for code, object_id in ((1, 0), (2, 0), (3, 0), (4, 4), (4, 6)):
        s.do(43, lambda c, code=code, object_id=object_id: c.read_device_information(read_code=code,
                                                                                     object_id=object_id),
             mei_type=14, read_device_id_code=code, object_id=object_id)
    # more FC 8 sub-functions (spec 6.8.1: 3 change ASCII delimiter, 18 overrun count, 20 clear overrun)
    s.do(8, lambda c: c.diag_change_ascii_input_delimeter(), sub_function=3)
    s.do(8, lambda c: c.diag_read_bus_char_overrun_count(), sub_function=18)
    s.do(8, lambda c: c.diag_clear_overrun_counter(), sub_function=20)
    # exceptions: addresses past the end of the 100-item blocks, then functions the server lacks
    s.do(3, lambda c: c.read_holding_registers(95, count=10), address=95, quantity=10)
    s.do(6, lambda c: c.write_register(200, 1), address=200, quantity=1, values=[1])
    s.do(1, lambda c: c.read_coils(150, count=8), address=150, quantity=8)
    s.do(43, lambda c: c.read_device_information(read_code=4, object_id=0x50),
         mei_type=14, read_device_id_code=4, object_id=0x50)  # no such object: AB 02
    s.do(8, lambda c: c.execute(False, UnknownDiagnostic(dev_id=UNIT)), sub_function=99)
    s.do(65, lambda c: c.execute(False, UserDefined65(dev_id=UNIT)))
    s.do(20, lambda c: c.read_file_record([fm.FileRecord(file_number=4, record_number=7, record_length=2)]))
    # control-type diagnostics last: pymodbus keeps answering after listen-only (a real device would not)
    s.do(8, lambda c: c.diag_force_listen_only(), sub_function=4)
    s.do(8, lambda c: c.diag_restart_communication(False), sub_function=1)


SESSIONS = {"modbus_hmi": (HMI_ADDR, "hmi_scada", hmi_session), "modbus_it": (IT_ADDR, "it_host", it_session)}


def record(out: Path, name: str) -> None:
    source, role, script = SESSIONS[name]
    pcap = out / f"{name}.pcap"
    with capture(pcap, [source], ports=[PORT]) as cap:
        session = Session(source)
        script(session)
        operations = session.finish()
    print(cap.summary(), file=sys.stderr)
    expected = {
        "generator": "pcaps/generator/modbus.py", "stack": "pymodbus 3.16",
        "plc": {"address": PLC_ADDR, "port": PORT, "role": "plc_rtu", "device_identification": DEVICE_IDENTIFICATION},
        "client": {"address": source, "role": role},
        "operations": operations,
    }
    (out / f"{name}.expected.json").write_text(json.dumps(expected, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("pcaps"), help="output folder (default pcaps/)")
    parser.add_argument("--only", choices=list(SESSIONS), action="append", help="record only this capture")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("needs root (tcpdump, port 502)", file=sys.stderr)
        return 1
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)  # deprecation chatter of the 3.16 datastore
    start_plc()  # a daemon thread: it ends with the script
    for name in args.only or SESSIONS:
        record(args.out, name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
