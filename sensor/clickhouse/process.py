"""The ClickHouse sink of a run, with its delivery in a process of its own.

The server parses the rows (JSON lines, sensor/clickhouse/jsonrows.py), but preparing the bodies,
compressing them, the set-up (clickhouse-driver's import alone is a few tenths of a second), waiting on the
network and reshaping rows for old servers are work that, in a thread, would hold the interpreter lock that
capture needs.  So the run's sink only gathers the rows' JSON lines (the JSONL file's bytes) into batches
(sensor/clickhouse/batches.py), in pieces of ``piece_bytes``, and hands each piece to a writer thread that
pipes it, in one large write, to ``python -m otsensor.sensor.clickhouse.process``: a child that runs the
in-process sink (sensor/clickhouse/sink.py: delivery thread, spool, retries, dedup) on the other core.

Protocol on the child's pipes: the configuration as JSON in argv; on stdout one line, ``{"ready": true}``
or ``{"error": "..."}`` once it has connected (a wrong password stops the run before it starts), and at the
end one line with its final report (``"final": true``), and every second in between one line with its
report so far (``summary.json`` and ``stats.json`` of a long run show live counts); on stdin, each piece of a
batch as two 4-byte big-endian lengths, its header line's and its lines', then the header line and the lines
(batches.py: ``piece_head``; the lines go as the capture gathered them, not copied into one payload).
When stdin ends, the child delivers within ``drain_timeout``, spools the rest, and reports.

In ``otsensor analyze`` the child reads the rows of the run's JSONL files itself (``follow``, follow.py): the
pipeline then writes each row to the files only, and the pipe carries the rest (Zeek rows, the inventory and
graph) and two control lines, ``{"follow": directory}`` at the start and ``{"end": {log: size}}`` once the run has
written its files out; each batch the child reads is announced on stdout, ``{"followed": id, "table": ..., "first":
byte, "end": byte or null}``, before it can be confirmed.  ``otsensor run`` (rotating files) pipes every row.

Nothing is lost when the child dies (killed, out of memory): it confirms each batch on stdout, one line
``{"settled": id, "counts": ...}`` as soon as the batch's rows are counted delivered, spooled, dropped or
rejected, with its counts as they are then; the run's sink keeps every batch it piped until it is confirmed
(at most what the child may hold: its ``max_memory_rows`` queue, the pipe and the batch it sends).  The spool
belongs to the child while it runs; if the child dies without its final report, the run's sink spools the
batches it holds unconfirmed, counts them on top of the child's last confirmed counts, and says so in one
problem line.  A batch the child had delivered but not yet confirmed goes to the spool too and is sent again
with its id: the server stores it once (sensor/clickhouse/sink.py).  Of followed files, the run spools from the
file each part the child did not confirm: an announced batch under its id, what it never read under new ones.
"""
from __future__ import annotations

import json
import os
import random
import resource
import select
import struct
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import asdict
from typing import Any

import orjson
from otsensor.sensor.clickhouse import connection
from otsensor.sensor.clickhouse.batches import UNBOUNDED, Batch, Batcher, Lines, piece_from, piece_head, piece_of
from otsensor.sensor.clickhouse.follow import Follower, file_ranges, read_lines, tables_with_files
from otsensor.sensor.clickhouse.zeek_tables import stored_tables
from otsensor.sensor.config import ClickHouseConfig

FRAME = struct.Struct(">II")      # a piece's header line's length and its lines' length
START_GRACE = 20.0      # seconds, beyond the connect timeouts, for the child to start and answer
NO_REPORT = "the delivery process did not report"
LIVE_REPORT_EVERY = 1.0  # seconds between the child's reports while it runs
OUTCOMES = ("delivered", "spooled", "dropped", "rejected")
FREE_BUFFERS = 32        # confirmed pieces' buffers kept for the next pieces (8 MiB at the default piece_bytes)


