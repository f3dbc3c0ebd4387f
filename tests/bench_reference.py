"""tshark's view of a benchmark capture, in the generator's PDU keys (bench/synth module docstrings).

tshark dissects the capture once, to JSON; every PDU it decodes becomes a key
of the same shape the generator counted when it wrote the PDU, so the two
multisets can be compared.  ``problems`` lists what tshark flags: malformed
packets, expert warnings and errors, TCP analysis events, bad checksums (IPv4,
TCP, UDP, ICMP all verified), and replies it cannot pair with their request.
"""
from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

CHECKSUMS = ["-o", "ip.check_checksum:TRUE", "-o", "tcp.check_checksum:TRUE", "-o", "udp.check_checksum:TRUE"]
LAYERS = "ip tcp udp mbtcp modbus cotp s7comm dnp3 enip cip cipcm cipcls cipio"
PROBLEMS = ("_ws.malformed || _ws.expert.severity >= warning || tcp.analysis.flags"
            " || ip.checksum.status != 1 || tcp.checksum.status == 0 || udp.checksum.status == 0"
            " || icmp.checksum.status == 0"
            " || (modbus && tcp.srcport == 502 && !modbus.exception_code && !modbus.request_frame)"
            " || ((enip.command == 0x6f || enip.command == 0x70) && tcp.srcport == 44818 && !enip.response_to)")
SERVER_PORTS = {"modbus": 502, "s7comm": 102, "dnp3": 20000, "enip": 44818}
IO_SCANNERS = "10.10.5."          # the controllers (10.10.5.x) originate implicit I/O; adapters answer
_ITEMS = re.compile(r"Number of Items: (\d+)")
ALL_OBJECTS = 6                   # DNP3 range code without a count (tshark shows "Number of Items: 0")


def problems(path: Path) -> list[str]:
    out = subprocess.run(["tshark", "-n", "-r", str(path), *CHECKSUMS, "-Y", PROBLEMS, "-T", "fields",
                          "-e", "frame.number", "-e", "_ws.expert.message", "-e", "tcp.analysis.flags"],
                         capture_output=True, text=True, check=True, timeout=300).stdout
    return out.splitlines()


def tshark_pdus(path: Path) -> Counter:
    text = subprocess.run(["tshark", "-n", "-r", str(path), "-T", "json", "--no-duplicate-keys", "-J", LAYERS],
                          capture_output=True, text=True, check=True, timeout=300).stdout
    pdus: Counter = Counter()
    for packet in json.loads(text):
        layers = packet["_source"]["layers"]
        for extract in (_modbus, _cotp, _s7comm, _dnp3, _enip, _cip_io):
            pdus.update(extract(layers))
    return pdus


# -- the tree ------------------------------------------------------------------------------------------

def _each(value: Any) -> list:
    """A key that occurs once is a value; more often, a list of them (--no-duplicate-keys)."""
    return value if isinstance(value, list) else [value]


def find(node: Any, key: str) -> list:
    """Every value of ``key`` in the subtree, in tree order."""
    found: list = []
    if isinstance(node, dict):
        for k, v in node.items():
            if k == key:
                found += _each(v)
            else:
                found += find(v, key)
    elif isinstance(node, list):
        for item in node:
            found += find(item, key)
    return found


def _direction(layers: dict, protocol: str) -> int:
    port = SERVER_PORTS[protocol]
    return 0 if int(find(layers.get("tcp", {}), "tcp.dstport")[0]) == port else 1


# -- per protocol --------------------------------------------------------------------------------------

def _modbus(layers: dict) -> list[tuple]:
    if "modbus" not in layers:
        return []
    d = _direction(layers, "modbus")
    fc = int(find(layers["modbus"], "modbus.func_code")[0]) & 0x7F
    exception = find(layers["modbus"], "modbus.exception_code")
    return [("modbus", "req" if d == 0 else "resp", fc, int(exception[0]) if exception else 0)]


def _cotp(layers: dict) -> list[tuple]:
    names = {0x0E: "CR", 0x0D: "CC"}
    types = [int(t, 16) for t in find(layers.get("cotp", {}), "cotp.type")]
    return [("cotp", _direction(layers, "s7comm"), names[t]) for t in types if t in names]


def _s7comm(layers: dict) -> list[tuple]:
    out = []
    for pdu in _each(layers.get("s7comm", [])):
        d = _direction(layers, "s7comm")
        rosctr = int(find(pdu, "s7comm.header.rosctr")[0])
        if rosctr == 7:
            group = int(find(pdu, "s7comm.param.userdata.funcgroup")[0])
            sub = int(find(pdu, "s7comm.param.userdata.subfunc")[0])
            out.append(("s7comm", d, rosctr, group, sub))
        else:
            count = find(pdu, "s7comm.param.itemcount")
            out.append(("s7comm", d, rosctr, int(find(pdu, "s7comm.param.func")[0], 16),
                        int(count[0]) if count else None))
    return out


def _dnp3(layers: dict) -> list[tuple]:
    out = []
    for frame in _each(layers.get("dnp3", [])):
        for name, app in frame.items():
            if not name.startswith("Application Layer"):
                continue
            headers = []
            for objects_name, objects in app.items():
                if not objects_name.endswith("Data Objects"):
                    continue
                for obj, tree in zip(_each(objects["dnp3.al.obj"]), _each(objects["dnp3.al.obj_tree"])):
                    code = int(obj, 16)
                    qualifier = int(find(tree, "dnp3.al.objq.prefix")[0]) << 4 | int(find(tree, "dnp3.al.objq.range")[0])
                    items = [int(m.group(1)) for k in tree for m in [_ITEMS.match(k)] if m]
                    count = None if qualifier & 0x0F == ALL_OBJECTS else items[0]
                    headers.append((code >> 8, code & 0xFF, qualifier, count))
            out.append(("dnp3", _direction(layers, "dnp3"), int(app["dnp3.al.func"]),
                        int(app["dnp3.al.ctl"], 16) & 0xF0, tuple(headers)))
    return out


def _enip(layers: dict) -> list[tuple]:
    if "enip" not in layers or "tcp" not in layers:
        return []
    services = tuple(int(sc, 16) | (0x80 if int(rr, 16) else 0)
                     for sc, rr in zip(find(layers, "cip.sc"), find(layers, "cip.rr")))
    command = int(find(layers["enip"], "enip.command")[0], 16)
    return [("enip", _direction(layers, "enip"), command, services)]


def _cip_io(layers: dict) -> list[tuple]:
    if "cipio" not in layers:
        return []
    return [("cip_io", 0 if find(layers["ip"], "ip.src")[0].startswith(IO_SCANNERS) else 1)]
