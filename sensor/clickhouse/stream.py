"""One batch streamed to the server while the capture process is still filling it.

The delivery process gets a batch in pieces (batches.py).  Were it to insert the batch only once the last
piece came, a run's end would wait for every table's last batch to be prepared, sent and parsed one after the
other: 2.6 s of the 1M-packet mix's 16 tables, where capture itself took 12 s.  Instead, the first piece of a
batch opens an insert of its own (an HTTP request with a chunked body: sensor/clickhouse/http.py), and each
piece is prepared (jsonrows.py, its rows numbered from ``start``) and sent as it comes; the server parses the
rows as they arrive.  At the end only each table's last piece is left, and the server's writing of the parts.

The stream is a shortcut, never the only way: every piece stays with the sink (sensor/clickhouse/sink.py)
until the insert is confirmed, and a stream that fails for any reason (the server away or refusing the rows,
a timeout) hands its whole batch to the delivery thread, which retries, reshapes, rejects or spools it as
it does every other batch.  A stream cut off before its end is not an error to the server: 18.16 stores the
rows it had read (measured: 60,000 rows sent in three chunks, the connection closed without the last chunk,
60,000 rows stored).  Sending the batch again is then safe only where a re-sent row merges with its first
copy: the compatible schema's ReplacingMergeTree keyed by ``_row`` (the batch keeps its id, so its rows keep
theirs).  On servers with insert deduplication tokens the token of a part-stored batch would drop its whole
retry, so there batches go whole (the sink opens no stream).
"""
from __future__ import annotations

import socket
import threading
import time
from collections import deque
from typing import Any

from otsensor.sensor.clickhouse.batches import Batch, Lines
from otsensor.sensor.clickhouse.http import HttpInserter
from otsensor.sensor.clickhouse.jsonrows import JsonRows


class InsertStream:
    """A batch's insert, fed piece by piece (``add``) from the delivery process's reading thread and ended
    with the whole batch (``finish``); its own thread prepares and sends.  ``sink`` is told the outcome:
    ``stream_done(stream)`` once the server has stored it, else ``stream_failed(stream, exc)`` with the
    batch whole."""

    def __init__(self, sink: Any, inserter: HttpInserter, shaper: JsonRows, query: str, batch_id: int,
                 settings: dict[str, Any]) -> None:
        self.sink = sink
        self.inserter, self.shaper, self.query = inserter, shaper, query
        self.batch_id, self.settings = batch_id, settings
        self.items: deque[tuple[Lines, int] | None] = deque()   # pieces to send; None: the batch is whole
        self.ready = threading.Condition()
        self.batch: Batch | None = None
        self.error: BaseException | None = None
        self.cpu = {"prepare": 0.0, "compress": 0.0, "send": 0.0}
        self.conn: Any = None
        self.thread = threading.Thread(target=self._run, name=f"otsensor-stream-{batch_id:x}", daemon=True)
        self.thread.start()

    def add(self, rows: Lines, start: int) -> None:
        with self.ready:
            self.items.append((rows, start))
            self.ready.notify()

    def finish(self, batch: Batch) -> None:
        with self.ready:
            self.batch = batch
            self.items.append(None)
            self.ready.notify()

    def abort(self) -> None:
        """Cut the insert off (from another thread): the thread fails and ends; the server may keep the rows it
        had read (the module docstring)."""
        sock = getattr(self.conn, "sock", None)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _next(self) -> tuple[Lines, int] | None:
        with self.ready:
            while not self.items:
                self.ready.wait()
            return self.items.popleft()

    def _run(self) -> None:
        conn = None
        try:
            conn = self.conn = self.inserter.open_stream(self.query, self.settings)
            while (item := self._next()) is not None:
                self._send(conn, *item)
            started = time.thread_time()
            self.inserter.end_stream(conn)
            self.cpu["send"] += time.thread_time() - started
        except Exception as exc:  # noqa: BLE001 - any failure: the batch goes the delivery thread's way
            if conn is not None:
                conn.close()     # the server may keep what it read: the retry's rows merge with them (_row)
            self.error = exc
            while self.batch is None:     # the sink needs the whole batch: wait for its last piece
                self._next()
            self.sink.stream_failed(self, exc)
            return
        self.sink.stream_done(self)

    def _send(self, conn: Any, rows: Lines, start: int) -> None:
        if not rows.count:
            return
        started = time.thread_time()
        body = self.shaper.body(rows, self.batch_id, start=start)
        prepared = time.thread_time()
        compress = self.inserter.send_chunk(conn, body)
        self.cpu["prepare"] += prepared - started
        self.cpu["compress"] += compress
        self.cpu["send"] += time.thread_time() - prepared - compress
