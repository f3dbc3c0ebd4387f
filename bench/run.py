"""The throughput and memory benchmark: otsensor beside two tshark references and the bare capture reader.

    python bench/run.py [--only s7,dnp3] [--packets 1000000] [--repeat 3] [--skip-tshark] [--workers N]

For each capture (see make_capture.py; built on first use into bench/data/),
in the same run and on the same file, as separate processes:

* raw read: the project's reader alone (``otsensor.sensor.capture.open_capture``,
  iterating every packet), the floor a sensor built on it cannot beat;
* ``otsensor analyze FILE -o TMPDIR -q`` (with ``--workers N`` when given);
* ``tshark -n -r FILE -T ek > /dev/null``: full dissection to JSON, like for like
  with otsensor's JSON records;
* ``tshark -n -r FILE -Y FILTER -T fields -e FIELD > /dev/null``: tshark's lighter mode.

Each is timed on the wall clock and in CPU time (user + system, from the
child's rusage through os.wait4, which also gives its peak RSS); ``--repeat K``
runs the four K times, interleaved, and keeps the median of each measure.
The headline ratio is otsensor's throughput over the FASTER tshark reference
(the conservative claim), in CPU time.  otsensor's records are checked against
what the capture holds (a benchmark of a sensor that drops records would
flatter it), and otsensor runs once more on a capture with the same flows and
a quarter of the packets: peak RSS must not grow with the packet count.
Prints a table and writes bench/results.json.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import make_capture
import synth

RAW_READ = ("import sys\nfrom otsensor.sensor.capture import open_capture\nn = 0\n"
            "with open_capture(sys.argv[1]) as reader:\n    for _ in reader:\n        n += 1\nprint(n)\n")
DEFAULT_CAPTURES = ("modbus", "s7", "dnp3", "enip", "mixed", "one")
RUNS = ("raw_read", "otsensor", "tshark_ek", "tshark_fields")
RSS_GROWTH_LIMIT = 1.10          # peak RSS at 4x the packets on the same flows may grow this much at most


def measure(cmd: list[str], capture_stdout: bool = False) -> dict:
    """Run ``cmd`` to completion: wall and CPU seconds, peak RSS (MiB), and its stdout when asked for."""
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out if capture_stdout else subprocess.DEVNULL, stderr=err)
        _pid, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - started
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode != 0:
            err.seek(0)
            raise SystemExit(f"bench: {' '.join(cmd)} failed ({proc.returncode}): {err.read().decode()[-500:]}")
        out.seek(0)
        return {"wall_s": wall, "cpu_s": usage.ru_utime + usage.ru_stime, "rss_mib": usage.ru_maxrss / 1024,
                "stdout": out.read().decode() if capture_stdout else ""}


def median_of(samples: list[dict], packets: int) -> dict:
    """Median wall, CPU and RSS of the repeats (each list kept), and the derived rates."""
    entry: dict = {}
    for key, every in (("wall_s", "wall_all_s"), ("cpu_s", "cpu_all_s"), ("rss_mib", "rss_all_mib")):
        values = [s[key] for s in samples]
        entry[key] = round(statistics.median(values), 3)
        entry[every] = [round(v, 3) for v in values]
    entry["packets_per_s"] = round(packets / max(entry["wall_s"], 1e-6))
    entry["packets_per_cpu_s"] = round(packets / max(entry["cpu_s"], 1e-6))
    return entry


def otsensor_cmd(path: Path, outdir: str, workers: int | None) -> list[str]:
    exe = shutil.which("otsensor")
    head = [exe] if exe else [sys.executable, "-m", "otsensor.sensor.cli"]
    return [*head, "analyze", str(path), "-o", outdir, "-q", *(["--workers", str(workers)] if workers else [])]


def commands(name: str, path: Path, outdir: str, workers: int | None) -> dict[str, list[str]]:
    spec = synth.CAPTURES[name]
    return {"raw_read": [sys.executable, "-c", RAW_READ, str(path)],
            "otsensor": otsensor_cmd(path, outdir, workers),
            "tshark_ek": ["tshark", "-n", "-r", str(path), "-T", "ek"],
            "tshark_fields": ["tshark", "-n", "-r", str(path), "-Y", spec.display_filter, "-T", "fields",
                              "-e", spec.field]}


def check_tshark_decodes(name: str, path: Path) -> None:
    """tshark must decode the capture's protocols on their ports (else a decode-as option is missing)."""
    for proto in synth.CAPTURES[name].display_filter.split("||"):
        out = subprocess.run(["tshark", "-n", "-r", str(path), "-c", "20000", "-Y", proto.strip(), "-T", "fields",
                              "-e", "frame.number"], capture_output=True, text=True, check=True).stdout
        if not out.split():
            raise SystemExit(f"bench: tshark decodes no {proto.strip()} in {path.name}: add a -d decode-as option")