class ProcessSink(Batcher):
    """What the pipeline writes to; see the module docstring."""

    def __init__(self, cfg: ClickHouseConfig, spool_dir: str, instance: str | None = None) -> None:
        from otsensor.sensor.clickhouse.sink import SinkSetupError, default_name
        try:
            target = connection.resolve(cfg)
            connection.check_driver()           # missing: say so here, in one line, not from the child
        except connection.ClickHouseError as exc:
            raise SinkSetupError(f"clickhouse sink ({_display(cfg)}): {exc}") from None
        # a batch goes to the child in pieces (batches.py and stream.py say why), unless piece_bytes is 0
        super().__init__(cfg, stored_tables(), piece_bytes=cfg.piece_bytes or UNBOUNDED)
        self.spool_dir, self.instance = spool_dir, instance
        self.name = default_name(target, instance, cfg.name)
        self.display = target.display
        # (batch id, header line, lines, rows) of each piece not yet piped
        self.pending: deque[tuple[int, bytes, Any, int]] = deque()
        self.pending_rows = 0
        # each batch's pieces (header line, lines) piped and not yet confirmed by the child, in the order piped
        self.unconfirmed: dict[int, list[tuple[bytes, Any]]] = {}
        # buffers of confirmed pieces, for the next ones (fresh_buffer); what their length may grow by
        self.free_buffers: deque[bytearray] = deque()
        self.padding = memoryview(bytes(self.buffer_size))
        self.confirmed: dict[str, dict[str, int]] = {}
        self.leftovers: dict[str, dict[str, int]] | None = None   # what this side spooled when the child died
        self.leftover_note = ""
        self.leftover_spool: str | None = None
        self.wake = threading.Condition()
        self.child_report: dict[str, Any] | None = None   # the final one
        self.live_report: dict[str, Any] | None = None    # the latest while it runs
        self.failure: str | None = None
        self.closed = False
        # the run's JSONL sink when the child reads its files (follow); what it announced of each batch it read
        # from them, by id: [table, first byte, end (None while open), settled]; the files' rows and final sizes
        self.files: Any = None
        self.followed: dict[int, list[Any]] = {}
        self.followed_counts: dict[str, int] = {}
        self.file_ends: dict[str, int] = {}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "otsensor.sensor.clickhouse.process", json.dumps(asdict(cfg)), spool_dir,
             instance or ""], stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.writer = threading.Thread(target=self._pipe_batches, name=f"otsensor-{self.name}-pipe", daemon=True)
        self.reader = threading.Thread(target=self._read_reports, name=f"otsensor-{self.name}-reports", daemon=True)

    def start(self) -> None:
        from otsensor.sensor.clickhouse.sink import SinkSetupError
        answer = self._read_line(2 * self.cfg.connect_timeout + START_GRACE)
        if not answer or "ready" not in answer:
            self.proc.kill()
            self.proc.wait()
            why = (answer or {}).get("error") or "the delivery process did not start"
            raise SinkSetupError(why)
        self.writer.start()
        self.reader.start()

    def follow(self, files: Any) -> bool:
        """Have the delivery process read the rows of ``files`` (the run's JSONL sink, writing new files) from
        those files (follow.py): the run then writes them there only.  False if it cannot."""
        if getattr(files, "mode", None) != "wb" or files.files or self._files_in(files.directory):
            return False   # appended or existing files would be read from their start: earlier rows too
        self.files = files
        self._control({"follow": os.path.abspath(files.directory)})
        return True

    def _files_in(self, directory: str) -> bool:
        """Whether ``directory`` holds a file of a table already (analyze's is a fresh staging directory)."""
        try:
            return bool(tables_with_files(directory, self.table_names))
        except OSError:
            return True

    def _control(self, message: dict[str, Any]) -> None:
        """A control line for the child, piped in order with the pieces (no batch, no lines)."""
        with self.wake:
            self.pending.append((None, orjson.dumps(message) + b"\n", b"", 0))   # type: ignore[arg-type]
            self.wake.notify_all()

    # -- capture thread --------------------------------------------------------------------------------

    def hand_over_piece(self, table: str, batch_id: int, rows: Lines, start: int, last: bool) -> None:
        head = piece_head(table, batch_id, rows.count, start, last)
        with self.wake:
            # the child reads as fast as it can and spills to its spool when the server is behind; rows pile up
            # here only if it cannot even read (or the writer thread cannot get the interpreter lock: write_all),
            # and then capture waits rather than lose them
            while self.pending_rows > self.cfg.max_memory_rows and self.failure is None:
                self.wake.wait(1.0)
            self.pending.append((batch_id, head, rows.body, rows.count))
            self.pending_rows += rows.count
            self.wake.notify_all()

    def hand_over(self, batch: Batch) -> None:
        self.hand_over_piece(batch[0], batch[1], batch[2], 0, True)

    def fresh_buffer(self) -> bytearray:
        """A confirmed piece's buffer, grown back to ``buffer_size`` within what it holds already, else a new one.

        A new buffer is allocated, zeroed and later freed, and on a machine that hands freed memory back to its
        host the next one comes back from the host (bench/README.md round seven).  A buffer is reused only once
        the delivery process has confirmed its batch: by then it has read every byte of it, and nothing here
        reads it again (a batch is spooled by this side only when it was not confirmed)."""
        try:
            body = self.free_buffers.pop()
        except IndexError:
            return bytearray(self.buffer_size)
        body += self.padding[:self.buffer_size - len(body)]
        return body

    # -- writer thread ---------------------------------------------------------------------------------

    def _pipe_batches(self) -> None:
        stdin = self.proc.stdin
        fd = stdin.fileno()                                       # type: ignore[union-attr]
        while True:
            with self.wake:
                while not self.pending and not self.closed:
                    self.wake.wait()
                if not self.pending:
                    break
                batch_id, head, body, rows = self.pending[0]
                if batch_id is not None:   # not a control line
                    self.unconfirmed.setdefault(batch_id, []).append((head, body))   # before the child confirms it
            try:   # the lines as they are: no copy to put the lengths and header in front
                write_all(fd, [FRAME.pack(len(head), len(body)) + head, body])
            except OSError as exc:
                failure = f"the delivery process stopped: {exc.strerror or exc}"
            else:
                failure = None
            with self.wake:   # piped or not, the piece is among the unconfirmed now, and there only
                self.pending.popleft()
                self.pending_rows -= rows
                self.failure = self.failure or failure
                self.wake.notify_all()
            if failure:
                return
        try:
            stdin.close()                                         # type: ignore[union-attr]
        except OSError:
            pass

    # -- reader thread ---------------------------------------------------------------------------------

    def _read_reports(self) -> None:
        for line in self.proc.stdout:                             # type: ignore[union-attr]
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if "settled" in message:
                with self.wake:
                    pieces = self.unconfirmed.pop(message["settled"], None) or []
                    self.confirmed = message["counts"]
                    followed = self.followed.get(message["settled"])
                    if followed is not None:
                        followed[3] = True
                self._recycle(body for _, body in pieces)
            elif "followed" in message:
                with self.wake:   # announced when a batch opens, and again with its end when it is whole
                    entry = self.followed.setdefault(message["followed"], [message["table"], message["first"],
                                                                           None, False])
                    entry[2] = message["end"]
            elif message.pop("final", False):
                self.child_report = message
            else:
                self.live_report = message

    def _recycle(self, bodies: Any) -> None:
        """Confirmed pieces' buffers kept for fresh_buffer: those that can grow back to ``buffer_size`` where they
        are (a short last piece was shrunk to its size), at most FREE_BUFFERS."""
        for body in bodies:
            if (len(self.free_buffers) < FREE_BUFFERS and body.__class__ is bytearray
                    and len(body) <= self.buffer_size < body.__alloc__()):
                self.free_buffers.append(body)

    # -- the end ---------------------------------------------------------------------------------------

    def close(self) -> None:
        if self.closed:
            return
        self.seal_all()
        if self.files is not None:
            self._end_files()
        with self.wake:
            self.closed = True
            self.wake.notify_all()
        self.writer.join()
        budget = self.cfg.drain_timeout + self.cfg.send_timeout + self.cfg.connect_timeout + START_GRACE
        self.reader.join(budget)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        if self.child_report is None:   # the child died: what it did not confirm goes to the spool, now ours
            self._spool_leftovers()

    def _end_files(self) -> None:
        """The followed files written out, their rows counted, and their final sizes told to the child."""
        self.files.flush()
        for log, n in self.files.counts.items():
            if log in self.table_names:
                self.followed_counts[log] = n
            else:
                self.skipped[log] = self.skipped.get(log, 0) + n
        self.file_ends = {log: fh.tell() for log, fh in self.files.files.items() if log in self.table_names}
        self._control({"end": self.file_ends})

    def sent_counts(self) -> dict[str, int]:
        counts = super().sent_counts()
        for log, n in self.followed_counts.items():
            counts[log] = counts.get(log, 0) + n
        return counts

    def _spool_leftovers(self) -> None:
        from otsensor.sensor.clickhouse.sink import ClickHouseSink
        keeper = ClickHouseSink(self.cfg, self.spool_dir, self.instance)
        keeper.spooled = {}   # this side's own spills only: what the spool held is in the child's counts
        # every batch the child did not confirm, whole: its pieces piped and those not yet piped, in order,
        # joined by the keeper as the child's sink joins them (Batcher.hand_over_piece), and spilled
        for head, body in [*(piece for pieces in self.unconfirmed.values() for piece in pieces),
                           *((head, body) for batch_id, head, body, _ in self.pending if batch_id is not None)]:
            keeper.hand_over_piece(*piece_from(head, body))
        keeper.hand_over_unfinished()
        keeper._spill_queue()
        self._spool_from_files(keeper)
        self.unconfirmed.clear()
        self.pending.clear()
        keeper.spool.close()
        self.leftovers = {"spooled": keeper.spooled, "dropped": keeper.dropped}
        self.leftover_spool = keeper.spool_path
        rows = sum(keeper.spooled.values()) + sum(keeper.dropped.values())
        self.leftover_note = self._death_note(keeper, rows)

    def _spool_from_files(self, keeper: Any) -> None:
        """Every part of the followed files the child did not confirm, spooled from the file: a batch it announced
        under its id (sent again, the server stores it once), what it never read under new ids."""
        settled = {batch_id for batch_id, entry in self.followed.items() if entry[3]}
        for table, size in self.file_ends.items():
            path = os.path.join(self.files.directory, f"{table}.jsonl")
            batches = [(first, end, batch_id) for batch_id, (t, first, end, _) in self.followed.items() if t == table]
            for begin, end, batch_id in file_ranges(batches, size):
                if batch_id in settled:
                    continue
                for n, lines in enumerate(read_lines(path, begin, end, self.cfg.batch_rows)):
                    keeper._spill((table, batch_id if n == 0 and batch_id is not None else random.getrandbits(43),
                                   lines))

    def _death_note(self, keeper: Any, rows: int) -> str:
        code = self.proc.returncode
        how = f"was killed by signal {-code}" if code is not None and code < 0 else f"exited ({code})"
        note = f"the delivery process {how} before its final report"
        lost = sum(keeper.dropped.values())
        if not rows:
            return f"{note}; it had confirmed every row"
        if lost:
            return (f"{note}: of the {rows} row(s) it had not confirmed, {rows - lost} were spooled by the run and "
                    f"{lost} dropped ({keeper.spool.error or 'the spool is full'})")
        return f"{note}: the {rows} row(s) it had not confirmed were spooled by the run"

    def _read_line(self, timeout: float) -> dict[str, Any] | None:
        stdout = self.proc.stdout
        ready, _, _ = select.select([stdout], [], [], timeout)
        line = stdout.readline() if ready else b""               # type: ignore[union-attr]
        try:
            return json.loads(line) if line else None
        except ValueError:
            return None

    def report(self) -> dict[str, Any]:
        """The child's report, with what this side counted: rows sent to the sink and logs without a table; if
        the child died, its last confirmed counts and what this side spooled."""
        if self.child_report is None and self.leftovers is not None:
            return self._report(self._after_death())
        return self._report(self.child_report)

    def _after_death(self) -> dict[str, Any]:
        """The child's last confirmed counts per table plus the rows this side spooled (or dropped)."""
        counts = {k: dict(v) for k, v in self.confirmed.items()} or {k: {} for k in OUTCOMES}
        for outcome, tables in (self.leftovers or {}).items():
            for table, n in tables.items():
                counts[outcome][table] = counts[outcome].get(table, 0) + n
        names = sorted({t for by_table in counts.values() for t, n in by_table.items() if n})
        rep = dict(self.live_report or self._blank())
        rep.update({outcome: sum(counts[outcome].values()) for outcome in OUTCOMES},
                   tables={t: {o: counts[o].get(t, 0) for o in OUTCOMES} for t in names},
                   problems=[*rep.get("problems", []), self.leftover_note])
        rep["spool_dir"] = rep.get("spool_dir") or self.leftover_spool
        rep["last_error"] = rep.get("last_error") or self.failure or NO_REPORT
        return rep

    def _blank(self) -> dict[str, Any]:
        """The report before the child's first."""
        return {"name": self.name, "url": self.display, "delivered": 0, "spooled": 0, "dropped": 0, "rejected": 0,
                "tables": {}, "spool_dir": None, "last_error": self.failure or (NO_REPORT if self.closed else None),
                "spool_error": None, "problems": []}

    def _report(self, child: dict[str, Any] | None) -> dict[str, Any]:
        rep = dict(child or self.live_report or self._blank())
        tables = {t: dict(counts) for t, counts in rep.get("tables", {}).items()}
        sent = self.sent_counts()
        for table, n in sent.items():
            tables.setdefault(table, {"delivered": 0, "spooled": 0, "dropped": 0, "rejected": 0})["sent"] = n
        rep.update(tables=dict(sorted(tables.items())), accepted=sum(sent.values()),
                   filtered=sum(self.skipped.values()),
                   problems=[*self.skipped_problems(), *rep.get("problems", [])])
        if self.failure and not self.child_report and self.leftovers is None:
            rep["problems"].append(self.failure)
        return rep


