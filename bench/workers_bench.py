"""`otsensor analyze --workers N` against one process: wall time, CPU time, and each process's share.

    python bench/make_capture.py --capture mixed --packets 200000 --out /tmp/workers-mixed.pcap
    python bench/workers_bench.py /tmp/workers-mixed.pcap --workers 2 --repeat 3

Runs ``otsensor analyze CAPTURE -o TMPDIR -q --workers W`` for W = 1 and N, interleaved, K times.
Each run's wall time and total CPU time (user + system of the command and its workers, from its
rusage) are measured, and each process's own CPU time is sampled from /proc while it runs (the
aggregator, the process that was started, and each worker). On a machine shared with other jobs the
kernel's autogroup scheduler gives a terminal session one fair share of the CPUs however many processes
it runs, so the wall time of N workers then says little; the figure that does not depend on the load
is the idle-machine bound ``max(busiest process, total CPU / cores)``, printed beside it.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

TICK = os.sysconf("SC_CLK_TCK")


def process_cpu(pid: int) -> float | None:
    """CPU seconds (user + system) a live process has used, from /proc/PID/stat."""
    try:
        with open(f"/proc/{pid}/stat") as fh:
            fields = fh.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (int(fields[11]) + int(fields[12])) / TICK


def children(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(p) for p in fh.read().split()]
    except FileNotFoundError:
        return []


def one_run(capture: str, workers: int) -> dict:
    exe = shutil.which("otsensor")
    head = [exe] if exe else [sys.executable, "-m", "otsensor.sensor.cli"]
    with tempfile.TemporaryDirectory(prefix="otsensor-workers-") as outdir:
        started = time.perf_counter()
        proc = subprocess.Popen([*head, "analyze", capture, "-o", outdir, "-q", "--workers", str(workers)])
        last: dict[int, float] = {}
        while True:   # the last sample of each process before it ends
            ended, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if ended:
                break
            for pid in [proc.pid, *children(proc.pid)]:
                cpu = process_cpu(pid)
                if cpu is not None:
                    last[pid] = cpu
            time.sleep(0.02)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            raise SystemExit(f"bench: otsensor analyze --workers {workers} failed ({proc.returncode})")
    total = usage.ru_utime + usage.ru_stime
    return {"wall_s": wall, "cpu_s": total, "aggregator_s": last.get(proc.pid, 0.0),
            "workers_s": sorted((v for p, v in last.items() if p != proc.pid), reverse=True),
            "load": os.getloadavg()[0]}


def bound(run: dict, cores: int) -> float:
    """The wall time an idle machine would need at best: the busiest process, or all the CPU over the cores."""
    return max([run["aggregator_s"], *run["workers_s"], run["cpu_s"] / cores])


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} [{min(values):.2f}-{max(values):.2f}]"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("capture")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    runs: dict[int, list[dict]] = {1: [], args.workers: []}
    for _ in range(args.repeat):
        for workers in runs:
            r = one_run(args.capture, workers)
            runs[workers].append(r)
            print(f"--workers {workers}: wall {r['wall_s']:.2f} s, CPU {r['cpu_s']:.2f} s (aggregator "
                  f"{r['aggregator_s']:.2f}, workers {', '.join(f'{w:.2f}' for w in r['workers_s'])}), "
                  f"load {r['load']:.1f}", flush=True)
    print(f"\nmedian [min-max] of {args.repeat}, {cores} cores:")
    for workers, rs in runs.items():
        print(f"--workers {workers}: wall {spread([r['wall_s'] for r in rs])} s, CPU {spread([r['cpu_s'] for r in rs])}"
              f" s, idle-machine bound {spread([bound(r, cores) for r in rs])} s")
    one, many = runs[1], runs[args.workers]
    print(f"speed-up, wall: {statistics.median(r['wall_s'] for r in one) / statistics.median(r['wall_s'] for r in many):.2f}x; "
          f"idle-machine bound: {statistics.median(bound(r, cores) for r in one) / statistics.median(bound(r, cores) for r in many):.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