def check_output(outdir: str, meta: dict) -> dict:
    """otsensor's records per log and anomalies, against what a correct sensor logs for this capture."""
    summary = json.loads((Path(outdir) / "summary.json").read_text())
    with open(Path(outdir) / "conn.jsonl", "rb") as fh:
        records = dict(summary["records"], conn=sum(1 for _ in fh))
    expected = meta["expected_records"]
    wrong = {log: {"expected": expected.get(log, 0), "written": records.get(log, 0)}
             for log in sorted(set(expected) | set(records)) if expected.get(log, 0) != records.get(log, 0)}
    if summary["anomalies"] != meta["expected_anomalies"]:
        wrong["anomalies"] = {"expected": meta["expected_anomalies"], "written": summary["anomalies"]}
    for counter in ("dissector_errors", "analyzer_errors"):
        if summary[counter]:
            wrong[counter] = {"expected": 0, "written": summary[counter]}
    return {"records": records, "ok": not wrong, "differences": wrong}


def capture(name: str, packets: int, seed: int) -> tuple[Path, dict]:
    """The capture and its summary, built by a child process when missing: Linux counts the parent's
    resident memory at fork in a child's peak RSS, so this process must stay smaller than what it measures."""
    path, meta = make_capture.current(name, packets, seed)
    if meta is None:
        subprocess.run([sys.executable, str(HERE / "make_capture.py"), "--capture", name, "--packets", str(packets),
                        "--seed", str(seed)], check=True)
        path, meta = make_capture.current(name, packets, seed)
    assert meta is not None
    return path, meta


def bench_capture(name: str, args: argparse.Namespace) -> dict:
    path, meta = capture(name, args.packets, args.seed)
    packets = meta["packets"]
    with_tshark = not args.skip_tshark and shutil.which("tshark")
    if with_tshark:
        check_tshark_decodes(name, path)
    samples: dict[str, list[dict]] = {run: [] for run in RUNS if with_tshark or not run.startswith("tshark")}
    with tempfile.TemporaryDirectory(prefix="otsensor-bench-") as outdir:
        cmds = commands(name, path, outdir, args.workers)
        for _ in range(args.repeat):          # interleaved, so load that comes and goes hits every run alike
            for run, taken in samples.items():
                sample = measure(cmds[run], capture_stdout=run == "raw_read")
                if run == "raw_read" and int(sample["stdout"]) != packets:
                    raise SystemExit(f"bench: the reader saw {sample['stdout'].strip()} packets of {packets}")
                taken.append(sample)
                print(f"  {name:7} {run:14} {sample['wall_s']:8.2f}s wall {sample['cpu_s']:8.2f}s CPU", flush=True)
        check = check_output(outdir, meta)
    result = {"capture": path.name, "packets": packets, "bytes": path.stat().st_size, "flows": meta["flows"],
              "kind_packets": meta["kind_packets"], "runs": {run: median_of(s, packets) for run, s in samples.items()},
              "otsensor_output": check}
    result["ratios"] = ratios(result["runs"])
    if name != "one" and not args.skip_memory_check:
        result["memory"] = memory_check(name, args, result["runs"]["otsensor"]["rss_mib"])
    return result


def ratios(runs: dict) -> dict:
    """otsensor's throughput over the faster tshark reference and over the raw read, in CPU and wall time."""
    out: dict = {}
    for measure_key, suffix in (("packets_per_cpu_s", "cpu"), ("packets_per_s", "wall")):
        ours = runs["otsensor"][measure_key]
        references = {run: runs[run][measure_key] for run in ("tshark_ek", "tshark_fields") if run in runs}
        if references:
            fastest = max(references, key=references.get)
            out[f"vs_tshark_{suffix}"] = round(ours / references[fastest], 2)
            out[f"faster_tshark_{suffix}"] = fastest
            for run, rate in references.items():
                out[f"vs_{run}_{suffix}"] = round(ours / rate, 2)
        out[f"vs_raw_read_{suffix}"] = round(ours / runs["raw_read"][measure_key], 3)
    return out


