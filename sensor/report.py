"""The terminal side of a run: a progress bar while reading, then a short summary table."""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from otsensor.baselines.alerts import SEVERITY_RANK

PROGRESS_MIN_BYTES = 8 << 20   # files smaller than this read too fast for a bar to help
PROGRESS_EVERY = 1 << 16       # packets between progress updates


class Progress:
    """A one-line progress bar on stderr, only when stderr is a terminal and the file is large."""

    def __init__(self, stream: TextIO = sys.stderr, force: bool = False) -> None:
        self.stream = stream
        self.enabled = force or stream.isatty()
        self.started = time.monotonic()

    def wanted(self, size: int) -> bool:
        return self.enabled and size >= PROGRESS_MIN_BYTES

    def update(self, name: str, done: int, total: int, packets: int) -> None:
        frac = min(done / total, 1.0) if total else 0.0
        bar = "#" * int(frac * 30)
        rate = packets / max(time.monotonic() - self.started, 1e-6)
        self.stream.write(f"\r{name[-40:]:40} [{bar:30}] {frac * 100:5.1f}% {packets:>10,} pkts {rate:>9,.0f} pkt/s")
        self.stream.flush()

    def done(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def summary_table(stats: dict[str, Any], assets: list[dict[str, Any]], out: TextIO, outdir: str,
                  max_assets: int = 25) -> None:
    """Assets, protocols and anomalies, in a form that fits a terminal."""
    w = out.write
    w(f"\nRead {stats['packets']:,} packets ({stats['bytes']:,} bytes), {stats['flows']:,} flows"
      f" in {stats.get('elapsed_s', 0):.2f}s")
    if stats["flows_evicted"]:
        why = stats.get("flows_evicted_reasons") or {}
        w(f"; {stats['flows_evicted']:,} flows evicted early ({why.get('max_flows', 0):,} by --max-flows, "
          f"{why.get('flow_memory', 0):,} by --flow-memory)")
    w("\n")
    w("\nProtocols\n")
    services = stats.get("services") or {}
    if services:
        for name, n in services.items():
            w(f"  {name:14} {n:>8,} flow(s)\n")
    else:
        w("  (no industrial protocol recognised)\n")
    w("\nRecords\n")
    for log, n in (stats.get("records") or {}).items():
        w(f"  {log + '.jsonl':28} {n:>10,}\n")
    w("\nAssets\n")
    ot = [a for a in assets if a["role"] != "it_host" and a["role"] != "unknown"]
    shown = (ot + [a for a in assets if a not in ot])[:max_assets]
    w(f"  {'ip':39} {'role':24} {'served':18} {'identity'}\n")
    for a in shown:
        ident = a.get("identity") or {}
        label = " ".join(str(ident[k]) for k in ("vendor", "product_name", "order_number", "model", "revision")
                         if k in ident)[:60]
        served = ",".join(p for p in a["protocols_served"] if "/" not in p)[:18]
        w(f"  {a['ip']:39} {a['role']:24} {served:18} {label}\n")
    if len(assets) > len(shown):
        w(f"  ... and {len(assets) - len(shown)} more in assets.json\n")
    anomalies = stats.get("anomalies") or {}
    w("\nAnomalies\n")
    if anomalies:
        for name, n in sorted(anomalies.items(), key=lambda kv: -kv[1])[:15]:
            w(f"  {name:40} {n:>8,}\n")
    else:
        w("  none\n")
    alerts = stats.get("alerts") or {}
    w(f"\nAlerts ({sum(alerts.values())})\n")
    if alerts:
        for key, n in sorted(alerts.items(), key=lambda kv: (-_severity_rank(kv[0]), kv[0])):
            w(f"  {key:40} {n:>8,}\n")
    else:
        w("  none\n")
    gaps = stats.get("stream_gaps", 0)
    if gaps:
        w(f"\n{gaps:,} stream gap(s) ({stats['stream_gap_bytes']:,} bytes lost before capture)\n")
    w(f"\nOutput written to {outdir.rstrip('/')}/\n")   # as typed: out and out/ both show out/, never out//


def _severity_rank(key: str) -> int:
    return SEVERITY_RANK.get(key.split(" ", 1)[0], 0)