def write_all(fd: int, parts: list[Any]) -> None:
    """``parts`` written to ``fd`` in order, in one system call unless a signal cuts it short.

    The writer thread gets the interpreter lock back after each blocking call it makes, and the capture thread
    (compiled code) gives it up only when asked, once a switch interval (5 ms) has passed.  A piece written as
    the header, the lines and a flush cost two or three such waits: on row-heavy traffic (1M EtherNet/IP
    packets, 2M rows) the writer fell behind and capture waited 0.27-0.61 s a run for it (``max_memory_rows``);
    with one writev a piece, 0.02-0.12 s (bench/README.md, round seven)."""
    views = [memoryview(part) for part in parts]
    while views:
        written = os.writev(fd, views)
        while views and written >= len(views[0]):
            written -= len(views[0])
            views.pop(0)
        if views and written:
            views[0] = views[0][written:]


def _display(cfg: ClickHouseConfig) -> str:
    try:
        return connection.resolve(cfg).display
    except connection.ClickHouseError:
        return cfg.url.split("@")[-1]


def _say(stream: Any, message: dict[str, Any]) -> None:
    stream.write(json.dumps(message, default=str).encode() + b"\n")
    stream.flush()


def child_main(argv: list[str]) -> int:
    """The delivery process: the in-process sink, fed with the batches that arrive on stdin."""
    from otsensor.sensor.clickhouse.sink import ClickHouseSink, SinkSetupError
    cfg = ClickHouseConfig(**json.loads(argv[0]))
    out, inp = sys.stdout.buffer, sys.stdin.buffer
    try:
        sink = ClickHouseSink(cfg, argv[1], argv[2] or None)
        sink.start()
    except SinkSetupError as exc:
        _say(out, {"error": str(exc)})
        return 2
    _say(out, {"ready": True})
    sink.on_settled = lambda batch_id: _say(out, {"settled": batch_id, "counts": sink.counts()})
    stop = threading.Event()
    reporter = threading.Thread(target=_report_live, args=(sink, out, stop), daemon=True)
    reporter.start()
    feeding = threading.Lock()       # the pieces piped and those read from the files go to the sink one at a time

    def take(*piece: Any) -> None:
        with feeding:
            sink.take_piece(*piece)

    follower: Follower | None = None
    while True:
        lengths = inp.read(FRAME.size)
        if len(lengths) < FRAME.size:
            break
        started = time.thread_time()
        head_size, body_size = FRAME.unpack(lengths)
        head, body = inp.read(head_size), inp.read(body_size)
        if len(body) < body_size or len(head) < head_size:   # the run died mid-piece: its batch is unfinished
            break
        info = orjson.loads(head)
        if "follow" in info:
            follower = _follow(sink, info["follow"], take, out)
        elif "end" in info:
            if follower is not None:
                follower.finish(info["end"])
        else:
            take(*piece_of(info, body))
        sink.cpu_parts["read"] += time.thread_time() - started
    if follower is not None:
        follower.finish(None)          # at once if the run told the files' sizes; else to their last line
        follower.close()
        sink.cpu_parts["read"] += follower.cpu
        if follower.error is not None:   # no final report: the run spools what was not confirmed, from the files
            raise follower.error
    sink.close()
    stop.set()
    reporter.join()
    usage = resource.getrusage(resource.RUSAGE_SELF)
    _say(out, {**sink.report(), "delivery_cpu_s": round(usage.ru_utime + usage.ru_stime, 3), "final": True})
    return 0


def _follow(sink: Any, directory: str, take: Any, out: Any) -> Follower:
    """The thread reading the run's files in ``directory`` into ``sink``; each batch announced on ``out``."""
    from otsensor.sensor.clickhouse.tables import DOCUMENT_LOGS
    cfg = sink.cfg

    def announce(table: str, batch_id: int, first: int, end: int | None) -> None:
        _say(out, {"followed": batch_id, "table": table, "first": first, "end": end})

    def busy() -> bool:   # the server is behind: the files wait rather than fill the spool
        return sink.sealed_rows - sink.taken_rows > cfg.max_memory_rows

    follower = Follower(directory, frozenset(sink.tables) - frozenset(DOCUMENT_LOGS), cfg, take, announce, busy)
    follower.start()
    return follower


def _report_live(sink: Any, out: Any, stop: threading.Event) -> None:
    """The sink's counts every LIVE_REPORT_EVERY seconds, until ``stop``."""
    while not stop.wait(LIVE_REPORT_EVERY):
        try:
            report = sink.report()
        except RuntimeError:   # a count dict grew while it was copied (the delivery thread): next time
            continue
        _say(out, report)


if __name__ == "__main__":
    sys.exit(child_main(sys.argv[1:]))
