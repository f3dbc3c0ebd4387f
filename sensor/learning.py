"""`otsensor run --learn DURATION`: learn the baseline from the live traffic, write it, then detect with it.

The learner is the Observer `otsensor baseline learn` uses (baselines/learn.py), added to the run's
pipeline beside the inventory; the run's inventory gives the baseline its assets, as the offline learner's
does.  Its clock is capture time, so that a capture piped in with ``-r -`` learns from its own time span,
not from how fast it is read.  While it learns, each capture-time midnight writes the baseline as it
stands to ``DIR/baseline-YYYYMMDD.json`` (the day that ended), so that `otsensor baseline diff` shows
what each day taught.  When the period is over the baseline goes to ``DIR/baseline.json`` (atomically)
and the detector switches to it, as a SIGHUP reload with a new baseline does; ``--baseline`` then names
that file, so a later SIGHUP reads it again (reviewed or accepted alerts included).
"""
from __future__ import annotations

import argparse
import math
import os
from datetime import datetime, timezone
from typing import Any, Callable, TextIO

from otsensor.baselines.inventory import Inventory
from otsensor.baselines.learn import BaselineError, Observer, load_baseline, save_baseline, to_baseline
from otsensor.sensor.analyze import Analysis

DAY = 86400.0
BASELINE_NAME = "baseline.json"


class LiveLearning:
    """The learning period of one run; :meth:`due` is called with a capture time once it reaches ``self.next``."""

    def __init__(self, duration: float, analysis: Analysis, args: argparse.Namespace, err: TextIO) -> None:
        self.duration = duration
        self.analysis = analysis
        self.args = args
        self.err = err
        detector = analysis.detector
        assert detector is not None
        self.observer = Observer(detector.zones)
        self.elapsed_before = 0.0      # learning time of the runs before a restart (sensor/checkpoint.py)
        self.started: float | None = None   # capture time learning (re)started at
        self.until = math.inf
        self.next_midnight = math.inf
        self.next = -math.inf          # the first packet starts the clock
        self.done = False
        analysis.pipeline.analyzers.append(self.observer)

    @property
    def elapsed(self) -> float:
        """Seconds of capture time learned so far, restarts included."""
        if self.started is None:
            return self.elapsed_before
        return self.elapsed_before + max(0.0, self.analysis.pipeline.last_ts - self.started)

    def due(self, ts: float) -> None:
        """Capture time ``ts`` has reached ``self.next``: start, write a day's snapshot, or finish."""
        if self.started is None:
            self.started = ts
            self.until = ts + self.duration - self.elapsed_before
            self.next_midnight = (ts // DAY + 1) * DAY
        elif ts >= self.until:
            self.finish()
            return
        else:
            while self.next_midnight <= ts:
                self._snapshot(self.next_midnight - DAY)
                self.next_midnight += DAY
        self.next = min(self.until, self.next_midnight)

    def baseline(self) -> dict[str, Any]:
        run = self.analysis
        return to_baseline(self.observer, run.inventory, run_inputs(self.args), self.args.zones)

    def _snapshot(self, day_start: float) -> None:
        day = datetime.fromtimestamp(day_start, timezone.utc).strftime("%Y%m%d")
        self._save(os.path.join(self.analysis.outdir, f"baseline-{day}.json"), self.baseline())

    def finish(self) -> None:
        """The period is over: the connections still open count as the offline learner's last ones do,
        the baseline is written, and the detector compares with it from the next packet on."""
        run = self.analysis
        inventory = Inventory()   # a copy (the run's own sees these flows when they end); compiled: no deepcopy
        inventory.restore(run.inventory.to_state())
        for flow in run.pipeline.table.flows():
            self.observer.observe_flow(flow)
            inventory.observe_flow(flow)
        baseline = to_baseline(self.observer, inventory, run_inputs(self.args), self.args.zones)
        path = os.path.join(run.outdir, BASELINE_NAME)
        written = self._save(path, baseline)
        self._switch(baseline, path if written else None,
                     f"learned the baseline over {self.observer.duration:.0f}s of capture ({len(baseline['assets'])} "
                     f"assets, {len(baseline['edges'])} edges) -> {path if written else '(not written)'}; "
                     "detecting with it from now on")

    def _switch(self, baseline: dict[str, Any], path: str | None, said: str) -> None:
        run = self.analysis
        self.done = True
        self.next = math.inf
        if self.observer in run.pipeline.analyzers:
            run.pipeline.analyzers.remove(self.observer)
        detector = run.detector
        assert detector is not None
        detector.reconfigure(detector.zones, baseline, detector.config)
        self.args.baseline = path
        self.err.write(f"otsensor: {said}\n")
        self.err.flush()

    # -- across restarts (sensor/checkpoint.py) -------------------------------------------------------

    def to_state(self) -> dict[str, Any]:
        return {"duration": self.duration, "elapsed": self.elapsed, "done": self.done,
                "observer": None if self.done else self.observer.to_state()}

    def resumer(self, state: dict[str, Any] | None) -> Callable[[], None] | None:
        """What carrying on from ``state`` takes, checked now and done by calling the result; None when there
        is nothing to carry on (the last run did not learn).  Raises KeyError, TypeError, ValueError or
        AttributeError when ``state`` is not what :meth:`to_state` wrote."""
        if state is None:
            return None
        elapsed = float(state["elapsed"])
        if state["done"] is True:
            path = os.path.join(self.analysis.outdir, BASELINE_NAME)
            try:
                baseline = load_baseline(path)
            except BaselineError as exc:
                return lambda: self._say_relearning(str(exc))
            return lambda: self._switch(baseline, path, f"detecting with {path}, learned before the restart")
        observer = Observer(self.observer.zones)
        observer.restore(state["observer"])

        def resume() -> None:
            run = self.analysis
            run.pipeline.analyzers[run.pipeline.analyzers.index(self.observer)] = observer
            self.observer, self.elapsed_before = observer, elapsed
        return resume

    def _say_relearning(self, why: str) -> None:
        self.err.write(f"otsensor: warning: the learning had finished before the restart, but {why}: "
                       "learning again\n")

    def stop_unfinished(self) -> None:
        """The run stops while still learning: say how far it got (a restart goes on from a checkpoint)."""
        if not self.done:
            self.err.write(f"otsensor: warning: still learning at the stop ({self.elapsed:.0f}s of "
                           f"{self.duration:.0f}s learned): no baseline.json written\n")

    def _save(self, path: str, baseline: dict[str, Any]) -> bool:
        try:
            save_baseline(baseline, path)
        except OSError as exc:
            self.err.write(f"otsensor: warning: cannot write {path}: {exc.strerror or exc}\n")
            return False
        return True


def run_inputs(args: argparse.Namespace) -> list[str]:
    """What the run reads, as the baseline's ``learned_from.files`` names it."""
    return list(args.interface) if args.interface else [args.read]
