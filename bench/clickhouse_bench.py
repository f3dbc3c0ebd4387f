"""What the ClickHouse sink costs `otsensor analyze`, and how fast rows go into the server.

    python bench/clickhouse_bench.py [--packets 200000] [--repeat 3] [--capture FILE]

Starts Debian's clickhouse-server on loopback (tests/sensor/clickhouse_server.py: its own directory, a free
port, unprivileged), builds the bench capture if missing (bench/make_capture.py, into bench/data/), then
alternates runs of ``otsensor analyze CAPTURE -o TMP -q`` without and with ``--clickhouse``, each in its own
process, and reports for each the wall time and the CPU time (user + system, from the child's rusage), and for
the runs with the sink, how much of that CPU the delivery process spent, the run's own CPU (the difference),
and rows per second into the server (rows delivered / wall time of the run).  Best of ``--repeat``.
Figures go to bench/README.md by hand; the machine's load average is printed with them.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.sensor.clickhouse_server import ClickHouseServer, available  # noqa: E402


def timed(args: list[str]) -> tuple[float, float]:
    """Wall and CPU seconds of one command in its own process (its children included)."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(args)}: {proc.stderr.read().decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime


def capture_for(packets: int) -> Path:
    path = ROOT / "bench" / "data" / f"bench_{packets}_s1.pcap"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, str(ROOT / "bench" / "make_capture.py"), "--packets", str(packets),
                        "--out", str(path)], check=True)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--capture", type=Path, help="a capture to use instead of the generated one")
    opts = parser.parse_args()
    reason = available()
    if reason:
        raise SystemExit(reason)
    capture = opts.capture or capture_for(opts.packets)
    work = Path(tempfile.mkdtemp(prefix="otsensor-chbench-"))
    os.chmod(work, 0o755)
    server = ClickHouseServer(work / "server")
    server.start()
    base = [sys.executable, "-m", "otsensor.sensor.cli", "analyze", str(capture), "-q", "-o"]
    plain, sink = [], []
    try:
        for n in range(opts.repeat):
            plain.append(timed([*base, str(work / f"plain{n}")]))
            out = work / f"ch{n}"
            wall, cpu = timed([*base, str(out), "--clickhouse", server.url])
            report = json.loads((out / "summary.json").read_text())["sinks"][0]
            assert report["delivered"] == report["accepted"], report
            sink.append((wall, cpu, report["delivery_cpu_s"], report["delivered"]))
    finally:
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    best_plain = min(plain, key=lambda r: r[1])
    best = min(sink, key=lambda r: r[1] - r[2])
    wall, cpu, delivery, rows = best
    print(f"capture {capture.name}, best of {opts.repeat}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'':34} {'wall s':>8} {'CPU s':>8}")
    print(f"{'analyze':34} {best_plain[0]:8.2f} {best_plain[1]:8.2f}")
    print(f"{'analyze --clickhouse (all)':34} {wall:8.2f} {cpu:8.2f}")
    print(f"{'  of which the delivery process':34} {'':8} {delivery:8.2f}")
    print(f"{'  the run itself':34} {'':8} {cpu - delivery:8.2f}")
    print(f"run's own CPU: {100 * (cpu - delivery - best_plain[1]) / best_plain[1]:+.1f}%; "
          f"all CPU: {100 * (cpu - best_plain[1]) / best_plain[1]:+.1f}%; "
          f"wall: {100 * (wall - best_plain[0]) / best_plain[0]:+.1f}%")
    print(f"rows delivered {rows:,}: {rows / wall:,.0f} rows/s over the run's wall time, "
          f"{rows / delivery:,.0f} rows per CPU second of the delivery process")


if __name__ == "__main__":
    main()
