"""The one-direction pipeline: frames -> flows and streams -> dissectors -> records -> analyzers and sinks.

The per-packet path (:meth:`Pipeline.packet`) is kept flat on purpose: it is
the sensor's throughput.  Flows that no dissector follows cost a dict lookup
and a few counters; only flows with a dissector get TCP reassembly.  Everything
is driven by capture time, never the wall clock, so the same capture always
gives the same output.
"""
from __future__ import annotations

import traceback
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Callable, Final, Iterable, Protocol

from mypy_extensions import mypyc_attr

from otsensor.dissectors.arp import ArpMessage
from otsensor.dissectors.base import Anomaly, Direction, Op, Record, round6
from otsensor.dissectors.content import guess_content
from otsensor.dissectors.registry import Registry, default_registry
from otsensor.sensor.decode import TCP, UDP, Defragmenter, decode, decode_arp
from otsensor.sensor.flows.reassembly import Budget, StreamReassembler
from otsensor.sensor.flows.table import (
    ACK,
    FIN,
    FLOW_COST,
    FOLLOWED_COST,
    HAS_PAYLOAD,
    HISTORY_MASKS,
    RST,
    SAW_DATA,
    SAW_FIN,
    SAW_RST,
    SAW_SYN,
    SAW_SYNACK,
    SYN,
    Flow,
    FlowTable,
    choose_originator,
    ip_text,
    make_uid,
)

SWEEP_EVERY: Final = 10.0  # seconds of capture time between idle-flow sweeps
DIRS: Final = (Direction.ORIG, Direction.RESP)


class Sink(Protocol):
    def write(self, log: str, row: dict[str, Any]) -> None: ...


class RecordSink(Protocol):
    """A sink that needs more than rows (the Zeek logs): each flow's packets, through the observer it
    attaches to the flow, each chunk of stream its dissector is given, each record, and each flow's end."""

    def new_flow(self, flow: Flow) -> Any: ...
    def stream(self, flow: Flow, d: int, item: bytes | int, ts: float) -> None: ...
    def write_record(self, flow: Flow, record: Record, now: float) -> None: ...
    def end_flow(self, flow: Flow, reason: str, now: float) -> None: ...
    def write_flow(self, flow: Flow, now: float) -> None: ...


class Analyzer(Protocol):
    def observe_record(self, flow: Flow, record: Record, op: Op | None,
                       ident: tuple[Direction, dict[str, Any]] | None) -> None: ...
    def observe_flow(self, flow: Flow) -> None: ...


@dataclass
class Limits:
    max_flows: int = 200_000
    # Everything open flows hold, in bytes: half for their own state (FlowTable evicts the least recently
    # active past it), half for out-of-order TCP bytes (a stream gives up its hole past it).  512 MiB keeps
    # the sensor within a 1 GB appliance with room for the inventory, graph and detector.
    flow_memory: int = 512 << 20
    tcp_timeout: float = 300.0
    udp_timeout: float = 60.0
    stream_buffer: int = 256 << 10   # out-of-order bytes held per direction
    stream_segments: int = 256


@dataclass
class Stats:
    packets: int = 0
    bytes: int = 0
    undecoded: int = 0
    records: dict[str, int] = field(default_factory=dict)   # per log (a plain dict: counted per record)
    anomalies: Counter = field(default_factory=Counter)
    services: Counter = field(default_factory=Counter)
    gaps: int = 0
    gap_bytes: int = 0
    dissector_errors: int = 0
    analyzer_errors: int = 0
    sink_errors: int = 0
    sink_errors_by_sink: Counter = field(default_factory=Counter)
    error_samples: list = field(default_factory=list)   # the first contained exceptions, for the report

    def as_dict(self, table: FlowTable, defrag: Defragmenter, budget: Budget) -> dict[str, Any]:
        return {
            "packets": self.packets, "bytes": self.bytes, "undecoded_packets": self.undecoded,
            "flows": table.created, "flows_evicted": table.evicted, "flows_evicted_reasons": dict(table.evicted_for),
            "flows_timed_out": table.timed_out,
            "flow_memory": {"budget": table.max_memory + budget.limit,
                            "state_limit": table.max_memory, "state_peak": table.memory_peak,
                            "out_of_order_limit": budget.limit, "out_of_order_peak": budget.peak},
            "stream_gaps": self.gaps, "stream_gap_bytes": self.gap_bytes,
            "ip_fragments_reassembled": defrag.reassembled, "ip_fragment_datagrams_dropped": defrag.dropped,
            "stream_holes_given_up_for_memory": budget.exceeded,
            "dissector_errors": self.dissector_errors,
            "analyzer_errors": self.analyzer_errors, "sink_errors": self.sink_errors,
            "error_samples": self.error_samples,
            "records": dict(sorted(self.records.items())), "anomalies": dict(sorted(self.anomalies.items())),
            "services": dict(sorted(self.services.items())),
        }


