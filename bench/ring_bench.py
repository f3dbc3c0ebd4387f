"""The capture path's own CPU per frame: reading a filled AF_PACKET ring, beside reading the same frames from a file.

    python bench/make_capture.py --capture mixed --packets 200000 --out /tmp/live-mixed.pcap
    sudo .venv/bin/python bench/ring_bench.py /tmp/live-mixed.pcap --frames 100000 --repeat 5

In live_bench.py's two namespaces, tcpreplay sends ``--frames`` frames of the capture at top speed into a
ring large enough to hold them all while nothing reads it; then the sensor's capture source
(InterfaceCapture, as `otsensor run -i` opens it) is iterated until it has given every frame, and the
CPU time of that iteration alone is measured (time.process_time: this process only, so other jobs on the
machine change it little).  The same frames read from a file with the reader of `otsensor analyze`
(open_capture) are the reference.  Nothing is analysed: this is the cost of getting frames, the part of
`run` that `analyze` does not have.
"""
from __future__ import annotations

import argparse
import ctypes
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from live_bench import Lab   # (bench/ is the script's directory: on sys.path)


CLONE_NEWNET = 0x40000000


def enter(ns: str) -> None:
    """Move this process into network namespace ``ns`` (the sensor's side of the lab; os.setns is 3.12's)."""
    libc = ctypes.CDLL(None, use_errno=True)
    with open(f"/run/netns/{ns}") as fh:
        if libc.setns(fh.fileno(), CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), f"setns {ns}")


def ring_cpu(lab: Lab, args: argparse.Namespace, block_count: int) -> float:
    """CPU seconds to read ``args.frames`` frames out of a filled ring."""
    from otsensor.sensor.capture.live import InterfaceCapture
    from otsensor.sensor.capture.ring import RingConfig

    capture = InterfaceCapture(["cap0"], RingConfig(block_count=block_count))
    try:
        subprocess.run(["ip", "netns", "exec", lab.inj, args.tcpreplay, "-q", "-i", "inj0", "--topspeed",
                        "--limit", str(args.frames), args.capture], check=True, capture_output=True)
        time.sleep(0.3)   # the last block retired (100 ms timeout)
        stats = capture.statistics()
        if stats["kernel_dropped"] or stats["kernel_received"] < args.frames:
            raise SystemExit(f"the ring did not hold every frame: {stats}")
        seen = 0
        started = time.process_time()
        for _ in capture:
            seen += 1
            if seen == args.frames:
                break
        return time.process_time() - started
    finally:
        capture.close()


def file_cpu(path: str) -> float:
    from otsensor.sensor.capture.files import open_capture

    started = time.process_time()
    for _ in open_capture(path):
        pass
    return time.process_time() - started


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture")
    parser.add_argument("--frames", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--tcpreplay", default=shutil.which("tcpreplay") or "tcpreplay")
    args = parser.parse_args()
    if os.geteuid() != 0:
        print("ring_bench.py needs root (network namespaces, AF_PACKET)", file=sys.stderr)
        return 2
    from otsensor.sensor import pipeline

    build = "compiled" if not pipeline.__file__.endswith(".py") else "pure Python"
    with tempfile.TemporaryDirectory(prefix="otsensor-ring-") as tmp:
        head = os.path.join(tmp, "head.pcap")
        subprocess.run(["tcpdump", "-r", args.capture, "-c", str(args.frames), "-w", head], check=True,
                       capture_output=True)
        size = os.path.getsize(head)
        blocks = max(8, 2 * size // (1 << 20) + 8)   # room for every frame and its header, twice over
        lab = Lab()
        try:
            enter(lab.sen)
            ring_s, file_s = [], []
            for _ in range(args.repeat):
                ring_s.append(ring_cpu(lab, args, blocks))
                file_s.append(file_cpu(head))
                print(f"ring {ring_s[-1] / args.frames * 1e6:.2f} us/frame, file {file_s[-1] / args.frames * 1e6:.2f}"
                      f" us/frame, load {os.getloadavg()[0]:.1f}", flush=True)
        finally:
            lab.close()
    print(f"{build} build, {args.frames:,} frames, median of {args.repeat}: ring "
          f"{statistics.median(ring_s) / args.frames * 1e6:.2f} us/frame, file (analyze's reader) "
          f"{statistics.median(file_s) / args.frames * 1e6:.2f} us/frame")
    return 0


if __name__ == "__main__":
    sys.exit(main())
