"""Record real EtherNet/IP + CIP sessions against cpppo 5.2.5's simulated Logix controller.

Usage::

    python pcaps/generator/enip.py --out pcaps/

Roles (distinct loopback addresses; needs root for tcpdump):

* PLC:     ``python -m cpppo.server.enip -a 127.10.1.50:44818`` with a few tags
           (``Speed=INT[10] Level=DINT[20] Temp=REAL[4] Recipe=SINT[600]``),
           serving TCP and UDP 44818.
* HMI:     127.10.1.20, the cpppo client (tag reads and writes, fragmented
           reads/writes, Multiple Service Packet, a connected session opened by
           Forward Open with connected reads) and pylogix (ListIdentity,
           tag reads and writes over a Large Forward Open, Forward Close).
* IT host: 127.20.1.50, the cpppo client (RegisterSession, ListIdentity over
           TCP and UDP, ListServices, ListInterfaces, Get Attribute All /
           Single on the identity object, Set Attribute Single, a Reset request
           on the identity object) and pycomm3 (identity, attribute reads,
           Large Forward Open).

Writes ``enip_hmi.pcap`` and ``enip_engineering.pcap`` into ``--out``.  Each
capture is taken with the shared helper ``capture.py`` (tcpdump on ``lo``) filtered
to the PLC's and the role's addresses and port 44818.  Every
client runs in this process; their sockets are made to originate from the
role's address by patching ``socket.socket`` (none of the three libraries has
a source-address option).  cpppo answers a CIP Reset by dropping the session
(encapsulation status 0x08 or a closed connection); the request is recorded
anyway.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import socket as _socket
import subprocess
import sys
import time
from pathlib import Path

from capture import capture  # shared tcpdump helper next to this script

PLC_ADDR = "127.10.1.50"
HMI_ADDR = "127.10.1.20"
IT_ADDR = "127.20.1.50"
PORT = 44818
TAGS = ["Speed=INT[10]", "Level=DINT[20]", "Temp=REAL[4]", "Recipe=SINT[600]"]
_ORIGINAL_SOCKET = _socket.socket


def bind_sockets_to(source: str) -> None:
    """Make every new IPv4 socket of this process originate from ``source``."""

    class BoundSocket(_ORIGINAL_SOCKET):
        def _bind_once(self) -> None:
            if self.family == _socket.AF_INET and self.getsockname()[1] == 0:
                self.bind((source, 0))

        def connect(self, address):  # type: ignore[override]
            self._bind_once()
            return super().connect(address)

        def connect_ex(self, address):  # type: ignore[override]
            self._bind_once()
            return super().connect_ex(address)

        def sendto(self, *args):  # type: ignore[override]
            self._bind_once()
            return super().sendto(*args)

    _socket.socket = BoundSocket  # type: ignore[misc]


def address_free(address: str, port: int) -> bool:
    """True when nothing listens on address:port (another generator may be using the PLC address)."""
    probe = _ORIGINAL_SOCKET(_socket.AF_INET, _socket.SOCK_STREAM)
    try:
        probe.bind((address, port))
        return True
    except OSError:
        return False
    finally:
        probe.close()


@contextlib.contextmanager
def plc_server():
    cmd = [sys.executable, "-m", "cpppo.server.enip", "--no-config", "-a", f"{PLC_ADDR}:{PORT}", *TAGS]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(3.0)  # cpppo imports slowly
    try:
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def attempt(label: str, fn, *args, **kwds):
    """Run one client step; a failing step is reported and the session goes on."""
    try:
        result = fn(*args, **kwds)
        print(f"  {label}: ok", file=sys.stderr)
        return result
    except Exception as exc:  # noqa: BLE001 - real stacks; some steps are expected to fail
        print(f"  {label}: {type(exc).__name__}: {exc}"[:200], file=sys.stderr)
        return None
    finally:
        time.sleep(0.2)


def cpppo_cli(*argv: str) -> None:
    from cpppo.server.enip import client
    client.main(["--no-print", "-a", f"{PLC_ADDR}:{PORT}", "-t", "3", *argv])


def cpppo_attributes(*argv: str) -> None:
    """Get/Set Attribute Single and Get Attributes All through cpppo's attribute proxy CLI."""
    from cpppo.server.enip import get_attribute
    get_attribute.main(["-a", f"{PLC_ADDR}:{PORT}", "-t", "3", *argv])


