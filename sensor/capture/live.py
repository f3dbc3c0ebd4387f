"""Live capture: frames from one or more interfaces (AF_PACKET rings) or from a pcap stream on a pipe.

Both sources yield ``(ts, linktype, frame)`` like the file readers, so the
pipeline cannot tell them apart, and both call ``tick()`` between two frames
at least every ``WAIT`` seconds, busy or quiet: that is where the caller,
which decides what is due, sweeps idle flows and writes its statistics on
the wall clock.  Both
end when :meth:`stop` is called (from a signal handler) or the input ends.
"""
from __future__ import annotations

import os
import select
import time
from collections.abc import Callable, Iterator
from typing import Any

from otsensor.sensor.capture.bpf import FilterError, Program, compile_filter
from otsensor.sensor.capture.files import AnomalyHook, CaptureError, CaptureReader, open_stream
from otsensor.sensor.capture.ring import PacketRing, RingConfig

WAIT = 0.25         # seconds a poll or select may block: how quickly a stop is noticed
DRAIN_MARGIN = 1.0  # seconds a stopped capture waits, beyond two block timeouts, for its last blocks


def _no_tick() -> None:
    pass


class InterfaceCapture:
    """Every frame of the named interfaces, one receive ring each, all served by one poll loop."""

    def __init__(self, interfaces: list[str], ring: RingConfig | None = None, bpf: str | None = None,
                 promiscuous: bool = True, fanout_group: int | list[int] | None = None,
                 tick: Callable[[], None] = _no_tick) -> None:
        """``fanout_group``: join every ring to this PACKET_FANOUT group (ring.FANOUT_NEW: a new group per
        interface), or, a list, the ring of each interface to its group."""
        self.tick = tick
        self.stopping = False
        self.rings: list[PacketRing] = []
        programs: dict[int, Program] = {}

        def program_for(linktype: int) -> Program | None:
            if bpf is None:
                return None
            if linktype not in programs:
                programs[linktype] = compile_filter(bpf, linktype)
            return programs[linktype]

        try:
            for i, name in enumerate(interfaces):
                group = fanout_group[i] if isinstance(fanout_group, list) else fanout_group
                self.rings.append(PacketRing(name, ring or RingConfig(), program_for, promiscuous, group))
        except FilterError as exc:
            self.close()
            raise CaptureError(f"--bpf {bpf!r} on {name}: {exc}") from None
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[tuple[float, int, bytes]]:
        poller = select.poll()
        for ring in self.rings:
            poller.register(ring.fileno(), select.POLLIN)
        while not self.stopping:
            poller.poll(WAIT * 1000)
            for ring in self.rings:   # each ring, ready or not: checking a block's status costs no syscall
                yield from ring.frames_ready()
                self.tick()
        yield from self._drain(poller)

    def _drain(self, poller: select.poll) -> Iterator[tuple[float, int, bytes]]:
        """After the stop: every frame the kernel had accepted into a ring by then, read before the end.

        The last frames sit in a block the kernel has not handed over yet.  It retires a partly filled
        block only when the block was already current at the previous tick of its retire timer, so that
        takes up to two block timeouts.  The kernel's own count (PACKET_STATISTICS: frames received
        minus frames dropped) says how many frames each ring holds, so the wait ends as soon as every one
        was read, and at the latest after two timeouts and DRAIN_MARGIN (a timer late on a loaded host).
        """
        targets = []
        for ring in self.rings:
            ring.read_statistics()
            targets.append(ring.kernel_received - ring.kernel_dropped)
        longest = max(ring.config.block_timeout_ms for ring in self.rings) / 1000
        deadline = time.monotonic() + 2 * longest + DRAIN_MARGIN
        while True:
            for ring in self.rings:
                yield from ring.frames_ready()
            left = deadline - time.monotonic()
            if left <= 0 or all(ring.frames >= target for ring, target in zip(self.rings, targets)):
                return
            poller.poll(min(left, WAIT) * 1000)

    def stop(self) -> None:
        self.stopping = True

    def statistics(self) -> dict[str, Any]:
        """Kernel and ring counters per interface and in total (reads the kernel's counters)."""
        per = []
        for ring in self.rings:
            ring.read_statistics()
            per.append(ring.statistics())
        totals = {key: sum(int(p[key]) for p in per)
                  for key in ("kernel_received", "kernel_dropped", "freeze_count", "frames_truncated")}
        return {**totals, "interfaces": per}

    def close(self) -> None:
        for ring in self.rings:
            ring.close()


class QuietClock:
    """The capture clock while no packet comes: it moves on with the wall clock from the last packet's time,
    so a quiet network still closes its idle flows (an old capture piped in at full speed never gets here,
    as packets keep moving between two looks)."""

    def __init__(self, now: float) -> None:
        self.seen = 0                 # packets counted at the last look
        self.anchor = (0.0, now)      # (capture time, monotonic time) when packets last moved on

    def quiet_time(self, packets: int, last_ts: float, now: float) -> float | None:
        """The capture time at monotonic ``now`` if no packet came since the last look, else None."""
        if packets != self.seen:
            self.seen = packets
            self.anchor = (last_ts, now)
            return None
        return self.anchor[0] + now - self.anchor[1]


class StreamCapture:
    """A pcap or pcapng stream on a pipe (``tcpdump -w - | otsensor run -r -``), read as it arrives.

    The stream is opened when iteration starts, so waiting for its first bytes can be stopped like the rest;
    a stream that is not a capture raises CaptureError from the iteration.
    """

    def __init__(self, fd: int, name: str, tick: Callable[[], None] = _no_tick) -> None:
        self.name = name
        self.tick = tick
        self.stopping = False
        self.bytes_read = 0
        self._stream = _WaitingStream(fd, self)
        self.reader: CaptureReader | None = None
        self.on_anomaly: AnomalyHook | None = None   # told of each packet the reader mends (a bad clock)

    def __iter__(self) -> Iterator[tuple[float, int, bytes]]:
        self.reader = open_stream(self._stream, self.name, self.on_anomaly)
        return iter(self.reader)

    def stop(self) -> None:
        self.stopping = True

    def statistics(self) -> dict[str, Any]:
        return {"kernel_received": None, "kernel_dropped": None, "freeze_count": None, "frames_truncated": None,
                "stream": self.name, "bytes_read": self.bytes_read}

    def close(self) -> None:
        if self.reader is None:
            self._stream.close()
        else:
            self.reader.close()


class _WaitingStream:
    """A file descriptor read with at most one ``read`` per call that never blocks longer than WAIT, so the
    capture can tick while the pipe is quiet, and that reads as ended once the capture is stopped."""

    def __init__(self, fd: int, capture: StreamCapture) -> None:
        self.fd = fd
        self.capture = capture

    def read(self, n: int = -1) -> bytes:
        capture = self.capture
        while not capture.stopping:
            ready, _, _ = select.select([self.fd], [], [], WAIT)
            capture.tick()
            if ready:
                data = os.read(self.fd, n if n > 0 else 1 << 20)
                capture.bytes_read += len(data)
                return data
        return b""

    def fileno(self) -> int:
        return self.fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


def open_stream_capture(path: str, tick: Callable[[], None] = _no_tick) -> StreamCapture:
    """``-`` is standard input; anything else is a file or a named pipe."""
    if path == "-":
        return StreamCapture(os.dup(0), "<stdin>", tick)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise CaptureError(f"{path}: cannot open: {exc.strerror or exc}") from None
    return StreamCapture(fd, path, tick)


__all__ = ["InterfaceCapture", "QuietClock", "RingConfig", "StreamCapture", "open_stream_capture"]
