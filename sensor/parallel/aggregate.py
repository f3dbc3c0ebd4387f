"""The aggregator: starts the workers, merges their event streams, and replays them into one analysis.

The analyzers (inventory, graph, detector) and every sink live here, fed in the order one process
would have fed them (events.py), so `--workers N` writes the same bytes as one process.
"""
from __future__ import annotations

import fcntl
import multiprocessing
import os
import pickle
import queue
import signal
import threading
from typing import Any, Callable, Iterator

from otsensor.sensor.parallel.events import batch_of
from otsensor.sensor.parallel.replay import Replay, merged
from otsensor.sensor.parallel.worker import worker_main
from otsensor.sensor.pipeline import Pipeline

PIPE_BYTES = 1 << 20     # room for a worker to run ahead of the merge (Linux's default pipe holds 64 KiB)
# Batches read ahead per worker (each a few hundred KiB): the merge advances at the pace of the slowest
# worker at each moment, so on a busy machine a worker that was descheduled must not stall the others.
READ_AHEAD = 96
F_SETPIPE_SZ = getattr(fcntl, "F_SETPIPE_SZ", 1031)
# Counters a worker reports for the frames every worker decodes: taken from the first worker, not summed.
DECODED_BY_ALL = ("ip_fragments_reassembled", "ip_fragment_datagrams_dropped")


class WorkerLost(Exception):
    """A worker died or failed: its flows are lost; what the others sent is kept."""


class Workers:
    """N forked worker processes and the read ends of their pipes.

    Worker ``w`` runs ``target(send, others, *args_of(w))`` (worker.worker_main for files, live.py's for
    capture sockets); besides batches of events it may send ("stats", ...) reports, kept in ``reports``."""

    def __init__(self, count: int, target: Callable[..., None], args_of: Callable[[int], tuple]) -> None:
        ctx = multiprocessing.get_context("fork")   # a worker starts from the run's configuration as it is
        self.count = count
        self.procs: list[Any] = []
        self.conns: list[Any] = []
        self.finals: dict[int, tuple] = {}
        self.reports: dict[int, Any] = {}
        for w in range(count):
            recv, send = ctx.Pipe(duplex=False)
            _widen(send.fileno())
            proc = ctx.Process(target=target, name=f"otsensor-worker-{w}", daemon=True,
                               args=(send, [*self.conns, recv], *args_of(w)))
            proc.start()
            send.close()   # the worker holds the only write end: its death reads as end of file
            self.procs.append(proc)
            self.conns.append(recv)
        self.inboxes: list[queue.Queue] = [queue.Queue(READ_AHEAD) for _ in range(count)]
        self.readers = [threading.Thread(target=_read_ahead, args=(conn, inbox), daemon=True)
                        for conn, inbox in zip(self.conns, self.inboxes)]
        for reader in self.readers:   # (threads only once every worker is forked)
            reader.start()

    def events(self, w: int) -> Iterator[tuple]:
        """Worker ``w``'s events in its order; raises WorkerLost if it dies or fails."""
        for batch in self.batches(w):
            yield from batch

    def batches(self, w: int) -> Iterator[list[tuple]]:
        """Worker ``w``'s batches of events in its order; raises WorkerLost if it dies or fails."""
        inbox = self.inboxes[w]
        while True:
            data = inbox.get()
            if data is None:
                raise WorkerLost(self._death(w))
            batch = batch_of(data)
            if batch is not None:
                yield batch
                continue
            message = pickle.loads(data)
            if message[0] == "batch":
                yield message[1]
            elif message[0] == "stats":
                self.reports[w] = message[1]
            elif message[0] == "done":
                self.finals[w] = message
                return
            else:
                raise WorkerLost(f"worker {w + 1} of {self.count} failed: {message[1]}")

    def _death(self, w: int) -> str:
        proc = self.procs[w]
        proc.join(5)
        code = proc.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return f"worker {w + 1} of {self.count} (pid {proc.pid}) died ({how}); its flows are missing from the outputs"

    def interrupt(self, sig: int = signal.SIGINT) -> None:
        for proc in self.procs:
            if proc.is_alive():
                os.kill(proc.pid, sig)

    def stop(self) -> None:
        """Join the workers; any still running after a failure is ended (each by its own pid)."""
        for proc in self.procs:
            proc.join(0 if self.finals.keys() != set(range(self.count)) else 10)
            if proc.is_alive():
                proc.kill()
                proc.join()
        for inbox, reader, conn in zip(self.inboxes, self.readers, self.conns):
            while reader.is_alive():   # the worker is gone: its reader ends once what it holds is taken
                try:
                    inbox.get(timeout=0.1)
                except queue.Empty:
                    pass
            conn.close()