def cpppo_reset_identity() -> None:
    """CIP Reset (0x05) on the identity object, class 1 instance 1; cpppo drops the session."""
    from cpppo.server.enip import client
    with client.connector(host=PLC_ADDR, port=PORT, timeout=3) as conn:
        conn.service_code(code=0x05, path="@1/1", data=[0])
        for _ in range(2):
            next(conn, None)


def pylogix_session() -> None:
    from pylogix import PLC
    with PLC(PLC_ADDR) as plc:
        plc.SocketTimeout = 3.0
        attempt("pylogix GetDeviceProperties", plc.GetDeviceProperties)
        attempt("pylogix Read Speed[0]", plc.Read, "Speed[0]")
        attempt("pylogix Read Level[0] x5", plc.Read, "Level[0]", 5)
        attempt("pylogix Write Speed[2]", plc.Write, "Speed[2]", 1234)
        attempt("pylogix Write Temp[1]", plc.Write, "Temp[1]", 21.5)
        attempt("pylogix multi Read", plc.Read, ["Speed[1]", "Level[3]", "Temp[0]"])
        attempt("pylogix Message GetAttrSingle", plc.Message, 0x0E, 0x01, 0x01, 0x07)


def pycomm3_session() -> None:
    from pycomm3 import CIPDriver, Services
    with CIPDriver(PLC_ADDR) as drv:
        attempt("pycomm3 identity", lambda: drv.list_identity(PLC_ADDR))
        attempt("pycomm3 get attr single vendor", drv.generic_message, service=Services.get_attribute_single,
                class_code=0x01, instance=1, attribute=1, connected=False)
        attempt("pycomm3 get attrs all identity", drv.generic_message, service=Services.get_attributes_all,
                class_code=0x01, instance=1, connected=True)


def hmi_session() -> None:
    bind_sockets_to(HMI_ADDR)
    attempt("cpppo reads", cpppo_cli, "Speed[0-9]", "Level[0-4]", "Temp[0-3]")
    attempt("cpppo writes", cpppo_cli, "Speed[0-2]=(INT)10,20,30", "Temp[2]=(REAL)3.25")
    attempt("cpppo fragmented", cpppo_cli, "-f", "Recipe[0-499]", "Recipe[10-309]=(SINT)" + ",".join(["7"] * 300))
    attempt("cpppo multiple", cpppo_cli, "-m", "Speed[0]", "Level[1]", "Temp[0]", "Level[2]=(DINT)99")
    # -c: Forward Open (connected, class 3), connected reads/writes, Forward Close at the end
    attempt("cpppo connected", cpppo_cli, "-c", "Speed[0-3]", "Level[1]=(DINT)42", "Temp[0-1]")
    attempt("pylogix", pylogix_session)


def engineering_session() -> None:
    bind_sockets_to(IT_ADDR)
    attempt("cpppo list identity/services/interfaces tcp", cpppo_cli, "-i", "-s", "-I")
    attempt("cpppo list identity udp", cpppo_cli, "-u", "-i")
    attempt("cpppo get attributes all identity", cpppo_attributes, "@1/1")
    attempt("cpppo get attribute single", cpppo_attributes, "@1/1/7", "@1/1/1", "@0x66/1/1")
    attempt("cpppo set attribute", cpppo_attributes, "@1/1/7=(SSTRING)HELLO")
    attempt("pycomm3", pycomm3_session)
    attempt("cpppo reset identity", cpppo_reset_identity)


def run_role(role: str) -> int:
    {"hmi": hmi_session, "engineering": engineering_session}[role]()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("pcaps"))
    parser.add_argument("--role", choices=("hmi", "engineering"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role:  # child process: one client role with its own socket patch
        return run_role(args.role)
    if os.geteuid() != 0:
        print("needs root (tcpdump)", file=sys.stderr)
        return 1
    if not address_free(PLC_ADDR, PORT):
        print(f"{PLC_ADDR}:{PORT} is in use (another generator?); not recording", file=sys.stderr)
        return 1
    args.out.mkdir(parents=True, exist_ok=True)
    roles = (("hmi", HMI_ADDR, "enip_hmi.pcap"), ("engineering", IT_ADDR, "enip_engineering.pcap"))
    for role, address, name in roles:
        with plc_server(), capture(args.out / name, [PLC_ADDR, address], ports=[PORT]) as cap:
            subprocess.run([sys.executable, __file__, "--role", role], timeout=300, check=False)
        print(cap.summary(), file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
