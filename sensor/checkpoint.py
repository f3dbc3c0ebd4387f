"""`otsensor run`'s state across restarts: ``DIR/state/checkpoint.json``.

What a restart must not forget: the inventory (an asset seen before is not new, its ``first_seen``
stays), the communication graph, the alerts still aggregating (their next firings join them: the same
alert, the same id, not a new one) and, while ``--learn`` has not finished, what it learned and for how
long.  Each owner writes and reads its own state as JSON (``to_state`` and ``restore`` beside the code
that owns it; some analyzers are compiled, so nothing is pickled).  The checkpoint is written with the
documents (every ``--documents-interval``) and at the stop, through the log writer (atomically, after
the rows before it), and read back when the run starts.  The connections in progress are not in it: a
restart sees them again as new connections.  A checkpoint that cannot be read, or is not one of this
version, is one warning, and the run starts fresh (the next checkpoint replaces it).
"""
from __future__ import annotations

import json
import os
from typing import Any, TextIO

from otsensor.baselines.documents import encode_document
from otsensor.baselines.graph import CommGraph
from otsensor.baselines.inventory import Inventory
from otsensor.sensor.analyze import Analysis
from otsensor.sensor.learning import LiveLearning
from otsensor.sensor.sinks.outdir import STATE

CHECKPOINT = os.path.join(STATE, "checkpoint.json")   # relative to DIR, as the log writer names documents
FORMAT = "otsensor run state"
VERSION = 1
BAD_STATE = (KeyError, TypeError, ValueError, AttributeError)   # what restoring a malformed state raises


def make_state_dir(outdir: str) -> None:
    """Where the checkpoints go (OSError when it cannot be made: the run cannot write its outputs either)."""
    os.makedirs(os.path.join(outdir, STATE), exist_ok=True)


class Checkpoint:
    def __init__(self, analysis: Analysis, learning: LiveLearning | None, err: TextIO) -> None:
        self.analysis = analysis
        self.learning = learning
        self.err = err
        self.path = os.path.join(analysis.outdir, CHECKPOINT)

    def state(self) -> dict[str, Any]:
        run = self.analysis
        assert run.detector is not None
        return {"format": FORMAT, "version": VERSION, "inventory": run.inventory.to_state(),
                "graph": run.graph.to_state(), "open_alerts": run.detector.open_alerts_state(),
                "learning": self.learning.to_state() if self.learning is not None else None}

    def save(self) -> None:
        """Queue the checkpoint for the log writer (which counts a failed write like any document's)."""
        self.analysis.sink.write_document(CHECKPOINT, encode_document(self.state()))

    def restore(self) -> None:
        """Carry on from the checkpoint in DIR, if there is one; a bad one is a warning and a fresh start."""
        try:
            with open(self.path, "rb") as fh:
                doc = json.loads(fh.read())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as exc:
            return self._fresh(f"cannot read it: {getattr(exc, 'strerror', None) or exc}")
        if not isinstance(doc, dict) or doc.get("format") != FORMAT or doc.get("version") != VERSION:
            return self._fresh(f"not a checkpoint of this otsensor (format {FORMAT!r}, version {VERSION})")
        try:
            self._apply(doc)
        except BAD_STATE as exc:
            return self._fresh(f"damaged ({type(exc).__name__}: {exc})")
        run = self.analysis
        self.err.write(f"otsensor: carried on from {self.path}: {len(run.inventory.assets)} assets, "
                       f"{len(run.graph.edges)} edges, {len(doc['open_alerts'])} open alerts\n")

    def _apply(self, doc: dict[str, Any]) -> None:
        """Everything is rebuilt aside first, so that a damaged part changes nothing."""
        run = self.analysis
        assert run.detector is not None
        inventory, graph = Inventory(), CommGraph()
        inventory.restore(doc["inventory"])
        graph.restore(doc["graph"])
        resume = self.learning.resumer(doc["learning"]) if self.learning is not None else None
        run.detector.restore_open_alerts(doc["open_alerts"])   # last: it changes nothing when it raises
        run.inventory.assets, run.inventory.dropped = inventory.assets, inventory.dropped
        run.graph.edges, run.graph.dropped_edges = graph.edges, graph.dropped_edges
        if resume is not None:
            resume()

    def _fresh(self, why: str) -> None:
        self.err.write(f"otsensor: warning: {self.path}: {why}; starting afresh\n")