def _read_ahead(conn: Any, inbox: queue.Queue) -> None:
    """Move a worker's messages from its pipe to ``inbox`` as they come; None once the pipe is closed."""
    try:
        while True:
            inbox.put(conn.recv_bytes())
    except (EOFError, OSError):
        inbox.put(None)


def _widen(fd: int) -> None:
    try:
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)
    except OSError:   # above the system's pipe-max-size: the default size works, only with less slack
        pass


def run_workers(pipeline: Pipeline, paths: list[str], count: int, errors: list[str], warnings: list[str],
                progress: Any = None) -> tuple[dict[str, Any], bool]:
    """Analyse ``paths`` with ``count`` workers into ``pipeline``'s sinks and analyzers; returns the run's
    pipeline statistics (as Pipeline.finish gives them) and whether Ctrl-C interrupted it."""
    interrupted = False
    workers: Workers | None = None

    def on_interrupt(signum: int, frame: Any) -> None:
        nonlocal interrupted
        if not interrupted:
            interrupted = True
            if workers is not None:
                workers.interrupt()   # each finishes its flows and reports; the merge runs to its end

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        workers = Workers(count, worker_main, lambda w: (w, count, paths, pipeline.limits, pipeline.flow_hooks,
                                                         progress if w == 0 else None))
        if interrupted:   # Ctrl-C while they were being started
            workers.interrupt()
        streams = [workers.batches(w) for w in range(count)]
        try:
            Replay(pipeline).run(merged(streams))
        except WorkerLost as exc:
            errors.append(str(exc))
        workers.stop()
    finally:
        signal.signal(signal.SIGINT, previous)
    finals = [workers.finals[w] for w in sorted(workers.finals)]
    if finals and 0 in workers.finals:
        _, _, read_errors, read_warnings, _ = workers.finals[0]
        errors[:0] = read_errors     # what reading the files said comes first, as in one process
        warnings.extend(read_warnings)
    interrupted = interrupted or any(final[4] for final in finals)
    return merge_stats([final[1] for final in finals], pipeline), interrupted


def merge_stats(parts: list[dict[str, Any]], pipeline: Pipeline,
                shared: tuple[str, ...] = DECODED_BY_ALL) -> dict[str, Any]:
    """The workers' statistics as one process would count them, with the aggregator's own errors; the
    counters named in ``shared`` count frames every worker decoded, so the first worker's are taken."""
    own = pipeline.stats
    if not parts:
        return pipeline.finish()
    merged = dict(parts[0])
    for part in parts[1:]:
        for name, value in part.items():
            if name in shared:
                continue
            merged[name] = _add(merged[name], value)
    merged["analyzer_errors"] += own.analyzer_errors
    merged["sink_errors"] += own.sink_errors
    merged["error_samples"] = (merged["error_samples"] + own.error_samples)[:10]
    for name in ("records", "anomalies", "services"):
        merged[name] = dict(sorted(merged[name].items()))
    return merged


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, dict):
        out = dict(a)
        for key, value in b.items():
            out[key] = _add(out[key], value) if key in out else value
        return out
    if isinstance(a, list):
        return a + b
    return a + b
