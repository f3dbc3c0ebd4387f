"""What an open flow costs, against what the flow table accounts for it (sensor/flows/table.py FLOW_COST ...).

    python bench/flow_memory.py [--flows 200000]

For each kind of flow, a fresh process opens ``--flows`` of them through the
real pipeline (no sinks, no analyzers: the flow table's own cost) and reports
per flow: the bytes tracemalloc sees allocated, the growth of resident memory
(a separate run, without tracemalloc), and what the flow memory budget
accounts (``FlowTable.memory`` plus the reassembly ``Budget``).  Resident
memory includes the allocator's overhead; the accounted figure should be above
both.
"""
from __future__ import annotations

import argparse
import gc
import json
import struct
import subprocess
import sys
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from make_capture import ACK, PSH, SYN, TCP_FRAME, TCP_PROTO, UDP_FRAME, UDP_PROTO

KINDS = {   # kind -> (transport, server port, segments held out of order per flow)
    "tcp, no dissector": (TCP_PROTO, 10000, 0),
    "udp, no dissector": (UDP_PROTO, 9999, 0),
    "modbus": (TCP_PROTO, 502, 0),
    "s7comm": (TCP_PROTO, 102, 0),
    "dnp3": (TCP_PROTO, 20000, 0),
    "enip": (TCP_PROTO, 44818, 0),
    "modbus, 4 segments held": (TCP_PROTO, 502, 4),
}
SERVER = bytes([10, 9, 9, 9])
MACS = (b"\x02" * 6, b"\x04" * 6)


def frames(kind: str, i: int) -> list[bytes]:
    """The packets that open flow ``i`` of a kind (a spoofed source each)."""
    transport, port, held = KINDS[kind]
    src, sport = struct.pack("!I", 0xAC100000 + i), 1024 + i % 60000
    if transport == UDP_PROTO:
        return [UDP_FRAME.pack(*MACS, 0x0800, 0x45, 0, 33, 1, 0, 64, UDP_PROTO, 0, src, SERVER, sport, port, 13, 0)
                + b"hello"]

    def tcp(flags: int, seq: int, payload: bytes = b"") -> bytes:
        return TCP_FRAME.pack(*MACS, 0x0800, 0x45, 0, 40 + len(payload), 1, 0, 64, TCP_PROTO, 0, src, SERVER,
                              sport, port, seq, 0, 0x50, flags, 65535, 0, 0) + payload
    return [tcp(SYN, 0)] + [tcp(PSH | ACK, 100 + k * 300, b"x" * (k * 200 + 1)) for k in range(held)]


def resident() -> int:
    with open("/proc/self/status") as status:
        return next(int(line.split()[1]) * 1024 for line in status if line.startswith("VmRSS"))


def measure(kind: str, flows: int, traced: bool) -> dict:
    from otsensor.sensor.pipeline import Limits, Pipeline
    pipeline = Pipeline([], [], limits=Limits(max_flows=2 * flows, flow_memory=1 << 40))
    packets = [f for i in range(flows) for f in frames(kind, i)]
    gc.collect()
    if traced:
        tracemalloc.start()
        before = tracemalloc.take_snapshot()
    rss = resident()
    for n, frame in enumerate(packets):
        pipeline.packet(1000.0 + n * 1e-6, 1, frame)
    gc.collect()
    used = resident() - rss
    if traced:
        used = sum(s.size_diff for s in tracemalloc.take_snapshot().compare_to(before, "filename"))
    return {"used": used / flows, "accounted": (pipeline.table.memory + pipeline.stream_budget.used) / flows}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--flows", type=int, default=200_000)
    parser.add_argument("--child", nargs=2, metavar=("KIND", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        print(json.dumps(measure(args.child[0], args.flows, args.child[1] == "traced")))
        return 0
    print(f"{'kind':26} {'traced B/flow':>14} {'resident B/flow':>16} {'accounted B/flow':>17}")
    for kind in KINDS:
        runs = {mode: json.loads(subprocess.run([sys.executable, __file__, "--flows", str(args.flows), "--child",
                                                 kind, mode], capture_output=True, text=True, check=True).stdout)
                for mode in ("traced", "resident")}
        print(f"{kind:26} {runs['traced']['used']:14,.0f} {runs['resident']['used']:16,.0f} "
              f"{runs['traced']['accounted']:17,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