@mypyc_attr(allow_interpreted_subclasses=True)   # sensor/parallel's WorkerPipeline extends it
class Pipeline:
    def __init__(self, sinks: Iterable[Sink], analyzers: Iterable[Analyzer] = (),
                 registry: Registry | None = None, limits: Limits | None = None,
                 flow_hooks: Iterable[Callable[[Flow], None]] = (), record_sink: RecordSink | None = None) -> None:
        self.registry = registry or default_registry()
        self.sinks = list(sinks)
        self.record_sink = record_sink
        self.analyzers = list(analyzers)
        self.flow_hooks = list(flow_hooks)   # annotate a flow before its conn row is written
        self.limits = limits or Limits()
        out_of_order = self.limits.flow_memory // 2
        self.table = FlowTable(self._finish, self.limits.max_flows, self.limits.tcp_timeout, self.limits.udp_timeout,
                               max_memory=self.limits.flow_memory - out_of_order)
        self.defrag = Defragmenter()
        self.stream_budget = Budget(out_of_order)
        self.stats = Stats()
        self.shared: dict[str, Any] = {}
        self.next_sweep = float("-inf")   # capture time of the next idle-flow sweep (the first packet sweeps)
        self.last_ts = 0.0
        self._flows = self.table.by_key   # bound once: looked up for every packet

    # -- packets -----------------------------------------------------------------------------------------

    def run(self, packets: Iterable[tuple[float, int, bytes]]) -> None:
        packet = self.packet
        for ts, linktype, frame in packets:
            packet(ts, linktype, frame)

    def packet(self, ts: float, linktype: int, frame: bytes) -> None:
        stats = self.stats
        stats.packets += 1
        stats.bytes += len(frame)
        if ts >= self.next_sweep:
            self._sweep(ts)
        if ts > self.last_ts:
            self.last_ts = ts
        p = decode(linktype, frame, self.defrag, ts)
        if p is None:
            if not self.link_frame(ts, linktype, frame):
                stats.undecoded += 1
            return
        self.decoded(ts, p)

    def link_frame(self, ts: float, linktype: int, frame: bytes) -> bool:
        """A frame :func:`decode` did not follow: ARP is written to arp.jsonl and shown to the analyzers
        that read it (``observe_arp``); True when the frame was ARP."""
        arp = decode_arp(linktype, frame, ts)
        if arp is None:
            return False
        message, anomalies = arp
        for anomaly in anomalies:
            self.flowless_anomaly(anomaly)
        if message is None:
            return True
        self.count_record(message.LOG)
        if self.sinks:
            self.write_row(message.LOG, {"ts": round6(ts), **message.to_dict()})
        self.observe_arp(message)
        return True

    def observe_arp(self, message: ArpMessage) -> None:
        """An ARP message to the analyzers that read ARP (the others have no ``observe_arp``)."""
        for analyzer in self.analyzers:
            observe = getattr(analyzer, "observe_arp", None)
            if observe is not None:
                try:
                    observe(message)
                except Exception as exc:   # a bug must cost one message's analysis, not the run
                    self._contained("analyzer_errors", message.LOG, exc)

    @property
    def frames_read(self) -> int:
        """Frames given to the pipeline so far (what a progress bar counts)."""
        return self.stats.packets

    def clock(self, ts: float) -> None:
        """Capture time passes on a frame this pipeline does not follow (another worker's): idle flows are
        swept at exactly the capture times :meth:`packet` would sweep them."""
        if ts >= self.next_sweep:
            self._sweep(ts)
        if ts > self.last_ts:
            self.last_ts = ts

    def decoded(self, ts: float, p: tuple) -> None:
        """One decoded frame (what :func:`decode` returned) into its flow, stream and dissector."""
        vlan, inner, mac, src, dst, transport, sport, dport, flags, seq, payload, ip_len, ack = p
        key = (transport, src, sport, dst, dport, vlan, inner)
        entry = self._flows.get(key)
        if entry is not None and flags & SYN and entry[0].closing and not flags & ACK:
            self.table.remove(entry[0], "closed")  # the 5-tuple is reused by a new connection
            entry = None
        if entry is None:
            flow, d = self._new_flow(key, flags, ts), 0
            if flow.keys[0] != key:
                d = 1
        else:
            flow, d = entry
        flow.last_ts = ts
        flow.pkts[d] += 1
        flow.ip_bytes[d] += ip_len
        if payload:
            flow.bytes[d] += len(payload)
        if not flow.macs[d] and mac:
            flow.macs[d] = mac
        tracker = flow.tracker
        if tracker is not None:
            tracker.packet(d, flags, seq, ack, len(payload), ts)
        mask = HISTORY_MASKS[(flags & 0x17) | (HAS_PAYLOAD if payload else 0)]
        if mask & ~flow.hist[d]:
            flow.add_history(d, mask)
        if transport == TCP:
            if flow.reasm is not None and flow.reasm[1 - d].pending and flags & ACK:
                self._acked(flow, 1 - d, ack, ts)
            if payload or flags & (SYN | FIN | RST):  # a bare ACK changes nothing past the counters above
                self._tcp(flow, d, flags, seq, payload, ts)
        elif payload and (flow.dissector is not None or flow.probes_left):
            self._deliver(flow, d, payload, ts)

    def _new_flow(self, key: tuple, flags: int, ts: float) -> Flow:
        transport, src, sport, dst, dport, vlan, inner = key
        reverse = (transport, dst, dport, src, sport, vlan, inner)
        if choose_originator(transport, flags, sport, dport, self.registry.is_known_port):
            keys, orig, resp = (key, reverse), (src, sport), (dst, dport)
        else:
            keys, orig, resp = (reverse, key), (dst, dport), (src, sport)
        seed = repr((ts, keys[0])).encode()
        flow = Flow(make_uid(seed), keys, transport, (ip_text(orig[0]), orig[1]), (ip_text(resp[0]), resp[1]),
                    vlan, inner, ts)
        if self.record_sink is not None:
            flow.tracker = self.record_sink.new_flow(flow)
        reg = self.registry.by_port(transport, resp[1]) if transport in (TCP, UDP) else None
        if transport not in (TCP, UDP):
            flow.probes_left = 0
        self.table.add(flow)
        if reg is not None:
            self._attach(flow, reg)
        return flow

    def _attach(self, flow: Flow, reg: Any) -> None:
        flow.dissector = reg.factory(self.shared)
        flow.probes_left = 0
        if flow.transport == TCP:
            lim = self.limits
            flow.reasm = [StreamReassembler(lim.stream_buffer, lim.stream_segments, self.stream_budget),
                          StreamReassembler(lim.stream_buffer, lim.stream_segments, self.stream_budget)]
        self.table.resize(flow, FLOW_COST + FOLLOWED_COST)

    def _tcp(self, flow: Flow, d: int, flags: int, seq: int, payload: bytes, ts: float) -> None:
        seen = flow.tcp_seen
        if flags & (SYN | FIN | RST):
            if flags & SYN:
                seen[d] |= SAW_SYNACK if flags & ACK else SAW_SYN
                if flow.reasm is not None:
                    flow.reasm[d].syn(seq)
            if flags & FIN:
                seen[d] |= SAW_FIN
            if flags & RST:
                seen[d] |= SAW_RST
                flow.closing = True
            elif seen[0] & SAW_FIN and seen[1] & SAW_FIN:
                flow.closing = True
        if not payload:
            return
        seen[d] |= SAW_DATA
        if flow.reasm is None:
            if not flow.probes_left:
                return
            d = self._probe(flow, d, payload)
        # read again through a call: _probe may have attached streams, which mypy's narrowing of the
        # attribute above does not know (and a compiled build would check flow.reasm against it)
        reasm = streams_of(flow)
        if reasm is None:
            return
        self._stream_items(flow, d, reasm[d].push(seq, payload), ts)

    def _acked(self, flow: Flow, d: int, ack: int, ts: float) -> None:
        """The peer acknowledged bytes of direction ``d`` that the sensor never saw: the hole will not fill.

        Declaring the gap now, rather than when the buffer cap is reached,
        keeps the two directions in step (requests would otherwise reach the
        dissector long after their responses).
        """
        self._stream_items(flow, d, flow.reasm[d].acked(ack), ts)  # type: ignore[index]

    def _stream_items(self, flow: Flow, d: int, items: list, ts: float) -> None:
        record_sink = self.record_sink
        for item in items:
            if flow.dissector is None:
                return
            if record_sink is not None:
                record_sink.stream(flow, d, item, ts)
            if item.__class__ is int:
                self.stats.gaps += 1
                self.stats.gap_bytes += item
                self._call(flow, flow.dissector.gap, DIRS[d], item, ts)
            else:
                self._call(flow, flow.dissector.feed, item, DIRS[d], ts)

    def _probe(self, flow: Flow, d: int, payload: bytes) -> int:
        """Offer a payload to the content probes; returns the packet's direction, which may have flipped.

        Without a handshake and without a well-known port, the first sender
        was only a guess for the originator; a protocol that can tell a
        request from a response corrects the guess here.
        """
        flow.probes_left -= 1
        reg = self.registry.by_content(flow.transport, payload, DIRS[d])
        if reg is None:
            if "service_guess" not in flow.extra:   # not industrial: say what it looks like (conn.log, detector)
                guess = guess_content(payload)
                if guess is not None:
                    flow.extra["service_guess"] = guess
            return d
        handshake = flow.tcp_seen[0] & SAW_SYN or flow.tcp_seen[1] & SAW_SYNACK
        if reg.sender is not None and not handshake and reg.sender(payload) == DIRS[1 - d]:
            flow.swap()
            self.table.by_key[flow.keys[0]] = (flow, 0)
            self.table.by_key[flow.keys[1]] = (flow, 1)
            d = 1 - d
        self._attach(flow, reg)
        return d

    def _deliver(self, flow: Flow, d: int, payload: bytes, ts: float) -> None:
        """A datagram: to its dissector whole (UDP keeps message boundaries)."""
        if flow.dissector is None:
            d = self._probe(flow, d, payload)
            if flow.dissector is None:
                return
        self._call(flow, flow.dissector.feed, payload, DIRS[d], ts)

    def _call(self, flow: Flow, method: Callable, *args: Any) -> None:
        """Run a dissector method; an exception escaping it is a dissector bug, reported and contained."""
        dissector = flow.dissector
        try:
            records = method(*args)
        except Exception as exc:  # contract: never happens; if it does, the sensor must survive it
            self._contained("dissector_errors", f"{dissector.name}.{method.__name__} on {flow.uid}"
                            f"{raised_at(exc)}", exc)
            records = [Anomaly(self.last_ts, dissector.name, f"{dissector.name}.dissector_error",
                               f"dissector raised {type(exc).__name__}: {exc}"[:300])]
            self._detach(flow)
        if flow.dissector is not None:
            if dissector.confirmed and flow.service is None:
                flow.service = dissector.name
            if dissector.rejected and not dissector.confirmed:
                self._detach(flow)
        if records:
            self._emit(flow, records)

    def _detach(self, flow: Flow) -> None:
        """Stop following a flow's content (not this protocol after all, or a contained dissector bug)."""
        flow.dissector = None
        if flow.reasm is not None:
            for stream in flow.reasm:
                stream.discard()
            flow.reasm = None
        self.table.resize(flow, FLOW_COST)

    # -- records and flows -------------------------------------------------------------------------------

    def _emit(self, flow: Flow, records: list[Record]) -> None:
        counts = self.stats.records
        sinks = self.sinks
        record_sink = self.record_sink
        analyzers = self.analyzers
        head = flow.row_head()
        for rec in records:
            log = rec.LOG
            counts[log] = counts.get(log, 0) + 1
            if rec.__class__ is Anomaly:
                self.stats.anomalies[rec.name] += 1
            if sinks:  # (baseline learning and zone drafting run without sinks: no rows to build)
                # the flow's first columns copied (ts keeps its place), then the record's own filled in
                row = head.copy()
                row["ts"] = round6(rec.ts)
                try:
                    rec.fill_row(row)
                except Exception as exc:  # a record that cannot describe itself is a dissector bug: contained
                    self._contained("dissector_errors", f"{log}.fill_row", exc)
                    continue
                if len(sinks) == 1:   # the usual case, without write_row's loop
                    sink = sinks[0]
                    try:
                        sink.write(log, row)
                    except Exception as exc:
                        self.sink_failed(sink, log, exc)
                else:
                    self.write_row(log, row)
            if record_sink is not None:
                try:
                    record_sink.write_record(flow, rec, self.last_ts)
                except Exception as exc:  # a record's Zeek rows must cost that record's rows, not the run
                    self._contained("dissector_errors", f"{log}.zeek_rows", exc)
            if analyzers:
                try:
                    # what the record means is asked once; every analyzer reads the same answer
                    op, ident = rec.op(), rec.identity()
                    for analyzer in analyzers:
                        analyzer.observe_record(flow, rec, op, ident)
                except Exception as exc:  # a bug must cost one record's analysis, not the run
                    self._contained("analyzer_errors", log, exc)

    def _finish(self, flow: Flow, reason: str) -> None:
        if self.record_sink is not None:
            self.record_sink.end_flow(flow, reason, self.last_ts)
        if flow.dissector is not None:
            if flow.reasm is not None:
                for d in (0, 1):
                    self._stream_items(flow, d, flow.reasm[d].flush(), flow.last_ts)
            if flow.dissector is not None:
                self._call(flow, flow.dissector.close, flow.last_ts)
        if flow.service:
            self.stats.services[flow.service] += 1
        for hook in self.flow_hooks:
            hook(flow)
        self.write_row("conn", flow.conn_row())
        if self.record_sink is not None:
            self.record_sink.write_flow(flow, self.last_ts)
        for analyzer in self.analyzers:
            try:
                analyzer.observe_flow(flow)
            except Exception as exc:
                self._contained("analyzer_errors", "conn", exc)

    def write_row(self, log: str, row: dict[str, Any]) -> None:
        """Hand a row to every sink.  A sink that raises (a bug, or a receiver it cannot serve) costs that
        sink that row, counted as a sink error; the other sinks still get it and the run goes on."""
        for sink in self.sinks:
            try:
                sink.write(log, row)
            except Exception as exc:
                self.sink_failed(sink, log, exc)

    def sink_failed(self, sink: Sink, log: str, exc: Exception) -> None:
        """A sink raised on a row of ``log``: counted for that sink, and the run goes on."""
        name = getattr(sink, "name", type(sink).__name__)
        self.stats.sink_errors_by_sink[name] += 1
        self._contained("sink_errors", f"sink {name} ({log})", exc)

    def capture_anomaly(self, ts: float, name: str, reason: str, detail: dict[str, Any]) -> None:
        """An anomaly of the capture itself (a reader had to mend a packet): counted and logged, flowless."""
        self.flowless_anomaly(Anomaly(ts, "capture", name, reason, detail=detail))

    def flowless_anomaly(self, rec: Anomaly) -> None:
        """An anomaly that belongs to no flow (the capture's, an ARP frame's): counted and logged."""
        self.count_record(rec.LOG)
        self.stats.anomalies[rec.name] += 1
        if self.sinks:
            self.write_row(rec.LOG, {"ts": round6(rec.ts), **rec.to_dict()})

    def count_record(self, log: str) -> None:
        records = self.stats.records
        records[log] = records.get(log, 0) + 1

    def _contained(self, counter: str, where: str, exc: Exception) -> None:
        """Count an exception the run survived (a bug), and keep the first few for the report."""
        setattr(self.stats, counter, getattr(self.stats, counter) + 1)
        if len(self.stats.error_samples) < 10:
            self.stats.error_samples.append(f"{where}: {type(exc).__name__}: {exc}"[:300])

    def _sweep(self, ts: float) -> None:
        self.next_sweep = ts + SWEEP_EVERY
        self.table.sweep(ts)
        self.defrag.expire(ts)

    def tick(self, now: float) -> None:
        """Time passed with no packet (a quiet live network): sweep idle flows if a sweep is due at ``now``,
        a time on the capture's clock."""
        if now >= self.next_sweep:
            self._sweep(now)

    def new_capture(self, first_ts: float) -> None:
        """A new file starts. If its clock is behind what was read, it is another capture, not the
        continuation of a rotated one: finish every flow, so the same 5-tuple in two unrelated
        captures does not become one connection."""
        if first_ts < self.last_ts:
            self.table.finish_all()
            self.defrag.pending.clear()
            self.defrag.buffered = 0

    def finish(self) -> dict[str, Any]:
        """End of input: flush every flow; returns the run statistics."""
        self.table.finish_all()
        return self.stats.as_dict(self.table, self.defrag, self.stream_budget)


def raised_at(exc: BaseException) -> str:
    """Where an exception was raised, as ' at file.py:line in function' (its innermost frame)."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return ""
    last = frames[-1]
    return f" at {last.filename.rsplit('/', 1)[-1]}:{last.lineno} in {last.name}"


def streams_of(flow: Flow) -> list | None:
    """A flow's two stream reassemblers, or None (a call, so that no earlier narrowing applies)."""
    return flow.reasm
