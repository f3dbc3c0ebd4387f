"""What `otsensor run` says about itself while it runs: the stats.json document and the stats line, the
``sensor_packet_loss`` alert, and the optional Prometheus endpoint.

A sensor that loses frames is blind to part of the network, and that is itself a finding: every interval
the frames the kernel dropped for each interface and the rows the outputs could not keep are compared with
``[detection] packet_loss_frames`` and ``packet_loss_fraction``, and an alert is raised (aggregated like any
other) when both are passed.
"""
from __future__ import annotations

import os
import time
from datetime import datetime, timezone
from typing import Any

from otsensor.baselines.policy import DetectionConfig

STATS_VERSION = 1
STATS_FILE_EVERY = 10.0     # seconds between rewrites of stats.json (at most; --stats-interval if shorter)


def iso(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, timezone.utc).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def stats_document(runner: Any, state: str, capture: dict[str, Any]) -> dict[str, Any]:
    """The stats.json document (its format is in README.md: a console and the health check read it)."""
    analysis = runner.analysis
    pipeline, sink = analysis.pipeline, analysis.sink
    s = pipeline.stats
    return {
        "version": STATS_VERSION, "state": state, "pid": os.getpid(),
        "started": iso(runner.started_at), "updated": iso(time.time()),
        "uptime_s": round(time.monotonic() - runner.started, 3),
        "capture": capture,
        "packets": s.packets, "bytes": s.bytes, "undecoded_packets": s.undecoded,
        "flows": pipeline.table.created, "flows_active": pipeline.table.count,
        "flows_timed_out": pipeline.table.timed_out, "flows_evicted": pipeline.table.evicted,
        "records": dict(sorted(sink.counts.items())), "alerts": sink.counts.get("alerts", 0),
        "errors": s.dissector_errors + s.analyzer_errors + s.sink_errors,
        "outputs": sink.statistics(),
        "sinks": [_sink_counts(x) for x in analysis.extra_sinks if hasattr(x, "report")],
        "stats_interval_s": runner.stats_interval,
    }


def _sink_counts(sink: Any) -> dict[str, Any]:
    rep = sink.report()
    return {k: rep[k] for k in ("name", "accepted", "delivered", "spooled", "dropped", "filtered", "last_error")}


def stats_line(doc: dict[str, Any]) -> str:
    """One line for stderr (the journal under systemd)."""
    capture = doc["capture"]
    fields = {"uptime_s": round(doc["uptime_s"]), "packets": doc["packets"]}
    fields.update({k: capture[k] for k in ("kernel_received", "kernel_dropped", "freeze_count")
                   if capture.get(k) is not None})
    outputs = doc["outputs"]
    fields.update(flows=doc["flows"], flows_active=doc["flows_active"], records=sum(doc["records"].values()),
                  records_dropped=sum(outputs["records_dropped"].values()), alerts=doc["alerts"],
                  errors=doc["errors"])
    for worker in capture.get("workers", ()):   # `run --workers N`: each worker's share, after the sums
        n = worker["worker"]
        fields.update({f"worker{n}_packets": worker["packets"], f"worker{n}_kernel_dropped": worker["kernel_dropped"]})
    return "otsensor: stats: " + " ".join(f"{k}={v}" for k, v in fields.items()) + "\n"


class LossWatch:
    """Compares each stats interval's losses with the thresholds and raises ``sensor_packet_loss``."""

    def __init__(self, detector: Any, config: DetectionConfig) -> None:
        self.detector = detector
        self.config = config
        self.seen: dict[str, tuple[int, int]] = {}   # what was (received, lost) at the last check

    def check(self, doc: dict[str, Any], now: float) -> None:
        """``doc`` is the stats document of this interval's end."""
        for iface in doc["capture"].get("interfaces", ()):
            self._compare(f"interface {iface['name']}", iface["kernel_received"], iface["kernel_dropped"],
                          "frames dropped by the kernel (its ring was full)", now)
        dropped = sum(doc["outputs"]["records_dropped"].values())
        self._compare("outputs", sum(doc["records"].values()), dropped,
                      "records the outputs could not keep (disk too slow or full)", now)

    def _compare(self, where: str, received: int, lost: int, what: str, now: float) -> None:
        before = self.seen.get(where, (0, 0))
        self.seen[where] = (received, lost)
        new_received, new_lost = received - before[0], lost - before[1]
        cfg = self.config
        if new_lost < cfg.packet_loss_frames or new_lost < cfg.packet_loss_fraction * max(new_received, 1):
            return
        share = new_lost / new_received if new_received else 1.0
        self.detector.raise_alert(
            "sensor_packet_loss", now, f"sensor {where}: {new_lost} {what} in the last interval "
            f"({share:.2%} of {new_received}); the sensor did not see that traffic",
            f"sensor:{where}", running_total=False)


class MetricsError(Exception):
    """The Prometheus endpoint cannot be served; the message says why."""


