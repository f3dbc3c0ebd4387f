"""SIGHUP for `otsensor run`: the zones, the baseline, ``[detection]`` and the sinks (syslog, ClickHouse) read again, no flow lost.

Everything is read and checked before anything changes, so a bad file keeps the previous configuration
whole and the reason is one line on stderr.  The flows, the inventory, the graph, the open (aggregated)
alerts and what the detector has observed carry on.  Sinks are replaced only when their configuration
changed: the old ones deliver what they can within their drain_timeout (what is left stays in their
spool, which a new sink of the same name sends first).  ``[capture]`` and ``[run]`` are read at start only.
"""
from __future__ import annotations

import argparse
from typing import Any, TextIO

from otsensor.sensor.analyze import Analysis, swap_zone_tagger


class Reloader:
    def __init__(self, args: argparse.Namespace, analysis: Analysis, sinks_config: Any, loss: Any,
                 err: TextIO) -> None:
        self.args = args
        self.analysis = analysis
        self.sinks_config = sinks_config   # the SensorConfig the current sinks were built from
        self.loss = loss
        self.err = err
        self.replaced_sinks: list[dict[str, Any]] = []   # reports of sinks a reload closed (for summary.json)
        self.warnings: list[str] = []

    def reload(self) -> bool:
        """Read every input again and switch to it; False (and one line on stderr) when one is bad."""
        from otsensor.sensor.baseline_cli import load_detection_inputs
        from otsensor.sensor.config import ConfigError, sinks_from_args

        inputs = load_detection_inputs(self.args)
        if isinstance(inputs, str):
            return self._refuse(inputs)
        try:
            sinks_config = sinks_from_args(self.args)
        except ConfigError as exc:
            return self._refuse(str(exc))
        zones, baseline, detection = inputs
        changed = self._sinks_changed(sinks_config)
        if changed and not self._replace_sinks(sinks_config):
            return False
        analysis = self.analysis
        analysis.detector.reconfigure(zones, baseline, detection)
        analysis.zone_tagger = swap_zone_tagger(analysis.pipeline.flow_hooks, analysis.zone_tagger, zones)
        self.loss.config = detection
        self._say(f"reloaded: zones {self.args.zones or '(none)'}, baseline {self.args.baseline or '(none)'}, "
                  f"config {self.args.config or '(none)'}; sinks {'replaced' if changed else 'unchanged'}")
        return True

    def _sinks_changed(self, config: Any) -> bool:
        old = self.sinks_config
        return (old.sinks, old.spool_dir, old.clickhouse) != (config.sinks, config.spool_dir, config.clickhouse)

    def _replace_sinks(self, config: Any) -> bool:
        """Close the current sinks (their spools are then free), open the new ones; if those cannot be
        opened (a TLS error), open the previous ones again."""
        from otsensor.sensor.sinks.outputs import SetupError, build_sinks, close_sinks
        analysis = self.analysis
        self.replaced_sinks += close_sinks(analysis.extra_sinks, analysis.sink, self.warnings)
        try:
            sinks = build_sinks(self.args, analysis.outdir, config)
        except SetupError as exc:   # type: ignore[misc]
            sinks = build_sinks(self.args, analysis.outdir, self.sinks_config)
            self._use(sinks)
            return self._refuse(str(exc))
        self.sinks_config = config
        self._use(sinks)
        return True

    def _use(self, sinks: list[Any]) -> None:
        from otsensor.sensor.sinks.shared import encode_once
        analysis = self.analysis
        analysis.extra_sinks[:] = sinks
        shared_sinks, shared = encode_once([analysis.sink, *sinks])   # one encoding per row, as at the start
        if shared is not None:
            shared.failed = analysis.pipeline.sink_failed
        analysis.pipeline.sinks[:] = shared_sinks

    def _refuse(self, why: str) -> bool:
        self._say(f"reload refused, the previous configuration stays: {why}", "warning")
        return False

    def _say(self, text: str, level: str = "info") -> None:
        self.err.write(f"otsensor: {level}: {text}\n" if level != "info" else f"otsensor: {text}\n")
        self.err.flush()
