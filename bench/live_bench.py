"""Live capture rate: the highest tcpreplay rate `otsensor run -i` keeps up with, losing nothing.

    python bench/make_capture.py --capture mixed --packets 200000 --out /tmp/live-mixed.pcap
    sudo .venv/bin/python bench/live_bench.py /tmp/live-mixed.pcap --workers 1,2   # compiled build: pip install -e .

In two network namespaces of its own joined by a veth pair, for each worker count: `otsensor run -i cap0
--workers W` captures one end while tcpreplay sends frames of the capture into the other at ``--pps`` R
for ``--seconds`` (the first R x seconds frames, at most ``--packets``).  A trial passes when nothing was lost and every frame was counted: the kernel dropped
none for any worker's ring (PACKET_STATISTICS), and the sensor processed exactly the frames sent.  The rate
goes up by doubling from ``--start`` until a trial fails (down by halving while it fails), then bisects
``--steps`` times between the last pass and the first failure.  The rings are smaller than the default on purpose (``--ring-blocks`` x 1 MiB
per worker and interface): a 32 MiB ring holds about 100,000 of these frames, which would hide any
shortfall of a short replay; with 8 MiB the sensor must keep up for the whole replay, bar about 0.8 s (the
kernel hands a block over when full or after 100 ms, so 8 blocks are also 0.8 s at low rates).

tcpreplay runs with ``--timer=nano --pps-multi=10`` (``--tcpreplay-flags``): it sleeps between sends instead
of spinning on the clock (its default timer busy-waits, a core's worth of CPU taken from the sensor on a
small machine), and sends 10 frames per interval of 10/R seconds; the rate is still R (tcpreplay's own
report and the replay's duration say so).  ``--preload-pcap`` is not used: it reads the whole capture into
memory before the first frame, which with a 1M-frame capture takes longer and costs more CPU than the
page-cached reads it saves.

Each trial prints where the CPU went while the frames were sent and read: tcpreplay's (its rusage: the sending,
and what of the veth's delivery the kernel does in its system calls), each sensor process's
(the process started and its workers, from /proc) per frame processed, and the machine's softirq, system,
user and idle time from /proc/stat.  ``--at R`` runs single trials at R instead of a search.

Needs root (namespaces, AF_PACKET), iproute2 and tcpreplay.  Prints one line per trial and a table with the
load average at the start and end of each worker count's search (the machine's other jobs share its CPUs).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from workers_bench import TICK, children, process_cpu   # (bench/ is the script's directory: on sys.path)


def sh(*cmd: str) -> None:
    subprocess.run(cmd, check=True, capture_output=True, text=True)


class Lab:
    """Two namespaces of this process's own and a veth pair between them: inj0 (tcpreplay) - cap0."""

    def __init__(self) -> None:
        self.inj, self.sen = f"otslb{os.getpid()}-inj", f"otslb{os.getpid()}-sen"
        for ns in (self.inj, self.sen):
            sh("ip", "netns", "add", ns)
            sh("ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
               "net.ipv6.conf.default.disable_ipv6=1")
        sh("ip", "link", "add", "inj0", "netns", self.inj, "type", "veth", "peer", "name", "cap0", "netns", self.sen)
        for ns, name in ((self.inj, "inj0"), (self.sen, "cap0")):
            sh("ip", "-n", ns, "link", "set", name, "up")

    def close(self) -> None:
        for ns in (self.inj, self.sen):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)


def stats_of(out: Path) -> dict | None:
    try:
        return json.loads((out / "stats.json").read_text())
    except (OSError, ValueError):
        return None