# stats.json key -> (metric, kind, help); per-interface and per-log series are added by MetricsEndpoint.collect
_TOTALS = {
    "packets": ("otsensor_packets", "counter", "frames the pipeline processed"),
    "bytes": ("otsensor_bytes", "counter", "bytes of the frames processed"),
    "flows": ("otsensor_flows", "counter", "connections seen"),
    "flows_active": ("otsensor_flows_active", "gauge", "connections open now"),
    "alerts": ("otsensor_alerts", "counter", "alerts written"),
    "errors": ("otsensor_errors", "counter", "dissector and analyzer errors contained (bugs)"),
    "uptime_s": ("otsensor_uptime_seconds", "gauge", "seconds since the sensor started"),
}
_OUTPUTS = {
    "write_backlog_bytes": ("otsensor_write_backlog_bytes", "gauge", "bytes waiting for the log writer"),
    "write_errors": ("otsensor_write_errors", "counter", "writes that failed (their rows are counted as dropped)"),
    "logs_bytes": ("otsensor_logs_bytes", "gauge", "bytes the logs take in the output directory"),
    "deleted_files": ("otsensor_logs_deleted_files", "counter", "rotated logs deleted by max_disk"),
    "compress_failures": ("otsensor_logs_compress_failures", "counter", "rotated logs left uncompressed"),
}
_WORKER = {
    "packets": ("otsensor_worker_packets", "frames the worker processed"),
    "kernel_received": ("otsensor_worker_kernel_received_frames", "frames the kernel passed to the worker's sockets"),
    "kernel_dropped": ("otsensor_worker_kernel_dropped_frames",
                       "frames the kernel dropped: the worker's ring was full"),
    "freeze_count": ("otsensor_worker_ring_freezes", "times one of the worker's rings was full"),
}
_INTERFACE = {
    "kernel_received": ("otsensor_kernel_received_frames", "frames the kernel passed to the capture socket"),
    "kernel_dropped": ("otsensor_kernel_dropped_frames", "frames the kernel dropped: the ring was full"),
    "freeze_count": ("otsensor_ring_freezes", "times the ring was full"),
    "frames_truncated": ("otsensor_frames_truncated", "frames longer than a ring block, cut to it"),
}


class MetricsEndpoint:
    """The latest stats document as Prometheus text on a loopback port (prometheus-client, an optional extra).

    The HTTP server runs in a thread of prometheus-client; a scrape reads the document the sensor last
    published with :meth:`publish`, so it never touches the capture's own state.
    """

    def __init__(self, host: str, port: int) -> None:
        try:
            from prometheus_client import CollectorRegistry, start_http_server
        except ImportError:
            raise MetricsError("--metrics needs prometheus-client: pip install 'otsensor[metrics]'") from None
        self.doc: dict[str, Any] | None = None
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self)   # type: ignore[arg-type]
        try:
            self.server, self.thread = start_http_server(port, host, registry)
        except OSError as exc:
            raise MetricsError(f"--metrics {host}:{port}: cannot listen: {exc.strerror or exc}") from None

    def publish(self, doc: dict[str, Any]) -> None:
        self.doc = doc

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def collect(self) -> Any:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
        doc = self.doc
        if doc is None:
            return

        def family(name: str, kind: str, text: str, labels: tuple[str, ...] = ()) -> Any:
            make = CounterMetricFamily if kind == "counter" else GaugeMetricFamily
            return make(name, text, labels=list(labels))

        for table, values in ((_TOTALS, doc), (_OUTPUTS, doc["outputs"])):
            for key, (name, kind, text) in table.items():
                if values.get(key) is not None:
                    metric = family(name, kind, text)
                    metric.add_metric([], values[key])
                    yield metric
        interfaces = doc["capture"].get("interfaces", ())
        for key, (name, text) in _INTERFACE.items():
            metric = family(name, "counter", text, ("interface",))
            for iface in interfaces:
                metric.add_metric([iface["name"]], iface[key])
            yield metric
        workers = doc["capture"].get("workers", ())
        for key, (name, text) in _WORKER.items() if workers else ():
            metric = family(name, "counter", text, ("worker",))
            for worker in workers:
                metric.add_metric([str(worker["worker"])], worker[key])
            yield metric
        for name, text, counts in (("otsensor_records", "rows written per log", doc["records"]),
                                   ("otsensor_records_dropped", "rows the outputs could not keep, per log",
                                    doc["outputs"]["records_dropped"])):
            metric = family(name, "counter", text, ("log",))
            for log, n in counts.items():
                metric.add_metric([log], n)
            yield metric
        for key, text in (("dropped", "alerts a sink dropped (spool full)"), ("spooled", "alerts waiting")):
            metric = family(f"otsensor_sink_{key}", "counter" if key == "dropped" else "gauge", text, ("sink",))
            for sink in doc["sinks"]:
                metric.add_metric([sink["name"]], sink[key])
            yield metric
