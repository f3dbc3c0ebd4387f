"""CPU time of the per-packet and per-record path on given captures, in-process: no output files, no analyzers.

    python bench/dissect_cpu.py FILE... [--repeat 3]

For each file, runs ``read_files`` into a :class:`Pipeline` whose one sink
drops every row and whose one analyzer does nothing, so what is timed is
decoding, flows, reassembly, the dissectors, building each record's row and
asking each record its ``op()`` and ``identity()`` (the pipeline does both
for every record when there is a sink and an analyzer), and nothing the
writers or the real analyzers add.  The figure is ``time.process_time``, best
of ``--repeat`` runs (CPU time, so a busy shared machine stretches it less
than the wall clock).  Compare two checkouts by running this script with
each one's interpreter on the same files.
"""
from __future__ import annotations

import argparse
import time
from collections import Counter
from pathlib import Path
from typing import Any

from otsensor.dissectors.base import Op, Record
from otsensor.sensor.analyze import RunResult, read_files
from otsensor.sensor.pipeline import Pipeline


class DropRows:
    """A sink that counts rows per log and keeps none."""

    def __init__(self) -> None:
        self.rows: Counter[str] = Counter()

    def write(self, log: str, row: dict[str, Any]) -> None:
        self.rows[log] += 1

    def close(self) -> None:
        pass


class AskOnly:
    """An analyzer that looks at nothing: its presence makes the pipeline ask every record op() and identity()."""

    def observe_record(self, flow: Any, record: Record, op: Op | None, identity: Any) -> None:
        pass

    def observe_flow(self, flow: Any) -> None:
        pass


def one_run(path: Path) -> tuple[float, int, Counter[str]]:
    sink = DropRows()
    pipeline = Pipeline([sink], [AskOnly()])
    start = time.process_time()
    read_files(pipeline, [str(path)], RunResult({}), None)
    pipeline.finish()
    return time.process_time() - start, pipeline.stats.packets, sink.rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", type=Path)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    for path in args.files:
        runs = [one_run(path) for _ in range(args.repeat)]
        best = min(cpu for cpu, _, _ in runs)
        _, packets, rows = runs[0]
        protocol_rows = sum(n for log, n in rows.items() if log != "conn")
        print(f"{path.name}: {best:.3f} s CPU (best of {args.repeat}; all: "
              f"{', '.join(f'{cpu:.3f}' for cpu, _, _ in runs)}), {packets} packets, {protocol_rows} records, "
              f"{best / max(packets, 1) * 1e6:.1f} us/packet", flush=True)


if __name__ == "__main__":
    main()
