"""The throughput and memory benchmark: otsensor beside tshark and beside the bare capture reader.

    python bench/run.py [--packets 1000000] [--repeat 1] [--skip-tshark]

Builds the synthetic captures if missing (bench/data/, git-ignored; see
make_capture.py), then, in the same run and on the same file, times:

* raw read: the project's reader alone (``otsensor.sensor.capture.open_capture``,
  iterating every packet) - the floor a pure-Python sensor cannot beat;
* ``otsensor analyze FILE -o TMPDIR -q``;
* ``tshark -r FILE -Y modbus -T fields -e modbus.func_code > /dev/null``.

Each is a separate process, timed on the wall clock (interpreter start-up
included) with its peak RSS from ``/usr/bin/time -v`` (or, without it, from
``getrusage(RUSAGE_CHILDREN)`` in a wrapper process).  With ``--repeat K``
the best of K wall times is kept, with the largest peak RSS seen.  It also
runs otsensor on a quarter-size capture with the same flows, to show
whether peak memory grows with the packet count once flows are set up.
Prints a table and writes bench/results.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_capture  # noqa: E402

DATA = HERE / "data"
GNU_TIME = "/usr/bin/time"
RAW_READ = ("import sys\nfrom otsensor.sensor.capture import open_capture\nn = 0\n"
            "with open_capture(sys.argv[1]) as reader:\n    for _ in reader:\n        n += 1\nprint(n)\n")
RUSAGE_WRAPPER = ("import resource, subprocess, sys\nsubprocess.run(sys.argv[1:], check=True)\n"
                  "u = resource.getrusage(resource.RUSAGE_CHILDREN)\n"
                  "print(u.ru_maxrss, u.ru_utime, u.ru_stime, file=sys.stderr)\n")


def capture(packets: int, seed: int) -> Path:
    path = DATA / f"bench_{packets}_s{seed}.pcap"
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        s = make_capture.generate(tmp, packets, seed)
        tmp.replace(path)
        print(f"built {path.name}: {s.packets} packets in {s.seconds}s ({s.kind_packets})", flush=True)
    return path


def measure(cmd: list[str], stdout: int | None = subprocess.DEVNULL) -> tuple[float, float, int, str]:
    """Run ``cmd``; returns (wall seconds, CPU seconds (user + system), peak RSS in KiB, its stdout if captured).

    CPU time is reported beside wall time because the machine is shared: when
    other jobs compete for the cores, wall time stretches but CPU time does not.
    """
    if os.access(GNU_TIME, os.X_OK):
        with tempfile.NamedTemporaryFile("r", suffix=".time") as report:
            started = time.perf_counter()
            done = subprocess.run([GNU_TIME, "-v", "-o", report.name, *cmd], stdout=stdout, stderr=subprocess.PIPE,
                                  text=True)
            wall = time.perf_counter() - started
            text = report.read()
        match = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
        rss = int(match.group(1)) if match else 0
        cpu = sum(float(m) for m in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text))
    else:
        started = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", RUSAGE_WRAPPER, *cmd], stdout=stdout, stderr=subprocess.PIPE,
                              text=True)
        wall = time.perf_counter() - started
        rss, cpu = (int(done.stderr.split()[-3]), float(done.stderr.split()[-2]) + float(done.stderr.split()[-1])) \
            if done.returncode == 0 else (0, 0.0)
    if done.returncode != 0:
        raise SystemExit(f"bench: {' '.join(cmd)} failed ({done.returncode}): {done.stderr.strip()[-500:]}")
    return wall, cpu, rss, done.stdout or ""


def best_of(repeat: int, cmd: list[str], stdout: int | None = subprocess.DEVNULL) -> dict:
    walls, cpus, rsss, out = [], [], [], ""
    for _ in range(repeat):
        wall, cpu, rss, out = measure(cmd, stdout)
        walls.append(wall)
        cpus.append(cpu)
        rsss.append(rss)
    return {"wall_s": round(min(walls), 3), "walls_s": [round(w, 3) for w in walls], "cpu_s": round(min(cpus), 3),
            "peak_rss_mib": round(max(rsss) / 1024, 1), "stdout": out}


def otsensor_cmd(path: Path, outdir: str) -> list[str]:
    exe = shutil.which("otsensor")
    head = [exe] if exe else [sys.executable, "-m", "otsensor.sensor.cli"]
    return [*head, "analyze", str(path), "-o", outdir, "-q"]


def run_otsensor(path: Path, repeat: int) -> dict:
    with tempfile.TemporaryDirectory(prefix="otsensor-bench-") as outdir:
        result = best_of(repeat, otsensor_cmd(path, outdir))
        summary = json.loads((Path(outdir) / "summary.json").read_text())
    result["records"] = summary.get("records")
    result["flows"] = summary.get("flows")
    result["anomalies"] = summary.get("anomalies")
    return result


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    tshark = shutil.which("tshark")
    version = ""
    if tshark:
        version = subprocess.run([tshark, "--version"], capture_output=True, text=True).stdout.split("\n")[0]
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "tshark": version,
            "platform": platform.platform()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--packets", type=int, default=1_000_000, help="packets in the main capture (default 1000000)")
    parser.add_argument("--repeat", type=int, default=1, metavar="K", help="best of K runs (default 1)")
    parser.add_argument("--skip-tshark", action="store_true")
    parser.add_argument("--skip-memory-check", action="store_true", help="no quarter-size run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=str(HERE / "results.json"), help="where to write the results")
    args = parser.parse_args(argv)
    repeat = max(1, args.repeat)

    big = capture(args.packets, args.seed)
    small = None if args.skip_memory_check else capture(max(1, args.packets // 4), args.seed)
    results: dict = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                     "machine": machine(), "capture": big.name, "capture_bytes": big.stat().st_size, "repeat": repeat}

    raw = best_of(repeat, [sys.executable, "-c", RAW_READ, str(big)], stdout=subprocess.PIPE)
    packets = int(raw.pop("stdout").strip())
    results["packets"] = packets
    results["raw_read"] = raw
    print(f"raw read   {raw['wall_s']:8.2f}s", flush=True)
    otsensor = run_otsensor(big, repeat)
    otsensor.pop("stdout")
    results["otsensor"] = otsensor
    print(f"otsensor   {otsensor['wall_s']:8.2f}s", flush=True)
    if not args.skip_tshark and shutil.which("tshark"):
        tshark = best_of(repeat, ["tshark", "-r", str(big), "-Y", "modbus", "-T", "fields", "-e", "modbus.func_code"])
        tshark.pop("stdout")
        results["tshark"] = tshark
        print(f"tshark     {tshark['wall_s']:8.2f}s", flush=True)
    if small is not None:
        quarter = run_otsensor(small, 1)
        quarter.pop("stdout")
        quarter["packets"] = int(subprocess.run([sys.executable, "-c", RAW_READ, str(small)], capture_output=True,
                                                text=True, check=True).stdout)
        results["otsensor_quarter"] = quarter
    for name in ("raw_read", "otsensor", "tshark", "otsensor_quarter"):
        if name in results:
            entry = results[name]
            entry["packets_per_s"] = round(entry.get("packets", packets) / entry["wall_s"])
            entry["packets_per_cpu_s"] = round(entry.get("packets", packets) / max(entry["cpu_s"], 1e-3))
    for key in ("packets_per_s", "packets_per_cpu_s"):
        suffix = "" if key == "packets_per_s" else "_cpu"
        if "tshark" in results:
            results[f"otsensor_vs_tshark{suffix}"] = round(results["otsensor"][key] / results["tshark"][key], 2)
        results[f"otsensor_vs_raw_read{suffix}"] = round(results["otsensor"][key] / results["raw_read"][key], 3)
    results["load_average"] = os.getloadavg()
    print_table(results)
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print(json.dumps(results, indent=1))
    return 0


def print_table(r: dict) -> None:
    print(f"\n{r['capture']}: {r['packets']:,} packets, {r['capture_bytes'] / 1e6:.0f} MB ({r['date']}, "
          f"{r['machine']['cpu']}, {r['machine']['cores']} cores, Python {r['machine']['python']})")
    print(f"{'':22} {'wall s':>8} {'packets/s':>11} {'CPU s':>7} {'packets/CPU s':>14} {'peak RSS MiB':>13}")
    rows = [("raw read (reader only)", "raw_read"), ("otsensor analyze", "otsensor"), ("tshark -Y modbus", "tshark"),
            ("otsensor, 1/4 capture", "otsensor_quarter")]
    for label, key in rows:
        if key in r:
            e = r[key]
            print(f"{label:22} {e['wall_s']:8.2f} {e['packets_per_s']:11,} {e['cpu_s']:7.2f} {e['packets_per_cpu_s']:14,} "
                  f"{e['peak_rss_mib']:13.1f}")
    if "otsensor_vs_tshark" in r:
        print(f"otsensor / tshark throughput: {r['otsensor_vs_tshark']}x wall, {r['otsensor_vs_tshark_cpu']}x CPU")
    print(f"otsensor / raw read throughput: {r['otsensor_vs_raw_read']} wall, {r['otsensor_vs_raw_read_cpu']} CPU")
    print(f"load average at the end: {', '.join(f'{x:.2f}' for x in r['load_average'])} on {r['machine']['cores']} cores")
    if "otsensor_quarter" in r:
        q, f = r["otsensor_quarter"], r["otsensor"]
        print(f"peak RSS {q['packets']:,} packets: {q['peak_rss_mib']} MiB; {r['packets']:,} packets: "
              f"{f['peak_rss_mib']} MiB (same flows)")
    print()


if __name__ == "__main__":
    sys.exit(main())
