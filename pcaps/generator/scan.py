"""Record a real nmap SYN scan of the plant's control cell from the IT attacker's address.

Usage::

    python pcaps/generator/scan.py --out pcaps/scenarios/

What it records (tcpdump on ``lo``, needs root and Debian's ``nmap``):

* a pymodbus server as the PLC on 127.10.1.10:502 (so one probed port answers SYN-ACK, as a real
  PLC would), the rest of 127.10.1.1-20 silent or refusing;
* ``nmap -sS -Pn -n -e lo -S 127.20.1.50`` over 127.10.1.1-20 and the ports an attacker tries on an
  OT network (FTP, SSH, Telnet, HTTP(S), S7, Modbus, EtherNet/IP, DNP3, CIP I/O), at a bounded rate.

Writes ``attack_port_scan.pcap``.  The addresses are the scenario plant's (see scenarios.py and
pcaps/scenarios/zones.toml), so the capture can be analysed against the scenario baseline.
"""
from __future__ import annotations

import argparse
import asyncio
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

from capture import capture  # shared helper beside this script

ATTACKER = "127.20.1.50"
PLC = "127.10.1.10"
TARGETS = "127.10.1.1-20"
PORTS = "21,22,23,80,102,443,502,2222,20000,44818"


def port_taken(address: str, port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex((address, port)) == 0


def run_plc(stop: threading.Event) -> None:
    """A pymodbus server so that the scan finds one open industrial port."""
    from pymodbus.server import StartAsyncTcpServer  # noqa: PLC0415 - only the generator needs pymodbus

    async def serve() -> None:
        task = asyncio.create_task(StartAsyncTcpServer(context=_context(), address=(PLC, 502)))
        while not stop.is_set():
            await asyncio.sleep(0.1)
        task.cancel()

    asyncio.run(serve())


def _context():
    from pymodbus.datastore import ModbusDeviceContext, ModbusSequentialDataBlock, ModbusServerContext
    block = ModbusSequentialDataBlock(1, [0] * 100)   # a block at address 0 raises in pymodbus 3.16
    return ModbusServerContext(devices=ModbusDeviceContext(hr=block, ir=block, co=block, di=block), single=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="pcaps/scenarios", help="output directory")
    args = parser.parse_args()
    if shutil.which("nmap") is None:
        sys.exit("scan.py: nmap is not installed (apt-get install nmap)")
    if port_taken(PLC, 502):
        sys.exit(f"scan.py: {PLC}:502 is already served by another process; stop it first")
    stop = threading.Event()
    plc = threading.Thread(target=run_plc, args=(stop,), daemon=True)
    plc.start()
    deadline = time.monotonic() + 10
    while not port_taken(PLC, 502):
        if time.monotonic() > deadline:
            sys.exit("scan.py: the pymodbus PLC did not start")
        time.sleep(0.1)
    out = Path(args.out) / "attack_port_scan.pcap"
    with capture(out, [ATTACKER]) as cap:
        subprocess.run(["nmap", "-sS", "-Pn", "-n", "-e", "lo", "-S", ATTACKER, "--max-rate", "150",
                        "-p", PORTS, TARGETS], check=True, stdout=subprocess.DEVNULL)
    stop.set()
    plc.join(timeout=5)
    print(cap.summary())
    return 0


if __name__ == "__main__":
    sys.exit(main())
