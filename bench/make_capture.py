"""Build the benchmark captures: dense, seeded OT traffic (see synth/ and bench/README.md).

    python bench/make_capture.py [--capture s7|dnp3|enip|modbus|mixed|one|all] [--packets 1000000]
                                 [--seed 1] [--out FILE]

Without ``--out`` a capture goes to bench/data/<name>_<packets>_s<seed>.pcap
with a JSON summary beside it (packets, flows, PDUs written, the records a
correct sensor logs for them, and a fingerprint of the generator's source):
``ensure()`` rebuilds a capture whose generator has changed since it was written.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import synth
from synth.expect import expected_anomalies, expected_records

DATA = HERE / "data"


def fingerprint() -> str:
    """Hash of the generator's source: a capture built by other code is stale."""
    digest = hashlib.sha256()
    for path in sorted((HERE / "synth").glob("*.py")):
        digest.update(path.name.encode() + path.read_bytes())
    return digest.hexdigest()[:16]


def capture_path(name: str, packets: int, seed: int) -> Path:
    return DATA / (f"{name}_s{seed}.pcap" if name == "one" else f"{name}_{packets}_s{seed}.pcap")


def current(name: str, packets: int, seed: int = 1) -> tuple[Path, dict | None]:
    """The capture's path, and its summary if it is built and its generator has not changed since."""
    path = capture_path(name, packets, seed)
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("fingerprint") == fingerprint():
            return path, meta
    return path, None


def ensure(name: str, packets: int, seed: int = 1, quiet: bool = False) -> tuple[Path, dict]:
    """The capture's path and summary, building it first when missing or stale."""
    path, meta = current(name, packets, seed)
    if meta is not None:
        return path, meta
    meta_path = path.with_suffix(".json")
    tmp = path.with_suffix(".tmp")
    summary = synth.build(name, tmp, packets, seed)
    tmp.replace(path)
    meta = {"capture": name, "seed": seed, "fingerprint": fingerprint(), **summary.to_json(),
            "expected_records": expected_records(summary), "expected_anomalies": expected_anomalies(summary)}
    meta_path.write_text(json.dumps(meta, indent=1) + "\n")
    if not quiet:
        print(f"built {path.name}: {summary.packets:,} packets in {summary.seconds}s", flush=True)
    return path, meta


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--capture", default="all", choices=[*synth.CAPTURES, "all"])
    parser.add_argument("--packets", type=int, default=1_000_000, help="about this many packets (default 1000000)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--out", default=None, help="output pcap (one capture only; default bench/data/...)")
    args = parser.parse_args(argv)
    names = list(synth.CAPTURES) if args.capture == "all" else [args.capture]
    if args.out and len(names) > 1:
        parser.error("--out needs one --capture")
    for name in names:
        if args.out:
            summary = synth.build(name, args.out, args.packets, args.seed).to_json()
            path = Path(args.out)
        else:
            path, summary = ensure(name, args.packets, args.seed, quiet=True)
        print(f"{path}: {summary['packets']:,} packets, flows {summary['flows']}, packets by kind "
              f"{summary['kind_packets']}, {summary['pdus']:,} PDUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
