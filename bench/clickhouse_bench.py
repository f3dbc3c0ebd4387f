"""What the ClickHouse sink costs `otsensor analyze`, and how fast rows go into the server.

    python bench/clickhouse_bench.py [--packets 200000] [--repeat 3] [--only modbus,s7,dnp3,enip,mixed]
                                     [--compression auto|lz4|zstd|none] [--batch-rows N] [--piece-bytes N]
                                     [--server-away]

Starts Debian's clickhouse-server on loopback (tests/sensor/clickhouse_server.py: its own directory, a free
port, unprivileged), builds the bench captures if missing or stale (bench/make_capture.py, into bench/data/),
then for each capture alternates runs of ``otsensor analyze CAPTURE -o TMP -q`` without and with the sink
(``--config`` with its ``[clickhouse]`` section: the server's native and HTTP ports), each in its own process,
``--repeat`` times, each run's output removed as soon as it ends (left in place, its gigabyte of JSONL, in the
page cache and not yet written back, slowed the next run: until round eight every run with the sink came right
after one without it, and paid for it).  For each pair it takes the wall time and the
CPU time (user + system, from the child's rusage, the delivery process included), and for the runs with the
sink the delivery process's own CPU and rows per second into the server (rows delivered / wall time of the
run), and the server's CPU over the run (from /proc: parsing and merging the rows, never counted in the added
figures), and the peak resident memory of the largest process of each run.  Printed as a markdown table: the median of the repeats and, in brackets, the range of the added
percentage over the pairs (the machine is shared: a pair runs back to back, so both halves see the same load).
The machine's load average is printed with it; figures go to bench/README.md by hand.

``--server-away``: the sink sends its inserts to bench/discard_inserts.py, which reads them and drops them, as
if the server ran on another machine (a fleet's case): the sensor's own cost alone, without the server's CPU
and its contention for this machine's shared cache.  Rows/s is then what the sensor sent, not what a server
stored; the front's CPU (in the bench process) is printed apart.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

sys.path.insert(0, str(ROOT / "bench"))

from discard_inserts import DiscardInserts  # noqa: E402
from make_capture import ensure  # noqa: E402
from tests.sensor.clickhouse_server import ClickHouseServer, available  # noqa: E402


def timed(args: list[str]) -> tuple[float, float, float]:
    """Wall and CPU seconds of one command in its own process (its children included), and the peak resident
    memory, MiB, of the largest of them (the capture process: it holds the batches until they are confirmed)."""
    started = time.perf_counter()
    proc = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"failed: {' '.join(args)}: {proc.stderr.read().decode()[-500:]}")
    return wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a running process has used so far (the server: parsing the inserts)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(new: float, old: float) -> float:
    return 100 * (new - old) / old


def bench_capture(capture: Path, server: ClickHouseServer, work: Path, repeat: int,
                  compression: str = "auto", batch_rows: int | None = None,
                  piece_bytes: int | None = None, http_port: int | None = None) -> dict[str, Any]:
    """Pairs of runs (without, with the sink) of one capture: figures per pair.  ``http_port``: where the
    inserts go (the server's HTTP port unless given: the front of --server-away)."""
    base = [sys.executable, "-m", "otsensor.sensor.cli", "analyze", str(capture), "-q", "-o"]
    config = work / "sensor.toml"   # the server's ports: native for the schema, HTTP for the inserts
    config.write_text(f'[clickhouse]\nurl = "{server.url}"\nhttp_port = {http_port or server.http_port}\n'
                      f'compression = "{compression}"\n' + (f"batch_rows = {batch_rows}\n" if batch_rows else "")
                      + (f"piece_bytes = {piece_bytes}\n" if piece_bytes is not None else ""))
    pairs = []
    for n in range(repeat):
        plain = timed([*base, str(work / f"plain{n}")])
        # removed before the next run: left in place until after it, it slowed that run (bench/README.md round eight)
        shutil.rmtree(work / f"plain{n}", ignore_errors=True)
        out = work / f"ch{n}"
        server_before, front_before = process_cpu(server.proc.pid), time.process_time()
        wall, cpu, rss = timed([*base, str(out), "--config", str(config)])
        server_cpu = process_cpu(server.proc.pid) - server_before
        front_cpu = time.process_time() - front_before    # the discarding front's threads: this process
        report = json.loads((out / "summary.json").read_text())["sinks"][0]
        assert report["delivered"] == report["accepted"] > 0, report
        pairs.append({"plain": plain, "sink": (wall, cpu, rss), "delivery_cpu": report["delivery_cpu_s"],
                      "parts": report.get("delivery_cpu_parts", {}), "server_cpu": server_cpu, "front_cpu": front_cpu,
                      "rows": report["delivered"]})
        shutil.rmtree(out, ignore_errors=True)
    return summarise(pairs)


def summarise(pairs: list[dict[str, Any]]) -> dict[str, Any]:
    def med(values: Any) -> float:
        return statistics.median(list(values))
    wall_added = [pct(p["sink"][0], p["plain"][0]) for p in pairs]
    cpu_added = [pct(p["sink"][1], p["plain"][1]) for p in pairs]
    own_added = [pct(p["sink"][1] - p["delivery_cpu"], p["plain"][1]) for p in pairs]
    return {"plain_wall": med(p["plain"][0] for p in pairs), "plain_cpu": med(p["plain"][1] for p in pairs),
            "sink_wall": med(p["sink"][0] for p in pairs), "sink_cpu": med(p["sink"][1] for p in pairs),
            "delivery_cpu": med(p["delivery_cpu"] for p in pairs),
            "plain_rss": med(p["plain"][2] for p in pairs), "sink_rss": med(p["sink"][2] for p in pairs),
            "server_cpu": med(p["server_cpu"] for p in pairs), "front_cpu": med(p["front_cpu"] for p in pairs),
            "parts": {k: med(p["parts"].get(k, 0) for p in pairs) for k in pairs[0]["parts"]}, "rows": pairs[0]["rows"],
            "rows_per_s": med(p["rows"] / p["sink"][0] for p in pairs),
            "wall_added": (med(wall_added), min(wall_added), max(wall_added)),
            "cpu_added": (med(cpu_added), min(cpu_added), max(cpu_added)),
            "own_added": (med(own_added), min(own_added), max(own_added))}


def spread(values: tuple[float, float, float]) -> str:
    return f"{values[0]:+.0f}% [{values[1]:+.0f}..{values[2]:+.0f}]"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--only", default="modbus,s7,dnp3,enip,mixed", help="bench captures, comma-separated")
    parser.add_argument("--compression", default="auto", choices=["auto", "lz4", "zstd", "none"],
                        help="the sink's (auto, its default: none on loopback, as here)")
    parser.add_argument("--batch-rows", type=int, default=None, help="the sink's batch_rows (default: its default)")
    parser.add_argument("--piece-bytes", type=int, default=None,
                        help="the sink's piece_bytes (default: its default; 0: whole batches, no streaming)")
    parser.add_argument("--server-away", action="store_true",
                        help="inserts read and dropped by bench/discard_inserts.py: the sensor's cost alone, as "
                             "with a server on another machine")
    opts = parser.parse_args()
    reason = available()
    if reason:
        raise SystemExit(reason)
    captures = [ensure(name, opts.packets)[0] for name in opts.only.split(",")]
    work = Path(tempfile.mkdtemp(prefix="otsensor-chbench-"))
    os.chmod(work, 0o755)
    server = ClickHouseServer(work / "server")
    server.start()
    front = DiscardInserts(server.http_port) if opts.server_away else None
    if front:
        print("inserts read and dropped by bench/discard_inserts.py (--server-away): the server CPU column is its "
              "set-up only; rows/s is rows sent\n")
    print(f"median of {opts.repeat} pairs; [min..max] of the added percentage\n")
    print("| capture | analyze wall / CPU s | with --clickhouse wall / CPU s | delivery process CPU s "
          "| added wall | added CPU (all) | added CPU (the run's own) | server CPU s | rows | rows/s into the server "
          "| peak RSS MiB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|", flush=True)
    split, fronts = [], []
    try:
        for capture in captures:   # a row as soon as its capture is done: a long run shows progress
            r = bench_capture(capture, server, work, opts.repeat, opts.compression, opts.batch_rows, opts.piece_bytes,
                              front.port if front else None)
            split.append((capture.name, r["parts"]))
            fronts.append((capture.name, r["front_cpu"]))
            print(f"| {capture.name} | {r['plain_wall']:.2f} / {r['plain_cpu']:.2f} | {r['sink_wall']:.2f} / "
                  f"{r['sink_cpu']:.2f} | {r['delivery_cpu']:.2f} | {spread(r['wall_added'])} "
                  f"| {spread(r['cpu_added'])} | {spread(r['own_added'])} | {r['server_cpu']:.2f} | {r['rows']:,} "
                  f"| {r['rows_per_s']:,.0f} | {r['plain_rss']:.0f} / {r['sink_rss']:.0f} |", flush=True)
    finally:
        if front:
            front.close()
        server.stop()
        shutil.rmtree(work, ignore_errors=True)
    print("\nthe delivery process's CPU per part, s (median): "
          + "; ".join(f"{name}: " + " / ".join(f"{k} {v:.2f}" for k, v in parts.items()) for name, parts in split))
    if front:
        print("\nthe discarding front's CPU, s (median): " + "; ".join(f"{name}: {cpu:.2f}" for name, cpu in fronts))
    print(f"\nload average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