def memory_check(name: str, args: argparse.Namespace, full_rss: float) -> dict:
    """otsensor on the same flows with a quarter of the packets: its peak RSS must be about the same."""
    path, meta = capture(name, max(1, args.packets // 4), args.seed)
    with tempfile.TemporaryDirectory(prefix="otsensor-bench-") as outdir:
        sample = measure(otsensor_cmd(path, outdir, args.workers))
    quarter = round(sample["rss_mib"], 1)
    return {"quarter_packets": meta["packets"], "quarter_rss_mib": quarter, "full_rss_mib": round(full_rss, 1),
            "flat": full_rss <= quarter * RSS_GROWTH_LIMIT}


def machine() -> dict:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next(line.split(":", 1)[1].strip() for line in fh if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    tshark = shutil.which("tshark")
    version = subprocess.run([tshark, "--version"], capture_output=True, text=True,
                             check=False).stdout.split("\n")[0] if tshark else ""
    commit = subprocess.run(["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"], capture_output=True,
                            text=True, check=False).stdout.strip()
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "tshark": version,
            "platform": platform.platform(), "commit": commit}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", default=",".join(DEFAULT_CAPTURES),
                        help=f"captures, comma-separated (default {','.join(DEFAULT_CAPTURES)})")
    parser.add_argument("--packets", type=int, default=1_000_000, help="packets per capture (default 1000000)")
    parser.add_argument("--repeat", type=int, default=1, metavar="K", help="median of K runs (default 1)")
    parser.add_argument("--workers", type=int, default=None, metavar="N", help="passed to otsensor analyze")
    parser.add_argument("--skip-tshark", action="store_true")
    parser.add_argument("--skip-memory-check", action="store_true", help="no quarter-size run")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", default=str(HERE / "results.json"), help="where to write the results")
    parser.add_argument("--report", metavar="JSON", help="print the tables of an earlier run (markdown) and exit")
    args = parser.parse_args(argv)
    if args.report:
        print_tables(json.loads(Path(args.report).read_text()), markdown=True)
        return 0
    args.repeat = max(1, args.repeat)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = sorted(set(names) - set(synth.CAPTURES))
    if unknown:
        parser.error(f"unknown capture(s) {', '.join(unknown)}; choose from {', '.join(synth.CAPTURES)}")
    results: dict = {"date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
                     "machine": machine(), "repeat": args.repeat, "workers": args.workers,
                     "load_average_start": os.getloadavg(), "captures": {}}
    for name in names:
        results["captures"][name] = bench_capture(name, args)
    results["load_average_end"] = os.getloadavg()
    Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    print_tables(results)
    return 0 if all(c["otsensor_output"]["ok"] for c in results["captures"].values()) else 1


LABELS = {"raw_read": "raw read", "otsensor": "otsensor analyze", "tshark_ek": "tshark -T ek",
          "tshark_fields": "tshark -Y -T fields"}


def print_tables(r: dict, markdown: bool = False) -> None:
    """The results as two tables: every run, then the ratios and checks per capture (``markdown`` for the README)."""
    m = r["machine"]
    print(f"\n{r['date']}, commit {m['commit']}, {m['cpu']}, {m['cores']} cores, Python {m['python']}, {m['tshark']}; "
          f"median of {r['repeat']}; load average {fmt_load(r['load_average_start'])} at the start, "
          f"{fmt_load(r['load_average_end'])} at the end\n")
    runs = [[name, LABELS[run], f"{e['wall_s']:.2f}", f"{e['cpu_s']:.2f}",
             f"{min(e['cpu_all_s']):.2f}-{max(e['cpu_all_s']):.2f}", f"{e['packets_per_cpu_s']:,}",
             f"{e['packets_per_s']:,}", f"{e['rss_mib']:.1f}"]
            for name, c in r["captures"].items() for run, e in c["runs"].items()]
    render(["capture", "run", "wall s", "CPU s", "CPU s range", "packets/CPU s", "packets/s", "peak RSS MiB"], runs,
           markdown, 2)
    print()
    render(["capture", "packets", "otsensor / tshark (CPU)", "(wall)", "otsensor / raw read (CPU)",
            "peak RSS 1/4 -> full, MiB", "records"], [summary_row(name, c) for name, c in r["captures"].items()],
           markdown, 1)
    for name, c in r["captures"].items():
        if not c["otsensor_output"]["ok"]:
            print(f"{name}: otsensor's output differs from the capture: {c['otsensor_output']['differences']}")
    print()


def summary_row(name: str, c: dict) -> list[str]:
    ratio, mem = c["ratios"], c.get("memory")
    faster = {"tshark_ek": "ek", "tshark_fields": "fields"}.get(ratio.get("faster_tshark_cpu", ""), "")
    return [name, f"{c['packets']:,}", f"{ratio['vs_tshark_cpu']}x ({faster})" if faster else "-",
            f"{ratio['vs_tshark_wall']}x" if "vs_tshark_wall" in ratio else "-", str(ratio["vs_raw_read_cpu"]),
            f"{mem['quarter_rss_mib']} -> {mem['full_rss_mib']}{'' if mem['flat'] else ' GROWS'}" if mem else "-",
            "ok" if c["otsensor_output"]["ok"] else "WRONG"]


def render(header: list[str], rows: list[list[str]], markdown: bool, text_columns: int) -> None:
    """Columns aligned (the first ``text_columns`` left, numbers right), as plain text or a markdown table."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: list[str]) -> str:
        padded = [cell.ljust(w) if i < text_columns else cell.rjust(w) for i, (cell, w) in enumerate(zip(cells, widths))]
        return "| " + " | ".join(padded) + " |" if markdown else "  ".join(padded)
    print(line(header))
    if markdown:
        print("| " + " | ".join("-" * w if i < text_columns else "-" * (w - 1) + ":" for i, w in enumerate(widths)) + " |")
    for row in rows:
        print(line(row))


def fmt_load(load: tuple | list) -> str:
    return "/".join(f"{x:.2f}" for x in load)


if __name__ == "__main__":
    sys.exit(main())