def wait_until(ready, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while not ready():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def machine_cpu() -> dict[str, float]:
    """CPU seconds of the whole machine so far, by kind (the first line of /proc/stat, all cores)."""
    with open("/proc/stat") as fh:
        fields = [int(v) / TICK for v in fh.readline().split()[1:8]]
    return dict(zip(("user", "nice", "system", "idle", "iowait", "irq", "softirq"), fields))


def sensor_cpu(pid: int) -> dict[int, float]:
    """CPU seconds so far of the sensor process and of each of its children (the workers)."""
    cpu = {p: process_cpu(p) for p in [pid, *children(pid)]}
    return {p: c for p, c in cpu.items() if c is not None}


def all_read(stats: dict) -> bool:
    """Has the sensor processed every frame its rings accepted (the ones the kernel dropped aside)?"""
    capture = stats.get("capture", {})
    return stats.get("packets", -1) >= capture.get("kernel_received", 0) - capture.get("kernel_dropped", 0)


def trial(lab: Lab, args: argparse.Namespace, workers: int, pps: int) -> dict:
    """One replay at ``pps`` into a fresh sensor; what it received, dropped and processed."""
    count = min(args.packets, args.frames, pps * args.seconds)
    out = Path(tempfile.mkdtemp(prefix="otslb-"))
    sensor = subprocess.Popen(["ip", "netns", "exec", lab.sen, args.otsensor, "run", "-i", "cap0", "-o", str(out / "o"),
                               "-q", "--workers", str(workers), "--stats-interval", "0.5",
                               "--ring-blocks", str(args.ring_blocks)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        if not wait_until(lambda: stats_of(out / "o") is not None or sensor.poll() is not None, 30) \
                or sensor.poll() is not None:
            raise SystemExit(f"otsensor run did not start: {sensor.stderr.read()}")
        time.sleep(0.5)   # the workers' first reports
        sensor_before, machine_before = sensor_cpu(sensor.pid), machine_cpu()
        started = time.monotonic()
        replay = subprocess.Popen(["ip", "netns", "exec", lab.inj, args.tcpreplay, "-q", "-i", "inj0",
                                   "--pps", str(pps), *args.tcpreplay_flags, "--limit", str(count), args.capture],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        _, status, usage = os.wait4(replay.pid, 0)   # (ip netns exec execs tcpreplay: its pid, its rusage)
        replay.returncode = os.waitstatus_to_exitcode(status)
        if replay.returncode:
            raise SystemExit(f"tcpreplay failed: {replay.stderr.read()}")
        took = time.monotonic() - started
        wait_until(lambda: (stats_of(out / "o") or {}).get("capture", {}).get("kernel_received", 0) >= count, 30)
        wait_until(lambda: all_read(stats_of(out / "o") or {}), 5)   # (stats.json: every 0.5 s)
        sensor_after, machine_after = sensor_cpu(sensor.pid), machine_cpu()
        sensor.send_signal(signal.SIGTERM)
        _, err = sensor.communicate(timeout=60)
        stats = stats_of(out / "o") or {}
    finally:
        if sensor.poll() is None:
            sensor.kill()
            sensor.wait()
        shutil.rmtree(out, ignore_errors=True)
    capture = stats.get("capture", {})
    lost = count - stats.get("packets", 0)   # dropped by the kernel, or never counted at all
    return {"workers": workers, "pps": pps, "sent": count, "replay_s": round(took, 2), "exit": sensor.returncode,
            "received": capture.get("kernel_received"), "kernel_dropped": capture.get("kernel_dropped"),
            "packets": stats.get("packets"), "lost": lost,
            "ok": sensor.returncode == 0 and lost == 0 and capture.get("kernel_dropped") == 0,
            "per_worker": [(w["packets"], w["kernel_dropped"]) for w in capture.get("workers", ())],
            "cpu": {"tcpreplay": usage.ru_utime + usage.ru_stime,
                    "sensor": [round(sensor_after[p] - sensor_before.get(p, 0.0), 2) for p in sensor_after],
                    **{kind: round(machine_after[kind] - machine_before[kind], 2)
                       for kind in ("softirq", "system", "user", "idle")}}}


def cpu_line(result: dict) -> str:
    """Where the CPU went during a trial's replay (and the last block's reading): seconds, and per frame."""
    cpu, sent, processed = result["cpu"], result["sent"], max(1, result["packets"] or 0)
    sensor = sum(cpu["sensor"])
    return (f"    CPU s: tcpreplay {cpu['tcpreplay']:.2f} ({cpu['tcpreplay'] / sent * 1e6:.1f} us/frame), "
            f"sensor {sensor:.2f} = {' + '.join(f'{c:.2f}' for c in cpu['sensor'])} "
            f"({sensor / processed * 1e6:.1f} us/frame processed), machine softirq {cpu['softirq']:.2f} "
            f"({cpu['softirq'] / sent * 1e6:.1f} us/frame), system {cpu['system']:.2f}, user {cpu['user']:.2f}, "
            f"idle {cpu['idle']:.2f}")


def report(result: dict) -> None:
    print(f"  workers={result['workers']} pps={result['pps']} sent={result['sent']}: "
          f"{'ok  ' if result['ok'] else 'LOST'} lost={result['lost']} kernel_dropped={result['kernel_dropped']} "
          f"packets={result['packets']} per-worker (packets, dropped)={result['per_worker']} "
          f"replay {result['replay_s']}s, load {os.getloadavg()[0]:.1f}", flush=True)
    print(cpu_line(result), flush=True)


def fixed(lab: Lab, args: argparse.Namespace, workers: int, pps: int) -> dict:
    result = trial(lab, args, workers, pps)
    report(result)
    return result


def search(lab: Lab, args: argparse.Namespace, workers: int) -> tuple[int, int | None, list[dict]]:
    """(highest passing rate, lowest failing rate, every trial) for ``workers``."""
    trials: list[dict] = []

    def run(pps: int) -> bool:
        result = fixed(lab, args, workers, pps)
        trials.append(result)
        return result["ok"]

    good, bad, pps = 0, None, args.start
    while pps <= args.ceiling:
        if not run(pps):
            bad = pps
            break
        good, pps = pps, pps * 2
    while good == 0 and bad is not None and bad > args.floor:   # failed from the start: halve until one passes
        if run(bad // 2):
            good = bad // 2
        else:
            bad //= 2
    for _ in range(args.steps if bad is not None else 0):
        middle = (good + bad) // 2
        if run(middle):
            good = middle
        else:
            bad = middle
    return good, bad, trials


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("capture")
    parser.add_argument("--workers", default="1,2", help="worker counts to measure, comma-separated")
    parser.add_argument("--packets", type=int, default=1_000_000, help="at most this many frames per trial")
    parser.add_argument("--seconds", type=int, default=10, help="each trial sends for about this long")
    parser.add_argument("--floor", type=int, default=250, help="lowest rate tried")
    parser.add_argument("--start", type=int, default=4000, help="first rate (packets per second)")
    parser.add_argument("--ceiling", type=int, default=200_000, help="highest rate tried")
    parser.add_argument("--steps", type=int, default=3, help="bisection steps after the first failure")
    parser.add_argument("--ring-blocks", type=int, default=8, help="1 MiB ring blocks per worker and interface")
    parser.add_argument("--otsensor", default=shutil.which("otsensor") or "otsensor")
    parser.add_argument("--tcpreplay", default=shutil.which("tcpreplay") or "tcpreplay")
    parser.add_argument("--tcpreplay-flags", default="--timer=nano --pps-multi=10",
                        help="tcpreplay's flags besides the rate (default: sleep between sends rather than spin on "
                             "the clock, and send 10 frames each interval; '' for tcpreplay's own defaults)")
    parser.add_argument("--at", type=int, help="no search: one trial per worker count at this rate "
                                               "(--repeat times), to see where the CPU goes")
    parser.add_argument("--repeat", type=int, default=1, help="trials per worker count with --at")
    parser.add_argument("--json", help="write every trial here")
    args = parser.parse_args()
    args.tcpreplay_flags = args.tcpreplay_flags.split()
    if os.geteuid() != 0:
        print("live_bench.py needs root (network namespaces, AF_PACKET)", file=sys.stderr)
        return 2
    from otsensor.sensor import pipeline
    from otsensor.sensor.capture.files import open_capture
    # A trial never asks for more frames than the capture holds (tcpreplay stops at its end): faster rates
    # then send for less than --seconds, and a capture of R x seconds frames is needed to test rate R fully.
    args.frames = sum(1 for _ in open_capture(args.capture))
    build = "compiled" if not pipeline.__file__.endswith(".py") else "pure Python"
    print(f"otsensor {build} build, {args.seconds} s of {args.capture} ({args.frames:,} frames) per trial, "
          f"{args.ring_blocks} MiB ring per worker, tcpreplay {' '.join(args.tcpreplay_flags) or '(no flags)'}",
          flush=True)
    lab = Lab()
    rows, everything = [], []
    try:
        for workers in (int(w) for w in args.workers.split(",")):
            before = os.getloadavg()
            if args.at:
                trials = [fixed(lab, args, workers, args.at) for _ in range(args.repeat)]
                everything.extend(trials)
                continue
            good, bad, trials = search(lab, args, workers)
            rows.append((workers, good, bad, before, os.getloadavg()))
            everything.extend(trials)
    finally:
        lab.close()
    if rows:   # (none with --at)
        print("\n| workers | highest rate with 0 lost (pps) | lowest rate that lost | load average before -> after |")
        print("| ---: | ---: | ---: | --- |")
    for workers, good, bad, before, after in rows:
        print(f"| {workers} | {good:,} | {'-' if bad is None else f'{bad:,}'} | "
              f"{before[0]:.1f} {before[1]:.1f} -> {after[0]:.1f} {after[1]:.1f} |")
    if args.json:
        Path(args.json).write_text(json.dumps(everything, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
